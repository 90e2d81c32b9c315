//! Loaded models: each on its own thread (a LightGBM booster or a burn module stays on the
//! thread that made it), fed rows through a channel — except a LightGBM model whose trees,
//! evaluated here, give LightGBM's predictions to the bit on probe rows (checked at load):
//! that one predicts in the request's own task, with no thread hop and no C call; a cache of them bounded by count and bytes,
//! least recently used out. A version's model is loaded once; a request in flight keeps the
//! model it started with even when the cache lets it go.
use mlt_protocol::models::ModelVersion;
use mlt_protocol::records::ModelArtifact;
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

type Job = (
    Vec<Vec<f64>>,
    oneshot::Sender<Result<Vec<Vec<f64>>, String>>,
);

/// A LightGBM model evaluated in this process, checked against LightGBM at load.
#[cfg(feature = "lightgbm")]
type Fast = Arc<mlt_eval::models::TreeModel>;
#[cfg(not(feature = "lightgbm"))]
type Fast = Arc<()>;

/// Probe rows a fast path must predict exactly as LightGBM does before it is used.
pub const PROBES: usize = 512;

/// Rows predicted inline (more go to a blocking thread).
#[cfg(feature = "lightgbm")]
const INLINE_ROWS: usize = 64;

/// Checks LightGBM's model text evaluated here against the loaded booster on probe rows: the
/// fast path when every prediction is the same to the bit, else why not.
#[cfg(feature = "lightgbm")]
fn fast_path(
    format: &str,
    text: &str,
    model: &dyn mlt_eval::models::Model,
) -> Result<Fast, String> {
    if format != "lightgbm" {
        return Err(format!("a {format} model"));
    }
    let tm = mlt_eval::models::TreeModel::parse(text)?;
    let probes = tm.probe_rows(PROBES);
    let want = model.predict_many(&probes)?;
    for (row, w) in probes.iter().zip(&want) {
        let got = tm.predict(row);
        if got.to_bits() != w.to_bits() && !(got.is_nan() && w.is_nan()) {
            return Err(format!(
                "LightGBM gives {w:e} and the trees here {got:e} on a probe row"
            ));
        }
    }
    Ok(Arc::new(tm))
}

#[cfg(not(feature = "lightgbm"))]
fn fast_path(_: &str, _: &str, _: &dyn mlt_eval::models::Model) -> Result<Fast, String> {
    Err("built without LightGBM".into())
}

/// A model version, loaded.
pub struct Loaded {
    /// Name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// The artifact served (the refit's when the version has one).
    pub artifact: ModelArtifact,
    /// `refit` or `trial`: which of the version's models this is.
    pub which: &'static str,
    /// Days ahead of each output of a multi-step head (empty: the label alone).
    pub horizons: Vec<u32>,
    /// Bytes of the model text.
    pub bytes: usize,
    /// Seconds the load took.
    pub load_seconds: f64,
    /// The columns its features read.
    pub needs: Vec<&'static str>,
    /// The study's spec (for the registered data).
    pub spec_toml: String,
    /// Predicts here (a LightGBM model checked bit for bit against LightGBM at load).
    fast: Option<Fast>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Loaded {
    /// Loads `v`'s model (its refit when it has one and `prefer_refit`) on a new thread.
    pub async fn load(v: &ModelVersion, prefer_refit: bool) -> Result<Loaded, String> {
        let t0 = Instant::now();
        let (artifact, which) = match (&v.refit, prefer_refit) {
            (Some(r), true) => (r.clone(), "refit"),
            _ => (v.artifact.clone(), "trial"),
        };
        let stream = mlt_eval::stream::FeatureStream::new(&artifact.features, artifact.lookback)
            .map_err(|e| format!("{}@{}: {e}", v.name, v.version))?;
        let needs = stream.needs().iter().copied().collect();
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (format, text) = (artifact.format.clone(), artifact.model.clone());
        let thread = format!("model-{}@{}", v.name, v.version);
        std::thread::Builder::new()
            .name(thread.chars().take(15).collect())
            .spawn(move || {
                let model = match mlt_eval::models::load_model(&format, &text) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let fast = fast_path(&format, &text, model.as_ref());
                if let Err(why) = &fast {
                    tracing::debug!(
                        "no fast path ({why}): predictions go through the model's own code"
                    );
                }
                let _ = ready_tx.send(Ok((model.horizons(), fast.ok())));
                for (rows, reply) in rx {
                    let _ = reply.send(model.predict_paths(&rows));
                }
            })
            .map_err(|e| format!("starting a model thread: {e}"))?;
        let (horizons, fast) = ready_rx
            .await
            .map_err(|_| "the model thread ended while loading".to_string())?
            .map_err(|e| format!("{}@{}: {e}", v.name, v.version))?;
        Ok(Loaded {
            name: v.name.clone(),
            version: v.version,
            bytes: artifact.model.len(),
            artifact,
            which,
            horizons,
            load_seconds: t0.elapsed().as_secs_f64(),
            needs,
            spec_toml: v.spec_toml.clone(),
            fast,
            jobs: Mutex::new(tx),
        })
    }

    /// Every output of each row (one per horizon, the label's last).
    pub async fn predict(&self, rows: Vec<Vec<f64>>) -> Result<Vec<Vec<f64>>, String> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        #[cfg(feature = "lightgbm")]
        if let Some(f) = &self.fast {
            let n = f.n_features();
            if let Some(r) = rows.iter().find(|r| r.len() != n) {
                return Err(format!(
                    "the model takes {n} features per row, not {}",
                    r.len()
                ));
            }
            let run =
                |f: &Fast, rows: Vec<Vec<f64>>| rows.iter().map(|r| vec![f.predict(r)]).collect();
            if rows.len() <= INLINE_ROWS {
                return Ok(run(f, rows));
            }
            let f = f.clone();
            return tokio::task::spawn_blocking(move || run(&f, rows))
                .await
                .map_err(|e| format!("prediction task: {e}"));
        }
        let (tx, rx) = oneshot::channel();
        self.jobs
            .lock()
            .map_err(|_| "model channel poisoned".to_string())?
            .send((rows, tx))
            .map_err(|_| "the model thread has stopped".to_string())?;
        rx.await
            .map_err(|_| "the model thread dropped the request".to_string())?
    }

    /// `here` (LightGBM's trees evaluated in the server, checked against LightGBM at load) or
    /// `model` (the model's own code, on its thread).
    pub fn engine(&self) -> &'static str {
        if self.fast.is_some() {
            "here"
        } else {
            "model"
        }
    }

    /// Whether it predicts the probability of up.
    pub fn classify(&self) -> bool {
        self.artifact.classify
    }
}

/// What the cache has done, for /metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheCounts {
    /// Found loaded.
    pub hits: u64,
    /// Loaded.
    pub loads: u64,
    /// Failed loads.
    pub failures: u64,
    /// Let go to stay within bounds.
    pub evictions: u64,
    /// Seconds spent loading, all loads together.
    pub load_seconds: f64,
}

/// Loaded versions, least recently used out beyond `max_models` or `max_bytes`.
pub struct Cache {
    max_models: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
    /// One load at a time (a version asked for twice at once is loaded once). Held only
    /// while a model loads, never while waiting on the scheduler.
    loading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<(String, u32), (Arc<Loaded>, u64)>,
    tick: u64,
    counts: CacheCounts,
}

impl Cache {
    /// A cache of at most `max_models` versions and `max_bytes` of model text (at least one
    /// version is kept, whatever its size).
    pub fn new(max_models: usize, max_bytes: usize) -> Self {
        Cache {
            max_models: max_models.max(1),
            max_bytes,
            inner: Mutex::new(Inner::default()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    fn lookup(&self, name: &str, version: u32, count_hit: bool) -> Option<Arc<Loaded>> {
        let mut g = self.inner.lock().ok()?;
        g.tick += 1;
        let tick = g.tick;
        let found = g.map.get_mut(&(name.to_string(), version)).map(|(l, t)| {
            *t = tick;
            l.clone()
        });
        if found.is_some() && count_hit {
            g.counts.hits += 1;
        }
        found
    }

    /// The loaded version, loading it with `fetch` when it is not in the cache.
    pub async fn get<F, Fut>(
        &self,
        name: &str,
        version: u32,
        fetch: F,
    ) -> Result<Arc<Loaded>, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Loaded, String>>,
    {
        if let Some(l) = self.lookup(name, version, true) {
            return Ok(l);
        }
        let _one = self.loading.lock().await;
        if let Some(l) = self.lookup(name, version, true) {
            return Ok(l);
        }
        let loaded = match fetch().await {
            Ok(l) => Arc::new(l),
            Err(e) => {
                if let Ok(mut g) = self.inner.lock() {
                    g.counts.failures += 1;
                }
                return Err(e);
            }
        };
        let mut g = self
            .inner
            .lock()
            .map_err(|_| "cache poisoned".to_string())?;
        g.counts.loads += 1;
        g.counts.load_seconds += loaded.load_seconds;
        g.tick += 1;
        let tick = g.tick;
        g.map
            .insert((name.to_string(), version), (loaded.clone(), tick));
        // Least recently used out, the new one kept.
        loop {
            let bytes: usize = g.map.values().map(|(l, _)| l.bytes).sum();
            if g.map.len() <= 1 || (g.map.len() <= self.max_models && bytes <= self.max_bytes) {
                break;
            }
            let Some(oldest) = g
                .map
                .iter()
                .filter(|(_, (_, t))| *t != tick)
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            g.map.remove(&oldest);
            g.counts.evictions += 1;
            tracing::info!(model = %oldest.0, version = oldest.1, "cache: let go (least recently used)");
        }
        Ok(loaded)
    }

    /// The loaded versions: name, version, which model, bytes, load seconds.
    pub fn loaded(&self) -> Vec<Arc<Loaded>> {
        let mut v: Vec<Arc<Loaded>> = self
            .inner
            .lock()
            .map(|g| g.map.values().map(|(l, _)| l.clone()).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        v
    }

    /// Its counters.
    pub fn counts(&self) -> CacheCounts {
        self.inner.lock().map(|g| g.counts).unwrap_or_default()
    }

    /// The loaded version, when the cache has it (counted as a hit).
    pub fn hit(&self, name: &str, version: u32) -> Option<Arc<Loaded>> {
        self.lookup(name, version, true)
    }

    /// Whether `name`@`version` is loaded (without counting a hit).
    pub fn has(&self, name: &str, version: u32) -> bool {
        self.lookup(name, version, false).is_some()
    }
}
