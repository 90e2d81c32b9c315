//! One study: its trials, sampler and pruner.
//!
//! ```text
//! core.rs   StudyCore: the lifecycle of DESIGN §3 as plain functions (unit-tested)
//! actor.rs  the Study actor: calls the core, writes through the Store, answers sessions
//! ```
mod actor;
mod core;

pub use actor::{StudyActor, StudyArgs, StudyMsg};
pub use core::{warm_start_trials, FinishResult, StudyCore};
