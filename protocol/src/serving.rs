//! Serving registered models: the prediction log, alerts, and rollouts (a candidate version
//! given a share of the traffic, sticky per instrument or client, raised step by step while it
//! raises no alert and is not significantly worse than production).
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which side of a rollout a prediction came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// The production version.
    Production,
    /// The rollout's candidate.
    Candidate,
    /// A version asked for by number or stage (`NAME@k`, `NAME@staging`), outside any rollout.
    Pinned,
}

impl Arm {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Production => "production",
            Arm::Candidate => "candidate",
            Arm::Pinned => "pinned",
        }
    }
}

impl fmt::Display for Arm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One prediction a server made, as logged (append-only, per model name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    /// The model's name.
    pub name: String,
    /// Its place in the name's log (given by the store).
    pub seq: u64,
    /// When it was made (ms since the Unix epoch).
    pub at_ms: u64,
    /// The version that made it.
    pub version: u32,
    /// The arm it belongs to.
    pub arm: Arm,
    /// It was the answer (false: computed beside it, for the comparison or in shadow).
    pub served: bool,
    /// `bars` (real time) or `predict` (batch).
    pub endpoint: String,
    /// The instrument.
    pub instrument: String,
    /// The bar's date (days since 1970-01-01).
    pub day: i64,
    /// The bar's close, from which later records give the realised return.
    pub close: f64,
    /// A hash of the model's input row (FNV-1a of the values' bits).
    pub features_hash: u64,
    /// The prediction (the label's): forward return, or probability of up for a classifier.
    pub prediction: f64,
    /// Why there is no prediction, when the model failed on this bar.
    pub error: Option<String>,
    /// The client (`X-Client-Id`), when it said.
    pub client: Option<String>,
}

/// FNV-1a of `bytes`, continuing from `h`.
fn fnv1a(mut h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a's offset basis.
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over the bits of a row of numbers.
pub fn features_hash(row: &[f64]) -> u64 {
    fnv1a(
        FNV_BASIS,
        row.iter().flat_map(|v| v.to_bits().to_le_bytes()),
    )
}

/// An alert on a model version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The model's name.
    pub name: String,
    /// The version concerned (None: the name as a whole).
    pub version: Option<u32>,
    /// Its place in the name's alerts (given by the store).
    pub seq: u64,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// The rule that fired (`errors`, `worse`, or a monitor's rule).
    pub rule: String,
    /// What it saw.
    pub message: String,
    /// Who raised it (a server, the scheduler, a client).
    pub source: String,
}

/// How a rollout keeps a caller on one arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sticky {
    /// By the bar's instrument.
    Instrument,
    /// By the `X-Client-Id` header (the instrument when a request has none).
    Client,
}

/// How long a ramp stays on a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Every {
    /// This many predictions served (both arms).
    Requests(u64),
    /// This long (ms).
    Millis(u64),
}

impl Every {
    /// `500` (predictions served), or a duration: `90s`, `10m`, `2h`, `1d`.
    pub fn parse(s: &str) -> Result<Every, String> {
        let t = s.trim();
        let bad =
            || format!("`{s}` is not a count of requests (500) or a duration (90s, 10m, 2h, 1d)");
        if let Ok(n) = t.parse::<u64>() {
            return if n == 0 {
                Err(bad())
            } else {
                Ok(Every::Requests(n))
            };
        }
        let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?);
        let n: u64 = num.trim().parse().map_err(|_| bad())?;
        let ms = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        if n == 0 {
            return Err(bad());
        }
        Ok(Every::Millis(n.saturating_mul(ms)))
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Every::Requests(n) => write!(f, "{n} requests"),
            Every::Millis(ms) if ms % 86_400_000 == 0 => write!(f, "{}d", ms / 86_400_000),
            Every::Millis(ms) if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            Every::Millis(ms) if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            Every::Millis(ms) if ms % 1_000 == 0 => write!(f, "{}s", ms / 1_000),
            Every::Millis(ms) => write!(f, "{ms}ms"),
        }
    }
}

/// Where a rollout is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutState {
    /// Routing its share to the candidate (or shadowing).
    Active,
    /// Stopped by an alert or a significantly worse candidate: all traffic on production.
    Halted,
    /// The candidate became production.
    Promoted,
    /// Ended by hand (`registry rollback`, `rollout stop`).
    Stopped,
}

impl RolloutState {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Active => "active",
            RolloutState::Halted => "halted",
            RolloutState::Promoted => "promoted",
            RolloutState::Stopped => "stopped",
        }
    }
}

/// What happened to a rollout, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutEvent {
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// What.
    pub what: String,
}

/// What a rollout is asked to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutPlan {
    /// The model's name.
    pub name: String,
    /// The candidate version.
    pub candidate: u32,
    /// Shares of traffic (percent), one per step; one step for a fixed split.
    pub steps: Vec<f64>,
    /// How long each step lasts before the next (None: a fixed split).
    pub every: Option<Every>,
    /// Run the candidate beside production on all traffic, serving production only.
    pub shadow: bool,
    /// What keeps a caller on one arm.
    pub sticky: Sticky,
    /// The candidate's error rate (failed predictions over its served ones) that raises an
    /// alert, once it has served at least 20.
    pub max_error_rate: f64,
    /// The one-sided p-value below which the candidate is significantly worse.
    pub alpha: f64,
    /// Paired days needed before the comparison is made.
    pub min_pairs: u64,
}

/// A rollout: its plan and where it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// What was asked.
    pub plan: RolloutPlan,
    /// The production version when it started.
    pub production: u32,
    /// The current step (index into the plan's steps).
    pub step: usize,
    /// Where it is.
    pub state: RolloutState,
    /// Why it halted or stopped.
    pub reason: Option<String>,
    /// When it started (ms since the Unix epoch).
    pub started_ms: u64,
    /// When the current step began.
    pub step_started_ms: u64,
    /// Predictions served (both arms) since the current step began.
    pub step_requests: u64,
    /// The first prediction-log record of the rollout.
    pub first_seq: u64,
    /// Predictions served, per arm: production, candidate.
    pub served: [u64; 2],
    /// Failed predictions, per arm.
    pub errors: [u64; 2],
    /// Predictions computed (served or not, failed included), per arm.
    pub computed: [u64; 2],
    /// Salt of the sticky split (a new rollout splits afresh).
    pub salt: u64,
    /// Who started it.
    pub by: String,
    /// Its history.
    pub events: Vec<RolloutEvent>,
}

impl Rollout {
    /// The candidate's share of traffic now (percent): 0 unless active and splitting.
    pub fn share(&self) -> f64 {
        if self.state != RolloutState::Active || self.plan.shadow {
            return 0.0;
        }
        self.plan.steps.get(self.step).copied().unwrap_or(0.0)
    }

    /// Whether the candidate is computed on the traffic (active, splitting or shadowing).
    pub fn live(&self) -> bool {
        self.state == RolloutState::Active
    }

    /// A caller's place in the split, 0..10,000: the same for the same key and rollout.
    pub fn bucket(&self, key: &str) -> u32 {
        let mut h = fnv1a(self.salt ^ FNV_BASIS, key.bytes());
        // splitmix64's finaliser spreads FNV's low bits.
        h ^= h >> 30;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 27;
        h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        (h % 10_000) as u32
    }

    /// Whether the caller keyed `key` goes to the candidate now. Raising the share keeps
    /// every caller already on the candidate there.
    pub fn to_candidate(&self, key: &str) -> bool {
        f64::from(self.bucket(key)) < self.share() * 100.0
    }
}

/// One arm's figures in a rollout report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    /// Its version.
    pub version: u32,
    /// Predictions it served.
    pub served: u64,
    /// Its failed predictions.
    pub errors: u64,
    /// Its predictions with a known outcome (computed ones included).
    pub scored: u64,
    /// Mean daily return of trading its predictions (long when it predicts up).
    pub mean_return: f64,
    /// Annualised Sharpe ratio of those returns (√252).
    pub sharpe: f64,
    /// Share of days its predicted direction was right.
    pub hit_rate: f64,
    /// Correlation of its predictions with the next day's return.
    pub ic: f64,
}

/// A comparison of a rollout's arms on the same instruments and days, once outcomes are known
/// (the next logged bar of the instrument gives the realised return).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutReport {
    /// The model's name.
    pub name: String,
    /// Production, then the candidate.
    pub arms: Vec<ArmReport>,
    /// Instrument-days both arms predicted and whose outcome is known.
    pub pairs: u64,
    /// Mean daily return of the candidate less production's, over the pairs.
    pub mean_difference: f64,
    /// The paired t statistic.
    pub t: f64,
    /// Two-sided p-value of no difference.
    pub p_value: f64,
    /// One-sided p-value of "the candidate is worse".
    pub p_worse: f64,
    /// One sentence on what it says.
    pub verdict: String,
}

/// A serving request to the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServingRequest {
    /// Every name with its stages, and every rollout (what a server polls).
    View,
    /// Append predictions to the log.
    Log(Vec<PredictionRecord>),
    /// Raise an alert.
    Alert(Alert),
    /// Alerts of a name (every name when None), oldest first, at most `limit` newest.
    Alerts(Option<String>, u32),
    /// Start a rollout (replacing an ended one of the name).
    Start(RolloutPlan),
    /// A name's rollout, with its report.
    Status(String),
    /// Make the candidate production (its gates apply; `force` needs a reason) and end the
    /// rollout.
    Promote {
        /// Name.
        name: String,
        /// Why.
        reason: Option<String>,
        /// Override failed gates.
        force: bool,
    },
    /// Records of a name's prediction log from `from` on, at most `limit`.
    Read {
        /// Name.
        name: String,
        /// First seq.
        from: u64,
        /// Most records.
        limit: u32,
    },
    /// End the rollout: all traffic back on production.
    Stop {
        /// Name.
        name: String,
        /// Why.
        reason: Option<String>,
    },
}

/// What a server needs to route: every name and rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServingView {
    /// Names with their stages.
    pub entries: Vec<crate::models::ModelEntry>,
    /// Rollouts, one per name at most (ended ones included).
    pub rollouts: Vec<Rollout>,
}

/// A serving reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServingReply {
    /// The view.
    View(ServingView),
    /// Records logged: the first's seq and how many.
    Logged(u64, u64),
    /// Alerts.
    Alerts(Vec<Alert>),
    /// A rollout, with its report when asked.
    Rollout(Box<Rollout>, Option<RolloutReport>),
    /// Prediction-log records, in order.
    Records(Vec<PredictionRecord>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(share: f64) -> Rollout {
        Rollout {
            plan: RolloutPlan {
                name: "m".into(),
                candidate: 2,
                steps: vec![share],
                every: None,
                shadow: false,
                sticky: Sticky::Instrument,
                max_error_rate: 0.05,
                alpha: 0.05,
                min_pairs: 20,
            },
            production: 1,
            step: 0,
            state: RolloutState::Active,
            reason: None,
            started_ms: 0,
            step_started_ms: 0,
            step_requests: 0,
            first_seq: 0,
            served: [0; 2],
            errors: [0; 2],
            computed: [0; 2],
            salt: 7,
            by: "t".into(),
            events: Vec::new(),
        }
    }

    #[test]
    fn the_split_is_sticky_and_near_its_share() {
        let r = rollout(10.0);
        let keys: Vec<String> = (0..20_000).map(|i| format!("INST{i}")).collect();
        let on = keys.iter().filter(|k| r.to_candidate(k)).count();
        let share = on as f64 / keys.len() as f64;
        assert!((share - 0.10).abs() < 0.01, "{share}");
        // Sticky, and monotone in the share.
        let wider = rollout(25.0);
        assert!(keys
            .iter()
            .filter(|k| r.to_candidate(k))
            .all(|k| wider.to_candidate(k) && r.to_candidate(k)));
        let mut halted = rollout(10.0);
        halted.state = RolloutState::Halted;
        assert!(keys.iter().all(|k| !halted.to_candidate(k)));
    }

    #[test]
    fn every_parses_counts_and_durations() {
        assert_eq!(Every::parse("500").unwrap(), Every::Requests(500));
        assert_eq!(Every::parse("10m").unwrap(), Every::Millis(600_000));
        assert_eq!(Every::parse("90s").unwrap().to_string(), "90s");
        assert!(Every::parse("0").is_err());
        assert!(Every::parse("5 parsecs").is_err());
    }
}
