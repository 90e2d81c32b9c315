//! Nodes, slots and leases, and the pull-based dispatch that matches a free slot to a study.
//!
//! ```text
//! core.rs   RegistryCore: plain functions (unit-tested)
//! actor.rs  the Registry actor: routes asks to Study actors and frames to node sessions
//! ```
mod actor;
mod core;

pub use actor::{RegistryActor, RegistryArgs, RegistryMsg};
pub use core::{Ask, RegistryCore};
