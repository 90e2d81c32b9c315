//! The node: connects to the scheduler, registers its slots, runs what it is assigned, and
//! keeps going through scheduler restarts. Results not yet acknowledged are kept and sent
//! again after a reconnect; the scheduler records each exactly once.
use crate::config::NodeConfig;
use crate::state::{NodeEvent, Outbox, State};
use crate::worker::Worker;
use mlt_net::{connect, ClientSession};
use mlt_protocol::handshake::{Hello, Role};
use mlt_protocol::ids::NodeId;
use mlt_protocol::messages::*;
use ractor::Actor;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Why a node stopped other than by finishing its work.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A worker slot could not be started. Fatal: the node never connected.
    #[error("starting a worker: {0}")]
    Worker(String),
    /// The scheduler cannot be reached in a way retrying will not fix (wrong token, wrong
    /// fingerprint, another protocol version, an address that does not resolve). Fatal.
    #[error(transparent)]
    Refused(#[from] mlt_net::ConnectError),
}

enum Exit {
    Done,
    Lost(String),
}

type Shutdown<'a> = Pin<&'a mut (dyn Future<Output = ()> + Send)>;

/// Runs a node until `shutdown` completes and its work is finished or handed back.
pub async fn run_node(
    cfg: NodeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), NodeError> {
    let id = NodeId(rand::random());
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut workers = Vec::new();
    let host = std::sync::Arc::new(crate::worker::Host::detect(&cfg.name));
    for s in &cfg.slots {
        let (w, _) = Actor::spawn(
            None,
            Worker,
            (
                s.slot,
                s.cpus,
                s.gpus.first().copied(),
                events_tx.clone(),
                host.clone(),
            ),
        )
        .await
        .map_err(|e| NodeError::Worker(e.to_string()))?;
        workers.push(w);
    }
    let mut st = State::new(id, cfg, Box::new(workers));
    tracing::info!(node = %id, slots = st.cfg.slots.len(), scheduler = %st.cfg.scheduler, "node starting");
    let mut shutdown: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(shutdown);
    let mut backoff = Duration::from_millis(100);
    let result = loop {
        if st.finished_draining() {
            break Ok(());
        }
        let hello = Hello {
            protocol_version: 0,
            role: Role::Node,
            secret: String::new(),
            name: st.cfg.name.clone(),
            node: Some(id),
        };
        let (addr, token) = (st.cfg.scheduler.clone(), st.cfg.token.clone());
        let attempt = async move { connect(&addr, &token, hello, Duration::from_secs(5)).await };
        let session = match offline(&mut st, &mut events, shutdown.as_mut(), attempt).await {
            None => break Ok(()),
            Some(Ok(s)) => s,
            Some(Err(e)) if e.is_fatal() => break Err(NodeError::Refused(e)),
            Some(Err(e)) => {
                tracing::warn!("{e}; retrying in {} ms", backoff.as_millis());
                let wait = tokio::time::sleep(backoff);
                if offline(&mut st, &mut events, shutdown.as_mut(), wait)
                    .await
                    .is_none()
                {
                    break Ok(());
                }
                backoff = (backoff * 2).min(st.cfg.reconnect_max);
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        match online(&mut st, &mut events, shutdown.as_mut(), session).await {
            Exit::Done => break Ok(()),
            Exit::Lost(why) => {
                tracing::warn!("lost the scheduler ({why}); reconnecting");
                st.unverdict_all();
            }
        }
    };
    st.workers.stop();
    result
}

/// Waits for `fut` while no scheduler is connected: reports carry on without a verdict,
/// results are kept for later. `None` when the node should exit (drained).
async fn offline<T>(
    st: &mut State,
    events: &mut mpsc::UnboundedReceiver<NodeEvent>,
    mut shutdown: Shutdown<'_>,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(fut);
    loop {
        let deadline = st.draining.filter(|_| !st.released);
        tokio::select! {
            r = &mut fut => return Some(r),
            Some(ev) = events.recv() => st.on_event(ev, None),
            _ = &mut shutdown, if st.draining.is_none() => {
                st.draining = Some(Instant::now() + st.cfg.drain_timeout);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => st.release_all(None),
        }
        let drain_over = st.draining.is_some_and(|d| Instant::now() >= d);
        if st.draining.is_some() && st.running.is_empty() && (st.unacked.is_empty() || drain_over) {
            return None;
        }
    }
}

async fn online(
    st: &mut State,
    events: &mut mpsc::UnboundedReceiver<NodeEvent>,
    mut shutdown: Shutdown<'_>,
    session: ClientSession,
) -> Exit {
    let ClientSession {
        endpoint,
        conn,
        writer,
        mut reader,
        accepted,
    } = session;
    let out = writer.into_outbox();
    let sink: &(dyn Outbox + Sync) = &out;
    st.on_connected(sink);
    tracing::info!(scheduler = %conn.remote_address(), "connected");
    let mut beat =
        tokio::time::interval(Duration::from_millis(accepted.heartbeat_ms.max(50) as u64));
    let exit = loop {
        let deadline = st.draining.filter(|_| !st.released);
        tokio::select! {
            frame = reader.recv::<ToNode>() => match frame {
                Ok(Some(m)) => st.on_frame(m, sink),
                Ok(None) => break Exit::Lost("the scheduler closed the connection".into()),
                Err(e) => break Exit::Lost(e.to_string()),
            },
            Some(ev) = events.recv() => st.on_event(ev, Some(sink)),
            _ = beat.tick() => {
                // Everything the node holds: running, or finished and not yet acknowledged
                // (the scheduler reconciles its leases against this list).
                let running = st.running.keys().chain(st.unacked.keys()).copied().collect();
                st.send(Some(sink), &FromNode::Heartbeat(HeartbeatMsg { running }));
            }
            _ = &mut shutdown, if st.draining.is_none() => {
                tracing::info!("stopping: no new work; finishing {} running trials", st.running.len());
                st.draining = Some(Instant::now() + st.cfg.drain_timeout);
                st.send(Some(sink), &FromNode::Draining);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => st.release_all(Some(sink)),
        }
        if st.finished_draining() {
            break Exit::Done;
        }
    };
    if matches!(exit, Exit::Done) {
        // Every queued frame reaches the scheduler before the connection closes.
        out.finish(Duration::from_secs(2)).await;
        conn.close(0u32.into(), b"node stopping");
        endpoint.wait_idle().await;
    }
    exit
}
