//! The server's one connection to the scheduler: polls the registry's view (stages and
//! rollouts) and swaps routes once the versions they name are loaded; writes the prediction
//! log in batches; fetches versions and passes alerts on. When the scheduler goes away the
//! server keeps serving what it has, keeps the log in memory (bounded) and reconnects.
use super::App;
use crate::cli::target::{target, Online, Target};
use crate::cli::Conn;
use mlt_protocol::messages::{FromClient, ToClient};
use mlt_protocol::models::{ModelVersion, RegistryReply, RegistryRequest};
use mlt_protocol::serving::{ServingReply, ServingRequest, ServingView};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Records per log message (a message stays far under the frame limit).
const LOG_BATCH: usize = 5_000;

/// Asks of the link from request handlers.
pub enum LinkMsg {
    /// A version's record.
    Fetch(String, u32, oneshot::Sender<Result<ModelVersion, String>>),
    /// A serving request passed on (alerts, rollout status).
    Serving(
        ServingRequest,
        oneshot::Sender<Result<ServingReply, String>>,
    ),
}

async fn ask(o: &mut Online, m: FromClient) -> Result<ToClient, LinkError> {
    match o.request(m).await {
        Ok(ToClient::Error(e)) => Err(LinkError::Refused(e.message)),
        Ok(r) => Ok(r),
        Err(e) => Err(LinkError::Down(format!("{e:#}"))),
    }
}

/// Why a request to the scheduler failed.
pub enum LinkError {
    /// The scheduler said no.
    Refused(String),
    /// The connection failed: reconnect.
    Down(String),
}

async fn fetch(o: &mut Online, name: &str, version: u32) -> Result<ModelVersion, LinkError> {
    let req = RegistryRequest::Show {
        name: name.to_string(),
        version: Some(version),
        production: false,
    };
    match ask(o, FromClient::Registry(req)).await? {
        ToClient::Registry(RegistryReply::Version(v, _)) => Ok(*v),
        _ => Err(LinkError::Down(
            "unexpected answer to a version request".into(),
        )),
    }
}

async fn serving(o: &mut Online, req: ServingRequest) -> Result<ServingReply, LinkError> {
    match ask(o, FromClient::Serving(req)).await? {
        ToClient::Serving(r) => Ok(r),
        _ => Err(LinkError::Down(
            "unexpected answer to a serving request".into(),
        )),
    }
}

/// Loads what `view` routes to (production and live candidates), then swaps the routes. A
/// production version that cannot be loaded keeps the routes as they were (tried again at the
/// next poll); a candidate that cannot be loaded raises an alert on itself (`load`), which
/// halts its rollout.
async fn apply(
    app: &Arc<App>,
    o: &mut Online,
    view: ServingView,
    alerted: &mut std::collections::HashSet<(String, u32)>,
) -> Result<(), LinkError> {
    let wanted = super::Routes::wanted(&view);
    let candidates: Vec<(String, u32)> = view
        .rollouts
        .iter()
        .filter(|r| r.live())
        .map(|r| (r.plan.name.clone(), r.plan.candidate))
        .collect();
    for (name, version) in &wanted {
        if app.cache.has(name, *version) {
            continue;
        }
        let prefer = app.prefer_refit;
        let loaded = match fetch(o, name, *version).await {
            Ok(v) => {
                app.cache
                    .get(name, *version, || async move {
                        super::models::Loaded::load(&v, prefer).await
                    })
                    .await
            }
            Err(LinkError::Refused(e)) => Err(e),
            Err(e) => return Err(e),
        };
        match loaded {
            Ok(l) => {
                tracing::info!(model = %name, version, which = l.which, engine = l.engine(), seconds = l.load_seconds, "loaded");
                app.seed_for(&l);
            }
            Err(e) if candidates.contains(&(name.clone(), *version)) => {
                tracing::error!(model = %name, version, "the rollout's candidate cannot be loaded: {e}");
                if alerted.insert((name.clone(), *version)) {
                    let alert = mlt_protocol::serving::Alert {
                        name: name.clone(),
                        version: Some(*version),
                        seq: 0,
                        at_ms: 0,
                        rule: "load".into(),
                        message: format!("version {version} cannot be loaded: {e}"),
                        source: "serve".into(),
                    };
                    serving(o, ServingRequest::Alert(alert)).await?;
                }
            }
            Err(e) => {
                tracing::error!(model = %name, version, "cannot load: {e}; serving as before");
                return Ok(());
            }
        }
    }
    app.set_routes(view);
    Ok(())
}

/// Writes up to one batch of the log; false when there was nothing to write.
async fn flush(app: &Arc<App>, o: &mut Online) -> Result<bool, LinkError> {
    let batch: Vec<_> = {
        let mut g = app.log.lock().unwrap_or_else(|p| p.into_inner());
        let n = g.len().min(LOG_BATCH);
        g.drain(..n).collect()
    };
    if batch.is_empty() {
        return Ok(false);
    }
    let n = batch.len() as u64;
    match serving(o, ServingRequest::Log(batch.clone())).await {
        Ok(_) => {
            app.metrics.logged.fetch_add(n, Ordering::Relaxed);
            app.metrics.log_pending.fetch_sub(n, Ordering::Relaxed);
            Ok(true)
        }
        Err(e) => {
            // Put back in front, in order, to be written after reconnecting.
            let mut g = app.log.lock().unwrap_or_else(|p| p.into_inner());
            let rest = std::mem::take(&mut *g);
            *g = batch;
            g.extend(rest);
            if let LinkError::Refused(m) = &e {
                // A refused batch (a name deleted meanwhile) would block the log forever.
                tracing::error!("the scheduler refused {n} prediction-log records: {m}; dropped");
                g.drain(..n as usize);
                app.metrics.log_pending.fetch_sub(n, Ordering::Relaxed);
                app.metrics.log_dropped.fetch_add(n, Ordering::Relaxed);
                return Ok(true);
            }
            Err(e)
        }
    }
}

/// Answers a handler's ask.
async fn answer(o: &mut Online, m: LinkMsg) -> Result<(), LinkError> {
    match m {
        LinkMsg::Fetch(name, version, reply) => match fetch(o, &name, version).await {
            Ok(v) => drop(reply.send(Ok(v))),
            Err(LinkError::Refused(e)) => drop(reply.send(Err(e))),
            Err(LinkError::Down(e)) => {
                let _ = reply.send(Err(format!("the scheduler is unreachable: {e}")));
                return Err(LinkError::Down(e));
            }
        },
        LinkMsg::Serving(req, reply) => match serving(o, req).await {
            Ok(r) => drop(reply.send(Ok(r))),
            Err(LinkError::Refused(e)) => drop(reply.send(Err(e))),
            Err(LinkError::Down(e)) => {
                let _ = reply.send(Err(format!("the scheduler is unreachable: {e}")));
                return Err(LinkError::Down(e));
            }
        },
    }
    Ok(())
}

/// Runs the link until `stop`, then writes what is left of the log.
pub async fn run(
    app: Arc<App>,
    conn: Conn,
    mut rx: mpsc::Receiver<LinkMsg>,
    poll: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    // Candidates already alerted on for failing to load.
    let mut alerted = std::collections::HashSet::new();
    let mut conn_opt: Option<Online> = None;
    let mut poll_t = tokio::time::interval(poll);
    poll_t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush_t = tokio::time::interval(Duration::from_millis(50));
    flush_t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            break;
        }
        let Some(o) = conn_opt.as_mut() else {
            match target(&conn, false).await {
                Ok(Target::Online(o)) => {
                    tracing::info!("connected to the scheduler");
                    conn_opt = Some(*o);
                    backoff = Duration::from_millis(100);
                }
                Ok(Target::Offline(_)) => unreachable!("asked for a running scheduler"),
                Err(e) => {
                    tracing::warn!("scheduler unreachable ({e:#}); retrying in {backoff:?}");
                    // Asks answered at once while down, rather than after the timeout.
                    while let Ok(m) = rx.try_recv() {
                        match m {
                            LinkMsg::Fetch(_, _, r) => {
                                drop(r.send(Err(format!("the scheduler is unreachable: {e:#}"))))
                            }
                            LinkMsg::Serving(_, r) => {
                                drop(r.send(Err(format!("the scheduler is unreachable: {e:#}"))))
                            }
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            continue;
        };
        let r = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => answer(o, m).await,
                None => break,
            },
            _ = poll_t.tick() => match serving(o, ServingRequest::View).await {
                Ok(ServingReply::View(v)) => {
                    apply(&app, o, v, &mut alerted).await
                }
                Ok(_) => Err(LinkError::Down("unexpected answer to View".into())),
                Err(e) => Err(e),
            },
            _ = flush_t.tick() => {
                // Everything pending, batch after batch.
                loop {
                    match flush(&app, o).await {
                        Ok(true) => continue,
                        Ok(false) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                }
            },
            _ = stop.changed() => Ok(()),
        };
        if let Err(LinkError::Down(e)) = r {
            tracing::warn!("lost the scheduler: {e}; reconnecting");
            conn_opt = None;
        }
    }
    // The rest of the log, before exiting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.metrics.log_pending.load(Ordering::Relaxed) > 0
        && tokio::time::Instant::now() < deadline
    {
        if conn_opt.is_none() {
            if let Ok(Target::Online(o)) = target(&conn, false).await {
                conn_opt = Some(*o);
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let o = conn_opt.as_mut().expect("connected");
        match flush(&app, o).await {
            Ok(_) => {}
            Err(_) => conn_opt = None,
        }
    }
    let left = app.metrics.log_pending.load(Ordering::Relaxed);
    if left > 0 {
        tracing::error!("{left} prediction-log records could not be written before exiting");
    }
}
