//! The study's lifecycle as plain functions over [`StudyCore`]: ask, report, finish, release,
//! lose, cancel. Each returns the store writes it implies; the actor applies them.
use crate::search::space::assemble;
use crate::search::{pruner_for, sampler_for, trial_rng, Ask, Pruner, Sampler};
use crate::store::{Event, StoreOp, StudyRow};
use mlt_protocol::ids::{NodeId, SlotId, StudyId, TrialId, TrialKey};
use mlt_protocol::messages::{Outcome, Verdict};
use mlt_protocol::records::{
    Metrics, StudyState, StudySummary, TrialCounts, TrialOrigin, TrialRecord, TrialState,
};
use mlt_protocol::spec::Spec;
use std::collections::{BTreeMap, VecDeque};

/// A study's state.
pub struct StudyCore {
    /// Stored row (name, spec text, state).
    pub row: StudyRow,
    /// The validated spec.
    pub spec: Spec,
    /// Trials by number.
    pub trials: Vec<TrialRecord>,
    requeued: VecDeque<TrialId>,
    counts: TrialCounts,
    /// Trials copied from another study (`warm_start`): they come first and use no budget.
    n_warm: u64,
    /// Hold-out evaluations created when the search ended (they use no budget either).
    n_holdout: u64,
    sampler: Box<dyn Sampler>,
    pruner: Option<Box<dyn Pruner>>,
    /// Problems found in the study's data at submit (shown by `status`).
    pub notes: Vec<String>,
    /// Tags and notes people added (`tag`, `note`).
    pub annotations: mlt_protocol::catalog::Annotations,
}

/// What became of a finish message.
#[derive(Debug, PartialEq, Eq)]
pub enum FinishResult {
    /// Recorded now.
    Recorded,
    /// Not the current attempt, or already ended: ignored (still acknowledged).
    Ignored,
}

impl StudyCore {
    /// A study from its row and its stored trials. Trials that were running keep their
    /// lease holder; the registry decides whether they come back.
    pub fn new(row: StudyRow, spec: Spec, trials: Vec<TrialRecord>) -> Self {
        let mut counts = TrialCounts::default();
        let mut requeued = VecDeque::new();
        for t in &trials {
            counts.add(t.state);
            if t.state == TrialState::Waiting {
                requeued.push_back(t.number);
            }
        }
        let sampler = sampler_for(&spec);
        let pruner = pruner_for(&spec);
        let n_warm = trials
            .iter()
            .filter(|t| matches!(t.origin, TrialOrigin::WarmStart(..)))
            .count() as u64;
        let n_holdout = trials
            .iter()
            .filter(|t| matches!(t.origin, TrialOrigin::Holdout(_)))
            .count() as u64;
        Self {
            row,
            spec,
            trials,
            requeued,
            counts,
            n_warm,
            n_holdout,
            sampler,
            pruner,
            notes: Vec::new(),
            annotations: Default::default(),
        }
    }

    /// Id.
    pub fn id(&self) -> StudyId {
        self.row.id
    }

    fn set_state(&mut self, n: TrialId, state: TrialState) {
        let t = &mut self.trials[n.0 as usize];
        self.counts.moved(t.state, state);
        t.state = state;
    }

    /// Whether an ask could produce a trial now.
    pub fn has_work(&self) -> bool {
        let room = self
            .spec
            .study
            .max_concurrent
            .is_none_or(|m| self.counts.running < m as u64);
        self.row.state == StudyState::Running
            && room
            && (!self.requeued.is_empty()
                || (self.trials.len() as u64) < self.spec.study.n_trials + self.n_warm)
    }

    /// Whether the next suggestion may take long (the sampler says).
    pub fn sampling_is_slow(&self) -> bool {
        self.sampler.is_slow(self.trials.len())
    }

    /// Counts by state.
    pub fn counts(&self) -> &TrialCounts {
        &self.counts
    }

    /// Hands a trial to `node`/`slot`: a re-queued one first, else a new sample.
    pub fn ask(
        &mut self,
        node: NodeId,
        slot: SlotId,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Option<TrialKey> {
        if !self.has_work() {
            return None;
        }
        let number = match self.requeued.pop_front() {
            Some(n) => n,
            None => {
                let number = TrialId(self.trials.len() as u64);
                let suggestion = self.sampler.sample(&Ask {
                    space: &self.spec.space,
                    directions: &self.spec.study.directions,
                    number,
                    trials: &self.trials,
                });
                // `[[enqueue]]` entries come first, in order; what they leave out is sampled.
                let k = self.trials.len() as u64 - self.n_warm;
                let (params, origin) = match self.spec.enqueue.get(k as usize) {
                    Some(preset) => (
                        assemble(
                            &self.spec.space,
                            Some(preset),
                            &suggestion.params,
                            &mut trial_rng(self.spec.study.seed, number),
                        ),
                        TrialOrigin::Enqueued(k as u32),
                    ),
                    None => (suggestion.params, TrialOrigin::Sampler),
                };
                ops.push(StoreOp::Event(
                    self.id(),
                    Event::Asked {
                        trial: number,
                        params: params.clone(),
                    },
                ));
                let t = self.new_trial(number, params, origin, suggestion.generation, now);
                self.trials.push(t);
                self.counts.add(TrialState::Waiting);
                number
            }
        };
        self.set_state(number, TrialState::Running);
        let t = &mut self.trials[number.0 as usize];
        t.attempt += 1;
        t.node = Some(node);
        t.slot = Some(slot);
        t.started_ms = Some(now);
        ops.push(StoreOp::Trial(t.clone()));
        let attempt = t.attempt;
        Some(TrialKey {
            study: self.id(),
            trial: number,
            attempt,
        })
    }

    /// A new trial, waiting.
    fn new_trial(
        &self,
        number: TrialId,
        params: mlt_protocol::records::Params,
        origin: TrialOrigin,
        generation: Option<u32>,
        now: u64,
    ) -> TrialRecord {
        TrialRecord {
            study: self.id(),
            number,
            state: TrialState::Waiting,
            attempt: 0,
            values: None,
            params,
            intermediate: BTreeMap::new(),
            node: None,
            slot: None,
            message: None,
            created_ms: now,
            started_ms: None,
            finished_ms: None,
            origin,
            generation,
            constraints: None,
            metrics: Metrics::new(),
        }
    }

    fn current(&self, key: &TrialKey, node: NodeId) -> bool {
        self.trials.get(key.trial.0 as usize).is_some_and(|t| {
            t.state == TrialState::Running && t.attempt == key.attempt && t.node == Some(node)
        })
    }

    /// An intermediate value: recorded, then judged by the pruner.
    pub fn report(
        &mut self,
        node: NodeId,
        key: TrialKey,
        step: u64,
        values: Vec<f64>,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Verdict {
        if !self.current(&key, node) || values.len() != self.spec.study.directions.len() {
            return Verdict::Stale;
        }
        let t = &mut self.trials[key.trial.0 as usize];
        t.intermediate.insert(step, values.clone());
        ops.push(StoreOp::Intermediate {
            study: key.study,
            trial: key.trial,
            step,
            values,
        });
        let Some(pruner) = &self.pruner else {
            return Verdict::Continue;
        };
        if self.spec.study.directions.len() != 1 {
            return Verdict::Continue;
        }
        let t = &self.trials[key.trial.0 as usize];
        if matches!(t.origin, TrialOrigin::Holdout(_)) {
            return Verdict::Continue;
        }
        match pruner.prune(t, step, &self.trials, self.spec.study.directions[0]) {
            None => Verdict::Continue,
            Some(reason) => {
                let values = t.intermediate.get(&step).cloned();
                self.end(
                    key.trial,
                    TrialState::Pruned,
                    values,
                    Some(reason),
                    now,
                    ops,
                );
                Verdict::Prune
            }
        }
    }

    fn end(
        &mut self,
        n: TrialId,
        state: TrialState,
        values: Option<Vec<f64>>,
        message: Option<String>,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) {
        self.set_state(n, state);
        let t = &mut self.trials[n.0 as usize];
        t.values = values.clone();
        t.message = message;
        t.finished_ms = Some(now);
        ops.push(StoreOp::Trial(t.clone()));
        ops.push(StoreOp::Event(
            self.row.id,
            Event::Told {
                trial: n,
                state,
                values,
            },
        ));
        self.check_done(ops);
    }

    fn check_done(&mut self, ops: &mut Vec<StoreOp>) {
        if self.row.state != StudyState::Running
            || self.counts.finished() < self.spec.study.n_trials + self.n_warm + self.n_holdout
        {
            return;
        }
        if self.n_holdout == 0 && self.add_holdout_trials(ops) > 0 {
            return;
        }
        self.row.state = StudyState::Complete;
        ops.push(StoreOp::Study(self.row.clone()));
    }

    /// When the search is over: queues the evaluation of its best trials on the hold-out
    /// period (walk-forward studies with `holdout`). Returns how many were queued.
    fn add_holdout_trials(&mut self, ops: &mut Vec<StoreOp>) -> u64 {
        let top = match &self.spec.objective {
            mlt_protocol::spec::ObjectiveSpec::WalkForward(wf) if wf.windows.holdout > 0 => {
                wf.windows.holdout_top as usize
            }
            _ => return 0,
        };
        let dirs = &self.spec.study.directions;
        let mut best = if dirs.len() == 1 {
            self.ranked_single(top)
        } else {
            // The Pareto front, ordered by its first objective.
            let mut front = self.best();
            let v = |t: &TrialRecord| t.values.as_ref().map_or(f64::NAN, |v| v[0]);
            front.sort_by(|a, b| {
                if dirs[0].better(v(a), v(b)) {
                    std::cmp::Ordering::Less
                } else if dirs[0].better(v(b), v(a)) {
                    std::cmp::Ordering::Greater
                } else {
                    a.number.cmp(&b.number)
                }
            });
            front
        };
        best.truncate(top);
        let now = best.iter().filter_map(|t| t.finished_ms).max().unwrap_or(0);
        for src in best {
            let number = TrialId(self.trials.len() as u64);
            let origin = TrialOrigin::Holdout(src.number.0);
            let t = self.new_trial(number, src.params, origin, None, now);
            self.trials.push(t);
            self.counts.add(TrialState::Waiting);
            self.requeued.push_back(number);
            self.n_holdout += 1;
            ops.push(StoreOp::Trial(self.trials[number.0 as usize].clone()));
        }
        self.n_holdout
    }

    /// The `k` best feasible complete search trials of a single-objective study, best first.
    fn ranked_single(&self, k: usize) -> Vec<TrialRecord> {
        let d = self.spec.study.directions[0];
        let mut done: Vec<&TrialRecord> = self
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.values.is_some())
            .filter(|t| !matches!(t.origin, TrialOrigin::Holdout(_)))
            .filter(|t| crate::search::mo::violation(t) <= 0.0)
            .collect();
        let v = |t: &TrialRecord| t.values.as_ref().map_or(f64::NAN, |v| v[0]);
        done.sort_by(|a, b| {
            if d.better(v(a), v(b)) {
                std::cmp::Ordering::Less
            } else if d.better(v(b), v(a)) {
                std::cmp::Ordering::Greater
            } else {
                a.number.cmp(&b.number)
            }
        });
        done.into_iter().take(k).cloned().collect()
    }

    /// A trial ended on its node. Recorded exactly once, for the current attempt only.
    pub fn finish(
        &mut self,
        node: NodeId,
        key: TrialKey,
        outcome: Outcome,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> FinishResult {
        if !self.current(&key, node) {
            return FinishResult::Ignored;
        }
        // A walk-forward evaluation: its trading and model are kept beside the trial.
        let (outcome, daily, model, window) = match outcome {
            Outcome::Evaluated(e) => {
                let e = *e;
                (
                    Outcome::Complete(e.values, e.metrics),
                    Some(e.daily).filter(|d| d.is_consistent()),
                    e.model,
                    e.holdout,
                )
            }
            o => (o, None, None, None),
        };
        let (state, values, message) = match outcome {
            Outcome::Complete(v, metrics) if v.len() == self.spec.study.directions.len() && v.iter().all(|x| !x.is_nan()) => {
                match self.constraint_values(&metrics) {
                    Ok(c) => {
                        let t = &mut self.trials[key.trial.0 as usize];
                        t.metrics = metrics;
                        t.constraints = c;
                        (TrialState::Complete, Some(v), None)
                    }
                    Err(e) => (TrialState::Failed, None, Some(e)),
                }
            }
            Outcome::Complete(v, _) => (
                TrialState::Failed,
                None,
                Some(format!("objective returned {} values {:?}; the study has {} objectives and NaN is not a value", v.len(), v, self.spec.study.directions.len())),
            ),
            Outcome::Failed(e) => (TrialState::Failed, None, Some(e)),
            // Unpacked into `Complete` above; never seen here.
            Outcome::Evaluated(_) => (TrialState::Failed, None, Some("evaluation not unpacked".into())),
            Outcome::Pruned => {
                let last = self.trials[key.trial.0 as usize].intermediate.values().next_back().cloned();
                (TrialState::Pruned, last, Some("stopped by its objective".into()))
            }
        };
        if let (TrialState::Complete, Some(m)) = (state, model) {
            ops.push(StoreOp::Artifact(key.study, key.trial, Box::new(m)));
        }
        let origin = self.trials[key.trial.0 as usize].origin.clone();
        match (state, origin) {
            // A hold-out evaluation: its metrics go to the trial it evaluated, as holdout_*,
            // and it enters the ledger of its data and window.
            (TrialState::Complete, TrialOrigin::Holdout(src)) => {
                let metrics = self.trials[key.trial.0 as usize].metrics.clone();
                if let Some(w) = window {
                    ops.push(StoreOp::Ledger {
                        window: w.key(),
                        study: key.study,
                        trial: key.trial,
                        sharpe: metrics
                            .get("sharpe_per_period")
                            .copied()
                            .unwrap_or(f64::NAN),
                    });
                }
                if let Some(s) = self.trials.get_mut(src as usize) {
                    for (k, v) in metrics {
                        s.metrics.insert(format!("holdout_{k}"), v);
                    }
                    // Which evaluation it was: its daily trading and its ledger entry.
                    s.metrics.insert("holdout_trial".into(), key.trial.0 as f64);
                    ops.push(StoreOp::Trial(s.clone()));
                }
                if let Some(d) = daily {
                    ops.push(StoreOp::Daily(key.study, key.trial, Box::new(d)));
                }
            }
            // A search trial's returns by decision day go to PBO's table too.
            (TrialState::Complete, _) => {
                if let Some(d) = daily {
                    ops.push(StoreOp::Returns(key.study, key.trial, d.by_decision_day()));
                    ops.push(StoreOp::Daily(key.study, key.trial, Box::new(d)));
                }
            }
            _ => {}
        }
        self.end(key.trial, state, values, message, now, ops);
        FinishResult::Recorded
    }

    /// The constraint values of a result's metrics (`None` without constraints), or why they
    /// cannot be judged.
    fn constraint_values(&self, metrics: &Metrics) -> Result<Option<Vec<f64>>, String> {
        if self.spec.constraints.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for c in &self.spec.constraints {
            match metrics.get(&c.metric) {
                Some(m) => out.push(c.value(*m)),
                None => {
                    let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
                    return Err(format!(
                        "a constraint bounds the metric `{}`, which the objective did not report (it reported: {})",
                        c.metric,
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ));
                }
            }
        }
        Ok(Some(out))
    }

    /// The lease of `key` ran out (or its node gave it back): back to the queue with a new
    /// attempt, or Lost after `max_attempts`.
    pub fn requeue(&mut self, key: TrialKey, why: &str, now: u64, ops: &mut Vec<StoreOp>) -> bool {
        let Some(t) = self.trials.get(key.trial.0 as usize) else {
            return false;
        };
        if t.state != TrialState::Running || t.attempt != key.attempt {
            return false;
        }
        if t.attempt >= self.spec.study.max_attempts {
            let msg = format!(
                "{why} on attempt {} of {}",
                t.attempt, self.spec.study.max_attempts
            );
            self.end(key.trial, TrialState::Lost, None, Some(msg), now, ops);
            return true;
        }
        self.set_state(key.trial, TrialState::Waiting);
        let t = &mut self.trials[key.trial.0 as usize];
        t.node = None;
        t.slot = None;
        t.message = Some(format!("{why} on attempt {}", t.attempt));
        ops.push(StoreOp::Trial(t.clone()));
        if self.row.state == StudyState::Running {
            self.requeued.push_back(key.trial);
        }
        true
    }

    /// Cancels the study: waiting and running trials fail with "cancelled". Returns the
    /// running trials' keys and nodes so they can be stopped.
    pub fn cancel(&mut self, now: u64, ops: &mut Vec<StoreOp>) -> Vec<(NodeId, TrialKey)> {
        if self.row.state != StudyState::Running {
            return Vec::new();
        }
        self.row.state = StudyState::Cancelled;
        ops.push(StoreOp::Study(self.row.clone()));
        self.requeued.clear();
        let mut stopped = Vec::new();
        for i in 0..self.trials.len() {
            let t = &self.trials[i];
            if t.state.is_finished() {
                continue;
            }
            if let (TrialState::Running, Some(node)) = (t.state, t.node) {
                stopped.push((
                    node,
                    TrialKey {
                        study: self.id(),
                        trial: t.number,
                        attempt: t.attempt,
                    },
                ));
            }
            self.end(
                TrialId(i as u64),
                TrialState::Failed,
                None,
                Some("cancelled".into()),
                now,
                ops,
            );
        }
        stopped
    }

    /// Running trials and where they run (for the registry after a restart).
    pub fn running(&self) -> Vec<(NodeId, SlotId, TrialKey)> {
        self.trials
            .iter()
            .filter(|t| t.state == TrialState::Running)
            .filter_map(|t| {
                Some((
                    t.node?,
                    t.slot?,
                    TrialKey {
                        study: self.id(),
                        trial: t.number,
                        attempt: t.attempt,
                    },
                ))
            })
            .collect()
    }

    /// The best trials: the best complete one, or the Pareto front for several objectives.
    pub fn best(&self) -> Vec<TrialRecord> {
        let dirs = &self.spec.study.directions;
        let done: Vec<&TrialRecord> = self
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.values.is_some())
            .filter(|t| !matches!(t.origin, TrialOrigin::Holdout(_)))
            // Infeasible trials (a broken constraint) are never the best.
            .filter(|t| crate::search::mo::violation(t) <= 0.0)
            .collect();
        let vals = |t: &TrialRecord| t.values.clone().unwrap_or_default();
        if dirs.len() == 1 {
            let best = done.into_iter().reduce(|a, b| {
                if dirs[0].better(vals(b)[0], vals(a)[0]) {
                    b
                } else {
                    a
                }
            });
            return best.into_iter().cloned().collect();
        }
        let dominates = |a: &[f64], b: &[f64]| {
            dirs.iter().enumerate().all(|(i, d)| !d.better(b[i], a[i]))
                && dirs.iter().enumerate().any(|(i, d)| d.better(a[i], b[i]))
        };
        done.iter()
            .filter(|t| !done.iter().any(|o| dominates(&vals(o), &vals(t))))
            .map(|t| (*t).clone())
            .collect()
    }

    /// The summary shown by `status`.
    pub fn summary(&self) -> StudySummary {
        let best = if self.spec.study.directions.len() == 1 {
            self.best().into_iter().next()
        } else {
            None
        };
        // The search's own trials, apart from hold-out evaluations and warm-start copies.
        let mut counts = TrialCounts::default();
        for t in &self.trials {
            if matches!(t.origin, TrialOrigin::Sampler | TrialOrigin::Enqueued(_)) {
                counts.add(t.state);
            }
        }
        StudySummary {
            id: self.id(),
            name: self.row.name.clone(),
            state: self.row.state,
            n_trials: self.spec.study.n_trials,
            counts,
            best_value: best.as_ref().and_then(|t| t.values.as_ref()).map(|v| v[0]),
            best_trial: best.map(|t| t.number),
            directions: self
                .spec
                .study
                .directions
                .iter()
                .map(|d| d.as_str().to_string())
                .collect(),
            created_ms: self.row.created_ms,
            holdout_runs: self.n_holdout,
            warm_started: self.n_warm,
            data_warnings: self.notes.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
