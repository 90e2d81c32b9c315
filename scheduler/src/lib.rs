//! mlt-scheduler: the search side of mlt-cluster.
//!
//! ```text
//! Supervisor (supervisor.rs)            creates studies, restores them after a restart
//! ├─ Store    (store/actor.rs)          the only redb writer; group commit
//! ├─ Registry (registry/actor.rs)       nodes, slots, leases; pull-based, fair dispatch
//! ├─ Study*   (study/actor.rs)          sampler + pruner + trials of one study
//! ├─ Models   (models/actor.rs)         the model registry: versions, stages, gates, audit
//! └─ Listener (server/listener.rs)      QUIC endpoint; one Session per connection
//!    └─ Session* (server/session.rs)    handshake, then a node's or a client's frames
//! ```
//! Actors are thin: each `handle()` calls plain functions over a state struct
//! (`study/core.rs`, `registry/core.rs`) that are unit-tested without a network.
#![deny(unsafe_code)]

pub mod config;
pub mod metrics;
pub mod models;
pub mod registry;
pub mod search;
pub mod security;
pub mod server;
pub mod store;
pub mod study;
pub mod supervisor;

pub use config::SchedulerConfig;
pub use supervisor::{Scheduler, SchedulerHandle};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
