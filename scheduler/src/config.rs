//! The scheduler's settings (validated from cluster.toml, the environment and flags by the
//! binary).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the scheduler needs to start.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Where the store, certificate and tokens live.
    pub data_dir: PathBuf,
    /// How often nodes send heartbeats.
    pub heartbeat: Duration,
    /// A node silent for this long loses its running trials.
    pub lease: Duration,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Largest spec text a client may submit.
    pub max_spec: usize,
    /// Durable (fsync) commits; off only for throwaway benchmarks.
    pub durable: bool,
    /// Host name put in the printed join command (defaults to the listen address).
    pub advertise: Option<String>,
}

impl SchedulerConfig {
    /// Defaults for a data dir and listen address.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            heartbeat: Duration::from_secs(1),
            lease: Duration::from_secs(10),
            max_frame: mlt_protocol::codec::DEFAULT_MAX_FRAME,
            max_spec: 1 << 20,
            durable: true,
            advertise: None,
        }
    }
}
