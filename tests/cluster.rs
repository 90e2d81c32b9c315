//! Whole-cluster scenarios with real processes on loopback: many nodes, node kills, scheduler
//! kills and restarts.
mod util;

use std::collections::{BTreeMap, BTreeSet};
use util::{count_state, wait_until, Cluster};

const BENCH_SPACE: &str = "[space]\nx0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\n";

fn bench_spec(name: &str, n: u32, step_seconds: f64) -> String {
    format!(
        "[study]\nname = \"{name}\"\nn_trials = {n}\nseed = 5\n{BENCH_SPACE}[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 5\nstep_seconds = {step_seconds}\n"
    )
}

#[test]
fn three_nodes_run_300_trials_each_recorded_once_never_on_two_slots() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    for i in 0..3 {
        c.add_node(&format!("n{i}"), 2);
    }
    let audit = c.dir.path().join("audit.log");
    let script = format!(
        "echo \"start $MLT_TRIAL $MLT_ATTEMPT $(date +%s%N)\" >> {a}; echo '{{\"step\": 1, \"value\": 1}}'; echo \"end $MLT_TRIAL $MLT_ATTEMPT $(date +%s%N)\" >> {a}; echo \"{{\\\"value\\\": $MLT_PARAM_X}}\"",
        a = audit.display()
    );
    let spec = c.write(
        "s.toml",
        &format!("[study]\nname = \"many\"\nn_trials = 300\n[space]\nx = {{ type = \"float\", low = 0, high = 1 }}\n[objective]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {script:?}]\n"),
    );
    let study = c.submit(&spec);
    wait_until(240, "300 finished trials", || {
        c.study_state(&study) == "complete"
    });
    let trials = c.trials(&study);
    assert_eq!(trials.len(), 300);
    assert_eq!(count_state(&trials, "complete"), 300);
    let numbers: BTreeSet<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..300).collect());
    for t in &trials {
        // The recorded value is the parameter the program received: nothing was mixed up.
        assert_eq!(t["values"][0], t["params"]["x"], "{t}");
    }
    // The programs' own audit: every trial ran once, start before end, never twice at once.
    let log = std::fs::read_to_string(&audit).unwrap();
    let mut runs: BTreeMap<u64, Vec<(u128, u128)>> = BTreeMap::new();
    let mut open: BTreeMap<(u64, u64), u128> = BTreeMap::new();
    for line in log.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (trial, attempt, t): (u64, u64, u128) = (
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        );
        match f[0] {
            "start" => assert!(
                open.insert((trial, attempt), t).is_none(),
                "trial {trial} attempt {attempt} started twice"
            ),
            _ => runs
                .entry(trial)
                .or_default()
                .push((open.remove(&(trial, attempt)).unwrap(), t)),
        }
    }
    assert!(open.is_empty());
    assert_eq!(runs.len(), 300);
    for (trial, spans) in &runs {
        assert_eq!(spans.len(), 1, "trial {trial} ran {} times", spans.len());
    }
    c.assert_no_panics();
}

#[test]
fn a_killed_node_loses_its_trials_to_the_others_after_the_lease() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 1500");
    for i in 0..3 {
        c.add_node(&format!("n{i}"), 2);
    }
    let spec = c.write("s.toml", &bench_spec("killnode", 40, 0.1));
    let study = c.submit(&spec);
    wait_until(60, "some trials to finish", || c.finished(&study) >= 6);
    c.nodes[0].kill9();
    wait_until(120, "the study to complete", || {
        c.study_state(&study) == "complete"
    });
    let trials = c.trials(&study);
    assert_eq!(trials.len(), 40);
    assert_eq!(
        count_state(&trials, "complete"),
        40,
        "every trial finished exactly once"
    );
    let numbers: BTreeSet<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers.len(), 40);
    assert!(
        trials.iter().any(|t| t["attempt"].as_u64().unwrap() >= 2),
        "the killed node's trials were re-run"
    );
    let status = c.json(&["status"]).unwrap();
    assert!(status["metrics"]["leases_expired"].as_u64().unwrap() >= 1);
    c.assert_no_panics();
}

#[test]
fn a_killed_scheduler_restarts_and_loses_nothing_acknowledged() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 3000");
    c.add_node("a", 2);
    c.add_node("b", 2);
    let spec = c.write("s.toml", &bench_spec("restart", 60, 0.05));
    let study = c.submit(&spec);
    wait_until(60, "some trials to finish", || c.finished(&study) >= 12);
    let before: BTreeMap<u64, serde_json::Value> = c
        .trials(&study)
        .into_iter()
        .filter(|t| t["state"] == "complete")
        .map(|t| (t["number"].as_u64().unwrap(), t["values"].clone()))
        .collect();
    assert!(before.len() >= 12);
    c.scheduler.as_mut().unwrap().kill9();
    std::thread::sleep(std::time::Duration::from_millis(300));
    c.start_scheduler();
    wait_until(120, "the study to complete after the restart", || {
        c.study_state(&study) == "complete"
    });
    let after = c.trials(&study);
    assert_eq!(after.len(), 60);
    assert_eq!(count_state(&after, "complete"), 60);
    for (n, v) in &before {
        let t = after
            .iter()
            .find(|t| t["number"].as_u64() == Some(*n))
            .unwrap();
        assert_eq!(&t["values"], v, "trial {n} kept its values");
    }
    let status = c.json(&["status"]).unwrap();
    let nodes = status["nodes"].as_array().unwrap();
    assert!(
        nodes.iter().filter(|n| n["connected"] == true).count() >= 2,
        "both nodes reconnected by themselves: {nodes:?}"
    );
    c.assert_no_panics();
}

#[test]
fn sigterm_drains_a_node_which_finishes_its_trial_and_exits() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    c.add_node("draining", 1);
    let spec = c.write(
        "s.toml",
        "[study]\nname = \"drain\"\nn_trials = 3\n[objective]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"sleep 1; echo '{\\\"value\\\": 1}'\"]\n",
    );
    let study = c.submit(&spec);
    wait_until(30, "a running trial", || {
        c.trials(&study).iter().any(|t| t["state"] == "running")
    });
    c.nodes[0].sigterm();
    let mut exited = None;
    wait_until(15, "the node to finish its trial and exit", || {
        exited = c.nodes[0].child.try_wait().unwrap();
        exited.is_some()
    });
    assert!(exited.unwrap().success(), "{}", c.nodes[0].log_text());
    let trials = c.trials(&study);
    assert_eq!(
        count_state(&trials, "complete"),
        1,
        "the running trial finished, no new one was taken: {trials:?}"
    );
    c.add_node("fresh", 1);
    wait_until(60, "the study to complete", || {
        c.study_state(&study) == "complete"
    });
    assert_eq!(count_state(&c.trials(&study), "complete"), 3);
    c.assert_no_panics();
}

/// A node spoken to directly (the protocol, no node process): it says what it runs.
mod fake {
    use mlt_net::{connect, ClientSession};
    use mlt_protocol::handshake::{Hello, Role};
    use mlt_protocol::ids::{NodeId, SlotId, TrialKey};
    use mlt_protocol::messages::{
        FromNode, HeartbeatMsg, RegisterMsg, RequestWorkMsg, SlotInfo, ToNode,
    };
    use mlt_protocol::token::Token;
    use std::time::Duration;

    pub async fn node(addr: &str, token: &str, id: u64, running: Vec<TrialKey>) -> ClientSession {
        let hello = Hello {
            protocol_version: 0,
            role: Role::Node,
            secret: String::new(),
            name: "fake".into(),
            node: Some(NodeId(id)),
        };
        let token = Token::parse(token).unwrap();
        let mut s = connect(addr, &token, hello, Duration::from_secs(10))
            .await
            .unwrap();
        s.writer
            .send(&FromNode::Register(RegisterMsg {
                node: NodeId(id),
                slots: vec![SlotInfo {
                    slot: SlotId(0),
                    cpus: 1,
                    gpus: Vec::new(),
                }],
                running: running.into_iter().map(|k| (k, SlotId(0))).collect(),
            }))
            .await
            .unwrap();
        s
    }

    pub async fn ask(s: &mut ClientSession) -> TrialKey {
        s.writer
            .send(&FromNode::RequestWork(RequestWorkMsg { slot: SlotId(0) }))
            .await
            .unwrap();
        loop {
            match s.reader.recv::<ToNode>().await.unwrap() {
                Some(ToNode::Assign(a)) => return a.key,
                Some(_) => continue,
                None => panic!("the scheduler closed the connection"),
            }
        }
    }

    pub async fn beat(s: &mut ClientSession, running: Vec<TrialKey>) {
        s.writer
            .send(&FromNode::Heartbeat(HeartbeatMsg { running }))
            .await
            .unwrap();
    }
}

#[test]
fn a_trial_its_node_does_not_run_goes_back_to_the_queue_long_before_the_lease() {
    // A 60 s lease: nothing here may wait for it.
    let c = Cluster::start("heartbeat_ms = 200\nlease_ms = 60000");
    let spec = c.write("s.toml", &bench_spec("recon", 4, 0.0));
    let study = c.submit(&spec);
    let (addr, token) = (c.addr(), c.join_token());
    let state = |trial: u64| -> String {
        c.trials(&study)[trial as usize]["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (first, second) = rt.block_on(async {
        // Registration: the node is handed a trial, its connection drops, and it registers
        // again without it (as when the assignment died with a scheduler before it was sent).
        let mut n = fake::node(&addr, &token, 41, Vec::new()).await;
        let k = fake::ask(&mut n).await;
        drop(n);
        let mut n = fake::node(&addr, &token, 41, Vec::new()).await;
        // Heartbeats: the next trial it is handed is never listed in its beats, which go on
        // (so its lease never runs out) until the scheduler puts the trial back.
        let k2 = loop {
            let k2 = fake::ask(&mut n).await;
            if k2.trial != k.trial {
                break k2;
            }
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut beats = 0;
        loop {
            fake::beat(&mut n, Vec::new()).await;
            beats += 1;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if beats % 5 == 0 && state(k2.trial.0) == "waiting" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never re-queued");
        }
        (k, k2)
    });
    // Both went back to the queue while the node stayed connected and beating: no lease
    // expired (the heartbeat's grace is 5 s, the lease 60 s).
    assert_eq!(state(first.trial.0), "waiting");
    assert_eq!(state(second.trial.0), "waiting");
    let s = c.json(&["status"]).unwrap();
    assert!(s["metrics"]["reconciled"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(s["metrics"]["leases_expired"], 0, "{s}");
    let log = c.scheduler.as_ref().unwrap().log_text();
    assert!(log.contains("the node does not run this trial"), "{log}");
    c.assert_no_panics();
}

/// SHA-256 of a file, to prove it was not modified.
fn digest(p: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let b = std::fs::read(p).unwrap();
    format!("{:x}", Sha256::digest(&b))
}

#[test]
fn a_damaged_store_is_refused_clearly_and_never_modified_and_a_backup_restores() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.toml");
    std::fs::write(&spec, bench_spec("kept", 6, 0.0)).unwrap();
    let good = dir.path().join("good");
    util::run_into(&spec, &good);
    let store = |d: &std::path::Path| d.join("store.redb");
    // Inspection opens read-only: not a byte changes.
    let before = digest(&store(&good));
    for args in [&["status"][..], &["trials", "kept"], &["best", "kept"]] {
        let out = util::offline(args, &good);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        digest(&store(&good)),
        before,
        "an inspection modified the store"
    );
    // Damaged copies: empty, truncated, and half of it overwritten.
    let bytes = std::fs::read(store(&good)).unwrap();
    let n = bytes.len();
    let mut flipped = bytes.clone();
    for b in &mut flipped[n / 32..n / 2] {
        *b ^= 0x5a;
    }
    for (name, content) in [
        ("empty", Vec::new()),
        ("truncated", bytes[..n / 2].to_vec()),
        ("flipped", flipped),
    ] {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(store(&d), &content).unwrap();
        let sum = digest(&store(&d));
        for args in [&["status"][..], &["trials", "kept"]] {
            let out = util::offline(args, &d);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(6), "{name} {args:?}: {err}");
            assert!(
                err.contains("is damaged") && err.contains("restore it from a backup"),
                "{name}: {err}"
            );
            assert!(!err.contains("panicked"), "{name}: {err}");
        }
        // The scheduler refuses it too: never started afresh on an empty file.
        let out = std::process::Command::new(util::bin())
            .args(["scheduler", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&d)
            .env("MLT_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(6),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(digest(&store(&d)), sum, "{name} was modified");
    }

    // A backup taken while a scheduler runs on the store is a store with every trial.
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    c.add_node("n", 2);
    let study = c.submit(&c.write("s.toml", &bench_spec("live", 20, 0.02)));
    wait_until(60, "a few trials", || c.finished(&study) >= 5);
    let copy = c.dir.path().join("copy.redb");
    let out = c.cli(&["backup", "--out", copy.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["rows"].as_u64().unwrap() > 5, "{r}");
    // A second backup to the same file is refused.
    let again = c.cli(&["backup", "--out", copy.to_str().unwrap()]);
    assert!(!again.status.success());
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(&copy, store(&restored)).unwrap();
    let out = util::offline(&["trials", "live", "--json"], &restored);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trials: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let done = count_state(trials.as_array().unwrap(), "complete");
    assert!(done >= 5, "{trials}");
    wait_until(60, "the study to finish", || {
        c.study_state(&study) == "complete"
    });
    c.assert_no_panics();
}

#[test]
fn a_scheduler_restart_under_long_trials_reruns_nothing() {
    // Trials of 10 s, a 3 s lease: the nodes must hear of the restart, and come back, well
    // within the lease, or their trials would be re-run with a second attempt.
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 3000");
    c.add_node("a", 2);
    c.add_node("b", 2);
    let study = c.submit(&c.write("s.toml", &bench_spec("long", 4, 2.0)));
    wait_until(60, "every trial to run", || {
        count_state(&c.trials(&study), "running") == 4
    });
    c.scheduler.as_mut().unwrap().kill9();
    c.start_scheduler();
    wait_until(120, "the study to complete after the restart", || {
        c.study_state(&study) == "complete"
    });
    let trials = c.trials(&study);
    assert_eq!(count_state(&trials, "complete"), 4);
    for t in &trials {
        assert_eq!(t["attempt"], 1, "re-run after the restart: {t}");
    }
    let s = c.json(&["status"]).unwrap();
    assert_eq!(s["metrics"]["leases_expired"], 0, "{s}");
    c.assert_no_panics();
}

#[test]
fn a_study_larger_than_a_frame_is_listed_and_exported_page_by_page() {
    // 64 KiB frames; 2,500 trials of about 250 bytes each need ten times that.
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000\nmax_frame_bytes = 65536");
    c.add_node("n", 4);
    let study = c.submit(&c.write(
        "s.toml",
        &format!(
            "[study]\nname = \"big\"\nn_trials = 2500\nseed = 1\n[sampler]\nkind = \"random\"\n{BENCH_SPACE}[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 1\n"
        ),
    ));
    wait_until(300, "2,500 trials", || c.study_state(&study) == "complete");
    let trials = c.trials(&study);
    assert_eq!(trials.len(), 2500);
    let numbers: Vec<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (0..2500).collect::<Vec<u64>>(),
        "every trial once, in order"
    );
    let out = c.cli(&["export", &study, "--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2501);
    let out = c.cli(&["best", &study, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.assert_no_panics();
}

/// A tmpfs of `size` mounted on a new folder, unmounted when dropped (the test runs as root,
/// as CI does).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let d = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(d.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(d)
    }

    fn grow(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0.path())
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_stops_the_scheduler_clearly_and_it_resumes_once_there_is_room() {
    let fs = Tmpfs::mount("2m");
    let data = fs.0.path().join("d");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("fill.toml");
    std::fs::write(
        &spec,
        format!("[study]\nname = \"fill\"\nn_trials = 4000\nseed = 1\n[sampler]\nkind = \"random\"\n{BENCH_SPACE}[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 5\n"),
    )
    .unwrap();
    // The disk fills up: `run` stops with an error naming the store and the cause.
    let out = util::offline(&["run", spec.to_str().unwrap()], &data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("No space left on device") && err.contains("store.redb"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // What was committed is there and readable.
    let out = util::offline(&["trials", "fill", "--json"], &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let done_before = count_state(before.as_array().unwrap(), "complete");
    assert!(done_before > 0 && done_before < 4000, "{done_before}");
    // With room again, a scheduler and a node resume the study to its end.
    fs.grow("64m");
    let port = util::free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
    let mut sched = util::Proc {
        child: std::process::Command::new(util::bin())
            .args(["scheduler", "--listen", &addr, "--data-dir"])
            .arg(&data)
            .stdout(log("s.log"))
            .stderr(log("s.err"))
            .spawn()
            .unwrap(),
        log: dir.path().join("s.err"),
    };
    // `run` left its own address behind: wait for this scheduler's.
    wait_until(30, "the scheduler", || {
        std::fs::read_to_string(data.join("address")).is_ok_and(|a| a.trim() == addr)
    });
    let _node = util::Proc {
        child: std::process::Command::new(util::bin())
            .args(["join", "--scheduler", &addr, "--slots", "2", "--token-file"])
            .arg(data.join("join-token"))
            .stdout(log("n.log"))
            .stderr(log("n.err"))
            .spawn()
            .unwrap(),
        log: dir.path().join("n.err"),
    };
    let state = || {
        let out = std::process::Command::new(util::bin())
            .args(["status", "--json", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|s| s["studies"][0]["state"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let status = || {
        let out = std::process::Command::new(util::bin())
            .args(["status", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    util::wait_until_or(
        300,
        "the study to complete after the disk grew",
        || state() == "complete",
        || {
            format!(
                "status:\n{}\nscheduler:\n{}\nnode:\n{}\ndisk: {:?}",
                status(),
                util::tail(&dir.path().join("s.err"), 40),
                util::tail(&dir.path().join("n.err"), 40),
                std::process::Command::new("df")
                    .arg(fs.0.path())
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            )
        },
    );
    sched.sigterm();
    let _ = sched.child.wait();
    let out = util::offline(&["trials", "fill", "--json"], &data);
    let after: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count_state(after.as_array().unwrap(), "complete"), 4000);
    // Nothing committed before the disk filled changed.
    for t in before
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "complete")
    {
        let n = t["number"].as_u64().unwrap() as usize;
        assert_eq!(after[n]["values"], t["values"], "trial {n}");
    }
}

/// A network namespace joined to this one by a veth pair (10.77.N.1 here, 10.77.N.2 there),
/// removed when dropped. Cutting the link partitions whatever runs inside from the host.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
}

impl Netns {
    fn new(n: u8) -> Netns {
        let id = std::process::id() % 10_000;
        let name = format!("mlt{id}n{n}");
        let (host_if, ns_if) = (format!("mh{id}n{n}"), format!("mn{id}n{n}"));
        let host_ip = format!("10.77.{n}.1");
        let sh = |cmd: &str| {
            let out = std::process::Command::new("sh")
                .args(["-c", cmd])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "`{cmd}` (network namespaces need root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh(&format!("ip netns add {name}"));
        let ns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip: host_ip.clone(),
        };
        sh(&format!(
            "ip link add {host_if} type veth peer name {ns_if}"
        ));
        sh(&format!("ip link set {ns_if} netns {name}"));
        sh(&format!("ip addr add {host_ip}/24 dev {host_if}"));
        sh(&format!("ip link set {host_if} up"));
        sh(&format!(
            "ip netns exec {name} ip addr add 10.77.{n}.2/24 dev {ns_if}"
        ));
        sh(&format!("ip netns exec {name} ip link set {ns_if} up"));
        sh(&format!("ip netns exec {name} ip link set lo up"));
        ns
    }

    /// Cuts (or restores) the link.
    fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        let ok = std::process::Command::new("ip")
            .args(["link", "set", &self.host_if, state])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
    }
}

#[test]
fn partitions_shorter_than_the_lease_rerun_nothing_and_longer_ones_rerun_once() {
    let ns = Netns::new(1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("cluster.toml");
    std::fs::write(
        &cfg,
        "[scheduler]\nheartbeat_ms = 200\nlease_ms = 3000\n[node]\nreconnect_max_ms = 300\n",
    )
    .unwrap();
    let addr = format!("{}:{}", ns.host_ip, util::free_port());
    let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
    let _sched = util::Proc {
        child: std::process::Command::new(util::bin())
            .args([
                "scheduler",
                "--config",
                cfg.to_str().unwrap(),
                "--listen",
                &addr,
                "--data-dir",
            ])
            .arg(&data)
            .env("MLT_LOG", "info")
            .stdout(log("s.log"))
            .stderr(log("s.err"))
            .spawn()
            .unwrap(),
        log: dir.path().join("s.err"),
    };
    wait_until(30, "the scheduler", || {
        data.join("address").exists() && data.join("join-token").exists()
    });
    // The node runs in the namespace: cutting the link partitions it from the scheduler.
    let node = util::Proc {
        child: std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                util::bin(),
                "join",
                "--scheduler",
                &addr,
                "--slots",
                "1",
                "--config",
                cfg.to_str().unwrap(),
                "--token-file",
            ])
            .arg(data.join("join-token"))
            .env("MLT_LOG", "info")
            .stdout(log("n.log"))
            .stderr(log("n.err"))
            .spawn()
            .unwrap(),
        log: dir.path().join("n.err"),
    };
    let cli = |args: &[&str]| -> serde_json::Value {
        let out = std::process::Command::new(util::bin())
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("MLT_LOG", "warn")
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let submit = |name: &str| {
        let spec = dir.path().join(format!("{name}.toml"));
        // One trial at a time, 6 s each (3 steps of 2 s).
        std::fs::write(&spec, format!("[study]\nname = \"{name}\"\nn_trials = 2\nmax_concurrent = 1\n{BENCH_SPACE}[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 3\nstep_seconds = 2.0\n")).unwrap();
        let out = std::process::Command::new(util::bin())
            .args(["submit", spec.to_str().unwrap(), "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let running = |study: &str| {
        cli(&["trials", study, "--json"])
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["state"] == "running"))
    };
    let attempts = |study: &str| -> Vec<u64> {
        cli(&["trials", study, "--json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["attempt"].as_u64().unwrap())
            .collect()
    };
    let complete = |study: &str| {
        cli(&["status", "--json"])["studies"]
            .as_array()
            .is_some_and(|ss| {
                ss.iter()
                    .any(|s| s["name"] == study && s["state"] == "complete")
            })
    };
    // Shorter than the lease (1 s of 3 s, and under the connection's 1.5 s idle timeout).
    submit("short");
    wait_until(60, "a running trial", || running("short"));
    ns.link(false);
    std::thread::sleep(std::time::Duration::from_secs(1)); // the cut's length
    ns.link(true);
    wait_until(120, "the short study", || complete("short"));
    assert_eq!(
        attempts("short"),
        vec![1, 1],
        "nothing re-run after a short cut"
    );
    // Longer than the lease (6 s): the running trial goes to a new attempt once; the cut-off
    // node's late result is refused as stale.
    submit("long");
    wait_until(60, "a running trial", || running("long"));
    ns.link(false);
    wait_until(60, "the lease to expire", || {
        cli(&["status", "--json"])["studies"]
            .as_array()
            .is_some_and(|ss| {
                ss.iter()
                    .any(|s| s["name"] == "long" && s["counts"]["running"] == 0)
            })
    });
    ns.link(true);
    wait_until(120, "the long study", || complete("long"));
    let a = attempts("long");
    assert_eq!(
        a.iter().filter(|x| **x == 2).count(),
        1,
        "one trial re-run once: {a:?}"
    );
    assert!(a.iter().all(|x| *x <= 2), "{a:?}");
    let s = cli(&["status", "--json"]);
    assert!(s["metrics"]["leases_expired"].as_u64().unwrap() >= 1, "{s}");
    drop(node);
}

#[test]
fn a_stopped_store_on_read_only_media_can_be_inspected() {
    let fs = Tmpfs::mount("64m");
    let data = fs.0.path().join("d");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.toml");
    std::fs::write(&spec, bench_spec("ro", 6, 0.0)).unwrap();
    util::run_into(&spec, &data);
    // The medium becomes read-only (as a mounted backup or a snapshot would be).
    let ok = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(fs.0.path())
        .status()
        .unwrap();
    assert!(ok.success());
    for args in [
        &["status"][..],
        &["trials", "ro"],
        &["best", "ro"],
        &["export", "ro"],
    ] {
        let out = util::offline(args, &data);
        assert!(
            out.status.success(),
            "{args:?} on read-only media: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = util::offline(&["trials", "ro", "--json"], &data);
    let trials: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count_state(trials.as_array().unwrap(), "complete"), 6);
}

#[test]
fn a_scheduler_waits_for_a_client_that_holds_its_store_for_a_moment() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.toml");
    std::fs::write(&spec, bench_spec("held", 4, 0.0)).unwrap();
    let data = dir.path().join("d");
    util::run_into(&spec, &data);
    // Another process (here: this test) has the store open as the scheduler starts.
    let held = mlt_scheduler::store::Store::open(&data).unwrap();
    let addr = format!("127.0.0.1:{}", util::free_port());
    let log = dir.path().join("s.err");
    let sched = util::Proc {
        child: std::process::Command::new(util::bin())
            .args(["scheduler", "--listen", &addr, "--data-dir"])
            .arg(&data)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log: log.clone(),
    };
    wait_until(30, "the scheduler to say it waits for the store", || {
        sched.log_text().contains("in use by another process")
    });
    drop(held);
    util::wait_until_or(
        30,
        "the scheduler to start once the store is free",
        || std::fs::read_to_string(data.join("address")).is_ok_and(|a| a.trim() == addr),
        || sched.log_text(),
    );
    let out = std::process::Command::new(util::bin())
        .args(["status", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["studies"][0]["name"], "held", "{status}");
}
