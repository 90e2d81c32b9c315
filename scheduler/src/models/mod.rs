//! The model registry: named models, immutable versions, stages, gates and the audit log.
//!
//! ```text
//! core.rs     ModelsCore: the rules as plain functions (unit-tested)
//! serving.rs  the prediction log, alerts and rollouts, on the same core
//! actor.rs    the Models actor: one for the scheduler, answers once a change is durable
//! ```
mod actor;
mod core;
mod serving;

pub use actor::{ModelsActor, ModelsArgs, ModelsMsg};
pub use core::{check_name, ModelsCore, MAX_NAME};
pub use serving::MIN_ERROR_SAMPLE;
