//! The model registry's rules as plain functions: version numbers, one production version per
//! name, gates on promotion (`--force` with a reason to override, recorded), rollback, and the
//! audit log every change appends to. Each change yields the store operations that make it
//! durable.
use crate::store::{Store, StoreOp};
use mlt_protocol::models::{
    AuditEntry, Gate, ModelEntry, ModelVersion, RegistryReply, RegistryRequest, Stage,
};
use std::collections::BTreeMap;

/// The longest model name, in bytes.
pub const MAX_NAME: usize = 100;

/// Why a model name is refused, if it is.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("a model name has 1 to {MAX_NAME} bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || "_-.".contains(*c)))
    {
        return Err(format!(
            "model name `{name}` has {c:?}: names are letters, digits and _ - ."
        ));
    }
    Ok(())
}

/// An audit entry of `action` on `name` by `by` at `now`, the rest to be filled in.
fn audit(name: &str, by: &str, now: u64, action: &str) -> AuditEntry {
    AuditEntry {
        name: name.to_string(),
        seq: 0,
        at_ms: now,
        by: by.to_string(),
        action: action.to_string(),
        version: None,
        from: None,
        to: None,
        reason: None,
        forced: false,
        detail: Vec::new(),
    }
}

/// Every name, its gates and stages, and its audit log.
#[derive(Debug, Default)]
pub struct ModelsCore {
    /// Names.
    pub entries: BTreeMap<String, ModelEntry>,
    /// Audit logs by name, oldest first.
    pub audit: BTreeMap<String, Vec<AuditEntry>>,
    /// The latest rollout of each name.
    pub rollouts: BTreeMap<String, mlt_protocol::serving::Rollout>,
    /// Alerts by name, oldest first.
    pub alerts: BTreeMap<String, Vec<mlt_protocol::serving::Alert>>,
    /// The next prediction-log seq of each name.
    pub next_prediction: std::collections::HashMap<String, u64>,
}

impl ModelsCore {
    /// The registry as loaded from the store.
    pub fn new(entries: Vec<ModelEntry>, audit: Vec<AuditEntry>) -> Self {
        let mut c = ModelsCore {
            entries: entries.into_iter().map(|e| (e.name.clone(), e)).collect(),
            ..Default::default()
        };
        for a in audit {
            c.audit.entry(a.name.clone()).or_default().push(a);
        }
        for log in c.audit.values_mut() {
            log.sort_by_key(|a| a.seq);
        }
        c
    }

    /// Adds what serving left in the store: rollouts, alerts, the prediction log's ends.
    pub fn with_serving(
        mut self,
        rollouts: Vec<mlt_protocol::serving::Rollout>,
        alerts: Vec<mlt_protocol::serving::Alert>,
        next_prediction: std::collections::HashMap<String, u64>,
    ) -> Self {
        self.rollouts = rollouts
            .into_iter()
            .map(|r| (r.plan.name.clone(), r))
            .collect();
        for a in alerts {
            self.alerts.entry(a.name.clone()).or_default().push(a);
        }
        for list in self.alerts.values_mut() {
            list.sort_by_key(|a| a.seq);
        }
        self.next_prediction = next_prediction;
        self
    }

    pub(super) fn entry(&self, name: &str) -> Result<&ModelEntry, String> {
        self.entries
            .get(name)
            .ok_or_else(|| format!("no model named `{name}` in the registry"))
    }

    /// Appends `a` to its name's audit log, numbered next.
    fn log(&mut self, mut a: AuditEntry, ops: &mut Vec<StoreOp>) {
        let log = self.audit.entry(a.name.clone()).or_default();
        a.seq = log.len() as u64;
        log.push(a.clone());
        ops.push(StoreOp::Audit(a));
    }

    /// Logs a name's new gates.
    fn log_gates(&mut self, e: &ModelEntry, by: &str, now: u64, ops: &mut Vec<StoreOp>) {
        let detail = e.gates.iter().map(ToString::to_string).collect();
        let gates = AuditEntry {
            detail,
            ..audit(&e.name, by, now, "gates")
        };
        self.log(gates, ops);
    }

    pub(super) fn version(store: &Store, name: &str, k: u32) -> Result<ModelVersion, String> {
        store
            .model_version(name, k)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("model `{name}` has no version {k}"))
    }

    /// Carries out `req` from client `by` at `now`; reads versions from `store`; the change's
    /// writes go to `ops`. A refused request changes nothing.
    pub fn handle(
        &mut self,
        req: RegistryRequest,
        by: &str,
        now: u64,
        store: &Store,
        ops: &mut Vec<StoreOp>,
    ) -> Result<RegistryReply, String> {
        match req {
            RegistryRequest::Register(mut v, gates) => {
                check_name(&v.name)?;
                let name = v.name.clone();
                let entry = self
                    .entries
                    .entry(name.clone())
                    .or_insert_with(|| ModelEntry {
                        name: name.clone(),
                        gates: Gate::defaults(),
                        stages: Vec::new(),
                        created_ms: now,
                    });
                let k = entry.stages.len() as u32 + 1;
                entry.stages.push(Stage::Development);
                let gates_changed = gates.as_ref().is_some_and(|g| *g != entry.gates);
                if let Some(g) = gates {
                    entry.gates = g;
                }
                let entry = entry.clone();
                v.version = k;
                v.created_ms = now;
                v.created_by = by.to_string();
                let from = format!("{} trial {}", v.study, v.trial);
                ops.push(StoreOp::ModelVersion(v));
                ops.push(StoreOp::ModelEntry(entry.clone()));
                let registered = AuditEntry {
                    version: Some(k),
                    to: Some(Stage::Development),
                    detail: vec![from],
                    ..audit(&name, by, now, "register")
                };
                self.log(registered, ops);
                if gates_changed {
                    self.log_gates(&entry, by, now, ops);
                }
                Ok(RegistryReply::Entry(entry, Some(k)))
            }
            RegistryRequest::Stage {
                name,
                version,
                to,
                reason,
                force,
            } => {
                let entry = self.entry(&name)?.clone();
                let Some(&from) = entry.stages.get((version as usize).wrapping_sub(1)) else {
                    return Err(format!(
                        "model `{name}` has no version {version} (it has {})",
                        entry.stages.len()
                    ));
                };
                if from == to {
                    return Err(format!("version {version} of `{name}` is already {to}"));
                }
                if force && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                    return Err("--force needs --reason: say why the gates are overridden".into());
                }
                let mut failed = Vec::new();
                if to == Stage::Production {
                    let v = Self::version(store, &name, version)?;
                    failed = entry.gates.iter().filter_map(|g| g.fails(&v)).collect();
                    if !failed.is_empty() && !force {
                        return Err(format!(
                            "refused: version {version} of `{name}` fails its gate{} — {}; promote it with --force --reason \"…\" to override (recorded)",
                            if failed.len() == 1 { "" } else { "s" },
                            failed.join("; ")
                        ));
                    }
                }
                let mut e = entry;
                if to == Stage::Production {
                    if let Some(prev) = e.production() {
                        e.stages[prev as usize - 1] = Stage::Archived;
                        let archived = AuditEntry {
                            version: Some(prev),
                            from: Some(Stage::Production),
                            to: Some(Stage::Archived),
                            reason: Some(format!("replaced by version {version}")),
                            ..audit(&name, by, now, "stage")
                        };
                        self.log(archived, ops);
                    }
                }
                e.stages[version as usize - 1] = to;
                let forced = force && !failed.is_empty();
                let moved = AuditEntry {
                    version: Some(version),
                    from: Some(from),
                    to: Some(to),
                    reason,
                    forced,
                    detail: failed,
                    ..audit(&name, by, now, "stage")
                };
                self.log(moved, ops);
                ops.push(StoreOp::ModelEntry(e.clone()));
                self.entries.insert(name.clone(), e.clone());
                let why = format!("version {version} moved to {to} by {by}");
                self.settle_rollout(&name, e.production(), &why, now, ops);
                Ok(RegistryReply::Entry(e, Some(version)))
            }
            RegistryRequest::Rollback { name, reason } => {
                let mut e = self.entry(&name)?.clone();
                // During a rollout, rolling back ends it: the candidate leaves the traffic
                // and production stays as it is.
                let why = reason
                    .clone()
                    .or_else(|| Some(format!("registry rollback by {by}")));
                if let Some(candidate) = self.stop_rollout(&name, why, by, now, ops) {
                    let ended = AuditEntry {
                        version: Some(candidate),
                        reason,
                        detail: vec![format!(
                            "rollout of version {candidate} ended; production stays version {}",
                            e.production().map_or("none".into(), |p| p.to_string())
                        )],
                        ..audit(&name, by, now, "rollback")
                    };
                    self.log(ended, ops);
                    let production = e.production();
                    return Ok(RegistryReply::Entry(e, production));
                }
                let Some(current) = e.production() else {
                    return Err(format!(
                        "model `{name}` has no production version to roll back"
                    ));
                };
                // The version that was production before the current one became it.
                let previous = self
                    .audit
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .rev()
                    .filter(|a| a.to == Some(Stage::Production))
                    .filter_map(|a| a.version)
                    .find(|v| *v != current);
                let Some(previous) = previous else {
                    return Err(format!(
                        "model `{name}` has had no production version before version {current}"
                    ));
                };
                let before = e.stages[previous as usize - 1];
                e.stages[current as usize - 1] = Stage::Archived;
                e.stages[previous as usize - 1] = Stage::Production;
                let archived = AuditEntry {
                    version: Some(current),
                    from: Some(Stage::Production),
                    to: Some(Stage::Archived),
                    reason: Some(format!("rolled back to version {previous}")),
                    ..audit(&name, by, now, "stage")
                };
                self.log(archived, ops);
                let restored = AuditEntry {
                    version: Some(previous),
                    from: Some(before),
                    to: Some(Stage::Production),
                    reason,
                    detail: vec![format!("from version {current}")],
                    ..audit(&name, by, now, "rollback")
                };
                self.log(restored, ops);
                ops.push(StoreOp::ModelEntry(e.clone()));
                self.entries.insert(name.clone(), e.clone());
                let why = format!("rolled back to version {previous} by {by}");
                self.settle_rollout(&name, Some(previous), &why, now, ops);
                Ok(RegistryReply::Entry(e, Some(previous)))
            }
            RegistryRequest::Gates { name, gates } => {
                let mut e = self.entry(&name)?.clone();
                e.gates = gates;
                self.log_gates(&e, by, now, ops);
                ops.push(StoreOp::ModelEntry(e.clone()));
                self.entries.insert(name, e.clone());
                Ok(RegistryReply::Entry(e, None))
            }
            RegistryRequest::List => Ok(RegistryReply::List(
                self.entries.values().cloned().collect(),
            )),
            RegistryRequest::Show {
                name,
                version,
                production,
            } => {
                let e = self.entry(&name)?.clone();
                let k = if production {
                    e.production()
                        .ok_or_else(|| format!("model `{name}` has no production version"))?
                } else {
                    version.unwrap_or(e.stages.len() as u32)
                };
                let v = Self::version(store, &name, k)?;
                Ok(RegistryReply::Version(Box::new(v), e))
            }
            RegistryRequest::History(name) => {
                self.entry(&name)?;
                Ok(RegistryReply::History(
                    self.audit.get(&name).cloned().unwrap_or_default(),
                ))
            }
        }
    }
}
