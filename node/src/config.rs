//! A node's settings, from `mlt-cluster join` (flags, `MLT_*` variables, cluster.toml) or
//! from `mlt-cluster run`'s local node.
use mlt_protocol::messages::SlotInfo;
use mlt_protocol::token::Token;
use std::time::Duration;

/// Settings of a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Scheduler address, `host:port`.
    pub scheduler: String,
    /// The join token.
    pub token: Token,
    /// Name shown in listings.
    pub name: String,
    /// The slots.
    pub slots: Vec<SlotInfo>,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// On SIGTERM, how long running trials may take before they are handed back.
    pub drain_timeout: Duration,
    /// Where uploaded datasets are cached, by SHA-256.
    pub cache_dir: std::path::PathBuf,
}
