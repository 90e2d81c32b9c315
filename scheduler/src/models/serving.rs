//! Serving's rules as plain functions on [`ModelsCore`]: the prediction log (numbered per
//! name, append-only), alerts, and rollouts — started, stepped up while the candidate raises
//! no alert and is not significantly worse than production, halted by an alert, promoted or
//! stopped.
use super::ModelsCore;
use crate::store::{Store, StoreOp};
use mlt_protocol::models::{RegistryRequest, Stage};
use mlt_protocol::serving::{
    Alert, Arm, Every, PredictionRecord, Rollout, RolloutEvent, RolloutPlan, RolloutReport,
    RolloutState, ServingReply, ServingRequest, ServingView,
};

/// Failed predictions a candidate must have computed before its error rate is judged.
pub const MIN_ERROR_SAMPLE: u64 = 20;

/// The most records a rollout report reads from the log.
const REPORT_RECORDS: usize = 5_000_000;

fn arm_index(a: Arm) -> Option<usize> {
    match a {
        Arm::Production => Some(0),
        Arm::Candidate => Some(1),
        Arm::Pinned => None,
    }
}

fn check_plan(p: &RolloutPlan) -> Result<(), String> {
    if p.shadow {
        return Ok(());
    }
    if p.steps.is_empty() {
        return Err("a rollout needs a share (--share) or steps (--steps)".into());
    }
    if let Some(s) = p
        .steps
        .iter()
        .find(|s| !(s.is_finite() && **s > 0.0 && **s <= 100.0))
    {
        return Err(format!(
            "a share of {s}% is not between 0 and 100 (exclusive of 0)"
        ));
    }
    if p.steps.windows(2).any(|w| w[1] <= w[0]) {
        return Err(format!(
            "steps must rise: {}",
            p.steps
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    if p.steps.len() > 1 && p.every.is_none() {
        return Err("a ramp of several steps needs --every (requests, or a duration)".into());
    }
    if !(p.max_error_rate > 0.0 && p.max_error_rate <= 1.0) {
        return Err("--max-error-rate is a fraction in (0, 1]".into());
    }
    if !(p.alpha > 0.0 && p.alpha < 1.0) {
        return Err("--alpha is a probability in (0, 1)".into());
    }
    Ok(())
}

impl ModelsCore {
    fn push_event(r: &mut Rollout, now: u64, what: String) {
        tracing::info!(model = %r.plan.name, "rollout: {what}");
        r.events.push(RolloutEvent { at_ms: now, what });
    }

    /// Appends an alert to its name's list; an alert on an active rollout's candidate (or
    /// on the whole name) halts it.
    fn raise(&mut self, mut a: Alert, now: u64, ops: &mut Vec<StoreOp>) {
        let list = self.alerts.entry(a.name.clone()).or_default();
        a.seq = list.last().map_or(0, |l| l.seq + 1);
        if a.at_ms == 0 {
            a.at_ms = now;
        }
        tracing::warn!(model = %a.name, version = ?a.version, rule = %a.rule, "alert: {}", a.message);
        list.push(a.clone());
        ops.push(StoreOp::Alert(a.clone()));
        if let Some(r) = self.rollouts.get_mut(&a.name) {
            let concerned = a.version.is_none_or(|v| v == r.plan.candidate);
            if r.state == RolloutState::Active && concerned {
                r.state = RolloutState::Halted;
                let why = format!("alert `{}`: {}", a.rule, a.message);
                r.reason = Some(why.clone());
                Self::push_event(
                    r,
                    now,
                    format!(
                        "halted by {why}; all traffic back on production (version {})",
                        r.production
                    ),
                );
                ops.push(StoreOp::Rollout(Box::new(r.clone())));
            }
        }
    }

    /// The A/B report of `name`'s rollout over the log (and `pending` records not yet
    /// written).
    pub fn report(
        &self,
        name: &str,
        store: &Store,
        pending: &[PredictionRecord],
    ) -> Result<RolloutReport, String> {
        let r = self
            .rollouts
            .get(name)
            .ok_or_else(|| format!("model `{name}` has no rollout"))?;
        let mut recs = store
            .predictions(name, r.first_seq, REPORT_RECORDS)
            .map_err(|e| e.to_string())?;
        let last = recs.last().map(|x| x.seq);
        recs.extend(
            pending
                .iter()
                .filter(|p| p.name == name && last.is_none_or(|l| p.seq > l))
                .cloned(),
        );
        let classify = |k: u32| -> Result<bool, String> {
            Ok(Self::version(store, name, k)?.artifact.classify)
        };
        let side = |i: usize, version: u32, arm: Arm| -> Result<mlt_eval::ab::Side, String> {
            Ok(mlt_eval::ab::Side {
                version,
                arm,
                classify: classify(version)?,
                served: r.served[i],
                errors: r.errors[i],
            })
        };
        Ok(mlt_eval::ab::compare(
            name,
            &recs,
            [
                side(0, r.production, Arm::Production)?,
                side(1, r.plan.candidate, Arm::Candidate)?,
            ],
        ))
    }

    /// At the end of a step: halt when the candidate is significantly worse, else the next
    /// step (or stay on the last).
    fn end_step(
        &mut self,
        name: &str,
        now: u64,
        store: &Store,
        pending: &[PredictionRecord],
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), String> {
        let rep = self.report(name, store, pending)?;
        let Some(r) = self.rollouts.get(name) else {
            return Ok(());
        };
        if rep.pairs >= r.plan.min_pairs && rep.p_worse < r.plan.alpha {
            let alert = Alert {
                name: name.to_string(),
                version: Some(r.plan.candidate),
                seq: 0,
                at_ms: now,
                rule: "worse".into(),
                message: rep.verdict.clone(),
                source: "rollout".into(),
            };
            self.raise(alert, now, ops);
            return Ok(());
        }
        let r = self.rollouts.get_mut(name).expect("present");
        if r.step + 1 < r.plan.steps.len() {
            r.step += 1;
            r.step_started_ms = now;
            r.step_requests = 0;
            let what = format!(
                "step {} of {}: {}% of traffic to version {} ({} paired days so far: {})",
                r.step + 1,
                r.plan.steps.len(),
                r.plan.steps[r.step],
                r.plan.candidate,
                rep.pairs,
                rep.verdict
            );
            Self::push_event(r, now, what);
        } else {
            // The last step: it stays until promoted or stopped; checked again each period.
            r.step_started_ms = now;
            r.step_requests = 0;
        }
        ops.push(StoreOp::Rollout(Box::new(r.clone())));
        Ok(())
    }

    /// Ends steps whose time is up.
    fn tick(&mut self, now: u64, store: &Store, ops: &mut Vec<StoreOp>) -> Result<(), String> {
        let due: Vec<String> = self
            .rollouts
            .values()
            .filter(|r| r.state == RolloutState::Active && !r.plan.shadow)
            .filter(|r| matches!(r.plan.every, Some(Every::Millis(ms)) if now >= r.step_started_ms + ms))
            .map(|r| r.plan.name.clone())
            .collect();
        for name in due {
            self.end_step(&name, now, store, &[], ops)?;
        }
        Ok(())
    }

    /// What happens to `name`'s active rollout when its production version becomes `now_prod`
    /// by a registry change: promoted when it is the candidate, else stopped.
    pub(super) fn settle_rollout(
        &mut self,
        name: &str,
        now_prod: Option<u32>,
        why: &str,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        let Some(r) = self.rollouts.get_mut(name) else {
            return;
        };
        if !matches!(r.state, RolloutState::Active | RolloutState::Halted)
            || now_prod == Some(r.production)
        {
            return;
        }
        if now_prod == Some(r.plan.candidate) {
            r.state = RolloutState::Promoted;
            Self::push_event(
                r,
                now,
                format!(
                    "promoted: version {} is production ({why})",
                    r.plan.candidate
                ),
            );
        } else {
            r.state = RolloutState::Stopped;
            r.reason = Some(why.to_string());
            Self::push_event(r, now, format!("stopped: {why}"));
        }
        ops.push(StoreOp::Rollout(Box::new(r.clone())));
    }

    /// Ends `name`'s rollout by hand (`rollout stop`, `registry rollback` during a rollout):
    /// the version it was, or None when it had none active.
    pub(super) fn stop_rollout(
        &mut self,
        name: &str,
        reason: Option<String>,
        by: &str,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Option<u32> {
        let r = self.rollouts.get_mut(name)?;
        if !matches!(r.state, RolloutState::Active | RolloutState::Halted) {
            return None;
        }
        r.state = RolloutState::Stopped;
        let why = reason.unwrap_or_else(|| format!("stopped by {by}"));
        r.reason = Some(why.clone());
        let what = format!(
            "stopped ({why}): all traffic on production (version {})",
            r.production
        );
        Self::push_event(r, now, what);
        ops.push(StoreOp::Rollout(Box::new(r.clone())));
        Some(r.plan.candidate)
    }

    /// Carries out a serving request, as [`ModelsCore::handle`] does a registry one.
    pub fn serving(
        &mut self,
        req: ServingRequest,
        by: &str,
        now: u64,
        store: &Store,
        ops: &mut Vec<StoreOp>,
    ) -> Result<ServingReply, String> {
        match req {
            ServingRequest::View => {
                self.tick(now, store, ops)?;
                Ok(ServingReply::View(ServingView {
                    entries: self.entries.values().cloned().collect(),
                    rollouts: self.rollouts.values().cloned().collect(),
                }))
            }
            ServingRequest::Log(mut records) => {
                let mut first = None;
                let count = records.len() as u64;
                let mut touched = Vec::new();
                if let Some(rec) = records.iter().find(|r| !self.entries.contains_key(&r.name)) {
                    return Err(format!("no model named `{}` in the registry", rec.name));
                }
                for rec in &mut records {
                    let next = self.next_prediction.entry(rec.name.clone()).or_default();
                    rec.seq = *next;
                    *next += 1;
                    first.get_or_insert(rec.seq);
                    let Some(r) = self.rollouts.get_mut(&rec.name) else {
                        continue;
                    };
                    if r.state != RolloutState::Active {
                        continue;
                    }
                    let Some(i) = arm_index(rec.arm) else {
                        continue;
                    };
                    let version = if i == 0 {
                        r.production
                    } else {
                        r.plan.candidate
                    };
                    if rec.version != version {
                        continue;
                    }
                    r.computed[i] += 1;
                    if rec.error.is_some() {
                        r.errors[i] += 1;
                    } else if rec.served {
                        r.served[i] += 1;
                    }
                    if rec.served {
                        r.step_requests += 1;
                    }
                    if !touched.contains(&rec.name) {
                        touched.push(rec.name.clone());
                    }
                }
                ops.extend(records.iter().cloned().map(StoreOp::Prediction));
                for name in touched {
                    let Some(r) = self.rollouts.get(&name) else {
                        continue;
                    };
                    let rate = r.errors[1] as f64 / r.computed[1].max(1) as f64;
                    if r.computed[1] >= MIN_ERROR_SAMPLE && rate > r.plan.max_error_rate {
                        let alert = Alert {
                            name: name.clone(),
                            version: Some(r.plan.candidate),
                            seq: 0,
                            at_ms: now,
                            rule: "errors".into(),
                            message: format!(
                                "version {} failed {} of {} predictions ({:.1}%, above {:.1}%)",
                                r.plan.candidate,
                                r.errors[1],
                                r.computed[1],
                                100.0 * rate,
                                100.0 * r.plan.max_error_rate
                            ),
                            source: by.to_string(),
                        };
                        self.raise(alert, now, ops);
                        continue;
                    }
                    let due = !r.plan.shadow
                        && matches!(r.plan.every, Some(Every::Requests(n)) if r.step_requests >= n);
                    if due {
                        self.end_step(&name, now, store, &records, ops)?;
                    } else {
                        ops.push(StoreOp::Rollout(Box::new(r.clone())));
                    }
                }
                self.tick(now, store, ops)?;
                Ok(ServingReply::Logged(first.unwrap_or(0), count))
            }
            ServingRequest::Alert(a) => {
                self.entry(&a.name)?;
                if let Some(v) = a.version {
                    Self::version(store, &a.name, v)?;
                }
                if a.rule.trim().is_empty() || a.message.len() > 4096 || a.rule.len() > 100 {
                    return Err(
                        "an alert needs a rule (1 to 100 bytes) and a message of at most 4 KiB"
                            .into(),
                    );
                }
                let name = a.name.clone();
                self.raise(a, now, ops);
                Ok(ServingReply::Alerts(
                    self.alerts.get(&name).cloned().unwrap_or_default(),
                ))
            }
            ServingRequest::Alerts(name, limit) => {
                let mut out: Vec<Alert> = match &name {
                    Some(n) => {
                        self.entry(n)?;
                        self.alerts.get(n).cloned().unwrap_or_default()
                    }
                    None => self.alerts.values().flatten().cloned().collect(),
                };
                out.sort_by_key(|a| (a.at_ms, a.seq));
                let skip = out.len().saturating_sub(limit as usize);
                Ok(ServingReply::Alerts(out.split_off(skip)))
            }
            ServingRequest::Start(plan) => {
                check_plan(&plan)?;
                let name = plan.name.clone();
                let e = self.entry(&name)?.clone();
                let production = e.production().ok_or_else(|| {
                    format!("model `{name}` has no production version to roll out against: promote one first")
                })?;
                let Some(stage) = e.stages.get((plan.candidate as usize).wrapping_sub(1)) else {
                    return Err(format!(
                        "model `{name}` has no version {} (it has {})",
                        plan.candidate,
                        e.stages.len()
                    ));
                };
                if plan.candidate == production {
                    return Err(format!(
                        "version {production} of `{name}` is already production"
                    ));
                }
                if *stage == Stage::Archived {
                    return Err(format!(
                        "version {} of `{name}` is archived: move it to staging first",
                        plan.candidate
                    ));
                }
                if let Some(r) = self.rollouts.get(&name) {
                    if matches!(r.state, RolloutState::Active) {
                        return Err(format!(
                            "`{name}` already has an active rollout of version {}: `rollout promote {name}` or `rollout stop {name}` first",
                            r.plan.candidate
                        ));
                    }
                }
                let mut plan = plan;
                if plan.shadow {
                    plan.steps = vec![0.0];
                    plan.every = None;
                }
                let salt = {
                    use rand::Rng;
                    rand::rng().random::<u64>()
                };
                let mut r = Rollout {
                    production,
                    step: 0,
                    state: RolloutState::Active,
                    reason: None,
                    started_ms: now,
                    step_started_ms: now,
                    step_requests: 0,
                    first_seq: self.next_prediction.get(&name).copied().unwrap_or(0),
                    served: [0; 2],
                    errors: [0; 2],
                    computed: [0; 2],
                    salt,
                    by: by.to_string(),
                    events: Vec::new(),
                    plan,
                };
                let what = if r.plan.shadow {
                    format!(
                        "started in shadow: version {} computed on all traffic, version {production} serving it",
                        r.plan.candidate
                    )
                } else {
                    format!(
                        "started: {}% of traffic to version {} (production: version {production}, sticky by {:?}){}",
                        r.plan.steps[0],
                        r.plan.candidate,
                        r.plan.sticky,
                        match (&r.plan.every, r.plan.steps.len()) {
                            (Some(e), n) if n > 1 => format!(
                                "; steps {} every {e}",
                                r.plan.steps.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")
                            ),
                            _ => String::new(),
                        }
                    )
                };
                Self::push_event(&mut r, now, what);
                ops.push(StoreOp::Rollout(Box::new(r.clone())));
                self.rollouts.insert(name, r.clone());
                Ok(ServingReply::Rollout(Box::new(r), None))
            }
            ServingRequest::Status(name) => {
                self.entry(&name)?;
                self.tick(now, store, ops)?;
                let rep = self.report(&name, store, &[])?;
                let r = self.rollouts.get(&name).expect("reported").clone();
                Ok(ServingReply::Rollout(Box::new(r), Some(rep)))
            }
            ServingRequest::Promote {
                name,
                reason,
                force,
            } => {
                let r = self
                    .rollouts
                    .get(&name)
                    .ok_or_else(|| format!("model `{name}` has no rollout"))?
                    .clone();
                if !matches!(r.state, RolloutState::Active | RolloutState::Halted) {
                    return Err(format!(
                        "the rollout of `{name}` is {}: nothing to promote",
                        r.state.as_str()
                    ));
                }
                let reason = reason
                    .or_else(|| Some(format!("rollout of version {} promoted", r.plan.candidate)));
                self.handle(
                    RegistryRequest::Stage {
                        name: name.clone(),
                        version: r.plan.candidate,
                        to: Stage::Production,
                        reason,
                        force,
                    },
                    by,
                    now,
                    store,
                    ops,
                )?;
                let r = self.rollouts.get(&name).expect("present").clone();
                Ok(ServingReply::Rollout(Box::new(r), None))
            }
            ServingRequest::Read { name, from, limit } => {
                self.entry(&name)?;
                let recs = store
                    .predictions(&name, from, limit.min(100_000) as usize)
                    .map_err(|e| e.to_string())?;
                Ok(ServingReply::Records(recs))
            }
            ServingRequest::Stop { name, reason } => {
                self.entry(&name)?;
                if self.stop_rollout(&name, reason, by, now, ops).is_none() {
                    return Err(format!("model `{name}` has no active rollout"));
                }
                let r = self.rollouts.get(&name).expect("present").clone();
                Ok(ServingReply::Rollout(Box::new(r), None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::models::{ModelVersion, RegistryReply, Selection};
    use mlt_protocol::records::ModelArtifact;
    use mlt_protocol::serving::Sticky;

    fn version(name: &str) -> ModelVersion {
        ModelVersion {
            name: name.into(),
            version: 0,
            created_ms: 0,
            created_by: String::new(),
            study: "s".into(),
            study_id: mlt_protocol::ids::StudyId(1),
            trial: 0,
            spec_toml: String::new(),
            spec_sha256: String::new(),
            params: Default::default(),
            values: None,
            metrics: Default::default(),
            holdout: None,
            selection: Selection::default(),
            artifact: ModelArtifact {
                format: "ridge".into(),
                model: String::new(),
                features: Vec::new(),
                classify: false,
                horizon: 1,
                adjusted: false,
                trained: (0, 0),
                rounds: None,
                lookback: 1,
                importance: Vec::new(),
            },
            lineage: None,
            refit: None,
        }
    }

    /// A registry with versions 1 (production) and 2 of `m`, in a store.
    fn registry() -> (tempfile::TempDir, Store, ModelsCore) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut core = ModelsCore::default();
        let mut ops = Vec::new();
        for _ in 0..2 {
            let r = core.handle(
                RegistryRequest::Register(Box::new(version("m")), Some(Vec::new())),
                "t",
                1,
                &store,
                &mut ops,
            );
            assert!(matches!(r, Ok(RegistryReply::Entry(..))));
        }
        store.apply(&ops, &mut Default::default(), true).unwrap();
        ops.clear();
        let stage = RegistryRequest::Stage {
            name: "m".into(),
            version: 1,
            to: Stage::Production,
            reason: None,
            force: false,
        };
        core.handle(stage, "t", 2, &store, &mut ops).unwrap();
        store.apply(&ops, &mut Default::default(), true).unwrap();
        (dir, store, core)
    }

    fn plan(steps: Vec<f64>, every: u64) -> RolloutPlan {
        RolloutPlan {
            name: "m".into(),
            candidate: 2,
            steps,
            every: Some(Every::Requests(every)),
            shadow: false,
            sticky: Sticky::Instrument,
            max_error_rate: 0.05,
            alpha: 0.01,
            min_pairs: 20,
        }
    }

    /// One day of `n` instruments: production predicts each move, the candidate `good` does
    /// too, else the opposite.
    fn day(day: i64, n: usize, good: bool) -> Vec<PredictionRecord> {
        let mut out = Vec::new();
        for i in 0..n {
            // Closes that move ±1 % by a fixed pattern; the prediction is tomorrow's move.
            let close = |d: i64| 100.0 * (1.0 + 0.01 * (((d * 7 + i as i64 * 3) % 5) as f64 - 2.0));
            let truth = close(day + 1) / close(day) - 1.0;
            for (version, arm, pred) in [
                (1, Arm::Production, truth),
                (2, Arm::Candidate, if good { truth } else { -truth }),
            ] {
                out.push(PredictionRecord {
                    name: "m".into(),
                    seq: 0,
                    at_ms: 0,
                    version,
                    arm,
                    served: arm == Arm::Production,
                    endpoint: "bars".into(),
                    instrument: format!("I{i}"),
                    day,
                    close: close(day),
                    features_hash: 0,
                    prediction: pred,
                    error: None,
                    client: None,
                });
            }
        }
        out
    }

    fn log(core: &mut ModelsCore, store: &Store, recs: Vec<PredictionRecord>) {
        let mut ops = Vec::new();
        core.serving(ServingRequest::Log(recs), "server", 10, store, &mut ops)
            .unwrap();
        store.apply(&ops, &mut Default::default(), true).unwrap();
    }

    #[test]
    fn a_ramp_steps_up_while_the_candidate_holds_and_halts_when_it_is_worse() {
        let (_d, store, mut core) = registry();
        let mut ops = Vec::new();
        core.serving(
            ServingRequest::Start(plan(vec![10.0, 50.0, 100.0], 40)),
            "t",
            5,
            &store,
            &mut ops,
        )
        .unwrap();
        store.apply(&ops, &mut Default::default(), true).unwrap();
        // As good as production: 40 served a step, each step taken.
        for d in 0..5 {
            log(&mut core, &store, day(d, 8, true));
        }
        assert_eq!(
            core.rollouts["m"].step, 1,
            "{:?}",
            core.rollouts["m"].events
        );
        for d in 5..10 {
            log(&mut core, &store, day(d, 8, true));
        }
        assert_eq!(core.rollouts["m"].step, 2);
        assert_eq!(core.rollouts["m"].state, RolloutState::Active);
        // Then always wrong: halted at the end of the (last) step, with an alert.
        for d in 10..15 {
            log(&mut core, &store, day(d, 8, false));
        }
        let r = &core.rollouts["m"];
        assert_eq!(r.state, RolloutState::Halted, "{:?}", r.events);
        assert!(
            r.reason.as_deref().unwrap().contains("alert `worse`"),
            "{:?}",
            r.reason
        );
        assert_eq!(r.share(), 0.0);
        assert_eq!(core.alerts["m"][0].rule, "worse");
        assert_eq!(core.alerts["m"][0].version, Some(2));
    }

    #[test]
    fn a_ramp_by_duration_steps_when_its_time_is_up() {
        let (_d, store, mut core) = registry();
        let mut p = plan(vec![25.0, 100.0], 1);
        p.every = Some(Every::Millis(60_000));
        let mut ops = Vec::new();
        core.serving(ServingRequest::Start(p), "t", 1_000, &store, &mut ops)
            .unwrap();
        store.apply(&ops, &mut Default::default(), true).unwrap();
        let view = |core: &mut ModelsCore, now: u64| {
            let mut ops = Vec::new();
            let ServingReply::View(v) = core
                .serving(ServingRequest::View, "s", now, &store, &mut ops)
                .unwrap()
            else {
                panic!()
            };
            store.apply(&ops, &mut Default::default(), true).unwrap();
            v.rollouts[0].share()
        };
        assert_eq!(view(&mut core, 30_000), 25.0);
        assert_eq!(view(&mut core, 61_000), 100.0);
        assert!(core.rollouts["m"]
            .events
            .last()
            .unwrap()
            .what
            .starts_with("step 2 of 2: 100%"));
    }

    #[test]
    fn failures_alert_and_halt_promotion_and_rollback_end_a_rollout() {
        let (_d, store, mut core) = registry();
        let mut ops = Vec::new();
        core.serving(
            ServingRequest::Start(plan(vec![10.0], 1_000)),
            "t",
            5,
            &store,
            &mut ops,
        )
        .unwrap();
        // One at a time while active.
        let again = core.serving(
            ServingRequest::Start(plan(vec![20.0], 1_000)),
            "t",
            6,
            &store,
            &mut ops,
        );
        assert!(again.unwrap_err().contains("already has an active rollout"));
        // The candidate fails on 19 of 19: not judged yet; on the 20th, an alert halts it.
        let mut recs = day(0, 19, true);
        for r in recs.iter_mut().filter(|r| r.arm == Arm::Candidate) {
            r.error = Some("missing column `volume`".into());
        }
        log(&mut core, &store, recs);
        assert_eq!(core.rollouts["m"].state, RolloutState::Active);
        let mut recs = day(1, 1, true);
        recs[1].error = Some("missing column `volume`".into());
        log(&mut core, &store, recs);
        let r = &core.rollouts["m"];
        assert_eq!(r.state, RolloutState::Halted);
        assert!(r.reason.as_deref().unwrap().contains("alert `errors`"));
        // Refused logs change nothing; the log's numbering goes on.
        let mut bad = day(2, 1, true);
        bad[0].name = "other".into();
        let e = core.serving(ServingRequest::Log(bad), "s", 11, &store, &mut Vec::new());
        assert!(e.unwrap_err().contains("no model named `other`"));
        assert_eq!(core.next_prediction["m"], 40);
        // A halted rollout ends with a rollback; production stays.
        let mut ops = Vec::new();
        let rb = RegistryRequest::Rollback {
            name: "m".into(),
            reason: Some("halted".into()),
        };
        let RegistryReply::Entry(e, k) = core.handle(rb, "t", 12, &store, &mut ops).unwrap() else {
            panic!()
        };
        assert_eq!((e.production(), k), (Some(1), Some(1)));
        assert_eq!(core.rollouts["m"].state, RolloutState::Stopped);
        store.apply(&ops, &mut Default::default(), true).unwrap();
        // A new rollout, promoted: version 2 is production, the rollout says so.
        let mut ops = Vec::new();
        core.serving(
            ServingRequest::Start(plan(vec![50.0], 1_000)),
            "t",
            13,
            &store,
            &mut ops,
        )
        .unwrap();
        let promote = ServingRequest::Promote {
            name: "m".into(),
            reason: None,
            force: false,
        };
        core.serving(promote, "t", 14, &store, &mut ops).unwrap();
        assert_eq!(core.rollouts["m"].state, RolloutState::Promoted);
        assert_eq!(core.entries["m"].production(), Some(2));
    }
}
