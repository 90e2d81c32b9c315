//! mlt-protocol: the wire contract of mlt-cluster.
//!
//! Pure data and encode/decode, shared by the scheduler, the nodes and the clients. It performs
//! no I/O and depends on neither tokio nor quinn.
//!
//! ```text
//! ids        typed identifiers (StudyId, TrialId, NodeId, SlotId) from one macro
//! messages   ToNode / FromNode / ToClient / FromClient, append-only enums, payloads in …Msg
//! handshake  Hello / Welcome: protocol version, role, token; fatal refusals
//! codec      u32-LE length-prefixed postcard frames with a hard maximum size
//! token      join / client tokens that carry the scheduler certificate's fingerprint
//! spec       the search spec's types (parsed and validated by the mlt-spec crate)
//! records    trial and study records as stored and listed (JSON for the CLI)
//! catalog    tags and notes on studies and trials
//! lineage    where and how a trial ran: node, build, seeds, data, folds, training curves
//! models     the model registry: versions, stages, gates, audit log
//! ```
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod catalog;
pub mod codec;
pub mod handshake;
pub mod ids;
pub mod lineage;
pub mod messages;
pub mod models;
pub mod records;
pub mod serving;
pub mod spec;
pub mod token;

/// Version of the wire protocol; a peer with another version is refused at `Hello`.
pub const PROTOCOL_VERSION: u32 = 6;
/// TLS application protocol name negotiated on every connection.
pub const ALPN: &[u8] = b"mlt/1";
/// Default UDP port of the scheduler.
pub const DEFAULT_PORT: u16 = 7340;

pub use ids::{NodeId, SlotId, StudyId, TrialId};
pub use messages::{FromClient, FromNode, ToClient, ToNode};
