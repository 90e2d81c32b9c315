//! The `command` objective: runs the researcher's program once per trial.
//!
//! * parameters: one JSON object on stdin, and `MLT_PARAM_<NAME>` variables (upper-cased,
//!   other characters as `_`); also `MLT_STUDY`, `MLT_TRIAL`, `MLT_ATTEMPT`;
//! * each stdout line `{"step": k, "value": v}` (or `"values": [...]`) is an intermediate
//!   report; a line `{"value": v}` (or `{"values": [...]}`) without `step` is the result,
//!   optionally with `"metrics": {"name": number, …}` for constraints;
//!   other lines are ignored;
//! * a prune verdict, a cancel or the timeout kills the program's whole process group;
//! * a non-zero exit (or no result line) fails the trial with the tail of its stderr.
use super::TrialContext;
use mlt_protocol::messages::{AssignMsg, Outcome, Verdict};
use mlt_protocol::records::Metrics;
use mlt_protocol::spec::CommandSpec;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STDERR_TAIL: usize = 2000;

/// `MLT_PARAM_` + the name, upper-cased, with anything but letters and digits as `_`.
pub fn env_name(param: &str) -> String {
    let clean: String = param
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("MLT_PARAM_{clean}")
}

#[allow(unsafe_code)]
fn kill_group(child: &Child) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a negative pid signals the process group we created for the child
    // (process_group(0) below); it has no memory-safety preconditions.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

enum Line {
    Step(u64, Vec<f64>),
    Result(Vec<f64>, Metrics),
    Other,
}

fn parse_line(line: &str) -> Line {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(line.trim())
    else {
        return Line::Other;
    };
    let values = match (m.get("value"), m.get("values")) {
        (Some(v), _) => v.as_f64().map(|x| vec![x]),
        (None, Some(serde_json::Value::Array(a))) => a.iter().map(|x| x.as_f64()).collect(),
        _ => None,
    };
    let Some(values) = values else {
        return Line::Other;
    };
    match m.get("step").and_then(|s| s.as_u64()) {
        Some(step) => Line::Step(step, values),
        None => {
            let metrics = match m.get("metrics") {
                Some(serde_json::Value::Object(o)) => o
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                    .collect(),
                _ => Metrics::new(),
            };
            Line::Result(values, metrics)
        }
    }
}

/// Runs one trial of a command objective.
pub fn run_command(spec: &CommandSpec, assign: &AssignMsg, ctx: &mut dyn TrialContext) -> Outcome {
    let mut cmd = Command::new(&spec.command[0]);
    cmd.args(&spec.command[1..]);
    if let Some(dir) = assign
        .workdir
        .as_deref()
        .filter(|d| std::path::Path::new(d).is_dir())
    {
        cmd.current_dir(dir);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    for (k, v) in &assign.params {
        cmd.env(env_name(k), v.to_string());
    }
    cmd.env("MLT_STUDY", &assign.study_name)
        .env("MLT_TRIAL", assign.key.trial.to_string())
        .env("MLT_ATTEMPT", assign.key.attempt.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot start `{}`: {e}", spec.command[0])),
    };
    let params = serde_json::to_string(&assign.params).unwrap_or_else(|_| "{}".into());
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read stdin must not make us fail.
        let _ = stdin
            .write_all(params.as_bytes())
            .and_then(|_| stdin.write_all(b"\n"));
    }
    let tail = Arc::new(Mutex::new(VecDeque::<u8>::new()));
    let stderr = child.stderr.take().expect("piped");
    let tail_w = tail.clone();
    let err_thread = std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut t = tail_w.lock().expect("tail lock");
            t.extend(&buf[..n]);
            let excess = t.len().saturating_sub(STDERR_TAIL);
            t.drain(..excess);
        }
    });
    // Lines arrive on a channel so that stop and timeout are checked while the program is quiet.
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = spec
        .timeout_seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut result: Option<(Vec<f64>, Metrics)> = None;
    let stop = |child: &mut Child, err_thread: std::thread::JoinHandle<()>| {
        kill_group(child);
        let _ = child.wait();
        let _ = err_thread.join();
    };
    loop {
        if ctx.stopped() {
            stop(&mut child, err_thread);
            return Outcome::Pruned;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop(&mut child, err_thread);
            return Outcome::Failed(format!(
                "timed out after {} s",
                spec.timeout_seconds.unwrap_or_default()
            ));
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => match parse_line(&line) {
                Line::Step(step, values) => match ctx.report(step, values) {
                    Verdict::Continue => {}
                    Verdict::Prune | Verdict::Stale => {
                        stop(&mut child, err_thread);
                        return Outcome::Pruned;
                    }
                },
                Line::Result(values, metrics) => result = Some((values, metrics)),
                Line::Other => {}
            },
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait();
    let _ = err_thread.join();
    let tail = String::from_utf8_lossy(
        &tail
            .lock()
            .expect("tail lock")
            .iter()
            .copied()
            .collect::<Vec<u8>>(),
    )
    .trim()
    .to_string();
    let with_tail = |what: String| {
        if tail.is_empty() {
            what
        } else {
            format!("{what}; stderr tail:\n{tail}")
        }
    };
    match status {
        Ok(s) if s.success() => match result {
            Some((v, m)) => Outcome::Complete(v, m),
            None => Outcome::Failed(with_tail(
                "the program exited without printing a result line such as {\"value\": 0.5}".into(),
            )),
        },
        Ok(s) => Outcome::Failed(with_tail(format!(
            "`{}` failed ({s})",
            spec.command.join(" ")
        ))),
        Err(e) => Outcome::Failed(format!("waiting for the program failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::ids::{StudyId, TrialId, TrialKey};
    use mlt_protocol::records::ParamValue;
    use mlt_protocol::spec::ObjectiveSpec;

    struct Ctx {
        reports: Vec<(u64, Vec<f64>)>,
        prune_at: Option<u64>,
    }
    impl TrialContext for Ctx {
        fn report(&mut self, step: u64, values: Vec<f64>) -> Verdict {
            self.reports.push((step, values));
            if Some(step) == self.prune_at {
                Verdict::Prune
            } else {
                Verdict::Continue
            }
        }
        fn stopped(&self) -> bool {
            false
        }
    }

    fn assign(script: &str, timeout: Option<f64>) -> (CommandSpec, AssignMsg) {
        let spec = CommandSpec {
            command: vec!["sh".into(), "-c".into(), script.into()],
            env: Default::default(),
            timeout_seconds: timeout,
        };
        let a = AssignMsg {
            key: TrialKey {
                study: StudyId(1),
                trial: TrialId(4),
                attempt: 1,
            },
            slot: mlt_protocol::ids::SlotId(0),
            study_name: "s".into(),
            params: [
                ("lr".to_string(), ParamValue::Float(0.5)),
                ("num-leaves".to_string(), ParamValue::Int(3)),
            ]
            .into(),
            objective: ObjectiveSpec::Command(spec.clone()),
            workdir: None,
            run: Default::default(),
        };
        (spec, a)
    }

    #[test]
    fn params_in_steps_and_result_out() {
        let (spec, a) = assign(
            r#"read json; echo "got $json" >&2; echo '{"step": 1, "value": 3}'; echo "noise"; echo "{\"step\": 2, \"value\": $MLT_PARAM_LR}"; echo "{\"value\": $MLT_PARAM_NUM_LEAVES}""#,
            None,
        );
        let mut ctx = Ctx {
            reports: vec![],
            prune_at: None,
        };
        assert_eq!(
            run_command(&spec, &a, &mut ctx),
            Outcome::Complete(vec![3.0], Default::default())
        );
        assert_eq!(ctx.reports, vec![(1, vec![3.0]), (2, vec![0.5])]);
    }

    #[test]
    fn failure_carries_stderr_tail() {
        let (spec, a) = assign("echo 'Traceback: boom' >&2; exit 3", None);
        let mut ctx = Ctx {
            reports: vec![],
            prune_at: None,
        };
        let Outcome::Failed(msg) = run_command(&spec, &a, &mut ctx) else {
            panic!("should fail")
        };
        assert!(
            msg.contains("exit status: 3") && msg.contains("Traceback: boom"),
            "{msg}"
        );
    }

    #[test]
    fn prune_and_timeout_kill_the_process_group() {
        let dir = std::env::temp_dir().join(format!("mlt-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("after");
        let pids = dir.join("pids");
        // The program writes its pid and its child's, then both would mark the marker a
        // second later.
        let script = format!(
            "sh -c 'sleep 1; touch {m}' & echo $! >> {p}; echo $$ >> {p}; echo '{{\"step\": 1, \"value\": 1}}'; sleep 1; touch {m}",
            p = pids.display(),
            m = marker.display()
        );
        let (spec, a) = assign(&script, None);
        let mut ctx = Ctx {
            reports: vec![],
            prune_at: Some(1),
        };
        assert_eq!(run_command(&spec, &a, &mut ctx), Outcome::Pruned);
        // Both processes are gone (the event), and neither lived to mark the marker.
        // Alive: listed in /proc and not a zombie (a dead process not yet reaped).
        let alive = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
                .is_some_and(|r| !r.starts_with('Z'))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&pids).unwrap_or_default();
            let listed: Vec<&str> = text.split_whitespace().collect();
            if listed.len() == 2 && !listed.iter().any(|p| alive(p)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the processes {listed:?} never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!marker.exists(), "the program and its children were killed");
        let (spec, a) = assign("sleep 5", Some(0.3));
        let mut ctx = Ctx {
            reports: vec![],
            prune_at: None,
        };
        let Outcome::Failed(msg) = run_command(&spec, &a, &mut ctx) else {
            panic!("should time out")
        };
        assert!(msg.contains("timed out"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
