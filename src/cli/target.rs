//! Where a client command's requests go: a running scheduler over QUIC, or a stopped
//! scheduler's store read directly (`--data-dir`).
use super::{CliError, Conn};
use anyhow::{bail, Context};
use mlt_net::{connect, ClientSession};
use mlt_protocol::handshake::{Hello, Role};
use mlt_protocol::messages::{FromClient, ToClient};
use mlt_protocol::records::StatusReport;
use mlt_protocol::token::Token;
use mlt_scheduler::store::{Store, StoreError};
use mlt_scheduler::study::StudyCore;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A connection to a scheduler.
pub struct Online(ClientSession);

impl Online {
    pub async fn request(&mut self, m: FromClient) -> anyhow::Result<ToClient> {
        self.0.writer.send(&m).await?;
        match tokio::time::timeout(Duration::from_secs(60), self.0.reader.recv::<ToClient>()).await
        {
            Err(_) => bail!("the scheduler did not answer within 60 s"),
            Ok(r) => r?.context("the scheduler closed the connection"),
        }
    }
}

/// A stopped scheduler's store, read directly.
pub struct Offline {
    studies: Vec<StudyCore>,
    models: mlt_scheduler::models::ModelsCore,
    /// The store (for returns, artifacts and datasets).
    pub store: Store,
}

impl Offline {
    /// The store in `dir`, read-only: nothing in it is modified. A store its scheduler left
    /// without closing (killed) needs redb's repair first, which writes: done when the file is
    /// writable, and said.
    fn open(dir: &Path, writable: bool) -> Result<Offline, anyhow::Error> {
        let opened = if writable {
            Store::open(dir)
        } else {
            Store::open_read_only(dir)
        };
        let store = match opened {
            Err(StoreError::NeedsRepair(p)) => {
                let store = Store::open(dir).map_err(|e| match e {
                    StoreError::Redb(_) => StoreError::NeedsRepair(p.clone()).into(),
                    other => anyhow::Error::from(other),
                })?;
                eprintln!(
                    "note: repaired {} (its scheduler was stopped without closing it)",
                    p.display()
                );
                store
            }
            other => other?,
        };
        let path = store.path().to_path_buf();
        let mut loaded = Store::guarded(&path, || store.load())?;
        let mut studies = Vec::new();
        for (id, row) in std::mem::take(&mut loaded.studies) {
            let spec = mlt_spec::parse(&row.spec_toml, &row.source).map_err(|e| {
                anyhow::anyhow!("stored spec of `{}` does not validate: {e}", row.name)
            })?;
            let mut core = StudyCore::new(row, spec, loaded.trials.remove(&id).unwrap_or_default());
            core.notes = loaded.notes.remove(&id).unwrap_or_default();
            core.annotations = loaded.annotations.remove(&id).unwrap_or_default();
            studies.push(core);
        }
        let models = mlt_scheduler::models::ModelsCore::new(
            std::mem::take(&mut loaded.models),
            std::mem::take(&mut loaded.audit),
        )
        .with_serving(
            std::mem::take(&mut loaded.rollouts),
            std::mem::take(&mut loaded.alerts),
            std::mem::take(&mut loaded.next_prediction),
        );
        Ok(Offline {
            studies,
            models,
            store,
        })
    }

    fn find(&self, name: &str) -> Option<&StudyCore> {
        self.studies
            .iter()
            .find(|s| s.row.name == name || s.id().0.to_string() == name)
    }

    fn find_mut(&mut self, name: &str) -> Option<&mut StudyCore> {
        self.studies
            .iter_mut()
            .find(|s| s.row.name == name || s.id().0.to_string() == name)
    }

    fn request(&mut self, m: FromClient) -> anyhow::Result<ToClient> {
        let missing = |n: &str| anyhow::anyhow!("no study named `{n}` in this store");
        Ok(match m {
            FromClient::Annotations(r) => {
                ToClient::Annotations(self.find(&r.study).ok_or_else(|| missing(&r.study))?.annotations.clone())
            }
            FromClient::Annotate(a) => {
                let by = format!("{} (offline)", whoami());
                let core = self.find_mut(&a.study).ok_or_else(|| missing(&a.study))?;
                let mut ops = Vec::new();
                let now = mlt_scheduler::now_ms();
                let out = core
                    .annotate(&a, &by, now, &mut ops)
                    .map_err(anyhow::Error::msg)?
                    .clone();
                self.store.apply(&ops, &mut Default::default(), true)?;
                ToClient::Annotations(out)
            }
            FromClient::Status => ToClient::Status(StatusReport {
                version: env!("CARGO_PKG_VERSION").into(),
                studies: self.studies.iter().map(StudyCore::summary).collect(),
                nodes: Vec::new(),
                metrics: Default::default(),
            }),
            FromClient::Trials(p) => {
                let all = &self.find(&p.study).ok_or_else(|| missing(&p.study))?.trials;
                ToClient::Trials(all.iter().skip(p.from as usize).take(p.limit as usize).cloned().collect())
            }
            FromClient::Best(r) => ToClient::Best(self.find(&r.study).ok_or_else(|| missing(&r.study))?.best()),
            FromClient::Study(r) => ToClient::Study(self.find(&r.study).ok_or_else(|| missing(&r.study))?.summary()),
            FromClient::StudySpec(r) => {
                let row = &self.find(&r.study).ok_or_else(|| missing(&r.study))?.row;
                ToClient::StudySpec(mlt_protocol::messages::SubmitMsg {
                    spec_toml: row.spec_toml.clone(),
                    source: row.source.clone(),
                    workdir: row.workdir.clone(),
                    notes: Vec::new(),
                })
            }
            FromClient::Artifact(r) => {
                let id = self.find(&r.study).ok_or_else(|| missing(&r.study))?.id();
                ToClient::Artifact(
                    self.store
                        .artifact(id, mlt_protocol::ids::TrialId(r.trial))?
                        .map(Box::new),
                )
            }
            FromClient::Daily(r) => {
                let id = self.find(&r.study).ok_or_else(|| missing(&r.study))?.id();
                ToClient::Daily(
                    self.store
                        .daily(id, mlt_protocol::ids::TrialId(r.trial))?
                        .map(Box::new),
                )
            }
            FromClient::Registry(req) => {
                let by = format!("{} (offline)", whoami());
                let mut ops = Vec::new();
                let reply = self
                    .models
                    .handle(req, &by, mlt_scheduler::now_ms(), &self.store, &mut ops)
                    .map_err(anyhow::Error::msg)?;
                if !ops.is_empty() {
                    self.store.apply(&ops, &mut Default::default(), true)?;
                }
                ToClient::Registry(reply)
            }
            FromClient::Serving(req) => {
                let by = format!("{} (offline)", whoami());
                let mut ops = Vec::new();
                let reply = self
                    .models
                    .serving(req, &by, mlt_scheduler::now_ms(), &self.store, &mut ops);
                if !ops.is_empty() {
                    self.store.apply(&ops, &mut Default::default(), true)?;
                }
                ToClient::Serving(reply.map_err(anyhow::Error::msg)?)
            }
            FromClient::Lineage(r) => {
                let id = self.find(&r.study).ok_or_else(|| missing(&r.study))?.id();
                ToClient::Lineage(
                    self.store
                        .run(id, mlt_protocol::ids::TrialId(r.trial))?
                        .map(Box::new),
                )
            }
            FromClient::Ledger(r) => {
                let id = self.find(&r.study).ok_or_else(|| missing(&r.study))?.id();
                ToClient::Ledger(self.store.ledger(id)?)
            }
            FromClient::Overfitting(r) => {
                let id = self.find(&r.study).ok_or_else(|| missing(&r.study))?.id();
                ToClient::Overfitting(mlt_eval::selection::study_pbo(
                    &self.store.returns(id)?,
                    mlt_scheduler::server::PBO_BLOCKS,
                ))
            }
            FromClient::Backup(path) => ToClient::Backup(self.store.backup_to(Path::new(&path))?),
            FromClient::Submit(_) | FromClient::Cancel(_) | FromClient::HasDataset(_) | FromClient::PutDataset(_) => bail!("this needs a running scheduler (the store was read offline: pass --scheduler, or start it)"),
        })
    }
}

pub enum Target {
    Online(Box<Online>),
    Offline(Offline),
}

impl Target {
    /// Every trial of `study`, read page by page (a study of any size fits no single frame).
    pub async fn trials(
        &mut self,
        study: &str,
    ) -> anyhow::Result<Vec<mlt_protocol::records::TrialRecord>> {
        const PAGE: u32 = 1000;
        let mut all = Vec::new();
        loop {
            let m = FromClient::Trials(mlt_protocol::messages::TrialPageMsg {
                study: study.to_string(),
                from: all.len() as u64,
                limit: PAGE,
            });
            let ToClient::Trials(page) = self.request(m).await? else {
                bail!("unexpected answer to a page of trials");
            };
            // The scheduler may give fewer than asked (a page is bounded in bytes too): the
            // end is an empty page.
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    pub async fn request(&mut self, m: FromClient) -> anyhow::Result<ToClient> {
        let reply = match self {
            Target::Online(o) => o.request(m).await?,
            // A damaged page can make redb panic: an error naming the store, never a crash.
            Target::Offline(o) => {
                let path = o.store.path().to_path_buf();
                Store::guarded(&path, || o.request(m))?
            }
        };
        if let ToClient::Error(e) = reply {
            return Err(match e.kind {
                mlt_protocol::messages::ErrorKind::InvalidSpec => CliError::Spec(e.message).into(),
                _ => anyhow::anyhow!(e.message),
            });
        }
        Ok(reply)
    }
}

fn read_trimmed(p: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(p)
        .with_context(|| format!("reading {}", p.display()))?
        .trim()
        .to_string())
}

async fn online(addr: &str, token: &str) -> anyhow::Result<Online> {
    let token = Token::parse(token).map_err(|e| CliError::Connect(format!("--token: {e}")))?;
    if token.role != Role::Client {
        return Err(CliError::Connect(
            "this is a node join token; client commands need the client token (DIR/client-token)"
                .into(),
        )
        .into());
    }
    let hello = Hello {
        protocol_version: 0,
        role: Role::Client,
        secret: String::new(),
        name: whoami(),
        node: None,
    };
    let s = connect(addr, &token, hello, Duration::from_secs(10))
        .await
        .map_err(|e| CliError::Connect(e.to_string()))?;
    Ok(Online(s))
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "client".into())
}

/// Finds the scheduler (or its store) as the flags say.
pub async fn target(conn: &Conn, allow_offline: bool) -> anyhow::Result<Target> {
    find(conn, allow_offline, false).await
}

/// As [`target`], for a command that changes the store: a stopped scheduler's store is opened
/// for writing (the change is made there, durably, as the scheduler would).
pub async fn target_to_write(conn: &Conn) -> anyhow::Result<Target> {
    find(conn, true, true).await
}

async fn find(conn: &Conn, allow_offline: bool, writable: bool) -> anyhow::Result<Target> {
    let dir = conn
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./mlt-data"));
    if let Some(addr) = &conn.scheduler {
        let token = match &conn.token {
            Some(t) => t.clone(),
            None => read_trimmed(&dir.join("client-token"))
                .context("no --token (or MLT_TOKEN) given")?,
        };
        return Ok(Target::Online(Box::new(online(addr, &token).await?)));
    }
    if dir.join("store.redb").exists() {
        match Offline::open(&dir, writable) {
            Ok(o) if allow_offline => return Ok(Target::Offline(o)),
            // The store is not in use: no scheduler runs on it, and its address is stale.
            Ok(_) => {
                return Err(CliError::Connect(format!(
                    "no scheduler is running on {} (its store is not in use); this command needs one: start it with `mlt-cluster scheduler --data-dir {}`",
                    dir.display(),
                    dir.display()
                ))
                .into())
            }
            Err(e)
                if e.downcast_ref::<StoreError>()
                    .is_some_and(|s| matches!(s, StoreError::Locked(_))) => {}
            Err(e) => return Err(e),
        }
    }
    let addr = read_trimmed(&dir.join("address")).map_err(|_| {
        CliError::Connect(format!("no --scheduler given and no scheduler found in {} (start one, or pass --scheduler HOST:PORT --token TOKEN)", dir.display()))
    })?;
    let token = match &conn.token {
        Some(t) => t.clone(),
        None => read_trimmed(&dir.join("client-token"))?,
    };
    Ok(Target::Online(Box::new(online(&addr, &token).await?)))
}
