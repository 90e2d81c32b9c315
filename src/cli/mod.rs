//! Command-line interface.
//!
//! ```text
//! serve.rs     run, scheduler, join: the long-running commands
//! target.rs    where requests go: a running scheduler, or a stopped one's store
//! datasets.rs  the data files a spec names: hashed, uploaded once, named by hash
//! client.rs    submit, status, trials, best, cancel, export
//! models.rs    artifact, predict, ensemble: a trial's kept model, its predictions, ensembles
//! returns.rs   returns: a trial's trading day by day, beside its benchmark
//! stats.rs     stats returns|dsr|pbo on a researcher's files
//! output.rs    tables, JSON and CSV
//! ```
mod annotate;
mod client;
mod compare;
mod datasets;
mod filter;
mod mlflow;
mod models;
mod optuna;
mod output;
mod parquet_out;
mod registry;
mod returns;
mod rollout;
mod serve;
mod stats;
pub(crate) mod target;
mod trial;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mlt_protocol::spec::EnsembleMethod;
use std::path::PathBuf;
use std::str::FromStr;

/// Hyperparameter search cluster for machine-learning trading models.
#[derive(Parser, Debug)]
#[command(name = "mlt-cluster", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where a client finds the scheduler.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Scheduler address, host:port (default: the address in DIR/address).
    #[arg(long, env = "MLT_SCHEDULER")]
    pub scheduler: Option<String>,
    /// Client token (default: the one in DIR/client-token).
    #[arg(long, env = "MLT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data dir: without --scheduler, read a stopped scheduler's store here (or find a running
    /// one's address and token).
    #[arg(long, env = "MLT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scheduler and a local node in one process; exits when the study ends and prints a summary.
    Run {
        /// The search spec (TOML).
        spec: PathBuf,
        /// Data dir (store, certificate, tokens).
        #[arg(long, env = "MLT_DATA_DIR", default_value = "./mlt-data")]
        data_dir: PathBuf,
        /// Worker slots (default: one per core).
        #[arg(long)]
        slots: Option<u32>,
        /// Print the final summary as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        over: SpecOverrides,
    },
    /// Start the scheduler: writes DIR/join-token and DIR/client-token, prints the join command.
    Scheduler {
        /// cluster.toml.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// UDP address to listen on.
        #[arg(long, env = "MLT_LISTEN")]
        listen: Option<String>,
        /// Data dir.
        #[arg(long, env = "MLT_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Host name nodes use to reach this machine (for the printed join command).
        #[arg(long)]
        advertise: Option<String>,
    },
    /// Join a scheduler as a node and run trials.
    Join {
        /// Scheduler address, host:port.
        #[arg(long, env = "MLT_SCHEDULER")]
        scheduler: String,
        /// Join token printed by the scheduler. Prefer MLT_TOKEN or --token-file: a token on
        /// the command line shows in `ps` to every user of the machine.
        #[arg(
            long,
            env = "MLT_TOKEN",
            hide_env_values = true,
            required_unless_present = "token_file"
        )]
        token: Option<String>,
        /// A file holding the join token (a copy of the scheduler's DIR/join-token).
        #[arg(long, env = "MLT_TOKEN_FILE", conflicts_with = "token")]
        token_file: Option<PathBuf>,
        /// Run `command` objectives here: programs of the submitter's choice, with this node's
        /// rights. Off by default: anyone with the client token could run anything.
        #[arg(long, env = "MLT_ALLOW_COMMAND")]
        allow_command: bool,
        /// Walk-forward specs may read data files under this folder of the node (default:
        /// none; submitted files are uploaded and need no access).
        #[arg(long, env = "MLT_DATA_ROOT")]
        data_root: Option<PathBuf>,
        /// Worker slots (0 = one per core).
        #[arg(long)]
        slots: Option<u32>,
        /// GPU indices, e.g. 0,1 (default: CUDA_VISIBLE_DEVICES, else nvidia-smi -L).
        #[arg(long)]
        gpus: Option<String>,
        /// Node name (default: host name).
        #[arg(long)]
        name: Option<String>,
        /// cluster.toml (its [node] section).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where datasets fetched from the scheduler are cached (default:
        /// $XDG_CACHE_HOME/mlt-cluster/datasets, else ~/.cache/mlt-cluster/datasets).
        #[arg(long, env = "MLT_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Submit a search spec; prints the study's name.
    Submit {
        /// The search spec (TOML).
        spec: PathBuf,
        /// Show a progress bar until the study ends.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        over: SpecOverrides,
        #[command(flatten)]
        conn: Conn,
    },
    /// Studies, nodes and scheduler counters.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// All trials of a study.
    Trials {
        /// Study name or id.
        study: String,
        /// Only the trials for which this holds: `FIELD OP VALUE` with FIELD `tag.KEY`,
        /// `param.KEY`, `metric.KEY` (or a bare metric or parameter name), `value`, `value_N`,
        /// `state`, `number`, `attempt` or `origin`, and OP one of = != < <= > >=. Repeat it:
        /// all must hold. Example: --where 'tag.desk = fx' --where 'sharpe > 1'
        #[arg(long = "where", value_name = "EXPR")]
        filters: Vec<String>,
        /// JSON output (each trial with its tags and notes).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// One trial whole: its record, hold-out evaluation, tags and notes, and its lineage (the
    /// spec's hash, the sampler's seed, the node, build, model seed, data, and each fold's
    /// windows, time and training curve, with whether it overfits or had not converged).
    Trial {
        /// Study name or id.
        study: String,
        /// The trial's number.
        trial: u64,
        /// JSON output (everything, curves whole).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Serve registered models over HTTP: batch and real-time predictions, rollouts, metrics
    /// (docs/serving.md). With --data-dir alone it uses the scheduler running there, or starts
    /// one in this process.
    Serve {
        /// Address to listen on (port 0: any free port; the address is written to
        /// DATA_DIR/serve-address).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Which of a version's models to serve: its refit (`register --refit`; the trial's
        /// when it has none) or its trial's.
        #[arg(long, value_enum, default_value = "refit")]
        model: ServeModel,
        /// Most versions kept loaded (least recently used out).
        #[arg(long, default_value_t = 16)]
        cache_models: usize,
        /// Most megabytes of model text kept loaded.
        #[arg(long, default_value_t = 1024)]
        cache_mb: usize,
        /// Largest request body, in megabytes (413 beyond).
        #[arg(long, default_value_t = 16)]
        max_body_mb: usize,
        /// Raw bars kept per instrument to warm up a version that starts serving it.
        #[arg(long, default_value_t = 1000)]
        history: usize,
        /// Most instruments with real-time state per model name (a new one beyond is refused).
        #[arg(long, default_value_t = 100_000)]
        max_instruments: usize,
        /// Real-time state of an instrument starts from the served version's registered data
        /// when it has that instrument (`registered`), or empty (`none`: post a warm-up).
        #[arg(long, value_enum, default_value = "registered")]
        seed: ServeSeed,
        /// How often the registry's stages and rollouts are read (ms).
        #[arg(long, default_value_t = 200)]
        poll_ms: u64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Roll a candidate version out: `rollout NAME --candidate k --share 10` (sticky per
    /// instrument or client), `--shadow`, or a ramp `--steps 10,25,50,100 --every 500`
    /// that halts by itself on an alert or a significantly worse candidate; `rollout status`,
    /// `report`, `promote` and `stop` (docs/serving.md).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Rollout {
        #[command(subcommand)]
        cmd: Option<RolloutCmd>,
        #[command(flatten)]
        start: RolloutStart,
    },
    /// A model's prediction log, as `serve` wrote it: every prediction with its version,
    /// arm, instrument, bar date, input hash and whether it was the answer (CSV, or --json).
    Predictions {
        /// The model's name.
        name: String,
        /// First record (its seq).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most records.
        #[arg(long)]
        limit: Option<u64>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// The model registry: register a trial's model as a named version, move versions
    /// between stages (development, staging, production, archived) under promotion gates,
    /// roll back, and read the audit log (docs/tracking.md).
    Registry {
        #[command(subcommand)]
        cmd: RegistryCmd,
    },
    /// Trials side by side, in one study or across studies: parameters, values, metrics,
    /// hold-out, PSR/DSR/PBO, lineage and what their training curves say; differences marked.
    Compare {
        /// STUDY/N, two or more.
        #[arg(required = true, num_args = 2..)]
        trials: Vec<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Set tags on a study or a trial (STUDY/N): `tag mystudy/12 desk=fx reviewed=yes`;
    /// `--remove KEY` removes one. Prints the tags and notes after the change.
    Tag {
        /// STUDY, or STUDY/N for trial N.
        target: String,
        /// key=value pairs (keys: letters, digits and _ - . / :).
        #[arg(value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// Remove this tag (repeatable).
        #[arg(long, value_name = "KEY")]
        remove: Vec<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Add a note to a study or a trial (STUDY/N); notes are kept in order, with when and who.
    Note {
        /// STUDY, or STUDY/N for trial N.
        target: String,
        /// The text.
        text: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// The best trial (the Pareto front for several objectives).
    Best {
        /// Study name or id.
        study: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// A consistent copy of the store (every study, trial, dataset and model) in a new file,
    /// made by the running scheduler while it works, or read from a stopped one's store. To
    /// restore it, put it at DIR/store.redb of a data dir.
    Backup {
        /// The copy (a new file: an existing one is refused).
        #[arg(long)]
        out: PathBuf,
        /// Print what was copied as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Cancel a study: no new trials; running ones are stopped.
    Cancel {
        /// Study name or id.
        study: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Selection statistics and metrics on your own files (no scheduler needed).
    Stats {
        #[command(subcommand)]
        what: StatsCmd,
    },
    /// The model a trial kept (its last fold's): LightGBM model text or ridge JSON to stdout
    /// (or --out), its features and importance on stderr; --json for everything.
    Artifact {
        /// Study name or id.
        study: String,
        /// Trial number.
        trial: u64,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The whole artifact as JSON (model text, features, settings, importance, SHAP).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// A trial's out-of-sample trading day by day: the decision day, the day the return is
    /// earned (the next bar's), the position in each instrument, the strategy's return after
    /// costs and the benchmark's (buy-and-hold of the instrument, or the equal-weight universe).
    Returns {
        /// Study name or id.
        study: String,
        /// Trial number.
        trial: u64,
        /// The trial's evaluation on the hold-out instead of its search folds.
        #[arg(long)]
        holdout: bool,
        /// One JSON document.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV with a header row.
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Predictions of a trial's kept model on a CSV or Parquet file of bars: one row per bar
    /// (empty while a feature warms up) with the forward return (or probability of up) over
    /// the study's horizon, then one column per shorter horizon of a multi-step LSTM head.
    Predict {
        /// Study name or id (with --trial).
        #[arg(long, required_unless_present = "model", requires = "trial")]
        study: Option<String>,
        /// Trial number (with --study).
        #[arg(long, requires = "study")]
        trial: Option<u64>,
        /// A registered model instead: NAME (its latest version), NAME@k or NAME@production.
        #[arg(long, conflicts_with_all = ["study", "trial"])]
        model: Option<String>,
        /// With --model: the version's refit model (`register --refit`), not its trial's.
        #[arg(long, requires = "model")]
        refit: bool,
        /// Bars to predict (CSV or Parquet).
        #[arg(long)]
        data: PathBuf,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// JSON instead of CSV.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// An ensemble of a walk-forward study's best trials, evaluated on the study's folds and
    /// hold-out beside each member alone.
    Ensemble {
        /// Study name or id.
        study: String,
        /// How many of the best trials.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// voting (equal weights), dynamic (weights from each member's out-of-sample Sharpe on
        /// the folds before), blending (least-squares weights on the members' out-of-sample
        /// predictions of the folds before) or stacking (a ridge meta-model on the members'
        /// out-of-fold predictions inside each fold's training window).
        #[arg(long, default_value = "voting", value_parser = EnsembleMethod::from_str)]
        method: EnsembleMethod,
        /// The study's data files, when it ran on uploaded files and the scheduler is running.
        #[arg(long = "data")]
        data: Vec<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Export a study's trials.
    Export {
        /// Study name or id.
        study: String,
        /// Format.
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The MLflow tracking server (--format mlflow), e.g. http://127.0.0.1:5000.
        #[arg(long, env = "MLFLOW_TRACKING_URI")]
        tracking_uri: Option<String>,
        /// The MLflow experiment (--format mlflow); the study's name by default.
        #[arg(long)]
        experiment: Option<String>,
        /// Leave the models out of an MLflow export (their text can be large).
        #[arg(long)]
        no_models: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `mlt-cluster registry …`.
#[derive(Subcommand, Debug)]
pub enum RegistryCmd {
    /// Make version k of model NAME from a complete trial: an immutable copy of its model,
    /// features and label, the spec, lineage, metrics, hold-out and selection statistics.
    Register {
        /// Study name or id.
        study: String,
        /// The trial's number.
        trial: u64,
        /// The model's name (letters, digits and _ - .).
        #[arg(long)]
        name: String,
        /// Set the name's promotion gates (repeatable): 'dsr >= 0.95', 'pbo <= 0.3',
        /// 'holdout', any metric ('sharpe > 1', 'holdout.sharpe > 0'), or `none`. A new name
        /// gets 'dsr >= 0.95' and 'holdout' unless given.
        #[arg(long, value_name = "GATE")]
        require: Vec<String>,
        /// Also train the same settings on the latest training window, ending at the data's
        /// last bar (hold-out included): what one deploys. Kept beside the trial's model.
        #[arg(long)]
        refit: bool,
        /// Bars to refit on (the study's own by default; needed for uploaded files when the
        /// scheduler runs).
        #[arg(long, requires = "refit")]
        data: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Move version k to a stage. One production version per name: the previous one is
    /// archived. Promotion to production must pass the name's gates unless --force --reason.
    Stage {
        /// The model's name.
        name: String,
        /// The version.
        #[arg(value_name = "VERSION")]
        ver: u32,
        /// development, staging, production or archived.
        stage: String,
        /// Why (kept in the audit log; required with --force).
        #[arg(long)]
        reason: Option<String>,
        /// Promote although gates fail (recorded, with the failed gates).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Make the previous production version production again (the current one is archived).
    Rollback {
        /// The model's name.
        name: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Replace a name's promotion gates.
    Gates {
        /// The model's name.
        name: String,
        /// A gate (repeatable), or `none`.
        #[arg(long, value_name = "GATE")]
        require: Vec<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Every registered name with its versions' stages.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// One version (NAME, NAME@k, NAME@production; the latest by default) whole.
    Show {
        /// NAME, NAME@k or NAME@production.
        name: String,
        /// The version (instead of @k).
        #[arg(value_name = "VERSION")]
        ver: Option<u32>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Two versions side by side: stage, parameters, selection statistics, metrics,
    /// hold-out, spec and lineage; differences marked.
    Compare {
        /// The model's name.
        name: String,
        /// One version.
        a: u32,
        /// The other.
        b: u32,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// The name's audit log: every registration and stage move, when, by whom, why.
    History {
        /// The model's name.
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `mlt-cluster stats …`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ServeModel {
    Refit,
    Trial,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ServeSeed {
    Registered,
    None,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum StickyBy {
    Instrument,
    Client,
}

/// `rollout NAME …` / `rollout start NAME …`.
#[derive(clap::Args, Debug)]
pub struct RolloutStart {
    /// The model's name.
    #[arg(required = true)]
    pub name: Option<String>,
    /// The candidate version.
    #[arg(long, required = true)]
    pub candidate: Option<u32>,
    /// Percent of traffic to the candidate (a fixed split).
    #[arg(long, conflicts_with_all = ["steps", "shadow"])]
    pub share: Option<f64>,
    /// A ramp: percent shares, rising, e.g. 10,25,50,100 (with --every).
    #[arg(long, value_delimiter = ',', conflicts_with = "shadow")]
    pub steps: Vec<f64>,
    /// How long each step lasts: predictions served (500) or a duration (90s, 10m, 2h, 1d).
    #[arg(long)]
    pub every: Option<String>,
    /// Serve production to all traffic and run the candidate beside it, logging its
    /// predictions only.
    #[arg(long)]
    pub shadow: bool,
    /// What keeps a caller on one arm: the bar's instrument, or the X-Client-Id header.
    #[arg(long, value_enum, default_value = "instrument")]
    pub sticky: StickyBy,
    /// The candidate's failed-prediction rate that raises an alert (and halts).
    #[arg(long, default_value_t = 0.05)]
    pub max_error_rate: f64,
    /// The one-sided p-value below which the candidate is significantly worse (halts). The
    /// test is made at the end of every step: a ramp of k steps halts a candidate no worse
    /// than production about k × alpha of the time.
    #[arg(long, default_value_t = 0.01)]
    pub alpha: f64,
    /// Paired instrument-days needed before the arms are compared (daily returns are noisy:
    /// fewer say little).
    #[arg(long, default_value_t = 60)]
    pub min_pairs: u64,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Subcommand, Debug)]
pub enum RolloutCmd {
    /// Start a rollout (the same as `rollout NAME …`).
    Start(RolloutStart),
    /// Where a name's rollout is: step, shares, each arm's numbers, events.
    Status {
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// The arms compared on the same instruments and days once outcomes are known, with a
    /// paired t-test.
    Report {
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Make the candidate production (its gates apply) and end the rollout.
    Promote {
        name: String,
        #[arg(long)]
        reason: Option<String>,
        /// Promote although gates fail (needs --reason; recorded).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// End the rollout: all traffic back on production.
    Stop {
        name: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand, Debug)]
pub enum StatsCmd {
    /// Metrics (empyrical conventions) and the Probabilistic Sharpe Ratio of one series.
    Returns {
        /// CSV file with a header row.
        file: PathBuf,
        /// The column (needed when there are several numeric columns).
        #[arg(long)]
        column: Option<String>,
        /// The column holds prices: use their simple returns.
        #[arg(long)]
        prices: bool,
        #[arg(long)]
        json: bool,
    },
    /// Deflated Sharpe Ratio of the best of N trials (per-period Sharpe, not annualised).
    Dsr {
        /// The selected trial's per-period Sharpe ratio.
        #[arg(long, allow_negative_numbers = true)]
        sharpe: f64,
        /// Trials tried (N).
        #[arg(long)]
        trials: f64,
        /// Variance of the trials' per-period Sharpe ratios.
        #[arg(long)]
        variance: f64,
        /// Returns behind the Sharpe (T).
        #[arg(long)]
        observations: f64,
        /// Skewness of the returns.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        skew: f64,
        /// Pearson kurtosis of the returns (3 = normal).
        #[arg(long, default_value_t = 3.0)]
        kurtosis: f64,
        #[arg(long)]
        json: bool,
    },
    /// Probability of Backtest Overfitting (CSCV) of a T×N matrix of returns, one column per
    /// strategy.
    Pbo {
        /// CSV file with a header row (a leading date column is ignored).
        file: PathBuf,
        /// Row blocks S (even, 2–20).
        #[arg(long, default_value_t = 16)]
        splits: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// Every trial record, as JSON.
    Json,
    /// One row per trial: values, `param_*`, `metric_*`, state, times.
    Csv,
    /// The CSV's columns, typed, in a Parquet file (needs --out).
    Parquet,
    /// Optuna's JournalStorage file: `optuna.load_study(storage=JournalStorage(
    /// JournalFileBackend(FILE)))` and optuna-dashboard read it (needs --out).
    OptunaJournal,
    /// Push to an MLflow tracking server (needs --tracking-uri): a parent run for the study,
    /// a child run per trial, the study's registered versions in MLflow's model registry.
    Mlflow,
}

impl Cli {
    /// Log level when MLT_LOG is unset: chatty for servers, quiet for clients.
    /// Whether the command runs trials in this process (a node: the `command` objective writes
    /// to its programs' pipes, and a program that exits early must not kill the node).
    pub fn runs_trials(&self) -> bool {
        matches!(
            self.command,
            Command::Run { .. }
                | Command::Scheduler { .. }
                | Command::Join { .. }
                | Command::Serve { .. }
        )
    }

    pub fn default_log(&self) -> &'static str {
        match self.command {
            Command::Scheduler { .. } | Command::Join { .. } | Command::Serve { .. } => "info",
            _ => "warn",
        }
    }
}

/// Errors that map to exit codes other than 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Spec(String),
    /// `run` ended, and no trial of its study completed.
    #[error("{0}")]
    NoResult(String),
    #[error("{0}")]
    Connect(String),
    /// A command line clap accepts but the command cannot (exit code 2, as clap's).
    #[error("{0}")]
    Usage(String),
}

/// What `run` and `submit` may change in a spec without editing its file.
#[derive(Args, Clone, Debug, Default)]
pub struct SpecOverrides {
    /// Replace a walk_forward spec's data with this CSV (repeat for several instruments).
    #[arg(long = "data")]
    pub data: Vec<PathBuf>,
    /// The study's budget instead of `study.n_trials`.
    #[arg(long)]
    pub n_trials: Option<u64>,
    /// The study's seed instead of `study.seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The study's name instead of `study.name`.
    #[arg(long)]
    pub name: Option<String>,
}

/// The spec's text, with the overrides applied: a walk_forward objective's data replaced by
/// `--data` (absolute paths; one spec serves many instruments), and `--n-trials`, `--seed`,
/// `--name` set in `[study]`.
pub fn spec_text(path: &std::path::Path, over: &SpecOverrides) -> anyhow::Result<String> {
    use anyhow::Context;
    let mut text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let source = path.display().to_string();
    if !over.data.is_empty() {
        let mut files = Vec::new();
        for d in &over.data {
            let full = d
                .canonicalize()
                .map_err(|e| CliError::Spec(format!("--data {}: {e}", d.display())))?;
            files.push(full.display().to_string());
        }
        text =
            set_data(&text, &source, &files).map_err(|e| CliError::Spec(format!("--data: {e}")))?;
    }
    let study: Vec<(&str, toml::Value)> = [
        (
            "n_trials",
            over.n_trials.map(|n| toml::Value::Integer(n as i64)),
        ),
        ("seed", over.seed.map(|n| toml::Value::Integer(n as i64))),
        ("name", over.name.clone().map(toml::Value::String)),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    if study.is_empty() {
        return Ok(text);
    }
    let mut doc: toml::Table =
        toml::from_str(&text).map_err(|e| CliError::Spec(format!("{source}: {}", e.message())))?;
    let table = doc
        .entry("study")
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .ok_or_else(|| CliError::Spec(format!("{source}: `study` is not a table")))?;
    for (k, v) in study {
        table.insert(k.to_string(), v);
    }
    Ok(toml::to_string(&doc)?)
}

/// `text` with its walk_forward objective's `data` set to `files` (and no `[objective.synthetic]`).
pub fn set_data(text: &str, source: &str, files: &[String]) -> Result<String, String> {
    let mut doc: toml::Table =
        toml::from_str(text).map_err(|e| format!("{source}: {}", e.message()))?;
    let obj = doc
        .get_mut("objective")
        .and_then(|o| o.as_table_mut())
        .filter(|o| o.get("kind").and_then(|k| k.as_str()) == Some("walk_forward"))
        .ok_or_else(|| format!("{source} has no walk_forward objective to give data to"))?;
    let mut values: Vec<toml::Value> = files
        .iter()
        .map(|f| toml::Value::String(f.clone()))
        .collect();
    obj.remove("synthetic");
    obj.insert(
        "data".into(),
        if values.len() == 1 {
            values.remove(0)
        } else {
            toml::Value::Array(values)
        },
    );
    toml::to_string(&doc).map_err(|e| e.to_string())
}

/// Checks that need the data (walk-forward features against look-ahead), before submitting.
/// The data's problems (unsorted or repeated dates, missing cells, …) are printed, one line
/// each naming the file, and returned to be kept with the study.
pub fn check_objective(
    spec: &mlt_protocol::spec::Spec,
    path: &std::path::Path,
    source: &str,
) -> Result<Vec<String>, CliError> {
    let mut notes = Vec::new();
    if let mlt_protocol::spec::ObjectiveSpec::WalkForward(wf) = &spec.objective {
        let dir = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(|d| d.display().to_string()));
        notes = mlt_eval::check_walk_forward(wf, &spec.space, dir.as_deref())
            .map_err(|(key, msg)| CliError::Spec(format!("{source}: `{key}`: {msg}")))?;
        for n in &notes {
            eprintln!("warning: data: {n}");
        }
        for (key, msg) in mlt_eval::adjusted_levels(wf) {
            eprintln!("warning: {source}: `{key}`: {msg}");
        }
    }
    Ok(notes)
}

pub fn exit_code(e: &anyhow::Error) -> i32 {
    use mlt_scheduler::store::StoreError;
    if e.chain().any(|c| {
        matches!(
            c.downcast_ref::<StoreError>(),
            Some(StoreError::Damaged { .. } | StoreError::NeedsRepair(_))
        )
    }) {
        return 6;
    }
    match e.downcast_ref::<CliError>() {
        Some(CliError::Spec(_)) => 3,
        Some(CliError::Connect(_)) => 4,
        Some(CliError::NoResult(_)) => 5,
        Some(CliError::Usage(_)) => 2,
        None => 1,
    }
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            spec,
            data_dir,
            slots,
            json,
            over,
        } => serve::run(&spec, data_dir, slots, json, &over).await,
        Command::Scheduler {
            config,
            listen,
            data_dir,
            advertise,
        } => serve::scheduler(config, listen, data_dir, advertise).await,
        Command::Join {
            scheduler,
            token,
            token_file,
            allow_command,
            data_root,
            slots,
            gpus,
            name,
            config,
            cache_dir,
        } => {
            let token = match (token, token_file) {
                (Some(t), _) => t,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .map_err(|e| CliError::Connect(format!("--token-file {}: {e}", f.display())))?
                    .trim()
                    .to_string(),
                (None, None) => unreachable!("clap requires one"),
            };
            let access = serve::Access {
                allow_command,
                data_root,
            };
            serve::join(
                scheduler, token, access, slots, gpus, name, config, cache_dir,
            )
            .await
        }
        Command::Submit {
            spec,
            follow,
            over,
            conn,
        } => client::submit(&spec, follow, &conn, &over).await,
        Command::Status { json, conn } => client::status(json, &conn).await,
        Command::Trials {
            study,
            filters,
            json,
            conn,
        } => client::trials(&study, &filters, json, &conn).await,
        Command::Trial {
            study,
            trial,
            json,
            conn,
        } => trial::trial(&study, trial, json, &conn).await,
        Command::Compare { trials, json, conn } => compare::compare(&trials, json, &conn).await,
        Command::Tag {
            target,
            tags,
            remove,
            json,
            conn,
        } => annotate::tag(&target, &tags, &remove, json, &conn).await,
        Command::Note {
            target,
            text,
            json,
            conn,
        } => annotate::note(&target, &text, json, &conn).await,
        Command::Best { study, json, conn } => client::best(&study, json, &conn).await,
        Command::Cancel { study, json, conn } => client::cancel(&study, json, &conn).await,
        Command::Backup { out, json, conn } => client::backup(&out, json, &conn).await,
        Command::Export {
            study,
            format,
            out,
            tracking_uri,
            experiment,
            no_models,
            conn,
        } => match format {
            Format::Mlflow => {
                let uri = tracking_uri.ok_or_else(|| {
                    anyhow::anyhow!("--format mlflow needs --tracking-uri (or MLFLOW_TRACKING_URI)")
                })?;
                client::export_mlflow(&study, &uri, experiment.as_deref(), !no_models, &conn).await
            }
            _ => client::export(&study, format, out, &conn).await,
        },
        Command::Artifact {
            study,
            trial,
            out,
            json,
            conn,
        } => models::artifact(&study, trial, out, json, &conn).await,
        Command::Returns {
            study,
            trial,
            holdout,
            json,
            csv,
            conn,
        } => {
            let shape = match (json, csv) {
                (true, _) => returns::Shape::Json,
                (_, true) => returns::Shape::Csv,
                _ => returns::Shape::Table,
            };
            returns::returns(&study, trial, holdout, shape, &conn).await
        }
        Command::Predict {
            study,
            trial,
            model,
            refit,
            data,
            out,
            json,
            conn,
        } => {
            let source = match (study, trial, model) {
                (_, _, Some(m)) => models::Source::Registered(m, refit),
                (Some(s), Some(t), None) => models::Source::Trial(s, t),
                _ => unreachable!("clap requires --study with --trial, or --model"),
            };
            models::predict(&source, &data, out, json, &conn).await
        }
        Command::Serve {
            listen,
            model,
            cache_models,
            cache_mb,
            max_body_mb,
            history,
            max_instruments,
            seed,
            poll_ms,
            conn,
        } => {
            let opts = crate::serve::ServeOptions {
                listen,
                prefer_refit: matches!(model, ServeModel::Refit),
                cache_models,
                cache_bytes: cache_mb.saturating_mul(1 << 20),
                max_body: max_body_mb.saturating_mul(1 << 20),
                history,
                max_instruments,
                seed_registered: matches!(seed, ServeSeed::Registered),
                poll: std::time::Duration::from_millis(poll_ms.max(10)),
                data_dir: conn
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("./mlt-data")),
            };
            crate::serve::serve(opts, conn).await
        }
        Command::Predictions {
            name,
            from,
            limit,
            json,
            conn,
        } => rollout::predictions(&name, from, limit, json, &conn).await,
        Command::Rollout { cmd, start } => match cmd {
            None => rollout::start(start).await,
            Some(RolloutCmd::Start(s)) => rollout::start(s).await,
            Some(RolloutCmd::Status { name, json, conn }) => {
                rollout::status(&name, json, false, &conn).await
            }
            Some(RolloutCmd::Report { name, json, conn }) => {
                rollout::status(&name, json, true, &conn).await
            }
            Some(RolloutCmd::Promote {
                name,
                reason,
                force,
                json,
                conn,
            }) => rollout::promote(&name, reason, force, json, &conn).await,
            Some(RolloutCmd::Stop {
                name,
                reason,
                json,
                conn,
            }) => rollout::stop(&name, reason, json, &conn).await,
        },
        Command::Registry { cmd } => match cmd {
            RegistryCmd::Register {
                study,
                trial,
                name,
                require,
                refit,
                data,
                json,
                conn,
            } => {
                let refit = registry::Refit { refit, data };
                registry::register(&study, trial, &name, &require, &refit, json, &conn).await
            }
            RegistryCmd::Stage {
                name,
                ver: version,
                stage,
                reason,
                force,
                json,
                conn,
            } => registry::stage(&name, version, &stage, reason, force, json, &conn).await,
            RegistryCmd::Rollback {
                name,
                reason,
                json,
                conn,
            } => registry::rollback(&name, reason, json, &conn).await,
            RegistryCmd::Gates {
                name,
                require,
                json,
                conn,
            } => registry::set_gates(&name, &require, json, &conn).await,
            RegistryCmd::List { json, conn } => registry::list(json, &conn).await,
            RegistryCmd::Show {
                name,
                ver: version,
                json,
                conn,
            } => registry::show(&name, version, json, &conn).await,
            RegistryCmd::Compare {
                name,
                a,
                b,
                json,
                conn,
            } => registry::compare(&name, a, b, json, &conn).await,
            RegistryCmd::History { name, json, conn } => {
                registry::history(&name, json, &conn).await
            }
        },
        Command::Ensemble {
            study,
            top,
            method,
            data,
            json,
            conn,
        } => models::ensemble(&study, top, method, &data, json, &conn).await,
        Command::Stats { what } => match what {
            StatsCmd::Returns {
                file,
                column,
                prices,
                json,
            } => stats::returns(&file, column.as_deref(), prices, json),
            StatsCmd::Dsr {
                sharpe,
                trials,
                variance,
                observations,
                skew,
                kurtosis,
                json,
            } => stats::dsr(sharpe, trials, variance, observations, skew, kurtosis, json),
            StatsCmd::Pbo { file, splits, json } => stats::pbo(&file, splits, json),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_line_is_well_formed() {
        use clap::CommandFactory;
        // Clap's own checks (unique names, valid requirements) over every subcommand: a
        // mistake here panics at run time only when that subcommand is used.
        super::Cli::command().debug_assert();
    }
}
