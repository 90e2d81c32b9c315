//! Opening, loading and writing the redb file.
use super::schema::*;
use mlt_protocol::ids::{StudyId, TrialId};
use mlt_protocol::records::{
    BackupReport, DailySeries, DatasetInfo, HoldoutWindow, LedgerCount, ModelArtifact,
    ReturnSeries, TrialRecord,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Store errors. All are fatal for the operation; none is retried automatically.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another process has the store open (a running scheduler).
    #[error("the store {0} is in use by another process (is a scheduler running on it?)")]
    Locked(PathBuf),
    /// The file was written by an incompatible version.
    #[error("the store {path} has schema {found}, this build reads {SCHEMA_MAJOR}.x")]
    Schema {
        /// File.
        path: PathBuf,
        /// Version found.
        found: String,
    },
    /// redb failed.
    #[error("store error: {0}")]
    Redb(String),
    /// A row did not decode.
    #[error("corrupt row in table {table}: {error}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Decoder message.
        error: String,
    },
    /// The file is not a readable store: empty, truncated, or with damaged pages.
    #[error("the store at {path} is damaged ({why}): restore it from a backup (`mlt-cluster backup` makes one)")]
    Damaged {
        /// File.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// A scheduler was stopped without closing the store, and it cannot be repaired here.
    #[error("the store at {0} was not closed cleanly (its scheduler was killed) and needs a repair, which needs write access: start `mlt-cluster scheduler` on it once, or make it writable")]
    NeedsRepair(PathBuf),
    /// A write to a store opened for reading.
    #[error("the store at {0} is open read-only")]
    ReadOnly(PathBuf),
}

/// The open redb file: read-write (the scheduler, `run`), or read-only (inspection).
enum Db {
    Rw(Database),
    Ro(redb::ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Db::Rw(d) => d.begin_read(),
            Db::Ro(d) => d.begin_read(),
        }
    }
}

/// A table of a read transaction, or None when the store predates it (read-only stores are
/// not upgraded).
fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    def: redb::TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

thread_local! {
    /// How deep this thread is in [`Store::guarded`].
    static GUARDED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Installs a panic hook that stays silent for panics [`Store::guarded`] turns into errors
/// (a damaged store's own message says what happened) and prints every other as before.
pub fn quiet_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if GUARDED.with(|g| g.get()) == 0 {
            previous(info);
        }
    }));
}

/// The message of a panic payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

macro_rules! redb_err {
    ($($t:ty),*) => { $(impl From<$t> for StoreError { fn from(e: $t) -> Self { StoreError::Redb(e.to_string()) } })* };
}
redb_err!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Everything in the store, read at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Studies by id.
    pub studies: BTreeMap<StudyId, StudyRow>,
    /// Trials by study, in number order, with their intermediate values.
    pub trials: HashMap<StudyId, Vec<TrialRecord>>,
    /// Next study id.
    pub next_study: u64,
    /// Next event sequence per study.
    pub next_event: HashMap<StudyId, u64>,
    /// The problems found in each study's data at submit.
    pub notes: HashMap<StudyId, Vec<String>>,
    /// Tags and notes on each study and its trials.
    pub annotations: HashMap<StudyId, mlt_protocol::catalog::Annotations>,
    /// Registered model names.
    pub models: Vec<mlt_protocol::models::ModelEntry>,
    /// The registry's audit log.
    pub audit: Vec<mlt_protocol::models::AuditEntry>,
    /// Rollouts (the latest of each name).
    pub rollouts: Vec<mlt_protocol::serving::Rollout>,
    /// Alerts, by name in order.
    pub alerts: Vec<mlt_protocol::serving::Alert>,
    /// The next prediction-log seq of each name.
    pub next_prediction: HashMap<String, u64>,
}

/// The open store.
#[derive(Clone)]
pub struct Store {
    db: Arc<Db>,
    path: PathBuf,
}

fn decode<T: serde::de::DeserializeOwned>(table: &'static str, b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|e| StoreError::Corrupt {
        table,
        error: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("store rows always encode")
}

impl Store {
    /// Opens `dir/store.redb` for reading and writing (creating it when there is none) and
    /// checks its schema version. An existing file is opened, never re-created: an empty or
    /// damaged one is refused ([`StoreError::Damaged`]), never started afresh.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("store.redb");
        Self::guarded(&path, || {
            let exists = Self::existing(&path)?;
            let db = if exists {
                Database::open(&path)
            } else {
                Database::create(&path)
            }
            .map_err(|e| Self::open_error(&path, e))?;
            if !exists {
                // Specs (with their environment values), results and datasets: private.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| StoreError::Redb(format!("{}: {e}", path.display())))?;
            }
            let store = Store {
                db: Arc::new(Db::Rw(db)),
                path: path.clone(),
            };
            store.check_schema()?;
            Ok(store)
        })
    }

    /// Opens an existing `dir/store.redb` read-only, for inspection: the file is never
    /// modified (not even the schema record), and read-only media will do.
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("store.redb");
        Self::guarded(&path, || {
            if !Self::existing(&path)? {
                return Err(StoreError::Redb(format!(
                    "{} does not exist",
                    path.display()
                )));
            }
            let db = redb::ReadOnlyDatabase::open(&path).map_err(|e| Self::open_error(&path, e))?;
            let store = Store {
                db: Arc::new(Db::Ro(db)),
                path: path.clone(),
            };
            store.check_schema_read_only()?;
            Ok(store)
        })
    }

    /// Whether the file exists; an empty one is damaged (redb would start it afresh).
    fn existing(path: &Path) -> Result<bool, StoreError> {
        match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => Err(StoreError::Damaged {
                path: path.to_path_buf(),
                why: "the file is empty".into(),
            }),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::Redb(format!("{}: {e}", path.display()))),
        }
    }

    fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.to_path_buf()),
            redb::DatabaseError::RepairAborted => StoreError::NeedsRepair(path.to_path_buf()),
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                StoreError::Redb(format!("{}: {io}", path.display()))
            }
            other => StoreError::Damaged {
                path: path.to_path_buf(),
                why: other.to_string(),
            },
        }
    }

    /// Runs `f`, turning a panic inside redb (damaged pages) into [`StoreError::Damaged`]
    /// (whose message carries the panic's). With [`quiet_panics`] installed, such a panic
    /// prints nothing of its own.
    pub fn guarded<T, E: From<StoreError>>(
        path: &Path,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        GUARDED.with(|g| g.set(g.get() + 1));
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        GUARDED.with(|g| g.set(g.get() - 1));
        out.unwrap_or_else(|p| {
            Err(StoreError::Damaged {
                path: path.to_path_buf(),
                why: format!("reading it failed: {}", panic_text(p.as_ref())),
            }
            .into())
        })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a consistent copy of the whole store (one read transaction: a snapshot, while
    /// writes go on) to a new file `out`, flushed to disk; a file already there is refused.
    /// The copy is a store like any other: put it at `DIR/store.redb` to restore it.
    pub fn backup_to(&self, out: &Path) -> Result<BackupReport, StoreError> {
        macro_rules! copy {
            ($src:expr, $dst:expr, $rows:ident, [$($t:ident),*]) => {$(
                if let Some(s) = table(&$src, $t)? {
                    let mut d = $dst.open_table($t)?;
                    for row in s.iter()? {
                        let (k, v) = row?;
                        d.insert(k.value(), v.value())?;
                        $rows += 1;
                    }
                }
            )*};
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(out)
            .map_err(|e| StoreError::Redb(format!("{}: {e}", out.display())))?;
        drop(file);
        let copy = || -> Result<u64, StoreError> {
            let src = self.db.begin_read()?;
            let dst = Database::create(out).map_err(|e| StoreError::Redb(e.to_string()))?;
            let txn = dst.begin_write()?;
            let mut rows = 0u64;
            copy!(
                src,
                txn,
                rows,
                [
                    META,
                    STUDIES,
                    TRIALS,
                    INTERMEDIATE,
                    EVENTS,
                    RETURNS,
                    DATASETS,
                    CHUNKS,
                    ARTIFACTS,
                    DAILY,
                    NOTES,
                    LEDGER,
                    TAGS,
                    USER_NOTES,
                    RUNS,
                    MODELS,
                    MODEL_VERSIONS,
                    MODEL_AUDIT,
                    ROLLOUTS,
                    PREDICTIONS,
                    ALERTS
                ]
            );
            txn.commit()?;
            Ok(rows)
        };
        let rows = match copy() {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(out);
                return Err(e);
            }
        };
        let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
        Ok(BackupReport {
            path: out.display().to_string(),
            rows,
            bytes,
        })
    }

    fn rw(&self) -> Result<&Database, StoreError> {
        match self.db.as_ref() {
            Db::Rw(d) => Ok(d),
            Db::Ro(_) => Err(StoreError::ReadOnly(self.path.clone())),
        }
    }

    /// The schema record, refused when another major version wrote the file.
    fn schema_check(&self, found: Option<Vec<u8>>) -> Result<(), StoreError> {
        match found {
            None => Ok(()),
            Some(f) if f.len() == 8 && f[..4] == MAGIC && f[4..6] == SCHEMA_MAJOR.to_le_bytes() => {
                Ok(())
            }
            Some(f) => {
                let found = if f.len() == 8 && f[..4] == MAGIC {
                    format!(
                        "{}.{}",
                        u16::from_le_bytes([f[4], f[5]]),
                        u16::from_le_bytes([f[6], f[7]])
                    )
                } else {
                    "unknown (not an mlt-cluster store)".into()
                };
                Err(StoreError::Schema {
                    path: self.path.clone(),
                    found,
                })
            }
        }
    }

    fn check_schema_read_only(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let found = match table(&txn, META)? {
            Some(meta) => meta.get("schema")?.map(|v| v.value().to_vec()),
            None => None,
        };
        if found.is_none() {
            return Err(StoreError::Schema {
                path: self.path.clone(),
                found: "none (not an mlt-cluster store)".into(),
            });
        }
        self.schema_check(found)
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&SCHEMA_MAJOR.to_le_bytes());
        header.extend_from_slice(&SCHEMA_MINOR.to_le_bytes());
        let txn = self.rw()?.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema")?.map(|v| v.value().to_vec());
            if found.is_none() {
                meta.insert("schema", header.as_slice())?;
            }
            self.schema_check(found)?;
            txn.open_table(STUDIES)?;
            txn.open_table(TRIALS)?;
            txn.open_table(INTERMEDIATE)?;
            txn.open_table(EVENTS)?;
            txn.open_table(RETURNS)?;
            txn.open_table(DATASETS)?;
            txn.open_table(CHUNKS)?;
            txn.open_table(ARTIFACTS)?;
            txn.open_table(DAILY)?;
            txn.open_table(LEDGER)?;
            txn.open_table(NOTES)?;
            txn.open_table(TAGS)?;
            txn.open_table(USER_NOTES)?;
            txn.open_table(RUNS)?;
            txn.open_table(MODELS)?;
            txn.open_table(MODEL_VERSIONS)?;
            txn.open_table(MODEL_AUDIT)?;
            txn.open_table(ROLLOUTS)?;
            txn.open_table(PREDICTIONS)?;
            txn.open_table(ALERTS)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The prediction log of model `name` from record `from` on, at most `limit` records.
    pub fn predictions(
        &self,
        name: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<mlt_protocol::serving::PredictionRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, PREDICTIONS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.range((name, from)..=(name, u64::MAX))?.take(limit) {
            let (_, v) = row?;
            out.push(decode("predictions", v.value())?);
        }
        Ok(out)
    }

    /// Version `version` of model `name`.
    pub fn model_version(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<mlt_protocol::models::ModelVersion>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, MODEL_VERSIONS)? else {
            return Ok(None);
        };
        let v = table.get((name, version))?;
        v.map(|v| decode("model_versions", v.value())).transpose()
    }

    /// A finished trial's lineage, if its node sent one.
    pub fn run(
        &self,
        study: StudyId,
        trial: TrialId,
    ) -> Result<Option<mlt_protocol::lineage::RunRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, RUNS)? else {
            return Ok(None);
        };
        let v = table.get((study.0, trial.0))?;
        v.map(|v| decode("runs", v.value())).transpose()
    }

    /// A trial's trading day by day, if it completed a walk-forward evaluation.
    pub fn daily(&self, study: StudyId, trial: TrialId) -> Result<Option<DailySeries>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, DAILY)? else {
            return Ok(None);
        };
        let v = table.get((study.0, trial.0))?;
        v.map(|v| decode("daily", v.value())).transpose()
    }

    /// The hold-out ledger for a study: every window its hold-out evaluations were tested on,
    /// with how many evaluations of how many studies the store holds on that window, and the
    /// variance of their Sharpe ratios per period.
    pub fn ledger(&self, study: StudyId) -> Result<Vec<LedgerCount>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, LEDGER)? else {
            return Ok(Vec::new());
        };
        // The windows this study used (the ledger is small: one row per hold-out evaluation).
        let mut windows = std::collections::BTreeSet::new();
        for row in table.iter()? {
            let (k, _) = row?;
            let (w, s, _) = k.value();
            if s == study.0 {
                windows.insert(w.to_string());
            }
        }
        let mut out = Vec::new();
        for w in windows {
            let mut studies = std::collections::BTreeSet::new();
            let (mut sharpes, mut rows, mut here) = (Vec::new(), 0u64, Vec::new());
            for row in table.range((w.as_str(), 0, 0)..=(w.as_str(), u64::MAX, u64::MAX))? {
                let (k, v) = row?;
                let (_, s, t) = k.value();
                studies.insert(s);
                rows += 1;
                if s == study.0 {
                    here.push(t);
                }
                let sr: f64 = decode("ledger", v.value())?;
                if sr.is_finite() {
                    sharpes.push(sr);
                }
            }
            let var = mlt_eval::metrics::spread(&sharpes).powi(2);
            out.push(LedgerCount {
                window: HoldoutWindow::from_key(&w).ok_or_else(|| StoreError::Corrupt {
                    table: "ledger",
                    error: format!("the key `{w}` is not data:first:last"),
                })?,
                evaluations: rows,
                studies: studies.len() as u64,
                this_study: here.len() as u64,
                trials: here,
                sharpe_variance: var,
            });
        }
        Ok(out)
    }

    /// The out-of-sample returns stored for a study's trials.
    pub fn returns(&self, study: StudyId) -> Result<Vec<(TrialId, ReturnSeries)>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, RETURNS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.range((study.0, 0)..=(study.0, u64::MAX))? {
            let (k, v) = row?;
            out.push((TrialId(k.value().1), decode("returns", v.value())?));
        }
        Ok(out)
    }

    /// One study's row.
    pub fn study(&self, study: StudyId) -> Result<Option<StudyRow>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, STUDIES)? else {
            return Ok(None);
        };
        let v = table.get(study.0)?;
        v.map(|v| decode("studies", v.value())).transpose()
    }

    /// The model a trial left, if any.
    pub fn artifact(
        &self,
        study: StudyId,
        trial: TrialId,
    ) -> Result<Option<ModelArtifact>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, ARTIFACTS)? else {
            return Ok(None);
        };
        let v = table.get((study.0, trial.0))?;
        v.map(|v| decode("artifacts", v.value())).transpose()
    }

    /// A complete dataset's description.
    pub fn dataset(&self, sha256: &str) -> Result<Option<DatasetInfo>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, DATASETS)? else {
            return Ok(None);
        };
        let v = table.get(sha256)?;
        v.map(|v| decode("datasets", v.value())).transpose()
    }

    /// Chunk `index` of a dataset (complete or being uploaded).
    pub fn dataset_chunk(&self, sha256: &str, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, CHUNKS)? else {
            return Ok(None);
        };
        let v = table.get((sha256, index))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// Stores chunk `index` of an upload in progress, under its staging key (never under the
    /// dataset's hash: a complete dataset is only ever written by [`Store::finish_upload`]).
    pub fn put_chunk(&self, staging: &str, index: u64, bytes: &[u8]) -> Result<(), StoreError> {
        debug_assert!(staging.contains('@'), "chunks are staged");
        let mut txn = self.rw()?.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Redb(e.to_string()))?;
        txn.open_table(CHUNKS)?.insert((staging, index), bytes)?;
        txn.commit()?;
        Ok(())
    }

    /// Ends an upload staged under `staging`: with `Some(info)` (its contents verified) its
    /// chunks move under the dataset's hash, a few at a time, and the dataset is recorded
    /// (durably) once they all have; with `None` (a failed or abandoned upload) they are
    /// dropped. A dataset already complete is never written again.
    pub fn finish_upload(
        &self,
        staging: &str,
        info: Option<&DatasetInfo>,
    ) -> Result<(), StoreError> {
        if let Some(i) = info {
            if self.dataset(&i.sha256)?.is_none() {
                let mut next = 0u64;
                loop {
                    let txn = self.rw()?.begin_write()?;
                    let mut moved = 0;
                    {
                        let mut chunks = txn.open_table(CHUNKS)?;
                        let mut batch = Vec::new();
                        for row in chunks
                            .range((staging, next)..=(staging, u64::MAX))?
                            .take(64)
                        {
                            let (k, v) = row?;
                            batch.push((k.value().1, v.value().to_vec()));
                        }
                        for (index, bytes) in &batch {
                            chunks.insert((i.sha256.as_str(), *index), bytes.as_slice())?;
                            next = index + 1;
                            moved += 1;
                        }
                    }
                    txn.commit()?;
                    if moved == 0 {
                        break;
                    }
                }
                let txn = self.rw()?.begin_write()?;
                txn.open_table(DATASETS)?
                    .insert(i.sha256.as_str(), encode(i).as_slice())?;
                txn.commit()?;
            }
        }
        self.drop_chunks(staging)
    }

    /// Removes every chunk under `key`.
    fn drop_chunks(&self, key: &str) -> Result<(), StoreError> {
        let txn = self.rw()?.begin_write()?;
        {
            let mut chunks = txn.open_table(CHUNKS)?;
            let mut doomed = Vec::new();
            for row in chunks.range((key, 0)..=(key, u64::MAX))? {
                doomed.push(row?.0.value().1);
            }
            for i in doomed {
                chunks.remove((key, i))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes what uploads left behind: staged chunks (an upload that never finished, or a
    /// scheduler that stopped during one) and chunks of a dataset that was never recorded
    /// complete. Returns how many chunks went. Run at start, before any upload.
    pub fn clean_uploads(&self) -> Result<u64, StoreError> {
        let keys: std::collections::BTreeSet<String> = {
            let txn = self.db.begin_read()?;
            let Some(chunks) = table(&txn, CHUNKS)? else {
                return Ok(0);
            };
            let mut keys = std::collections::BTreeSet::new();
            for row in chunks.iter()? {
                keys.insert(row?.0.value().0.to_string());
            }
            keys
        };
        let mut dropped = 0;
        for k in keys {
            if k.contains('@') || self.dataset(&k)?.is_none() {
                let txn = self.db.begin_read()?;
                if let Some(chunks) = table(&txn, CHUNKS)? {
                    dropped += chunks
                        .range((k.as_str(), 0)..=(k.as_str(), u64::MAX))?
                        .count() as u64;
                }
                drop(txn);
                self.drop_chunks(&k)?;
            }
        }
        Ok(dropped)
    }

    /// Reads everything.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let txn = self.db.begin_read()?;
        let mut out = Loaded {
            next_study: 1,
            ..Default::default()
        };
        if let Some(meta) = table(&txn, META)? {
            if let Some(v) = meta.get("next_study")? {
                out.next_study = decode("meta", v.value())?;
            }
        }
        if let Some(t) = table(&txn, STUDIES)? {
            for row in t.iter()? {
                let (_, v) = row?;
                let s: StudyRow = decode("studies", v.value())?;
                out.next_study = out.next_study.max(s.id.0 + 1);
                out.studies.insert(s.id, s);
            }
        }
        if let Some(t) = table(&txn, TRIALS)? {
            for row in t.iter()? {
                let (_, v) = row?;
                let t: TrialRecord = decode("trials", v.value())?;
                out.trials.entry(t.study).or_default().push(t);
            }
        }
        for trials in out.trials.values_mut() {
            trials.sort_by_key(|t| t.number);
        }
        if let Some(t) = table(&txn, INTERMEDIATE)? {
            for row in t.iter()? {
                let (k, v) = row?;
                let (study, trial, step) = k.value();
                let values: Vec<f64> = decode("intermediate", v.value())?;
                if let Some(t) = out
                    .trials
                    .get_mut(&StudyId(study))
                    .and_then(|ts| ts.get_mut(trial as usize))
                {
                    if t.number == TrialId(trial) {
                        t.intermediate.insert(step, values);
                    }
                }
            }
        }
        if let Some(t) = table(&txn, NOTES)? {
            for row in t.iter()? {
                let (k, v) = row?;
                out.notes
                    .insert(StudyId(k.value()), decode("notes", v.value())?);
            }
        }
        if let Some(t) = table(&txn, TAGS)? {
            for row in t.iter()? {
                let (_, v) = row?;
                let tag: mlt_protocol::catalog::TagRecord = decode("tags", v.value())?;
                out.annotations.entry(tag.study).or_default().tags.push(tag);
            }
        }
        if let Some(t) = table(&txn, USER_NOTES)? {
            for row in t.iter()? {
                let (_, v) = row?;
                let note: mlt_protocol::catalog::NoteRecord = decode("user_notes", v.value())?;
                out.annotations
                    .entry(note.study)
                    .or_default()
                    .notes
                    .push(note);
            }
        }
        if let Some(t) = table(&txn, MODELS)? {
            for row in t.iter()? {
                let (_, v) = row?;
                out.models.push(decode("models", v.value())?);
            }
        }
        if let Some(t) = table(&txn, MODEL_AUDIT)? {
            for row in t.iter()? {
                let (_, v) = row?;
                out.audit.push(decode("model_audit", v.value())?);
            }
        }
        if let Some(t) = table(&txn, ROLLOUTS)? {
            for row in t.iter()? {
                let (_, v) = row?;
                out.rollouts.push(decode("rollouts", v.value())?);
            }
        }
        if let Some(t) = table(&txn, ALERTS)? {
            for row in t.iter()? {
                let (_, v) = row?;
                out.alerts.push(decode("alerts", v.value())?);
            }
        }
        if let Some(t) = table(&txn, PREDICTIONS)? {
            // The last record of each name: jump from name to name rather than read the log.
            let mut from = String::new();
            loop {
                let Some(row) = t.range((from.as_str(), 0)..)?.next() else {
                    break;
                };
                let (k, _) = row?;
                let name = k.value().0.to_string();
                let last = t
                    .range((name.as_str(), 0)..=(name.as_str(), u64::MAX))?
                    .next_back()
                    .transpose()?
                    .map_or(0, |(k, _)| k.value().1 + 1);
                out.next_prediction.insert(name.clone(), last);
                from = name + "\0";
            }
        }
        if let Some(t) = table(&txn, EVENTS)? {
            for row in t.iter()? {
                let (k, _) = row?;
                let (study, seq) = k.value();
                let next = out.next_event.entry(StudyId(study)).or_default();
                *next = (*next).max(seq + 1);
            }
        }
        Ok(out)
    }

    /// The event log of one study, in order.
    pub fn events(&self, study: StudyId) -> Result<Vec<Event>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(table) = table(&txn, EVENTS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.range((study.0, 0)..=(study.0, u64::MAX))? {
            let (_, v) = row?;
            out.push(decode("events", v.value())?);
        }
        Ok(out)
    }

    /// Applies `ops` in one transaction; `seq` numbers event-log entries per study.
    pub fn apply(
        &self,
        ops: &[StoreOp],
        seq: &mut HashMap<StudyId, u64>,
        durable: bool,
    ) -> Result<(), StoreError> {
        let mut txn = self.rw()?.begin_write()?;
        if !durable {
            txn.set_durability(Durability::None)
                .map_err(|e| StoreError::Redb(e.to_string()))?;
        }
        {
            let mut studies = txn.open_table(STUDIES)?;
            let mut trials = txn.open_table(TRIALS)?;
            let mut inter = txn.open_table(INTERMEDIATE)?;
            let mut events = txn.open_table(EVENTS)?;
            let mut meta = txn.open_table(META)?;
            let mut returns = txn.open_table(RETURNS)?;
            let mut artifacts = txn.open_table(ARTIFACTS)?;
            let mut daily = txn.open_table(DAILY)?;
            let mut ledger = txn.open_table(LEDGER)?;
            let mut notes = txn.open_table(NOTES)?;
            let mut tags = txn.open_table(TAGS)?;
            let mut user_notes = txn.open_table(USER_NOTES)?;
            let mut runs = txn.open_table(RUNS)?;
            let mut models = txn.open_table(MODELS)?;
            let mut versions = txn.open_table(MODEL_VERSIONS)?;
            let mut audit = txn.open_table(MODEL_AUDIT)?;
            let mut rollouts = txn.open_table(ROLLOUTS)?;
            let mut predictions = txn.open_table(PREDICTIONS)?;
            let mut alerts = txn.open_table(ALERTS)?;
            for op in ops {
                match op {
                    StoreOp::Study(s) => {
                        studies.insert(s.id.0, encode(s).as_slice())?;
                    }
                    StoreOp::Trial(t) => {
                        let mut row = t.clone();
                        row.intermediate.clear();
                        trials.insert((t.study.0, t.number.0), encode(&row).as_slice())?;
                    }
                    StoreOp::Intermediate {
                        study,
                        trial,
                        step,
                        values,
                    } => {
                        inter.insert((study.0, trial.0, *step), encode(values).as_slice())?;
                    }
                    StoreOp::Event(study, e) => {
                        let n = seq.entry(*study).or_default();
                        events.insert((study.0, *n), encode(e).as_slice())?;
                        *n += 1;
                    }
                    StoreOp::NextStudy(n) => {
                        meta.insert("next_study", encode(n).as_slice())?;
                    }
                    StoreOp::Tag(t) => {
                        let trial = t.trial.map_or(STUDY_LEVEL, |n| n.0);
                        tags.insert((t.study.0, trial, t.key.as_str()), encode(t).as_slice())?;
                    }
                    StoreOp::Untag { study, trial, key } => {
                        let trial = trial.map_or(STUDY_LEVEL, |n| n.0);
                        tags.remove((study.0, trial, key.as_str()))?;
                    }
                    StoreOp::UserNote(n) => {
                        user_notes.insert((n.study.0, n.seq), encode(n).as_slice())?;
                    }
                    StoreOp::Run(study, trial, r) => {
                        runs.insert((study.0, trial.0), encode(r).as_slice())?;
                    }
                    StoreOp::ModelEntry(e) => {
                        models.insert(e.name.as_str(), encode(e).as_slice())?;
                    }
                    StoreOp::ModelVersion(v) => {
                        let key = (v.name.as_str(), v.version);
                        if versions.get(key)?.is_some() {
                            return Err(StoreError::Redb(format!(
                                "version {} of model `{}` exists and is never rewritten",
                                v.version, v.name
                            )));
                        }
                        versions.insert(key, encode(v).as_slice())?;
                    }
                    StoreOp::Audit(a) => {
                        audit.insert((a.name.as_str(), a.seq), encode(a).as_slice())?;
                    }
                    StoreOp::Rollout(r) => {
                        rollouts.insert(r.plan.name.as_str(), encode(r).as_slice())?;
                    }
                    StoreOp::Prediction(p) => {
                        predictions.insert((p.name.as_str(), p.seq), encode(p).as_slice())?;
                    }
                    StoreOp::Alert(a) => {
                        alerts.insert((a.name.as_str(), a.seq), encode(a).as_slice())?;
                    }
                    StoreOp::Returns(study, trial, r) => {
                        returns.insert((study.0, trial.0), encode(r).as_slice())?;
                    }
                    StoreOp::Artifact(study, trial, a) => {
                        artifacts.insert((study.0, trial.0), encode(a).as_slice())?;
                    }
                    StoreOp::Notes(study, n) => {
                        notes.insert(study.0, encode(n).as_slice())?;
                    }
                    StoreOp::Daily(study, trial, d) => {
                        daily.insert((study.0, trial.0), encode(d).as_slice())?;
                    }
                    StoreOp::Ledger {
                        window,
                        study,
                        trial,
                        sharpe,
                    } => {
                        ledger.insert(
                            (window.as_str(), study.0, trial.0),
                            encode(sharpe).as_slice(),
                        )?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::records::{ParamValue, StudyState, TrialState};

    fn trial(study: u64, n: u64) -> TrialRecord {
        TrialRecord {
            study: StudyId(study),
            number: TrialId(n),
            state: TrialState::Complete,
            attempt: 1,
            values: Some(vec![n as f64]),
            params: [("x".to_string(), ParamValue::Float(0.5))].into(),
            intermediate: BTreeMap::new(),
            node: None,
            slot: None,
            message: None,
            created_ms: 1,
            started_ms: None,
            finished_ms: None,
            origin: Default::default(),
            generation: None,
            constraints: None,
            metrics: Default::default(),
        }
    }

    #[test]
    fn a_backup_copies_every_table_the_store_has() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let out = dir.path().join("copy.redb");
        store.backup_to(&out).unwrap();
        let names = |db: &Database| -> Vec<String> {
            let mut n: Vec<String> = db
                .begin_read()
                .unwrap()
                .list_tables()
                .unwrap()
                .map(|t| redb::TableHandle::name(&t).to_string())
                .collect();
            n.sort();
            n
        };
        let Db::Rw(src) = store.db.as_ref() else {
            panic!("opened for writing")
        };
        let copy = Database::open(&out).unwrap();
        assert_eq!(names(&copy), names(src));
        assert!(names(src).contains(&"tags".to_string()));
    }

    #[test]
    fn batches_survive_reopen_and_schema_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(matches!(
                Store::open(dir.path()),
                Err(StoreError::Locked(_))
            ));
            let row = StudyRow {
                id: StudyId(1),
                name: "s".into(),
                spec_toml: "".into(),
                source: "s.toml".into(),
                workdir: None,
                state: StudyState::Running,
                created_ms: 1,
            };
            let ops = vec![
                StoreOp::Study(row),
                StoreOp::NextStudy(2),
                StoreOp::Trial(trial(1, 0)),
                StoreOp::Trial(trial(1, 1)),
                StoreOp::Intermediate {
                    study: StudyId(1),
                    trial: TrialId(1),
                    step: 3,
                    values: vec![0.25],
                },
                StoreOp::Event(
                    StudyId(1),
                    Event::Told {
                        trial: TrialId(0),
                        state: TrialState::Complete,
                        values: None,
                    },
                ),
            ];
            let mut seq = HashMap::new();
            store.apply(&ops, &mut seq, true).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "the store is private");
        let l = store.load().unwrap();
        assert_eq!(l.next_study, 2);
        assert_eq!(l.studies[&StudyId(1)].name, "s");
        let ts = &l.trials[&StudyId(1)];
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[1].intermediate[&3], vec![0.25]);
        assert_eq!(l.next_event[&StudyId(1)], 1);
        assert_eq!(store.events(StudyId(1)).unwrap().len(), 1);
        drop(store);
        // A store from another major version is refused.
        {
            let db = Database::create(dir.path().join("store.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema", b"MLTS\x09\x00\x00\x00".as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let err = Store::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("schema 9.0"), "{err}");
    }

    #[test]
    fn uploads_are_staged_a_complete_dataset_is_never_rewritten_and_leftovers_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let sha = "ab".repeat(32);
        let info = DatasetInfo {
            sha256: sha.clone(),
            name: "x.csv".into(),
            bytes: 6,
        };
        let staged = format!("{sha}@7-1");
        store.put_chunk(&staged, 0, b"abc").unwrap();
        store.put_chunk(&staged, 1, b"def").unwrap();
        // Staged chunks are not the dataset's.
        assert_eq!(store.dataset_chunk(&sha, 0).unwrap(), None);
        store.finish_upload(&staged, Some(&info)).unwrap();
        assert_eq!(store.dataset(&sha).unwrap(), Some(info.clone()));
        assert_eq!(store.dataset_chunk(&sha, 1).unwrap(), Some(b"def".to_vec()));
        assert_eq!(store.dataset_chunk(&staged, 0).unwrap(), None);
        // Another upload of the same hash (say, with other bytes) changes nothing, whether it
        // fails or claims success.
        let again = format!("{sha}@8-1");
        store.put_chunk(&again, 0, b"XYZ").unwrap();
        store.finish_upload(&again, None).unwrap();
        store.put_chunk(&again, 0, b"XYZ").unwrap();
        store.finish_upload(&again, Some(&info)).unwrap();
        assert_eq!(store.dataset_chunk(&sha, 0).unwrap(), Some(b"abc".to_vec()));
        // Leftovers: an abandoned staged upload and chunks of a dataset never recorded.
        store.put_chunk(&format!("{sha}@9-1"), 0, b"zzz").unwrap();
        let other = "cd".repeat(32);
        store.put_chunk(&format!("{other}@9-2"), 0, b"q").unwrap();
        let txn = store.rw().unwrap().begin_write().unwrap();
        txn.open_table(CHUNKS)
            .unwrap()
            .insert((other.as_str(), 0), b"orphan".as_slice())
            .unwrap();
        txn.commit().unwrap();
        assert_eq!(store.clean_uploads().unwrap(), 3);
        assert_eq!(store.dataset_chunk(&other, 0).unwrap(), None);
        assert_eq!(store.dataset_chunk(&sha, 0).unwrap(), Some(b"abc".to_vec()));
        assert_eq!(store.clean_uploads().unwrap(), 0);
    }

    #[test]
    fn the_holdout_ledger_counts_across_studies_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |w: &str, study: u64, trial: u64, sharpe: f64| StoreOp::Ledger {
            window: w.to_string(),
            study: StudyId(study),
            trial: TrialId(trial),
            sharpe,
        };
        let (a, b) = ("aa:100:349", "bb:100:349");
        {
            let store = Store::open(dir.path()).unwrap();
            let ops = vec![
                entry(a, 1, 6, 0.10),
                entry(a, 1, 7, 0.20),
                entry(b, 1, 8, 0.50),
                entry(a, 2, 3, 0.30),
            ];
            store.apply(&ops, &mut HashMap::new(), true).unwrap();
        }
        // Reopened (a restart), a third study looks at the same window once more.
        let store = Store::open(dir.path()).unwrap();
        store
            .apply(&[entry(a, 3, 0, f64::NAN)], &mut HashMap::new(), true)
            .unwrap();
        let l = store.ledger(StudyId(2)).unwrap();
        assert_eq!(l.len(), 1);
        let w = &l[0];
        assert_eq!(
            (w.window.data.as_str(), w.window.first, w.window.last),
            ("aa", 100, 349)
        );
        assert_eq!((w.evaluations, w.studies, w.this_study), (4, 3, 1));
        assert_eq!(w.trials, vec![3]);
        // The variance of the finite Sharpe ratios 0.1, 0.2, 0.3 (ddof 1).
        assert!((w.sharpe_variance - 0.01).abs() < 1e-12, "{w:?}");
        // Study 1 used two windows.
        let l = store.ledger(StudyId(1)).unwrap();
        let counts: Vec<(u64, u64, u64)> = l
            .iter()
            .map(|w| (w.evaluations, w.studies, w.this_study))
            .collect();
        assert_eq!(counts, vec![(4, 3, 2), (1, 1, 1)]);
        assert!(store.ledger(StudyId(9)).unwrap().is_empty());
    }
}
