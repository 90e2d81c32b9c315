//! `mlt-cluster serve`: registered models over HTTP (axum on the process's tokio runtime).
//!
//! ```text
//! mod.rs      the App: routes (what each name serves now), the log buffer, start and stop
//! link.rs     the one connection to the scheduler: view polling, hot swap, the log's writes
//! models.rs   loaded versions (a thread each) and their cache (count and bytes, LRU)
//! live.rs     real-time state per name and instrument (feature streams, warm-up bars)
//! input.rs    request bodies: JSON bars or CSV with a header line
//! http.rs     the endpoints, bearer-token auth, errors as JSON
//! metrics.rs  Prometheus text
//! ```
pub mod http;
pub mod input;
pub mod link;
pub mod live;
pub mod metrics;
pub mod models;

use crate::cli::{CliError, Conn};
use anyhow::Context;
use mlt_eval::stream::Bar;
use mlt_protocol::models::{ModelEntry, Stage};
use mlt_protocol::serving::{Arm, PredictionRecord, Rollout, ServingView};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The most prediction-log records kept in memory while the scheduler is unreachable.
pub const LOG_BUFFER: usize = 1_000_000;

/// What a name serves now.
#[derive(Clone, Debug)]
pub struct NameRoute {
    /// Its stages.
    pub entry: ModelEntry,
    /// Its rollout, when one is active.
    pub rollout: Option<Rollout>,
}

/// Every name's route.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    /// By name.
    pub names: BTreeMap<String, NameRoute>,
}

impl Routes {
    /// The versions a view serves without being asked by number: each production version and
    /// each live rollout's candidate.
    pub fn wanted(view: &ServingView) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for e in &view.entries {
            if let Some(p) = e.production() {
                out.push((e.name.clone(), p));
            }
        }
        for r in &view.rollouts {
            if r.live() {
                out.push((r.plan.name.clone(), r.plan.candidate));
            }
        }
        out
    }
}

/// A version's registered bars, by instrument.
type SeedBars = HashMap<String, Vec<Bar>>;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: String,
    /// Serve a version's refit model when it has one (else its trial's).
    pub prefer_refit: bool,
    /// Most versions kept loaded.
    pub cache_models: usize,
    /// Most bytes of model text kept loaded.
    pub cache_bytes: usize,
    /// Largest request body.
    pub max_body: usize,
    /// Raw bars kept per instrument for warming up a version.
    pub history: usize,
    /// Instruments with real-time state per model name.
    pub max_instruments: usize,
    /// Seed each instrument from the version's registered data when it has that instrument.
    pub seed_registered: bool,
    /// How often the registry is polled.
    pub poll: Duration,
    /// Where the serve token is (and the address is written).
    pub data_dir: PathBuf,
}

/// The server's shared state.
pub struct App {
    /// The bearer token.
    pub token: String,
    /// Loaded versions.
    pub cache: models::Cache,
    /// Real-time state.
    pub tracks: live::Tracks,
    /// Counters.
    pub metrics: metrics::Metrics,
    routes: RwLock<Arc<Routes>>,
    /// Asks of the scheduler link.
    pub link: tokio::sync::mpsc::Sender<link::LinkMsg>,
    /// Records waiting to be written.
    pub log: Mutex<Vec<PredictionRecord>>,
    /// Serve refits.
    pub prefer_refit: bool,
    /// Largest body.
    pub max_body: usize,
    /// Seed bars per (name, version): instrument → bars.
    seeds: Mutex<HashMap<(String, u32), Arc<SeedBars>>>,
    seed_registered: bool,
    /// The registry has been read once.
    pub ready: AtomicBool,
}

impl App {
    /// The routes now.
    pub fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps in `view`'s routes (the versions they name are loaded), and drops real-time
    /// streams of versions no longer served.
    pub fn set_routes(&self, view: ServingView) {
        let mut names = BTreeMap::new();
        for e in view.entries {
            let rollout = view
                .rollouts
                .iter()
                .find(|r| r.plan.name == e.name && r.live())
                .cloned();
            names.insert(e.name.clone(), NameRoute { entry: e, rollout });
        }
        let new = Routes { names };
        let old = self.routes();
        let changed = old.names.len() != new.names.len()
            || new.names.iter().any(|(n, r)| {
                old.names.get(n).is_none_or(|o| {
                    o.entry.stages != r.entry.stages
                        || o.rollout
                            .as_ref()
                            .map(|x| (x.plan.candidate, x.step, x.state))
                            != r.rollout
                                .as_ref()
                                .map(|x| (x.plan.candidate, x.step, x.state))
                })
            });
        if !changed {
            // Counters in the rollout still change: keep the newest.
            *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
            self.ready.store(true, Ordering::Relaxed);
            return;
        }
        for (n, r) in &new.names {
            let mut keep: HashSet<u32> = HashSet::new();
            keep.extend(r.entry.production());
            for (i, s) in r.entry.stages.iter().enumerate() {
                if *s == Stage::Staging {
                    keep.insert(i as u32 + 1);
                }
            }
            if let Some(ro) = &r.rollout {
                keep.insert(ro.plan.candidate);
            }
            self.tracks.prune(n, &keep);
            tracing::info!(
                model = %n,
                production = ?r.entry.production(),
                candidate = ?r.rollout.as_ref().map(|x| x.plan.candidate),
                share = r.rollout.as_ref().map_or(0.0, |x| x.share()),
                "routes"
            );
        }
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        // Ready once every production version is loaded and routed.
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Appends records to the log buffer (bounded: the oldest go when the scheduler has been
    /// away too long, counted).
    pub fn log(&self, records: Vec<PredictionRecord>) {
        if records.is_empty() {
            return;
        }
        let n = records.len() as u64;
        let mut g = self.log.lock().unwrap_or_else(|p| p.into_inner());
        g.extend(records);
        self.metrics.log_pending.fetch_add(n, Ordering::Relaxed);
        if g.len() > LOG_BUFFER {
            let over = g.len() - LOG_BUFFER;
            g.drain(..over);
            self.metrics
                .log_pending
                .fetch_sub(over as u64, Ordering::Relaxed);
            self.metrics
                .log_dropped
                .fetch_add(over as u64, Ordering::Relaxed);
        }
    }

    /// Reads the version's registered data for seeding real-time state (when asked, and when
    /// the data is readable here: the synthetic market, or files at their paths).
    pub fn seed_for(&self, l: &models::Loaded) {
        if !self.seed_registered {
            return;
        }
        let key = (l.name.clone(), l.version);
        if self
            .seeds
            .lock()
            .map(|g| g.contains_key(&key))
            .unwrap_or(true)
        {
            return;
        }
        let bars = (|| -> Result<HashMap<String, Vec<Bar>>, String> {
            let spec =
                mlt_spec::parse(&l.spec_toml, "registered spec").map_err(|e| e.to_string())?;
            let mlt_protocol::spec::ObjectiveSpec::WalkForward(wf) = spec.objective else {
                return Err("not a walk-forward study".into());
            };
            let all = mlt_eval::universe::load(&wf.data, None)?;
            Ok(all
                .into_iter()
                .map(|b| {
                    let bars = (0..b.len())
                        .map(|t| Bar {
                            day: b.days[t],
                            open: b.open[t],
                            high: b.high[t],
                            low: b.low[t],
                            close: b.close[t],
                            volume: b.volume.as_ref().map(|v| v[t]),
                        })
                        .collect();
                    (b.instrument.clone(), bars)
                })
                .collect())
        })();
        let bars = match bars {
            Ok(b) => {
                tracing::info!(model = %l.name, version = l.version, instruments = b.len(), "seed: the registered data");
                b
            }
            Err(e) => {
                tracing::warn!(model = %l.name, version = l.version, "seed: the registered data cannot be read here ({e}); post a warm-up");
                HashMap::new()
            }
        };
        if let Ok(mut g) = self.seeds.lock() {
            g.insert(key, Arc::new(bars));
        }
    }

    /// Seed bars of `instrument` for `name` (its production version's registered data).
    pub fn seed(&self, name: &str, version: u32, instrument: &str) -> Option<Vec<Bar>> {
        let g = self.seeds.lock().ok()?;
        g.get(&(name.to_string(), version))?
            .get(instrument)
            .cloned()
    }
}

/// Which version a request is served by, and the other it is compared with.
#[derive(Clone, Debug)]
pub struct Choice {
    /// The version serving.
    pub version: u32,
    /// Its arm.
    pub arm: Arm,
    /// The other arm, computed beside it for the comparison (a live rollout).
    pub beside: Option<(u32, Arm)>,
}

/// A model reference from a path: `name`, `name@k`, `name@production`, `name@staging`.
pub fn parse_ref(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    }
}

/// Serves until SIGTERM or Ctrl-C.
pub async fn serve(opts: ServeOptions, conn: Conn) -> anyhow::Result<()> {
    let dir = &opts.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let token = serve_token(dir)?;
    // `--data-dir` alone: the scheduler running on it, or one started in this process.
    let mut conn = conn;
    let embedded = if conn.scheduler.is_none() && !scheduler_running(dir) {
        let c =
            mlt_scheduler::SchedulerConfig::new("127.0.0.1:0".parse().expect("addr"), dir.clone());
        let h = mlt_scheduler::Scheduler::start(c)
            .await
            .context("starting the scheduler")?;
        eprintln!("started a scheduler on {} for {}", h.addr, dir.display());
        conn.scheduler = Some(h.addr.to_string());
        Some(h)
    } else {
        None
    };
    if conn.data_dir.is_none() {
        conn.data_dir = Some(dir.clone());
    }
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let app = Arc::new(App {
        token,
        cache: models::Cache::new(opts.cache_models, opts.cache_bytes),
        tracks: live::Tracks::new(opts.history, opts.max_instruments),
        metrics: Default::default(),
        routes: RwLock::new(Arc::new(Routes::default())),
        link: tx,
        log: Mutex::new(Vec::new()),
        prefer_refit: opts.prefer_refit,
        max_body: opts.max_body,
        seeds: Mutex::new(HashMap::new()),
        seed_registered: opts.seed_registered,
        ready: AtomicBool::new(false),
    });
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|e| CliError::Spec(format!("--listen {}: {e}", opts.listen)))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let linker = tokio::spawn(link::run(app.clone(), conn, rx, opts.poll, stop_rx));
    std::fs::write(dir.join("serve-address"), format!("{addr}\n"))
        .with_context(|| format!("writing {}", dir.join("serve-address").display()))?;
    println!(
        "mlt-cluster serve listening on http://{addr} (token in {})",
        dir.join("serve-token").display()
    );
    let router = http::router(app.clone());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("stopping: finishing requests in flight, then writing the log");
        })
        .await
        .context("serving")?;
    let _ = stop_tx.send(true);
    let _ = linker.await;
    if let Some(h) = embedded {
        h.stop().await;
    }
    let _ = std::fs::remove_file(dir.join("serve-address"));
    Ok(())
}

/// Whether a scheduler holds the store in `dir`.
fn scheduler_running(dir: &Path) -> bool {
    if !dir.join("store.redb").exists() {
        return false;
    }
    matches!(
        mlt_scheduler::store::Store::open_read_only(dir),
        Err(mlt_scheduler::store::StoreError::Locked(_))
    )
}

/// The serve token in `dir/serve-token` (0600), made when missing.
fn serve_token(dir: &Path) -> anyhow::Result<String> {
    let p = dir.join("serve-token");
    if let Ok(t) = std::fs::read_to_string(&p) {
        let t = t.trim().to_string();
        if t.len() >= 32 {
            return Ok(t);
        }
        anyhow::bail!(
            "{} holds no token (32 characters or more): remove it to make a new one",
            p.display()
        );
    }
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    let t = format!("mlts_{}", hex::encode(bytes));
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)
        .with_context(|| format!("writing {}", p.display()))?;
    writeln!(f, "{t}")?;
    Ok(t)
}
