//! The QUIC side of the scheduler.
//!
//! ```text
//! listener.rs  accepts connections, runs the handshake, spawns a Session per connection
//! session.rs   the Session actor: a node's or a client's frames after the handshake
//! ```
mod listener;
mod session;

pub use listener::{admit, printable_name, Listener, ListenerArgs, Refused};
pub use session::{Session, SessionArgs, SessionMsg, MAX_DATASET_BYTES, PBO_BLOCKS};

/// Close codes sent to peers.
pub mod close {
    /// Handshake refused.
    pub const REFUSED: u32 = 1;
    /// A frame did not decode or was too large.
    pub const BAD_FRAME: u32 = 2;
}
