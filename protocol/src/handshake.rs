//! The handshake. The first frame on a connection's control stream is a [`Hello`] from the
//! connecting peer; the scheduler answers with one [`Welcome`]. A refusal is fatal and must not
//! be retried: a wrong token or protocol version will not fix itself.
//!
//! `protocol_version` is the first field of `Hello`, so a scheduler can read the version of any
//! future `Hello` (postcard encodes fields in order) and refuse it clearly.
use crate::ids::NodeId;
use serde::{Deserialize, Serialize};

/// What the connecting peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A node that runs trials (`mlt-cluster join`).
    Node,
    /// A client that submits and inspects studies (`submit`, `status`, …).
    Client,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Node => "node",
            Role::Client => "client",
        })
    }
}

/// First frame from the connecting peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Must equal [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The role the peer asks for; the token must grant it.
    pub role: Role,
    /// The secret part of the peer's token.
    pub secret: String,
    /// Human-readable name (host name for nodes).
    pub name: String,
    /// For nodes: the node's id, stable across reconnects of one process.
    pub node: Option<NodeId>,
}

/// Why a `Hello` was refused. Every refusal is fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The peer speaks another protocol version.
    Version,
    /// The secret matches no token.
    BadToken,
    /// The token is valid but does not grant the role asked for.
    WrongRole,
    /// The first frame was not a valid `Hello`.
    Malformed,
}

/// The scheduler's answer to `Hello`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Welcome {
    /// Accepted: the session may proceed.
    Accepted(AcceptedMsg),
    /// Refused, with a message meant for the user.
    Refused(RefusedMsg),
}

/// Payload of [`Welcome::Accepted`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcceptedMsg {
    /// The scheduler's protocol version.
    pub protocol_version: u32,
    /// The scheduler's software version.
    pub server_version: String,
    /// How often a node must send a heartbeat.
    pub heartbeat_ms: u32,
    /// After how long without a heartbeat a node's trials are taken back.
    pub lease_ms: u32,
    /// The largest frame the scheduler accepts.
    pub max_frame: u32,
}

/// Payload of [`Welcome::Refused`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefusedMsg {
    /// The reason.
    pub reason: Refusal,
    /// The scheduler's protocol version, so the peer can say which it needs.
    pub protocol_version: u32,
    /// A sentence for the user.
    pub message: String,
}
