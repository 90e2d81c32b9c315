//! All tables of the store, in one place. Values are postcard-encoded rows; keys are tuples of
//! integers so that a study's trials and a trial's steps are contiguous ranges.
//!
//! ```text
//! meta          &str                  → bytes     "schema" = (magic, major, minor), "next_study"
//! studies       study                 → StudyRow
//! trials        (study, trial)        → TrialRecord (intermediate values kept apart)
//! intermediate  (study, trial, step)  → Vec<f64>
//! events        (study, seq)          → Event      append-only log of asks and tells
//! returns       (study, trial)        → ReturnSeries   out-of-sample returns (walk-forward)
//! datasets      sha256 hex            → DatasetInfo    uploaded files, complete and verified
//! chunks        (sha256 hex, index)   → bytes          their contents, DATASET_CHUNK each
//! artifacts     (study, trial)        → ModelArtifact  the model a trial fitted on its last fold
//! daily         (study, trial)        → DailySeries    positions, returns, benchmark by day
//! ledger        (window, study, trial) → f64           hold-out evaluations: Sharpe per period
//! notes         study                 → Vec<String>    problems found in its data at submit
//! tags          (study, trial, key)   → TagRecord      `tag`: trial u64::MAX is the study's own
//! user_notes    (study, seq)          → NoteRecord     `note`, on the study or a trial
//! runs          (study, trial)        → RunRecord      lineage: where and how it last ran
//! models        name                  → ModelEntry     a registered name: gates, stages
//! model_versions (name, version)      → ModelVersion   immutable once written
//! model_audit   (name, seq)           → AuditEntry     append-only
//! ```
use mlt_protocol::ids::{StudyId, TrialId};
use mlt_protocol::records::{Params, StudyState, TrialRecord, TrialState};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

/// Magic number at the head of the schema record.
pub const MAGIC: [u8; 4] = *b"MLTS";
/// Major version: a store with another major is refused.
pub const SCHEMA_MAJOR: u16 = 2;
/// Minor version: additions readable by older minors.
pub const SCHEMA_MINOR: u16 = 4;

/// `meta`.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `studies`.
pub const STUDIES: TableDefinition<u64, &[u8]> = TableDefinition::new("studies");
/// `trials`.
pub const TRIALS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("trials");
/// `intermediate`.
pub const INTERMEDIATE: TableDefinition<(u64, u64, u64), &[u8]> =
    TableDefinition::new("intermediate");
/// `events`.
pub const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");

/// `returns` (minor 1).
pub const RETURNS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("returns");
/// `datasets` (minor 1).
pub const DATASETS: TableDefinition<&str, &[u8]> = TableDefinition::new("datasets");
/// `chunks` (minor 1).
pub const CHUNKS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("chunks");

/// `artifacts` (minor 1).
pub const ARTIFACTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("artifacts");

/// `daily` (minor 2): every complete walk-forward evaluation's trading day by day, hold-out
/// evaluations included (the `returns` table keeps the search trials' alone, for PBO).
pub const DAILY: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("daily");

/// `notes` (minor 2): the problems found in a study's data when it was submitted (postcard
/// `Vec<String>`).
pub const NOTES: TableDefinition<u64, &[u8]> = TableDefinition::new("notes");

/// `ledger` (minor 2): every hold-out evaluation of every study, keyed by the hold-out's data
/// and window ([`mlt_protocol::records::HoldoutWindow::key`]); the value is its Sharpe ratio
/// per period (postcard f64).
pub const LEDGER: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("ledger");

/// `tags` (minor 3): tags on studies and trials; the trial part of the key is the trial's
/// number, or [`STUDY_LEVEL`] for a tag on the study.
pub const TAGS: TableDefinition<(u64, u64, &str), &[u8]> = TableDefinition::new("tags");

/// `user_notes` (minor 3): notes on studies and trials, in the order they were written.
pub const USER_NOTES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("user_notes");

/// `runs` (minor 3): each finished trial's lineage (its node's account of its last attempt).
pub const RUNS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("runs");

/// `models` (minor 3): registered model names, their gates and each version's stage.
pub const MODELS: TableDefinition<&str, &[u8]> = TableDefinition::new("models");
/// `model_versions` (minor 3): every version, never rewritten.
pub const MODEL_VERSIONS: TableDefinition<(&str, u32), &[u8]> =
    TableDefinition::new("model_versions");
/// `model_audit` (minor 3): every registry change, in order.
pub const MODEL_AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("model_audit");
/// Rollouts by model name (minor 4): the latest of each name.
pub const ROLLOUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("rollouts");
/// The prediction log by (model name, seq) (minor 4): append-only.
pub const PREDICTIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("predictions");
/// Alerts by (model name, seq) (minor 4): append-only.
pub const ALERTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("alerts");

/// The trial part of a key that is about the study itself.
pub const STUDY_LEVEL: u64 = u64::MAX;

/// A study as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyRow {
    /// Id.
    pub id: StudyId,
    /// Unique name.
    pub name: String,
    /// The spec text as submitted (re-validated on load).
    pub spec_toml: String,
    /// The spec's file name.
    pub source: String,
    /// Folder it was submitted from.
    pub workdir: Option<String>,
    /// State.
    pub state: StudyState,
    /// Creation time.
    pub created_ms: u64,
}

/// One entry of the event log: the order in which the study saw asks and tells, which is what
/// a replay needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A new trial was sampled.
    Asked {
        /// Trial.
        trial: TrialId,
        /// Its parameters.
        params: Params,
    },
    /// A trial ended.
    Told {
        /// Trial.
        trial: TrialId,
        /// Final state.
        state: TrialState,
        /// Values.
        values: Option<Vec<f64>>,
    },
}

/// One change, applied inside a group-commit transaction.
#[derive(Clone, Debug)]
pub enum StoreOp {
    /// Insert or replace a study.
    Study(StudyRow),
    /// Insert or replace a trial (its `intermediate` field is not stored here).
    Trial(TrialRecord),
    /// One intermediate value.
    Intermediate {
        /// Study.
        study: StudyId,
        /// Trial.
        trial: TrialId,
        /// Step.
        step: u64,
        /// Values.
        values: Vec<f64>,
    },
    /// Append to the study's event log.
    Event(StudyId, Event),
    /// Set the next study id.
    NextStudy(u64),
    /// A finished trial's out-of-sample returns.
    Returns(StudyId, TrialId, mlt_protocol::records::ReturnSeries),
    /// A finished trial's model.
    Artifact(StudyId, TrialId, Box<mlt_protocol::records::ModelArtifact>),
    /// A finished evaluation's trading, day by day.
    Daily(StudyId, TrialId, Box<mlt_protocol::records::DailySeries>),
    /// The problems found in a study's data at submit.
    Notes(StudyId, Vec<String>),
    /// Set a tag (replacing the key's value).
    Tag(mlt_protocol::catalog::TagRecord),
    /// Remove a tag.
    Untag {
        /// Study.
        study: StudyId,
        /// Trial, or None for the study's own.
        trial: Option<TrialId>,
        /// Key.
        key: String,
    },
    /// Add a note.
    UserNote(mlt_protocol::catalog::NoteRecord),
    /// A finished trial's lineage.
    Run(StudyId, TrialId, Box<mlt_protocol::lineage::RunRecord>),
    /// A registered name (insert or replace).
    ModelEntry(mlt_protocol::models::ModelEntry),
    /// A new version (refused if the name already has it: versions are immutable).
    ModelVersion(Box<mlt_protocol::models::ModelVersion>),
    /// A registry change.
    Audit(mlt_protocol::models::AuditEntry),
    /// A name's rollout (insert or replace).
    Rollout(Box<mlt_protocol::serving::Rollout>),
    /// A served prediction (its seq given by the registry).
    Prediction(mlt_protocol::serving::PredictionRecord),
    /// An alert (its seq given by the registry).
    Alert(mlt_protocol::serving::Alert),
    /// A hold-out evaluation entered in the ledger: its window key and Sharpe per period.
    Ledger {
        /// [`mlt_protocol::records::HoldoutWindow::key`].
        window: String,
        /// Study.
        study: StudyId,
        /// The hold-out evaluation (its own trial).
        trial: TrialId,
        /// Its Sharpe ratio per period.
        sharpe: f64,
    },
}
