//! The store: one redb file owned by the scheduler (DESIGN §6).
//!
//! ```text
//! schema.rs  every table, the schema version, the persisted row types
//! db.rs      open (version check), load everything, apply a batch in one transaction
//! actor.rs   the Store actor: the only writer, group commit, after-commit actions
//! ```
mod actor;
mod db;
pub mod schema;

pub use actor::{actor_args, AfterCommit, StoreActor, StoreArgs, StoreHandle, StoreMsg};
pub use db::quiet_panics;
pub use db::{Loaded, Store, StoreError};
pub use schema::{Event, StoreOp, StudyRow};
