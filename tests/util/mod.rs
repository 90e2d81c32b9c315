//! Helpers for tests that start the real binary: a scheduler and nodes as processes on
//! loopback, each with its own log file, bounded waits, and everything killed at the end.
#![allow(dead_code)]
use serde_json::Value;
use std::fs::File;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mlt-cluster")
}

/// A process with its log; killed when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 50 ms until it holds or `secs` pass.
#[track_caller]
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// As `wait_until`, and on a timeout the panic carries `context()` (logs, a status) so a
/// failure far away (CI) can be read without reproducing it.
#[track_caller]
pub fn wait_until_or(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {secs} s waiting for {what}\n{}", context());
}

/// The last `n` lines of a file (for failure messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub scheduler: Option<Proc>,
    pub nodes: Vec<Proc>,
    pub config: PathBuf,
    n_logs: usize,
}

impl Cluster {
    /// A scheduler with the given `[scheduler]` settings (heartbeat/lease) on a free port.
    pub fn start(scheduler_toml: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, format!("[scheduler]\n{scheduler_toml}\n[node]\nreconnect_max_ms = 300\ndrain_timeout_s = 5\n")).unwrap();
        let mut c = Cluster {
            dir,
            port: free_port(),
            scheduler: None,
            nodes: Vec::new(),
            config,
            n_logs: 0,
        };
        c.start_scheduler();
        c
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self, name: &str, args: &[&str]) -> Proc {
        self.n_logs += 1;
        let log = self
            .dir
            .path()
            .join(format!("{:02}-{name}.log", self.n_logs));
        let f = File::create(&log).unwrap();
        let child = Command::new(bin())
            .args(args)
            .env("MLT_LOG", "info")
            .env_remove("MLT_SCHEDULER")
            .env_remove("MLT_TOKEN")
            .env_remove("MLT_DATA_DIR")
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Proc { child, log }
    }

    pub fn start_scheduler(&mut self) {
        let data = self.data();
        let (cfg, addr) = (self.config.display().to_string(), self.addr());
        let p = self.spawn(
            "scheduler",
            &[
                "scheduler",
                "--config",
                &cfg,
                "--listen",
                &addr,
                "--data-dir",
                &data.display().to_string(),
            ],
        );
        self.scheduler = Some(p);
        let token = data.join("client-token");
        let addr_file = data.join("address");
        let _ = std::fs::remove_file(&addr_file);
        wait_until(30, "the scheduler to start", || {
            token.exists() && addr_file.exists()
        });
    }

    pub fn join_token(&self) -> String {
        std::fs::read_to_string(self.data().join("join-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn client_token(&self) -> String {
        std::fs::read_to_string(self.data().join("client-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// A node's dataset cache.
    pub fn cache(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("cache-{node}"))
    }

    /// A node that runs every kind of objective (`--allow-command`: the tests' studies run
    /// their own scripts).
    pub fn add_node(&mut self, name: &str, slots: u32) {
        self.add_node_with(name, slots, &["--allow-command"]);
    }

    /// A node with extra `join` arguments (e.g. `--gpus 0`).
    pub fn add_node_with(&mut self, name: &str, slots: u32, extra: &[&str]) {
        // The token from a file, as the scheduler says to (not on the command line).
        let (addr, token_file, cfg, cache) = (
            self.addr(),
            self.data().join("join-token").display().to_string(),
            self.config.display().to_string(),
            self.cache(name).display().to_string(),
        );
        let p = self.spawn(
            name,
            &[
                "join",
                "--scheduler",
                &addr,
                "--token-file",
                &token_file,
                "--slots",
                &slots.to_string(),
                "--name",
                name,
                "--config",
                &cfg,
                "--cache-dir",
                &cache,
            ]
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect::<Vec<&str>>(),
        );
        self.nodes.push(p);
    }

    /// Runs a client command against the scheduler.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .args(["--scheduler", &self.addr(), "--token", &self.client_token()]);
        cmd.env_remove("MLT_DATA_DIR")
            .env("MLT_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Submits a spec; returns the study name.
    pub fn submit(&self, spec: &Path) -> String {
        let out = self.cli(&["submit", &spec.display().to_string()]);
        assert!(
            out.status.success(),
            "submit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn json(&self, args: &[&str]) -> Option<Value> {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cli(&a);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    pub fn trials(&self, study: &str) -> Vec<Value> {
        self.json(&["trials", study])
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    pub fn finished(&self, study: &str) -> u64 {
        self.json(&["status"])
            .and_then(|s| {
                s["studies"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["name"] == study).cloned())
            })
            .map_or(0, |s| {
                ["complete", "pruned", "failed", "lost"]
                    .iter()
                    .map(|k| s["counts"][k].as_u64().unwrap_or(0))
                    .sum()
            })
    }

    pub fn study_state(&self, study: &str) -> String {
        self.json(&["status"])
            .and_then(|s| {
                s["studies"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["name"] == study).cloned())
            })
            .map_or(String::new(), |s| {
                s["state"].as_str().unwrap_or_default().to_string()
            })
    }

    /// Fails the test if a process crashed (a panic in its log).
    /// Submits a spec file, waits (up to `secs`) for the study to complete, returns its name
    /// and trials.
    #[allow(dead_code)] // not every test binary uses it
    pub fn run_study(&self, spec: &Path, secs: u64) -> (String, Vec<Value>) {
        let study = self.submit(spec);
        wait_until(secs, &format!("study {study} to complete"), || {
            self.study_state(&study) == "complete"
        });
        let trials = self.trials(&study);
        (study, trials)
    }

    pub fn assert_no_panics(&self) {
        for p in self.scheduler.iter().chain(&self.nodes) {
            let log = p.log_text();
            assert!(!log.contains("panicked"), "a process panicked:\n{log}");
        }
    }
}

/// A client command on a stopped scheduler's data folder.
#[allow(dead_code)] // not every test binary uses it
pub fn offline(args: &[&str], data: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("MLT_LOG", "warn")
        .output()
        .unwrap()
}

/// `mlt-cluster run SPEC --data-dir DATA`, which must succeed.
#[track_caller]
pub fn run_into(spec: &Path, data: &Path) {
    let out = offline(&["run", spec.to_str().unwrap()], data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mlt-cluster run SPEC` on this machine into a fresh data folder: the folder and the study's
/// trials.
#[allow(dead_code)] // not every test binary uses it
pub fn run_offline(spec: &Path, study: &str) -> (tempfile::TempDir, Vec<Value>) {
    let data = tempfile::tempdir().unwrap();
    run_into(spec, data.path());
    let out = offline(&["trials", study, "--json"], data.path());
    let trials: Value = serde_json::from_slice(&out.stdout).unwrap();
    (data, trials.as_array().unwrap().clone())
}

/// Whether process `pid` runs (listed in /proc and not a zombie awaiting its parent).
#[allow(dead_code)] // not every test binary uses it
pub fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z'))
}

pub fn count_state(trials: &[Value], state: &str) -> usize {
    trials.iter().filter(|t| t["state"] == state).count()
}

/// Writes `days` bars of the synthetic market (seed `seed`) as a CSV file the loader reads.
#[allow(dead_code)] // not every test binary uses it
pub fn write_synthetic_csv(path: &Path, seed: u64, days: usize) {
    use mlt_eval::synthetic::{generate, Synthetic};
    let b = generate(&Synthetic {
        days,
        seed,
        ..Default::default()
    })
    .unwrap();
    std::fs::write(path, b.to_csv()).unwrap();
}

/// A small LightGBM walk-forward study `name` on the synthetic market (1,500 days, the last
/// 250 a hold-out its `holdout_top` best trials are evaluated on), `n_trials` random draws of
/// `num_leaves`: quick, and every complete trial keeps a model and a training curve.
#[allow(dead_code)] // not every test binary uses it
pub fn lightgbm_spec(name: &str, n_trials: u32, seed: u64, holdout_top: u32) -> String {
    format!(
        r#"
[study]
name = "{name}"
directions = ["maximize"]
objectives = ["sharpe"]
n_trials = {n_trials}
seed = {seed}
[sampler]
kind = "random"
[space]
num_leaves = {{ type = "int", low = 4, high = 32 }}
[objective]
kind = "walk_forward"
data = "synthetic"
synthetic = {{ days = 1500, seed = 3, strength = 0.1 }}
features = {{ mom = "sum(returns, 5) / std(returns, 20)", vol = "std(returns, 20)" }}
horizon = 1
train = 500
test = 250
model = "lightgbm"
validation = 0.2
early_stopping_rounds = 10
holdout = 250
holdout_top = {holdout_top}
[objective.lightgbm]
num_iterations = 40
"#
    )
}
