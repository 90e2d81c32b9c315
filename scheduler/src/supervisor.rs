//! The Supervisor actor: starts the Store, the Registry, the Listener and one Study per
//! stored study; creates studies on submit. If the Store, the Registry or a Study dies the
//! whole scheduler stops: a restart recovers everything acknowledged from the store.
use crate::config::SchedulerConfig;
use crate::metrics::Metrics;
use crate::now_ms;
use crate::registry::{RegistryActor, RegistryArgs, RegistryMsg};
use crate::security::{self, Identity};
use crate::server::{Listener, ListenerArgs};
use crate::store::actor_args;
use crate::store::{Loaded, Store, StoreActor, StoreError, StoreHandle, StoreOp, StudyRow};
use crate::study::{warm_start_trials, StudyActor, StudyArgs, StudyCore, StudyMsg};
use anyhow::Context;
use mlt_protocol::ids::StudyId;
use mlt_protocol::messages::{ErrorKind, ErrorMsg, SubmitMsg, SubmittedMsg};
use mlt_protocol::records::{StudyState, StudySummary};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Study actors by id, and ids by name.
type Tables = (
    HashMap<StudyId, ActorRef<StudyMsg>>,
    HashMap<String, StudyId>,
);

/// Study actors by id and name.
#[derive(Default)]
pub struct Directory {
    inner: RwLock<Tables>,
}

impl Directory {
    /// A study's actor by id.
    pub fn study(&self, id: StudyId) -> Option<ActorRef<StudyMsg>> {
        self.inner
            .read()
            .expect("directory lock")
            .0
            .get(&id)
            .cloned()
    }

    /// A study's actor by name (or by id written as digits).
    pub fn find(&self, name: &str) -> Option<ActorRef<StudyMsg>> {
        let g = self.inner.read().expect("directory lock");
        let id =
            g.1.get(name)
                .copied()
                .or_else(|| name.parse().ok().map(StudyId))?;
        g.0.get(&id).cloned()
    }

    /// Every study's actor.
    pub fn all(&self) -> Vec<ActorRef<StudyMsg>> {
        self.inner
            .read()
            .expect("directory lock")
            .0
            .values()
            .cloned()
            .collect()
    }

    fn insert(&self, id: StudyId, name: String, actor: ActorRef<StudyMsg>) {
        let mut g = self.inner.write().expect("directory lock");
        g.0.insert(id, actor);
        g.1.insert(name, id);
    }

    fn unique_name(&self, base: &str) -> String {
        let g = self.inner.read().expect("directory lock");
        if !g.1.contains_key(base) {
            return base.to_string();
        }
        (2..)
            .map(|i| format!("{base}-{i}"))
            .find(|n| !g.1.contains_key(n))
            .expect("a free name")
    }
}

/// Handles every actor needs.
pub struct Shared {
    /// Settings.
    pub config: SchedulerConfig,
    /// Certificate and tokens.
    pub identity: Identity,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The registry.
    pub registry: ActorRef<RegistryMsg>,
    /// Studies.
    pub directory: Directory,
    /// The store, for reads and dataset uploads (study writes go through the Store actor).
    pub store: Store,
    /// The model registry.
    pub models: ActorRef<crate::models::ModelsMsg>,
    supervisor: OnceLock<ActorRef<SupervisorMsg>>,
    /// Why the scheduler stopped, when it failed.
    pub failure: Mutex<Option<String>>,
}

impl Shared {
    /// The supervisor.
    pub fn supervisor(&self) -> ActorRef<SupervisorMsg> {
        self.supervisor.get().expect("supervisor started").clone()
    }
}

/// The most data-problem lines a study keeps from its submitter, and their longest length.
pub const MAX_NOTES: usize = 64;
/// See [`MAX_NOTES`].
pub const MAX_NOTE_CHARS: usize = 1000;

/// Messages to the Supervisor.
pub enum SupervisorMsg {
    /// Validate a spec and start its study.
    CreateStudy(SubmitMsg, RpcReplyPort<Result<SubmittedMsg, ErrorMsg>>),
}

struct Supervisor;

struct SupervisorArgs {
    config: SchedulerConfig,
    identity: Identity,
    store: Store,
    loaded: Loaded,
    endpoint: quinn::Endpoint,
    shared_out: Arc<OnceLock<Arc<Shared>>>,
}

struct SupervisorState {
    shared: Arc<Shared>,
    store: StoreHandle,
    next_study: u64,
}

async fn spawn_study(
    me: &ActorRef<SupervisorMsg>,
    shared: &Arc<Shared>,
    store: &StoreHandle,
    core: StudyCore,
) -> Result<(), ActorProcessingErr> {
    let id = core.id();
    let name = core.row.name.clone();
    let resources = core.spec.resources.clone();
    let has_work = core.has_work();
    let running = core.running();
    let args = StudyArgs {
        core,
        store: store.clone(),
        registry: shared.registry.clone(),
        metrics: shared.metrics.clone(),
        max_frame: shared.config.max_frame,
    };
    let (actor, _) =
        Actor::spawn_linked(Some(format!("study-{id}")), StudyActor, args, me.get_cell()).await?;
    shared.directory.insert(id, name, actor.clone());
    shared
        .registry
        .cast(crate::registry::RegistryMsg::StudyAdded {
            id,
            actor,
            resources,
            has_work,
            running,
        })?;
    Ok(())
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        me: ActorRef<SupervisorMsg>,
        a: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let metrics = Arc::new(Metrics::default());
        let (store_ref, _) = Actor::spawn_linked(
            Some("store".into()),
            StoreActor,
            actor_args(
                a.store.clone(),
                a.config.durable,
                a.loaded.next_event.clone(),
                metrics.clone(),
            ),
            me.get_cell(),
        )
        .await?;
        let store = StoreHandle::new(store_ref, a.store.clone());
        let (registry, _) = Actor::spawn_linked(
            Some("registry".into()),
            RegistryActor,
            RegistryArgs {
                lease: a.config.lease,
                metrics: metrics.clone(),
            },
            me.get_cell(),
        )
        .await?;
        let mut loaded = a.loaded;
        let (models, _) = Actor::spawn_linked(
            Some("models".into()),
            crate::models::ModelsActor,
            crate::models::ModelsArgs {
                core: crate::models::ModelsCore::new(
                    std::mem::take(&mut loaded.models),
                    std::mem::take(&mut loaded.audit),
                )
                .with_serving(
                    std::mem::take(&mut loaded.rollouts),
                    std::mem::take(&mut loaded.alerts),
                    std::mem::take(&mut loaded.next_prediction),
                ),
                store: store.clone(),
            },
            me.get_cell(),
        )
        .await?;
        let shared = Arc::new(Shared {
            config: a.config,
            identity: a.identity,
            metrics,
            registry,
            directory: Directory::default(),
            store: a.store.clone(),
            models,
            supervisor: OnceLock::new(),
            failure: Mutex::new(None),
        });
        let _ = shared.supervisor.set(me.clone());
        for (id, row) in std::mem::take(&mut loaded.studies) {
            let spec = match mlt_spec::parse(&row.spec_toml, &row.source) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(study = %row.name, "stored spec no longer validates; study not resumed:\n{e}");
                    continue;
                }
            };
            let trials = loaded.trials.remove(&id).unwrap_or_default();
            let mut core = StudyCore::new(row, spec, trials);
            core.notes = loaded.notes.remove(&id).unwrap_or_default();
            core.annotations = loaded.annotations.remove(&id).unwrap_or_default();
            tracing::info!(study = %core.row.name, state = %core.row.state, trials = core.trials.len(), "study restored");
            spawn_study(&me, &shared, &store, core).await?;
        }
        Actor::spawn_linked(
            Some("listener".into()),
            Listener,
            ListenerArgs {
                endpoint: a.endpoint,
                shared: shared.clone(),
            },
            me.get_cell(),
        )
        .await?;
        let _ = a.shared_out.set(shared.clone());
        Ok(SupervisorState {
            shared,
            store,
            next_study: loaded.next_study,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::CreateStudy(sub, reply) => {
                let max = st.shared.config.max_spec;
                if sub.spec_toml.len() > max {
                    let _ = reply.send(Err(ErrorMsg {
                        kind: ErrorKind::InvalidSpec,
                        message: format!(
                            "{}: the spec is {} bytes; this scheduler takes at most {max} (`scheduler.max_spec_bytes` in cluster.toml)",
                            sub.source,
                            sub.spec_toml.len()
                        ),
                    }));
                    return Ok(());
                }
                let spec = match mlt_spec::parse(&sub.spec_toml, &sub.source) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = reply.send(Err(ErrorMsg {
                            kind: ErrorKind::InvalidSpec,
                            message: e.to_string(),
                        }));
                        return Ok(());
                    }
                };
                // Warm start: the finished trials of another study that fit this space.
                let mut warm = Vec::new();
                if let Some(src) = &spec.study.warm_start {
                    let copied = match st.shared.directory.find(src) {
                        Some(actor) => ractor::call_t!(actor, StudyMsg::Trials, 30_000)
                            .map_err(|e| format!("reading the trials of `{src}` failed: {e}")),
                        None => Err(format!("no study named `{src}` on this scheduler")),
                    };
                    match copied {
                        Ok(trials) => warm = trials,
                        Err(e) => {
                            let _ = reply.send(Err(ErrorMsg {
                                kind: ErrorKind::NotFound,
                                message: format!("{}: `study.warm_start`: {e}", sub.source),
                            }));
                            return Ok(());
                        }
                    }
                }
                // Uploaded data must be here before a node asks for it.
                if let mlt_protocol::spec::ObjectiveSpec::WalkForward(wf) = &spec.objective {
                    if let mlt_protocol::spec::DataSource::Datasets { files, .. } = &wf.data {
                        for f in files {
                            if !matches!(st.shared.store.dataset(&f.sha256), Ok(Some(_))) {
                                let _ = reply.send(Err(ErrorMsg {
                                    kind: ErrorKind::InvalidSpec,
                                    message: format!(
                                        "{}: `objective.data`: dataset {} is not on this scheduler (`mlt-cluster submit` uploads the files a spec names)",
                                        sub.source,
                                        f.to_spec()
                                    ),
                                }));
                                return Ok(());
                            }
                        }
                    }
                }
                let id = StudyId(st.next_study);
                st.next_study += 1;
                let name = st.shared.directory.unique_name(&spec.study.name);
                let row = StudyRow {
                    id,
                    name: name.clone(),
                    spec_toml: sub.spec_toml,
                    source: sub.source,
                    workdir: sub.workdir,
                    state: StudyState::Running,
                    created_ms: now_ms(),
                };
                let mut ops = vec![
                    StoreOp::Study(row.clone()),
                    StoreOp::NextStudy(st.next_study),
                ];
                let src = spec.study.warm_start.clone().unwrap_or_default();
                let offered = warm.len();
                let warm = warm_start_trials(&spec, &src, warm, id);
                if spec.study.warm_start.is_some() {
                    tracing::info!(study = %name, from = %src, copied = warm.len(), offered, "warm start");
                }
                for t in &warm {
                    ops.push(StoreOp::Trial(t.clone()));
                    for (step, values) in &t.intermediate {
                        ops.push(StoreOp::Intermediate {
                            study: id,
                            trial: t.number,
                            step: *step,
                            values: values.clone(),
                        });
                    }
                }
                let mut core = StudyCore::new(row, spec, warm);
                // What the submitter found in the data, bounded (a client sends it).
                core.notes = sub
                    .notes
                    .iter()
                    .take(MAX_NOTES)
                    .map(|n| n.chars().take(MAX_NOTE_CHARS).collect())
                    .collect();
                if !core.notes.is_empty() {
                    ops.push(StoreOp::Notes(id, core.notes.clone()));
                }
                tracing::info!(study = %name, %id, n_trials = core.spec.study.n_trials, "study created");
                // The client hears of the study once it is durable.
                st.store.write(
                    ops,
                    Some(Box::new(move || {
                        drop(reply.send(Ok(SubmittedMsg { id, name })))
                    })),
                );
                spawn_study(&me, &st.shared, &st.store, core).await?;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let why = match &evt {
            SupervisionEvent::ActorTerminated(cell, _, reason) => format!(
                "{} stopped: {}",
                cell.get_name().unwrap_or_default(),
                reason.clone().unwrap_or_default()
            ),
            SupervisionEvent::ActorFailed(cell, err) => {
                format!("{} failed: {err}", cell.get_name().unwrap_or_default())
            }
            _ => return Ok(()),
        };
        tracing::error!("{why}; stopping the scheduler (a restart resumes from the store)");
        *st.shared.failure.lock().expect("failure lock") = Some(why.clone());
        me.stop(Some(why));
        Ok(())
    }
}

/// A running scheduler.
pub struct SchedulerHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Shared handles.
    pub shared: Arc<Shared>,
    supervisor: ActorRef<SupervisorMsg>,
    join: tokio::task::JoinHandle<()>,
}

/// How long a starting scheduler waits for another process to let go of its store.
const STORE_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts schedulers.
pub struct Scheduler;

impl Scheduler {
    /// Opens the data dir (identity, store), restores every study and starts listening.
    pub async fn start(config: SchedulerConfig) -> anyhow::Result<SchedulerHandle> {
        let identity = security::load_or_create(&config.data_dir)?;
        // A client command reading the stopped store (`status --data-dir`, which also repairs
        // a store left unclosed) holds it for moments: wait for it rather than fail to start.
        let mut waited = std::time::Duration::ZERO;
        let store = loop {
            match Store::open(&config.data_dir) {
                Err(StoreError::Locked(p)) if waited < STORE_BUSY_WAIT => {
                    if waited.is_zero() {
                        tracing::warn!(store = %p.display(), "the store is in use by another process; waiting up to {} s", STORE_BUSY_WAIT.as_secs());
                    }
                    let step = std::time::Duration::from_millis(100);
                    tokio::time::sleep(step).await;
                    waited += step;
                }
                other => break other?,
            }
        };
        let loaded = Store::guarded(store.path(), || store.load())?;
        // What unfinished uploads left behind (a restart ends every upload).
        let dropped = Store::guarded(store.path(), || store.clean_uploads())?;
        if dropped > 0 {
            tracing::info!(chunks = dropped, "removed the chunks of unfinished uploads");
        }
        // A connection that hears nothing for half a lease is dead: a node notices a vanished
        // scheduler (and reconnects) before its trials' leases run out.
        let server = mlt_net::tls::server_config(
            identity.cert_der.clone(),
            identity.key_der.clone(),
            (config.lease / 2).clamp(
                std::time::Duration::from_millis(500),
                std::time::Duration::from_secs(30),
            ),
        )
        .context("building the TLS configuration")?;
        // The stateless-reset key outlives the process: after a restart, a node's next packet
        // on its old connection is answered with a reset it can verify, and it reconnects at
        // once.
        let reset = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &identity.reset_key);
        let socket = std::net::UdpSocket::bind(config.listen)
            .with_context(|| format!("cannot listen on {} (UDP)", config.listen))?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::new(Arc::new(reset)),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .with_context(|| format!("cannot listen on {} (UDP)", config.listen))?;
        let addr = endpoint.local_addr()?;
        let out = Arc::new(OnceLock::new());
        let args = SupervisorArgs {
            config: config.clone(),
            identity,
            store,
            loaded,
            endpoint,
            shared_out: out.clone(),
        };
        let (supervisor, join) = Actor::spawn(Some("supervisor".into()), Supervisor, args)
            .await
            .map_err(|e| anyhow::anyhow!("starting the scheduler: {e}"))?;
        let shared = out.get().expect("set in pre_start").clone();
        let advertised = match &config.advertise {
            Some(host) => format!("{host}:{}", addr.port()),
            None => addr.to_string(),
        };
        std::fs::write(config.data_dir.join("address"), format!("{advertised}\n"))
            .context("writing DIR/address")?;
        Ok(SchedulerHandle {
            addr,
            shared,
            supervisor,
            join,
        })
    }
}

impl SchedulerHandle {
    /// Creates a study, as `submit` does.
    pub async fn submit(&self, sub: SubmitMsg) -> Result<SubmittedMsg, ErrorMsg> {
        ractor::call!(self.supervisor, SupervisorMsg::CreateStudy, sub).map_err(|e| ErrorMsg {
            kind: ErrorKind::Internal,
            message: e.to_string(),
        })?
    }

    /// A study's summary.
    pub async fn summary(&self, name: &str) -> Option<StudySummary> {
        let actor = self.shared.directory.find(name)?;
        ractor::call!(actor, StudyMsg::Summary).ok()
    }

    /// The study's trials.
    pub async fn trials(&self, name: &str) -> Option<Vec<mlt_protocol::records::TrialRecord>> {
        let actor = self.shared.directory.find(name)?;
        ractor::call!(actor, StudyMsg::Trials).ok()
    }

    /// Stops every actor.
    pub async fn stop(self) {
        self.supervisor.stop(None);
        let _ = self.join.await;
    }

    /// Waits until the scheduler stops by itself; `Err` with the reason if it failed.
    pub async fn wait(self) -> Result<(), String> {
        let _ = self.join.await;
        match self.shared.failure.lock().expect("failure lock").take() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// The scheduler's failure, if it stopped on one.
    pub fn failed(&self) -> Option<String> {
        self.shared.failure.lock().expect("failure lock").clone()
    }
}
