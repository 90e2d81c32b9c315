//! The model registry: named models, immutable versions, stages, gates and the audit log.
//!
//! ```text
//! core.rs   ModelsCore: the rules as plain functions (unit-tested)
//! actor.rs  the Models actor: one for the scheduler, answers once a change is durable
//! ```
mod actor;
mod core;

pub use actor::{ModelsActor, ModelsArgs, ModelsMsg};
pub use core::{check_name, ModelsCore, MAX_NAME};
