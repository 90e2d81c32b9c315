//! Typed identifiers. Every id is a newtype from one macro, so a `TrialId` can never be passed
//! where a `StudyId` is expected.
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// The raw number.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<$inner> for $name {
            fn from(v: $inner) -> Self {
                Self(v)
            }
        }
    };
}

define_id!(
    /// A study, numbered by the scheduler from 1.
    StudyId(u64)
);
define_id!(
    /// A trial's number inside its study, from 0 (Optuna's `trial.number`).
    TrialId(u64)
);
define_id!(
    /// A node process: chosen at random by the node when it starts, kept across reconnects.
    NodeId(u64)
);
define_id!(
    /// A worker slot inside one node, from 0.
    SlotId(u32)
);

/// One attempt at one trial. Results are recorded exactly once per key; a report that carries
/// an older attempt than the trial's current one is stale and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrialKey {
    /// The study.
    pub study: StudyId,
    /// The trial's number in the study.
    pub trial: TrialId,
    /// The attempt, from 1.
    pub attempt: u32,
}

impl fmt::Display for TrialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "study {} trial {} attempt {}",
            self.study, self.trial, self.attempt
        )
    }
}
