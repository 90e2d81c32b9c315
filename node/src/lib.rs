//! mlt-node: the machines that run trials.
//!
//! ```text
//! config.rs     the node's settings
//! node.rs       the node: connect, register, then receive / send / heartbeat / stop loops;
//!               reconnects with backoff, re-sends unacknowledged results, drains on SIGTERM
//! state.rs      the state machine: each frame and worker event as a plain function (unit-tested)
//! worker.rs     the Worker actor, one per slot: runs one trial at a time on a blocking thread
//! datasets.rs  uploaded datasets: fetched from the scheduler by hash, verified, cached
//! resources.rs  slots from config or core count; GPUs from config, CUDA_VISIBLE_DEVICES, nvidia-smi
//! objective/    what a trial runs: `benchmark` (analytic functions), `command` (any program) and
//!               `walk_forward` (an adapter to mlt-eval, the evaluation engine)
//! ```
#![deny(unsafe_code)]

pub mod config;
pub mod datasets;
pub mod node;
pub mod objective;
pub mod resources;
pub mod state;
pub mod worker;

pub use config::NodeConfig;
pub use node::{run_node, NodeError};
