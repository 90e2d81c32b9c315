//! The long-running commands: `run`, `scheduler`, `join`.
use super::CliError;
use crate::config::ClusterConfig;
use anyhow::Context;
use mlt_node::resources::{detect_gpus, make_slots, parse_gpu_list};
use mlt_node::{run_node, NodeConfig};
use mlt_protocol::messages::SubmitMsg;
use mlt_protocol::records::StudyState;
use mlt_protocol::token::Token;
use mlt_scheduler::{Scheduler, SchedulerConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Completes on SIGTERM or Ctrl-C.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

fn scheduler_config(c: &ClusterConfig) -> SchedulerConfig {
    let mut s = SchedulerConfig::new(c.listen, c.data_dir.clone());
    s.heartbeat = Duration::from_millis(c.heartbeat_ms);
    s.lease = Duration::from_millis(c.lease_ms);
    s.max_frame = c.max_frame_bytes;
    s.max_spec = c.max_spec_bytes;
    s.durable = c.durable;
    s.advertise = c.advertise.clone();
    s
}

pub async fn scheduler(
    config: Option<PathBuf>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    advertise: Option<String>,
) -> anyhow::Result<()> {
    let mut c =
        ClusterConfig::load(config.as_deref()).map_err(|e| CliError::Spec(format!("{e:#}")))?;
    if let Some(l) = listen {
        c.listen = l.parse().map_err(|_| {
            CliError::Spec(format!(
                "--listen {l:?} is not an address such as 0.0.0.0:7340"
            ))
        })?;
    }
    if let Some(d) = data_dir {
        c.data_dir =
            std::path::absolute(&d).with_context(|| format!("--data-dir {}", d.display()))?;
    }
    if advertise.is_some() {
        c.advertise = advertise;
    }
    let handle = Scheduler::start(scheduler_config(&c)).await?;
    let port = handle.addr.port();
    let host = match &c.advertise {
        Some(h) => format!("{h}:{port}"),
        None if handle.addr.ip().is_unspecified() => format!("{}:{port}", host_name()),
        None => handle.addr.to_string(),
    };
    let id = &handle.shared.identity;
    println!(
        "mlt-cluster scheduler listening on {} (UDP/QUIC), data in {}",
        handle.addr,
        c.data_dir.display()
    );
    // The token goes in the environment or a file, never on a command line (`ps` shows those).
    println!(
        "join nodes with (copy {} to each node):\n  mlt-cluster join --scheduler {host} --token-file join-token\nor: MLT_TOKEN={} mlt-cluster join --scheduler {host}",
        c.data_dir.join("join-token").display(),
        id.join_token.encode()
    );
    println!(
        "clients: MLT_SCHEDULER={host} MLT_TOKEN=$(cat {}) mlt-cluster status",
        c.data_dir.join("client-token").display()
    );
    tokio::select! {
        _ = stop_signal() => {
            tracing::info!("stopping");
            handle.stop().await;
            Ok(())
        }
        r = wait_failed(&handle) => r,
    }
}

async fn wait_failed(handle: &mlt_scheduler::SchedulerHandle) -> anyhow::Result<()> {
    loop {
        if let Some(why) = handle.failed() {
            anyhow::bail!("scheduler stopped: {why}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// $XDG_CACHE_HOME/mlt-cluster/datasets, else ~/.cache/mlt-cluster/datasets, else
/// ./mlt-cache/datasets.
fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    match base {
        Some(b) => b.join("mlt-cluster").join("datasets"),
        None => PathBuf::from("mlt-cache").join("datasets"),
    }
}

/// What a joined node lets a study do on it.
pub struct Access {
    pub allow_command: bool,
    pub data_root: Option<PathBuf>,
}

#[allow(clippy::too_many_arguments)]
pub async fn join(
    scheduler: String,
    token: String,
    access: Access,
    slots: Option<u32>,
    gpus: Option<String>,
    name: Option<String>,
    config: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let c = ClusterConfig::load(config.as_deref()).map_err(|e| CliError::Spec(format!("{e:#}")))?;
    let token = Token::parse(&token).map_err(|e| CliError::Connect(format!("--token: {e}")))?;
    let gpus = match gpus {
        Some(g) => Some(parse_gpu_list(&g).map_err(|e| CliError::Spec(format!("--gpus: {e}")))?),
        None => c.gpus.clone(),
    };
    let gpus = detect_gpus(gpus.as_deref());
    let slots = make_slots(slots.unwrap_or(c.slots), &gpus);
    let cfg = NodeConfig {
        scheduler,
        token,
        name: name.or(c.name).unwrap_or_else(host_name),
        slots,
        reconnect_max: Duration::from_millis(c.reconnect_max_ms),
        drain_timeout: Duration::from_secs(c.drain_timeout_s),
        cache_dir: std::path::absolute(cache_dir.unwrap_or_else(default_cache_dir))
            .context("--cache-dir")?,
        allow_command: access.allow_command,
        data_root: access
            .data_root
            .map(std::path::absolute)
            .transpose()
            .context("--data-root")?,
    };
    if cfg.allow_command {
        tracing::warn!("`command` objectives run here: anyone with the client token can run programs on this node");
    }
    run_node(cfg, stop_signal())
        .await
        .map_err(|e| CliError::Connect(format!("{e:#}")).into())
}

pub async fn run(
    spec_path: &Path,
    data_dir: PathBuf,
    slots: Option<u32>,
    json: bool,
    over: &super::SpecOverrides,
) -> anyhow::Result<()> {
    let text = super::spec_text(spec_path, over)?;
    let source = spec_path.display().to_string();
    let parsed = mlt_spec::parse(&text, &source).map_err(|e| CliError::Spec(e.to_string()))?;
    let notes = super::check_objective(&parsed, spec_path, &source)?;
    // Relative paths are the current directory's, whatever the spec's folder (the local node
    // reads its dataset cache from here while resolving the spec's files against the spec's).
    let shown = data_dir.clone();
    let data_dir = std::path::absolute(&data_dir)
        .with_context(|| format!("--data-dir {}", data_dir.display()))?;
    let mut cfg = SchedulerConfig::new("127.0.0.1:0".parse().expect("addr"), data_dir.clone());
    cfg.heartbeat = Duration::from_millis(500);
    let handle = Scheduler::start(cfg).await?;
    // The data files go into the store as `submit` would upload them; the local node
    // fetches them over QUIC like any other.
    let files = super::datasets::local_files(&parsed, spec_path)
        .map_err(|e| CliError::Spec(format!("{source}: {e:#}")))?;
    for f in &files {
        super::datasets::store_local(&handle.shared.store, f)?;
    }
    let text = super::datasets::with_refs(&text, &source, &files)?;
    let node_cfg = NodeConfig {
        scheduler: handle.addr.to_string(),
        token: handle.shared.identity.join_token.clone(),
        name: "local".into(),
        slots: make_slots(slots.unwrap_or(0), &detect_gpus(None)),
        reconnect_max: Duration::from_secs(1),
        drain_timeout: Duration::from_secs(5),
        cache_dir: data_dir.join("cache"),
        // The researcher's own machine and spec: programs run; data files are uploaded.
        allow_command: true,
        data_root: None,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(run_node(node_cfg, async move {
        let _ = stop_rx.await;
    }));
    let workdir = spec_path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()));
    let sub = handle
        .submit(SubmitMsg {
            spec_toml: text,
            source,
            workdir,
            notes,
        })
        .await
        .map_err(|e| CliError::Spec(e.message))?;
    eprintln!("study {} (data in {})", sub.name, shown.display());
    // The same live progress as `submit --follow`, on a terminal only.
    let progress = (!json).then(|| super::client::Progress::new(&sub.name));
    let interrupted = tokio::select! {
        _ = stop_signal() => true,
        _ = async {
            loop {
                match handle.summary(&sub.name).await {
                    Some(s) if s.state != StudyState::Running => {
                        if let Some(p) = &progress { p.update(&s); }
                        break;
                    }
                    Some(s) => if let Some(p) = &progress { p.update(&s) },
                    None => {}
                }
                if handle.failed().is_some() { break; }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } => false,
    };
    if let Some(p) = &progress {
        p.finish();
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), node).await;
    let summary = handle.summary(&sub.name).await;
    let best = handle.shared.directory.find(&sub.name);
    let best = match best {
        Some(a) => ractor_best(a).await,
        None => Vec::new(),
    };
    let failed = handle.failed();
    if let Some(why) = failed {
        handle.stop().await;
        anyhow::bail!("scheduler stopped: {why}");
    }
    let Some(s) = summary else {
        handle.stop().await;
        anyhow::bail!("the study vanished");
    };
    let reported = if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "study": s, "best": best }))?
        );
        Ok(())
    } else {
        println!("{}", super::output::summary_line(&s));
        // The same report as `best`, asked of the scheduler as a client would.
        let conn = super::Conn {
            scheduler: Some(handle.addr.to_string()),
            token: Some(handle.shared.identity.client_token.encode()),
            data_dir: None,
        };
        match super::target::target(&conn, false).await {
            Ok(mut t) => super::client::best_on(&mut t, &s.name, false).await,
            Err(e) => Err(e),
        }
    };
    handle.stop().await;
    reported?;
    if interrupted {
        eprintln!("interrupted: the study is kept in {}; resume it with `mlt-cluster scheduler --data-dir {}` and a node", shown.display(), shown.display());
    } else if s.counts.complete == 0 {
        return Err(CliError::NoResult(format!(
            "study {} ended without a complete trial ({} failed, {} pruned, {} lost): see `mlt-cluster trials {} --data-dir {}` for each trial's message",
            s.name,
            s.counts.failed,
            s.counts.pruned,
            s.counts.lost,
            s.name,
            shown.display()
        ))
        .into());
    }
    Ok(())
}

async fn ractor_best(
    a: ractor::ActorRef<mlt_scheduler::study::StudyMsg>,
) -> Vec<mlt_protocol::records::TrialRecord> {
    ractor::call!(a, mlt_scheduler::study::StudyMsg::Best).unwrap_or_default()
}
