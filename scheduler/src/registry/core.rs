//! Registry logic. A free slot's request waits in a queue until a study with work whose
//! resources fit the slot is found; among those the study with the fewest trials running or
//! being asked for wins (fair sharing). Leases: a node silent for longer than the lease loses
//! its running trials. Reconciliation: a node says what it runs when it registers and in every
//! heartbeat; a trial the scheduler holds for it that it does not run goes back to the queue
//! (at once on registration; after [`RegistryCore::grace`] in a heartbeat, for an assignment
//! still on its way), and one it runs that the scheduler does not hold is stopped.
use mlt_protocol::ids::{NodeId, SlotId, StudyId, TrialKey};
use mlt_protocol::messages::SlotInfo;
use mlt_protocol::records::NodeSummary;
use mlt_protocol::spec::ResourceSpec;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// One node.
#[derive(Debug)]
pub struct NodeEntry {
    /// Name.
    pub name: String,
    /// Slots.
    pub slots: Vec<SlotInfo>,
    /// Current session id (0 = none connected).
    pub session: u64,
    /// Last heartbeat (or registration).
    pub last_beat: Instant,
    /// Trials running there, by key: the slot, and since when the scheduler holds it there.
    pub running: HashMap<TrialKey, (SlotId, Instant)>,
    /// Trials the node reports that the scheduler does not hold for it, since first reported.
    unknown: HashMap<TrialKey, Instant>,
    /// Takes no more work.
    pub draining: bool,
}

#[derive(Debug)]
struct StudyEntry {
    resources: ResourceSpec,
    has_work: bool,
    running: u64,
    asking: u64,
}

/// An ask the actor must send: offer `slot` of `node` to `study`.
#[derive(Debug, PartialEq, Eq)]
pub struct Ask {
    /// Study.
    pub study: StudyId,
    /// Node.
    pub node: NodeId,
    /// Slot.
    pub slot: SlotId,
    /// When the slot asked.
    pub asked_at: Instant,
}

/// The registry's state.
#[derive(Debug)]
pub struct RegistryCore {
    /// Nodes.
    pub nodes: HashMap<NodeId, NodeEntry>,
    studies: BTreeMap<StudyId, StudyEntry>,
    idle: VecDeque<(NodeId, SlotId, Instant)>,
    lease: Duration,
    grace: Duration,
}

/// What a node's own account of its trials changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Trials the scheduler held for the node that it does not run: back to the queue.
    pub lost: Vec<TrialKey>,
    /// Trials the node runs that the scheduler does not hold for it: to stop there.
    pub stale: Vec<TrialKey>,
}

impl RegistryCore {
    /// Empty, with a lease duration.
    pub fn new(lease: Duration) -> Self {
        Self {
            nodes: HashMap::new(),
            studies: BTreeMap::new(),
            idle: VecDeque::new(),
            lease,
            grace: Self::grace(lease),
        }
    }

    /// How long a heartbeat may disagree with the scheduler before it is believed: an
    /// assignment on its way, a finish not yet recorded. A quarter of the lease, between
    /// 200 ms and 5 s.
    pub fn grace(lease: Duration) -> Duration {
        (lease / 4).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// Removes `key` from `node`'s running trials (and its study's count).
    fn release(&mut self, node: NodeId, key: TrialKey) -> bool {
        let Some(n) = self.nodes.get_mut(&node) else {
            return false;
        };
        if n.running.remove(&key).is_none() {
            return false;
        }
        if let Some(s) = self.studies.get_mut(&key.study) {
            s.running = s.running.saturating_sub(1);
        }
        true
    }

    /// A study joins.
    pub fn add_study(&mut self, id: StudyId, resources: ResourceSpec, has_work: bool) {
        self.studies.insert(
            id,
            StudyEntry {
                resources,
                has_work,
                running: 0,
                asking: 0,
            },
        );
    }

    /// A study's work flag changed.
    pub fn study_work(&mut self, id: StudyId, has_work: bool) {
        if let Some(s) = self.studies.get_mut(&id) {
            s.has_work = has_work;
        }
    }

    /// A trial known to run on `node` (restored after a restart). Creates a placeholder node
    /// that holds the lease until the node reconnects or the lease runs out, with one lease
    /// of grace on top (the node has to notice the restart and reconnect first).
    pub fn adopt(&mut self, node: NodeId, slot: SlotId, key: TrialKey, now: Instant) {
        let grace = self.lease;
        let n = self.nodes.entry(node).or_insert_with(|| NodeEntry {
            name: "(awaiting reconnect)".into(),
            slots: Vec::new(),
            session: 0,
            last_beat: now + grace,
            running: HashMap::new(),
            unknown: HashMap::new(),
            draining: false,
        });
        n.running.insert(key, (slot, now));
        if let Some(s) = self.studies.get_mut(&key.study) {
            s.running += 1;
        }
    }

    /// A node (re)registers with the trials it runs. Its account is the truth as of this
    /// session: what the scheduler held for it that it does not run never reached it (or
    /// ended unheard) and goes back to the queue; what it runs that the scheduler does not
    /// hold is stale and must be stopped there.
    pub fn node_up(
        &mut self,
        node: NodeId,
        name: String,
        slots: Vec<SlotInfo>,
        running: &[(TrialKey, SlotId)],
        session: u64,
        now: Instant,
    ) -> Reconciled {
        self.idle.retain(|(n, _, _)| *n != node);
        let entry = self.nodes.entry(node).or_insert_with(|| NodeEntry {
            name: name.clone(),
            slots: Vec::new(),
            session,
            last_beat: now,
            running: HashMap::new(),
            unknown: HashMap::new(),
            draining: false,
        });
        entry.name = name;
        entry.slots = slots;
        entry.session = session;
        entry.last_beat = now;
        entry.draining = false;
        entry.unknown.clear();
        let reported: HashSet<TrialKey> = running.iter().map(|(k, _)| *k).collect();
        let stale = running
            .iter()
            .filter(|(k, _)| !entry.running.contains_key(k))
            .map(|(k, _)| *k)
            .collect();
        let mut lost: Vec<TrialKey> = entry
            .running
            .keys()
            .filter(|k| !reported.contains(k))
            .copied()
            .collect();
        lost.sort();
        for k in &lost {
            self.release(node, *k);
        }
        Reconciled { lost, stale }
    }

    /// The node's session ended (its lease goes on until it expires).
    pub fn node_down(&mut self, node: NodeId, session: u64) {
        if let Some(n) = self.nodes.get_mut(&node) {
            if n.session == session {
                n.session = 0;
                self.idle.retain(|(id, _, _)| *id != node);
            }
        }
    }

    /// A heartbeat, with the trials the node runs now. Disagreements older than the grace
    /// are settled as at registration: a held trial the node does not run goes back to the
    /// queue, a trial it runs that is not held is stopped.
    pub fn beat(&mut self, node: NodeId, running: &[TrialKey], now: Instant) -> Reconciled {
        let grace = self.grace;
        let Some(n) = self.nodes.get_mut(&node) else {
            return Reconciled::default();
        };
        n.last_beat = now;
        let reported: HashSet<TrialKey> = running.iter().copied().collect();
        let mut lost: Vec<TrialKey> = n
            .running
            .iter()
            .filter(|(k, (_, since))| !reported.contains(k) && now.duration_since(*since) >= grace)
            .map(|(k, _)| *k)
            .collect();
        lost.sort();
        n.unknown.retain(|k, _| reported.contains(k));
        let mut stale = Vec::new();
        for k in running.iter().filter(|k| !n.running.contains_key(k)) {
            let first = *n.unknown.entry(*k).or_insert(now);
            if now.duration_since(first) >= grace {
                stale.push(*k);
            }
        }
        for k in &stale {
            n.unknown.remove(k);
        }
        for k in &lost {
            self.release(node, *k);
        }
        Reconciled { lost, stale }
    }

    /// The node takes no more work.
    pub fn drain(&mut self, node: NodeId) {
        if let Some(n) = self.nodes.get_mut(&node) {
            n.draining = true;
        }
        self.idle.retain(|(id, _, _)| *id != node);
    }

    /// A slot asks for work.
    pub fn request(&mut self, node: NodeId, slot: SlotId, at: Instant) {
        let ok = self.nodes.get(&node).is_some_and(|n| {
            n.session != 0 && !n.draining && n.slots.iter().any(|s| s.slot == slot)
        });
        if ok && !self.idle.iter().any(|(n, s, _)| *n == node && *s == slot) {
            self.idle.push_back((node, slot, at));
        }
    }

    /// Matches waiting slots to studies.
    pub fn dispatch(&mut self) -> Vec<Ask> {
        let mut asks = Vec::new();
        if !self.studies.values().any(|s| s.has_work) {
            return asks;
        }
        let mut kept = VecDeque::new();
        while let Some((node, slot, at)) = self.idle.pop_front() {
            let Some(info) = self
                .nodes
                .get(&node)
                .and_then(|n| n.slots.iter().find(|s| s.slot == slot))
            else {
                continue;
            };
            let fits = |r: &ResourceSpec| info.cpus >= r.cpus && info.gpus.len() as u32 >= r.gpus;
            let pick = self
                .studies
                .iter()
                .filter(|(_, s)| s.has_work && fits(&s.resources))
                .min_by_key(|(id, s)| (s.running + s.asking, **id))
                .map(|(id, _)| *id);
            match pick {
                Some(study) => {
                    self.studies.get_mut(&study).expect("picked").asking += 1;
                    asks.push(Ask {
                        study,
                        node,
                        slot,
                        asked_at: at,
                    });
                }
                None => kept.push_back((node, slot, at)),
            }
        }
        self.idle = kept;
        asks
    }

    /// The study handed a trial to the slot. Returns false when the node vanished meanwhile
    /// (the trial must then be expired at once).
    pub fn assigned(&mut self, study: StudyId, node: NodeId, slot: SlotId, key: TrialKey) -> bool {
        if let Some(s) = self.studies.get_mut(&study) {
            s.asking = s.asking.saturating_sub(1);
        }
        let Some(n) = self.nodes.get_mut(&node) else {
            return false;
        };
        n.running.insert(key, (slot, Instant::now()));
        n.unknown.remove(&key);
        if let Some(s) = self.studies.get_mut(&study) {
            s.running += 1;
        }
        true
    }

    /// The study had nothing for the slot: the slot waits again, at the front.
    pub fn no_work(&mut self, study: StudyId, node: NodeId, slot: SlotId, at: Instant) {
        if let Some(s) = self.studies.get_mut(&study) {
            s.asking = s.asking.saturating_sub(1);
            s.has_work = false;
        }
        if self
            .nodes
            .get(&node)
            .is_some_and(|n| n.session != 0 && !n.draining)
        {
            self.idle.push_front((node, slot, at));
        }
    }

    /// A trial ended (finished, pruned, released, cancelled).
    pub fn ended(&mut self, node: NodeId, key: TrialKey) {
        self.release(node, key);
    }

    /// Removes nodes whose lease ran out; returns their trials, to be re-queued.
    pub fn expire(&mut self, now: Instant) -> Vec<TrialKey> {
        let dead: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| now.duration_since(n.last_beat) > self.lease)
            .map(|(id, _)| *id)
            .collect();
        let mut keys = Vec::new();
        for id in dead {
            let n = self.nodes.remove(&id).expect("listed");
            self.idle.retain(|(x, _, _)| *x != id);
            for key in n.running.into_keys() {
                if let Some(s) = self.studies.get_mut(&key.study) {
                    s.running = s.running.saturating_sub(1);
                }
                keys.push(key);
            }
        }
        keys
    }

    /// Trials a node runs.
    pub fn running_on(&self, node: NodeId) -> HashSet<TrialKey> {
        self.nodes
            .get(&node)
            .map(|n| n.running.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Listing.
    pub fn summaries(&self, now: Instant) -> Vec<NodeSummary> {
        let mut out: Vec<NodeSummary> = self
            .nodes
            .iter()
            .map(|(id, n)| NodeSummary {
                id: *id,
                name: n.name.clone(),
                slots: n.slots.len() as u32,
                gpus: n.slots.iter().map(|s| s.gpus.len() as u32).sum(),
                running: n.running.len() as u32,
                connected: n.session != 0,
                draining: n.draining,
                last_heartbeat_ms: now.duration_since(n.last_beat).as_millis() as u64,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::ids::TrialId;

    fn slots(n: u32, gpus: u32) -> Vec<SlotInfo> {
        (0..n)
            .map(|i| SlotInfo {
                slot: SlotId(i),
                cpus: 1,
                gpus: (0..gpus).collect(),
            })
            .collect()
    }

    fn key(study: u64, trial: u64) -> TrialKey {
        TrialKey {
            study: StudyId(study),
            trial: TrialId(trial),
            attempt: 1,
        }
    }

    #[test]
    fn slots_go_to_fitting_studies_fairly() {
        let t0 = Instant::now();
        let mut r = RegistryCore::new(Duration::from_secs(5));
        r.add_study(StudyId(1), ResourceSpec { cpus: 1, gpus: 0 }, true);
        r.add_study(StudyId(2), ResourceSpec { cpus: 1, gpus: 0 }, true);
        r.add_study(StudyId(3), ResourceSpec { cpus: 1, gpus: 1 }, true);
        r.node_up(NodeId(1), "cpu".into(), slots(4, 0), &[], 11, t0);
        for s in 0..4 {
            r.request(NodeId(1), SlotId(s), t0);
        }
        let asks = r.dispatch();
        let per_study: Vec<u64> = asks.iter().map(|a| a.study.0).collect();
        // Alternates between the two CPU studies; the GPU study never gets a CPU slot.
        assert_eq!(per_study, vec![1, 2, 1, 2]);
        for a in &asks {
            assert!(r.assigned(a.study, a.node, a.slot, key(a.study.0, a.slot.0 as u64)));
        }
        // A GPU node's slot goes to the GPU study (fewest running).
        r.node_up(NodeId(2), "gpu".into(), slots(1, 1), &[], 12, t0);
        r.request(NodeId(2), SlotId(0), t0);
        assert_eq!(r.dispatch()[0].study, StudyId(3));
    }

    #[test]
    fn no_work_requeues_the_slot_and_silences_the_study() {
        let t0 = Instant::now();
        let mut r = RegistryCore::new(Duration::from_secs(5));
        r.add_study(StudyId(1), ResourceSpec { cpus: 1, gpus: 0 }, true);
        r.node_up(NodeId(1), "n".into(), slots(1, 0), &[], 1, t0);
        r.request(NodeId(1), SlotId(0), t0);
        let a = r.dispatch();
        assert_eq!(a.len(), 1);
        r.no_work(StudyId(1), NodeId(1), SlotId(0), t0);
        assert!(r.dispatch().is_empty());
        r.study_work(StudyId(1), true);
        assert_eq!(r.dispatch().len(), 1);
    }

    #[test]
    fn leases_expire_and_reconnects_keep_them() {
        let t0 = Instant::now();
        let mut r = RegistryCore::new(Duration::from_secs(5));
        r.add_study(StudyId(1), ResourceSpec { cpus: 1, gpus: 0 }, true);
        r.node_up(NodeId(1), "a".into(), slots(2, 0), &[], 1, t0);
        r.node_up(NodeId(2), "b".into(), slots(2, 0), &[], 2, t0);
        r.assigned(StudyId(1), NodeId(1), SlotId(0), key(1, 0));
        r.assigned(StudyId(1), NodeId(2), SlotId(0), key(1, 1));
        // Node 1 disconnects but reconnects within the lease, reporting its trial and an
        // unknown one (stale).
        r.node_down(NodeId(1), 1);
        let stale = r.node_up(
            NodeId(1),
            "a".into(),
            slots(2, 0),
            &[(key(1, 0), SlotId(0)), (key(1, 9), SlotId(1))],
            3,
            t0 + Duration::from_secs(1),
        );
        assert_eq!(
            stale,
            Reconciled {
                lost: Vec::new(),
                stale: vec![key(1, 9)]
            }
        );
        r.beat(NodeId(1), &[key(1, 0)], t0 + Duration::from_secs(4));
        // Node 2 stays silent: its trial comes back after the lease.
        let expired = r.expire(t0 + Duration::from_secs(6));
        assert_eq!(expired, vec![key(1, 1)]);
        assert!(r.nodes.contains_key(&NodeId(1)) && !r.nodes.contains_key(&NodeId(2)));
        // A trial assigned to a node that vanished meanwhile is refused.
        assert!(!r.assigned(StudyId(1), NodeId(2), SlotId(0), key(1, 2)));
    }

    #[test]
    fn a_node_that_does_not_run_a_held_trial_gets_it_requeued_and_one_it_runs_unknown_stopped() {
        let t0 = Instant::now();
        let lease = Duration::from_secs(8);
        let grace = RegistryCore::grace(lease);
        assert_eq!(grace, Duration::from_secs(2));
        let mut r = RegistryCore::new(lease);
        r.add_study(StudyId(1), ResourceSpec { cpus: 1, gpus: 0 }, true);
        // Restored after a scheduler restart: two trials believed to run on node 5. The
        // assignment of one never left the dying scheduler.
        r.adopt(NodeId(5), SlotId(0), key(1, 1), t0);
        r.adopt(NodeId(5), SlotId(1), key(1, 2), t0);
        let up = r.node_up(
            NodeId(5),
            "n".into(),
            slots(2, 0),
            &[(key(1, 1), SlotId(0))],
            1,
            t0,
        );
        // At registration the node's account is the truth: at once, whatever the lease.
        assert_eq!(up.lost, vec![key(1, 2)]);
        assert_eq!(r.running_on(NodeId(5)), HashSet::from([key(1, 1)]));
        assert_eq!(r.studies[&StudyId(1)].running, 1);
        // In heartbeats: a fresh assignment not yet listed is left alone within the grace ...
        assert!(r.assigned(StudyId(1), NodeId(5), SlotId(1), key(1, 3)));
        let now = Instant::now();
        let b = r.beat(NodeId(5), &[key(1, 1)], now);
        assert_eq!(b, Reconciled::default());
        // ... and re-queued once the node has still not listed it after the grace.
        let b = r.beat(NodeId(5), &[key(1, 1)], now + grace);
        assert_eq!(b.lost, vec![key(1, 3)]);
        assert!(!r.running_on(NodeId(5)).contains(&key(1, 3)));
        // A trial the node runs that is not held there: stopped after the grace, not before
        // (its assignment may still be on its way to the registry).
        let b = r.beat(NodeId(5), &[key(1, 1), key(1, 7)], now + grace);
        assert!(b.stale.is_empty());
        let b = r.beat(NodeId(5), &[key(1, 1), key(1, 7)], now + grace * 2);
        assert_eq!(b.stale, vec![key(1, 7)]);
        // Once assigned (late), it is no longer unknown.
        r.beat(NodeId(5), &[key(1, 1), key(1, 8)], now + grace * 2);
        assert!(r.assigned(StudyId(1), NodeId(5), SlotId(1), key(1, 8)));
        let b = r.beat(NodeId(5), &[key(1, 1), key(1, 8)], now + grace * 4);
        assert_eq!(b, Reconciled::default());
        // The heartbeats keep the node's lease alive all along.
        assert!(r.expire(now + grace * 4).is_empty());
    }

    #[test]
    fn adopted_trials_wait_for_their_node() {
        let t0 = Instant::now();
        let mut r = RegistryCore::new(Duration::from_secs(5));
        r.add_study(StudyId(1), ResourceSpec { cpus: 1, gpus: 0 }, true);
        r.adopt(NodeId(5), SlotId(1), key(1, 3), t0);
        let stale = r.node_up(
            NodeId(5),
            "back".into(),
            slots(2, 0),
            &[(key(1, 3), SlotId(1))],
            1,
            t0,
        );
        assert_eq!(stale, Reconciled::default());
        assert!(r.running_on(NodeId(5)).contains(&key(1, 3)));
        r.adopt(NodeId(6), SlotId(0), key(1, 4), t0);
        r.beat(NodeId(5), &[key(1, 3)], t0 + Duration::from_secs(9));
        // An adopted trial gets a lease of grace on top of its lease: still held at 6 s ...
        assert!(r.expire(t0 + Duration::from_secs(6)).is_empty());
        // ... and re-queued once both have passed without its node.
        assert_eq!(r.expire(t0 + Duration::from_secs(11)), vec![key(1, 4)]);
    }
}
