//! mlt-bench: whole-cluster benchmarks with real processes on loopback.
//!
//! * `cluster`: a scheduler and K node processes (S slots each) run T trials of a zero-cost
//!   benchmark objective that reports N steps; durable commits on. Reports trials/s and the
//!   scheduler's p50/p99 assignment latency (slot request → assignment sent, after commit).
//! * `idle`: C idle node connections from one process, heartbeating; reports the scheduler's
//!   CPU and memory.
//! * `serve`: `mlt-cluster serve` under an open-loop load beside `mlflow models serve` on the
//!   same LightGBM model (real-time p50/p99, the highest rate with p99 < 10 ms, batch rows/s).
//! * `search`: our samplers and pruners next to a pinned Optuna (search quality, cost of a
//!   suggestion, pruning); see search/.
mod eval;
mod models;
mod search;
mod serve;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use mlt_net::{connect, connect_on};
use mlt_protocol::handshake::{Hello, Role};
use mlt_protocol::ids::{NodeId, SlotId};
use mlt_protocol::messages::*;
use mlt_protocol::token::Token;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "mlt-cluster benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Whole-cluster overhead with a zero-cost objective.
    Cluster {
        /// Node process counts to run, comma-separated.
        #[arg(long, default_value = "1,8,64", value_delimiter = ',')]
        nodes: Vec<u32>,
        /// Slots per node.
        #[arg(long, default_value_t = 4)]
        slots: u32,
        /// Trials per run.
        #[arg(long, default_value_t = 20000)]
        trials: u64,
        /// Reported steps per trial.
        #[arg(long, default_value_t = 5)]
        steps: u32,
    },
    /// The prediction server under load, beside `mlflow models serve` on the same model.
    Serve {
        /// Python of the virtual environment with MLflow and lightgbm (bench/serve/
        /// requirements.txt); without it only our side is measured.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Seconds at 1,000 requests/s (each rate of the sweep runs half as long).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Instruments posting bars.
        #[arg(long, default_value_t = 200)]
        instruments: usize,
    },
    /// Samplers and pruners next to Optuna: regret, cost per suggestion, pruning.
    Search {
        /// Python of the virtual environment with the pinned Optuna (bench/optuna/requirements.txt);
        /// without it only our side is measured.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Which tables: quality, cost, pruning, proposals (our TPE's and Optuna's suggestions
        /// on one fixed history, compared as distributions), heldout (each of `--samplers`
        /// against the first, and against Optuna's counterpart, on problems outside the
        /// quality table, for choosing defaults), parallel (`--workers` trials in flight, with
        /// and without the constant liar), system (2,000 zero-cost trials through `mlt-cluster
        /// run` against Optuna's in-memory study).
        #[arg(
            long,
            default_value = "quality,cost,pruning,proposals",
            value_delimiter = ','
        )]
        tables: Vec<String>,
        /// Trials per study.
        #[arg(long, default_value_t = 200)]
        trials: u64,
        /// Seeds per problem.
        #[arg(long, default_value_t = 50)]
        seeds: u64,
        /// Seeds for the GP samplers (O(n³) per suggestion: the slow ones).
        #[arg(long, default_value_t = 10)]
        gp_seeds: u64,
        /// Seeds in the pruning table (many: whether a pruner keeps the best trial is a rare
        /// event, counted per seed).
        #[arg(long, default_value_t = 500)]
        pruning_seeds: u64,
        /// Problems in the quality table (branin, hartmann6, rosenbrock10, styblinski_tang10,
        /// mixed); all by default.
        #[arg(long, value_delimiter = ',')]
        problems: Vec<String>,
        /// Samplers in the quality table: tpe (both sides' default: multivariate TPE), tpe-uni
        /// (univariate TPE), tpe-ei24 (our univariate TPE with Optuna's 24 candidates), tpe-mv
        /// (multivariate, grouped), cmaes, cmaes-rand (ours drawing what CMA-ES leaves out at
        /// random, as Optuna), gp, qmc, random, or `raw:<[sampler] settings, `;` between
        /// lines>` to try other settings on our side.
        #[arg(
            long,
            default_value = "tpe,tpe-uni,tpe-mv,cmaes,cmaes-rand,gp,qmc,random",
            value_delimiter = ','
        )]
        samplers: Vec<String>,
        /// Samplers in the cost table.
        #[arg(
            long,
            default_value = "tpe,tpe-uni,tpe-mv,cmaes,gp,random",
            value_delimiter = ','
        )]
        cost_samplers: Vec<String>,
        /// Completed trials at which a suggestion is timed.
        #[arg(long, default_value = "100,1000,10000", value_delimiter = ',')]
        sizes: Vec<usize>,
        /// Steps per trial in the pruning table.
        #[arg(long, default_value_t = 27)]
        steps: u64,
        /// Trials in flight in the parallel table.
        #[arg(long, default_value = "1,4,16", value_delimiter = ',')]
        workers: Vec<usize>,
    },
    /// The evaluation engine: feature rows/s and walk-forward overhead per fold.
    Eval,
    /// The models: our LightGBM walk-forward per fold against bare lightgbm3 calls, and a
    /// LightGBM sweep with Hyperband against the same sweep without pruning.
    Models {
        /// Trials of each sweep.
        #[arg(long, default_value_t = 50)]
        trials: u32,
        /// Only the LSTM throughput table.
        #[arg(long)]
        lstm_only: bool,
        /// Only the LightGBM overhead table.
        #[arg(long, conflicts_with = "lstm_only")]
        lightgbm_only: bool,
        /// Only the sweep with Hyperband against the same sweep without pruning.
        #[arg(long, conflicts_with_all = ["lstm_only", "lightgbm_only"])]
        sweep_only: bool,
    },
    /// Idle node connections with heartbeats.
    Idle {
        /// Connections.
        #[arg(long, default_value_t = 1000)]
        connections: u32,
        /// How long to hold them.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn mlt_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.parent().context("exe dir")?.join("mlt-cluster");
    if !p.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --bin mlt-cluster)",
            p.display()
        );
    }
    Ok(p)
}

fn start_scheduler(dir: &Path, heartbeat_ms: u64) -> anyhow::Result<(Kill, String, Token, Token)> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cfg = dir.join("cluster.toml");
    std::fs::write(
        &cfg,
        format!(
            "[scheduler]\nheartbeat_ms = {heartbeat_ms}\nlease_ms = {}\ndurable = true\n",
            heartbeat_ms * 10
        ),
    )?;
    let data = dir.join("data");
    let log = std::fs::File::create(dir.join("scheduler.log"))?;
    let child = Command::new(mlt_binary()?)
        .args([
            "scheduler",
            "--config",
            &cfg.display().to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &data.display().to_string(),
        ])
        .env("MLT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let k = Kill(child);
    let t0 = Instant::now();
    while !data.join("address").exists() {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("scheduler did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let read = |f: &str| -> anyhow::Result<Token> {
        Ok(Token::parse(std::fs::read_to_string(data.join(f))?.trim())?)
    };
    Ok((
        k,
        format!("127.0.0.1:{port}"),
        read("join-token")?,
        read("client-token")?,
    ))
}

async fn client(addr: &str, token: &Token) -> anyhow::Result<mlt_net::ClientSession> {
    let hello = Hello {
        protocol_version: 0,
        role: Role::Client,
        secret: String::new(),
        name: "bench".into(),
        node: None,
    };
    Ok(connect(addr, token, hello, Duration::from_secs(10)).await?)
}

async fn ask(s: &mut mlt_net::ClientSession, m: FromClient) -> anyhow::Result<ToClient> {
    s.writer.send(&m).await?;
    s.reader.recv::<ToClient>().await?.context("closed")
}

fn proc_stats(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    (ticks as f64 / 100.0, rss_kb)
}

async fn cluster_run(k: u32, slots: u32, trials: u64, steps: u32) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (sched, addr, join, client_token) = start_scheduler(dir.path(), 1000)?;
    let mut nodes = Vec::new();
    for i in 0..k {
        let child = Command::new(mlt_binary()?)
            .args([
                "join",
                "--scheduler",
                &addr,
                "--token",
                &join.encode(),
                "--slots",
                &slots.to_string(),
                "--name",
                &format!("n{i}"),
            ])
            .env("MLT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        nodes.push(Kill(child));
    }
    let mut c = client(&addr, &client_token).await?;
    let t0 = Instant::now();
    loop {
        let ToClient::Status(s) = ask(&mut c, FromClient::Status).await? else {
            bail!("status")
        };
        if s.nodes.iter().filter(|n| n.connected).count() as u32 == k {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("only {} of {k} nodes connected", s.nodes.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spec = format!(
        "[study]\nname = \"bench\"\nn_trials = {trials}\n[space]\nx0 = {{ type = \"float\", low = -5, high = 10 }}\nx1 = {{ type = \"float\", low = 0, high = 15 }}\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = {steps}\nstep_seconds = 0\n"
    );
    let (cpu0, _) = proc_stats(sched.0.id());
    let start = Instant::now();
    let ToClient::Submitted(sub) = ask(
        &mut c,
        FromClient::Submit(SubmitMsg {
            spec_toml: spec,
            source: "bench.toml".into(),
            workdir: None,
            notes: Vec::new(),
        }),
    )
    .await?
    else {
        bail!("submit refused")
    };
    loop {
        let ToClient::Study(s) = ask(
            &mut c,
            FromClient::Study(StudyRefMsg {
                study: sub.name.clone(),
            }),
        )
        .await?
        else {
            bail!("study")
        };
        if s.counts.finished() >= trials {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let (cpu1, rss) = proc_stats(sched.0.id());
    let ToClient::Status(s) = ask(&mut c, FromClient::Status).await? else {
        bail!("status")
    };
    let m = &s.metrics;
    println!(
        "| {k:>3} | {:>5} | {trials:>6} | {:>8.0} | {:>8} | {:>8} | {:>7} | {:>6.0}% | {:>7} |",
        k * slots,
        trials as f64 / secs,
        m.assign_p50_us,
        m.assign_p99_us,
        m.commits,
        100.0 * (cpu1 - cpu0) / secs,
        rss / 1024
    );
    drop(nodes);
    drop(sched);
    Ok(())
}

async fn idle(connections: u32, seconds: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (sched, addr, join, _) = start_scheduler(dir.path(), 1000)?;
    let pid = sched.0.id();
    let (_, rss0) = proc_stats(pid);
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    let mut tasks = Vec::new();
    for i in 0..connections {
        let hello = Hello {
            protocol_version: 0,
            role: Role::Node,
            secret: String::new(),
            name: format!("idle{i}"),
            node: Some(NodeId(10_000 + i as u64)),
        };
        let mut s = connect_on(
            endpoint.clone(),
            &addr,
            &join,
            hello,
            Duration::from_secs(30),
        )
        .await?;
        s.writer
            .send(&FromNode::Register(RegisterMsg {
                node: NodeId(10_000 + i as u64),
                slots: vec![SlotInfo {
                    slot: SlotId(0),
                    cpus: 1,
                    gpus: vec![],
                }],
                running: vec![],
            }))
            .await?;
        tasks.push(tokio::spawn(async move {
            let mut beat = tokio::time::interval(Duration::from_millis(1000));
            loop {
                beat.tick().await;
                if s.writer
                    .send(&FromNode::Heartbeat(HeartbeatMsg { running: vec![] }))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, _) = proc_stats(pid);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu1, rss1) = proc_stats(pid);
    let cpu = 100.0 * (cpu1 - cpu0) / t.elapsed().as_secs_f64();
    println!("| {connections} idle node connections, 1 heartbeat/s each | scheduler CPU {cpu:.1}% of one core | RSS {} MiB (idle scheduler: {} MiB) |", rss1 / 1024, rss0 / 1024);
    for t in tasks {
        t.abort();
    }
    drop(sched);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Cluster {
            nodes,
            slots,
            trials,
            steps,
        } => {
            println!("| nodes | slots | trials | trials/s | assign p50 µs | assign p99 µs | commits | scheduler CPU | RSS MiB |");
            println!("|---|---|---|---|---|---|---|---|---|");
            for k in nodes {
                cluster_run(k, slots, trials, steps).await?;
            }
        }
        Cmd::Idle {
            connections,
            seconds,
        } => idle(connections, seconds).await?,
        Cmd::Eval => eval::run()?,
        Cmd::Serve {
            python,
            seconds,
            instruments,
        } => serve::run(python.as_deref(), seconds, instruments).await?,
        Cmd::Models {
            trials,
            lstm_only,
            lightgbm_only,
            sweep_only,
        } => models::run(trials, lstm_only, lightgbm_only, sweep_only)?,
        Cmd::Search {
            python,
            tables,
            trials,
            seeds,
            gp_seeds,
            pruning_seeds,
            problems,
            samplers,
            cost_samplers,
            sizes,
            steps,
            workers,
        } => {
            let py = python.as_deref();
            if let Some(p) = py {
                let v = Command::new(p)
                    .args(["-c", "import optuna, sys; print(optuna.__version__)"])
                    .output()
                    .context("running the Optuna venv's python")?;
                println!(
                    "Optuna {} ({}); ours: this build. One run, this machine.",
                    String::from_utf8_lossy(&v.stdout).trim(),
                    p.display()
                );
            }
            for t in &tables {
                match t.as_str() {
                    "quality" => {
                        search::quality(py, trials, seeds, gp_seeds, &problems, &samplers)?
                    }
                    "cost" => search::cost(py, &sizes, &cost_samplers)?,
                    "pruning" => search::pruning(py, trials, pruning_seeds, steps)?,
                    "proposals" => search::proposals(py, 100, seeds, 100)?,
                    "heldout" => search::held_out_table(py, trials, seeds, &samplers)?,
                    "parallel" => search::parallel(py, trials, seeds, &workers, &problems)?,
                    "system" => search::system(py, 2000)?,
                    other => bail!(
                        "unknown table `{other}` (quality, cost, pruning, proposals, heldout, parallel, system)"
                    ),
                }
            }
        }
    }
    Ok(())
}
