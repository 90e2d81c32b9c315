//! Messages, one enum per direction. Variants are append-only: a new message is a new variant
//! at the end, never a change to an existing one (postcard encodes the variant index).
use crate::ids::{NodeId, SlotId, StudyId, TrialKey};
use crate::records::{
    DatasetInfo, ModelArtifact, OverfitReport, Params, StatusReport, StudySummary, TrialRecord,
};
use crate::spec::ObjectiveSpec;
use serde::{Deserialize, Serialize};

/// Scheduler → node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToNode {
    /// Run this trial on this slot.
    Assign(AssignMsg),
    /// The pruner's verdict on a report.
    Verdict(VerdictMsg),
    /// Stop a running trial (cancelled, pruned elsewhere, or stale).
    Stop(StopMsg),
    /// A finish or release was durably recorded; the node may forget it.
    Ack(AckMsg),
    /// A chunk of a dataset (an answer to `FetchDataset`); empty `bytes` with `total` 0 when
    /// the scheduler does not hold it.
    DatasetChunk(DatasetChunkMsg),
}

/// Node → scheduler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromNode {
    /// Sent once after the handshake (and after every reconnect).
    Register(RegisterMsg),
    /// A slot is free and asks for a trial.
    RequestWork(RequestWorkMsg),
    /// An intermediate value.
    Report(ReportMsg),
    /// A trial ended on the node.
    Finish(FinishMsg),
    /// Renews the node's lease.
    Heartbeat(HeartbeatMsg),
    /// A trial is handed back unfinished (the node is draining).
    Release(ReleaseMsg),
    /// The node takes no more work.
    Draining,
    /// Asks for a chunk of a dataset the node does not have yet.
    FetchDataset(FetchDatasetMsg),
}

/// Client → scheduler. Each is answered by one `ToClient`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromClient {
    /// Create a study from a spec.
    Submit(SubmitMsg),
    /// Studies, nodes and counters.
    Status,
    /// A page of a study's trials: those numbered `from` on, at most `limit` (and as many as
    /// fit in about half a frame). A study of any size is read page by page.
    Trials(TrialPageMsg),
    /// The best trial (or the Pareto front) of a study.
    Best(StudyRefMsg),
    /// Cancel a study: no new trials; running ones are stopped.
    Cancel(StudyRefMsg),
    /// One study's summary (cheap; for progress bars).
    Study(StudyRefMsg),
    /// The Probability of Backtest Overfitting over a study's trials' out-of-sample returns.
    Overfitting(StudyRefMsg),
    /// Whether the scheduler holds a dataset (by SHA-256, lower-case hex).
    HasDataset(String),
    /// One chunk of a dataset upload (chunks in order, from offset 0).
    PutDataset(PutDatasetMsg),
    /// The model a trial left.
    Artifact(TrialRefMsg),
    /// A study's spec as it was submitted.
    StudySpec(StudyRefMsg),
    /// A trial's trading day by day.
    Daily(TrialRefMsg),
    /// The hold-out ledger of the windows a study's hold-out evaluations were tested on.
    Ledger(StudyRefMsg),
    /// Write a consistent copy of the store to this new file on the scheduler's machine.
    Backup(String),
    /// Set or remove tags, or add a note, on a study or a trial.
    Annotate(crate::catalog::AnnotateMsg),
    /// A study's tags and notes.
    Annotations(StudyRefMsg),
    /// A trial's lineage.
    Lineage(TrialRefMsg),
    /// The model registry.
    Registry(crate::models::RegistryRequest),
    /// Serving: the prediction log, alerts, rollouts.
    Serving(crate::serving::ServingRequest),
}

/// Scheduler → client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToClient {
    /// The study was created.
    Submitted(SubmittedMsg),
    /// Status.
    Status(StatusReport),
    /// A page of trials, in number order (shorter than asked, or empty: the last page).
    Trials(Vec<TrialRecord>),
    /// Best trials (one for a single objective; the Pareto front for several).
    Best(Vec<TrialRecord>),
    /// The study was cancelled.
    Cancelled(StudySummary),
    /// A study's summary.
    Study(StudySummary),
    /// The request failed.
    Error(ErrorMsg),
    /// PBO of a study (None: fewer than two trials with returns, or too few days).
    Overfitting(Option<OverfitReport>),
    /// Answer to `HasDataset` (None: not held) and to the last chunk of an upload.
    Dataset(Option<DatasetInfo>),
    /// A chunk was received; this many bytes are held so far.
    DatasetProgress(u64),
    /// A trial's model (None: the trial left none).
    Artifact(Option<Box<ModelArtifact>>),
    /// A study's spec text, its file name and the folder it was submitted from.
    StudySpec(SubmitMsg),
    /// A trial's trading day by day (None: it has none: not complete, or not walk-forward).
    Daily(Option<Box<crate::records::DailySeries>>),
    /// The hold-out ledger of a study's windows.
    Ledger(Vec<crate::records::LedgerCount>),
    /// The store was copied.
    Backup(crate::records::BackupReport),
    /// A study's tags and notes (after the change, for `Annotate`).
    Annotations(crate::catalog::Annotations),
    /// A trial's lineage (None: its node sent none, or it has not finished).
    Lineage(Option<Box<crate::lineage::RunRecord>>),
    /// The model registry's answer.
    Registry(crate::models::RegistryReply),
    /// A serving answer.
    Serving(crate::serving::ServingReply),
}

/// Payload of [`ToNode::Assign`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssignMsg {
    /// Which trial and attempt.
    pub key: TrialKey,
    /// The slot that asked.
    pub slot: SlotId,
    /// The study's name (for logs and environment variables).
    pub study_name: String,
    /// The trial's parameters.
    pub params: Params,
    /// What to run.
    pub objective: ObjectiveSpec,
    /// Folder the spec was submitted from (the `command` objective runs there when it exists).
    pub workdir: Option<String>,
    /// A trial of the search, or the hold-out evaluation of an earlier trial.
    pub run: RunKind,
}

/// What an assignment runs. Set by the scheduler, never by the researcher's spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunKind {
    /// A trial of the search: its model's seed is its trial number; the hold-out is unseen.
    #[default]
    Search,
    /// The hold-out evaluation of trial `source` (a walk-forward study): trained on the window
    /// before the hold-out with that trial's model seed, tested on the hold-out.
    Holdout {
        /// The trial evaluated (its number, which seeds its model).
        source: u64,
    },
}

/// The pruner's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Go on.
    Continue,
    /// Stop this trial now; it is recorded as pruned.
    Prune,
    /// The attempt is no longer current; stop and forget it.
    Stale,
}

/// Payload of [`ToNode::Verdict`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictMsg {
    /// The trial.
    pub key: TrialKey,
    /// The step the verdict is about.
    pub step: u64,
    /// The decision.
    pub verdict: Verdict,
}

/// Why a trial is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The study was cancelled.
    Cancelled,
    /// The attempt is stale (its lease expired and it was re-queued).
    Stale,
}

/// Payload of [`ToNode::Stop`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopMsg {
    /// The trial.
    pub key: TrialKey,
    /// Why.
    pub reason: StopReason,
}

/// Payload of [`ToNode::Ack`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckMsg {
    /// The trial.
    pub key: TrialKey,
}

/// A worker slot as a node advertises it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    /// Slot number.
    pub slot: SlotId,
    /// CPU cores the slot may use.
    pub cpus: u32,
    /// GPU indices given to the slot.
    pub gpus: Vec<u32>,
}

/// Payload of [`FromNode::Register`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterMsg {
    /// The node's id.
    pub node: NodeId,
    /// The slots.
    pub slots: Vec<SlotInfo>,
    /// Trials still running on the node (after a reconnect).
    pub running: Vec<(TrialKey, SlotId)>,
}

/// Payload of [`FromNode::RequestWork`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestWorkMsg {
    /// The free slot.
    pub slot: SlotId,
}

/// Payload of [`FromNode::Report`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportMsg {
    /// The trial.
    pub key: TrialKey,
    /// Step (fold, epoch, round …), increasing.
    pub step: u64,
    /// One value per objective.
    pub values: Vec<f64>,
}

/// How a trial ended on the node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Finished with one value per objective, and any named metrics the objective reported
    /// (constraints are judged on them).
    Complete(Vec<f64>, crate::records::Metrics),
    /// The objective failed; the message says why.
    Failed(String),
    /// Stopped after a prune verdict.
    Pruned,
    /// As `Complete`, with what a walk-forward evaluation leaves: its out-of-sample returns
    /// (for the study's overfitting statistics) and the model fitted on the last fold.
    Evaluated(Box<Evaluation>),
}

/// The result of a walk-forward trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// One value per objective.
    pub values: Vec<f64>,
    /// Named metrics.
    pub metrics: crate::records::Metrics,
    /// Out-of-sample trading, day by day.
    pub daily: crate::records::DailySeries,
    /// The model fitted on the last fold (None when it could not be saved).
    pub model: Option<crate::records::ModelArtifact>,
    /// A hold-out evaluation's data and window (None for a search trial).
    pub holdout: Option<crate::records::HoldoutWindow>,
}

/// Payload of [`FromNode::Finish`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinishMsg {
    /// The trial.
    pub key: TrialKey,
    /// The outcome.
    pub outcome: Outcome,
    /// Where and how it ran (None from a node that could not tell).
    pub run: Option<Box<crate::lineage::RunRecord>>,
}

/// Payload of [`FromNode::Heartbeat`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatMsg {
    /// Trials the node holds now: running, or finished and not yet acknowledged. The
    /// scheduler re-queues a trial it assigned to the node that is missing here for longer
    /// than its grace, and stops one listed here that it does not hold there.
    pub running: Vec<TrialKey>,
}

/// Payload of [`FromNode::Release`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseMsg {
    /// The trial handed back.
    pub key: TrialKey,
}

/// Payload of [`FromClient::Submit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubmitMsg {
    /// The spec's TOML text.
    pub spec_toml: String,
    /// The spec's file name, for error messages.
    pub source: String,
    /// The folder the spec was submitted from.
    pub workdir: Option<String>,
    /// Problems the submitter found in the study's data (unsorted or repeated dates, missing
    /// cells, …), one line each: kept with the study and shown by `status`.
    pub notes: Vec<String>,
}

/// Payload of [`FromClient::Trials`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialPageMsg {
    /// Study name or id.
    pub study: String,
    /// The first trial number wanted.
    pub from: u64,
    /// The most trials wanted.
    pub limit: u32,
}

/// A trial of a study.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialRefMsg {
    /// Study name or id.
    pub study: String,
    /// Trial number.
    pub trial: u64,
}

/// A study named by its name (or its id, as digits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyRefMsg {
    /// Name or id.
    pub study: String,
}

/// Payload of [`ToClient::Submitted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedMsg {
    /// The new study's id.
    pub id: StudyId,
    /// Its name (the spec's name, made unique).
    pub name: String,
}

/// What kind of request error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The spec is invalid.
    InvalidSpec,
    /// No such study.
    NotFound,
    /// The request is not allowed for this role.
    Forbidden,
    /// The scheduler failed internally (store error).
    Internal,
    /// The request itself is wrong (a bad tag key, a trial the study does not have).
    BadRequest,
}

/// Payload of [`ToClient::Error`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMsg {
    /// Kind.
    pub kind: ErrorKind,
    /// A sentence for the user.
    pub message: String,
}

/// Largest chunk of a dataset in one message (well under the frame limit).
pub const DATASET_CHUNK: usize = 1 << 20;

/// Payload of [`FromClient::PutDataset`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutDatasetMsg {
    /// SHA-256 of the whole file, lower-case hex.
    pub sha256: String,
    /// The file's name (for listings and errors).
    pub name: String,
    /// Size of the whole file.
    pub total: u64,
    /// Where this chunk starts.
    pub offset: u64,
    /// The chunk (at most [`DATASET_CHUNK`] bytes).
    pub bytes: Vec<u8>,
}

/// Payload of [`FromNode::FetchDataset`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchDatasetMsg {
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Where the wanted chunk starts.
    pub offset: u64,
}

/// Payload of [`ToNode::DatasetChunk`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetChunkMsg {
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Size of the whole file (0: the scheduler does not hold it).
    pub total: u64,
    /// Where this chunk starts.
    pub offset: u64,
    /// The chunk.
    pub bytes: Vec<u8>,
}
