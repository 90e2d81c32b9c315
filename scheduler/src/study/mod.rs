//! One study: its trials, sampler and pruner.
//!
//! ```text
//! core.rs        StudyCore: the lifecycle of DESIGN §3 as plain functions (unit-tested)
//! annotate.rs    tags and notes people add to a study and its trials
//! warm_start.rs  the trials of an earlier study that seed a new one
//! actor.rs       the Study actor: calls the core, writes through the Store, answers sessions
//! ```
mod actor;
mod annotate;
mod core;
mod warm_start;

pub use actor::{StudyActor, StudyArgs, StudyMsg};
pub use core::{FinishResult, StudyCore};
pub use warm_start::warm_start_trials;
