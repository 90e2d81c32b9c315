//! Tags and notes on a study and its trials: checked, applied to the study's copy, and
//! written as store operations in one change.
use super::StudyCore;
use crate::store::StoreOp;
use mlt_protocol::catalog::{
    check_tag_key, AnnotateMsg, Annotations, NoteRecord, TagRecord, MAX_NOTE, MAX_TAG_VALUE,
};
use mlt_protocol::ids::TrialId;

impl StudyCore {
    /// Applies `m` (from client `by`, at `now`): every part is checked first, so a request is
    /// applied whole or refused whole, with a sentence saying why.
    pub fn annotate(
        &mut self,
        m: &AnnotateMsg,
        by: &str,
        now: u64,
        ops: &mut Vec<StoreOp>,
    ) -> Result<&Annotations, String> {
        let trial = match m.trial {
            Some(n) if n as usize >= self.trials.len() => {
                return Err(format!(
                    "study `{}` has no trial {n} (it has {})",
                    self.row.name,
                    self.trials.len()
                ))
            }
            other => other.map(TrialId),
        };
        if m.set.is_empty() && m.remove.is_empty() && m.note.is_none() {
            return Err("nothing to change: give tags (key=value), --remove KEY or a note".into());
        }
        for (k, v) in &m.set {
            check_tag_key(k)?;
            if v.len() > MAX_TAG_VALUE {
                return Err(format!(
                    "the value of tag `{k}` is {} bytes, more than {MAX_TAG_VALUE}",
                    v.len()
                ));
            }
        }
        for k in &m.remove {
            check_tag_key(k)?;
        }
        if let Some(n) = &m.note {
            if n.trim().is_empty() {
                return Err("the note is empty".into());
            }
            if n.len() > MAX_NOTE {
                return Err(format!(
                    "the note is {} bytes, more than {MAX_NOTE}",
                    n.len()
                ));
            }
        }
        let study = self.id();
        let a = &mut self.annotations;
        for k in &m.remove {
            let before = a.tags.len();
            a.tags.retain(|t| !(t.trial == trial && &t.key == k));
            if a.tags.len() != before {
                ops.push(StoreOp::Untag {
                    study,
                    trial,
                    key: k.clone(),
                });
            }
        }
        for (k, v) in &m.set {
            let tag = TagRecord {
                study,
                trial,
                key: k.clone(),
                value: v.clone(),
                at_ms: now,
                by: by.to_string(),
            };
            match a.tags.iter_mut().find(|t| t.trial == trial && &t.key == k) {
                Some(t) => *t = tag.clone(),
                None => a.tags.push(tag.clone()),
            }
            ops.push(StoreOp::Tag(tag));
        }
        a.tags
            .sort_by(|x, y| (x.trial.map(|t| t.0), &x.key).cmp(&(y.trial.map(|t| t.0), &y.key)));
        if let Some(text) = &m.note {
            let note = NoteRecord {
                study,
                trial,
                seq: a.notes.len() as u64,
                text: text.clone(),
                at_ms: now,
                by: by.to_string(),
            };
            a.notes.push(note.clone());
            ops.push(StoreOp::UserNote(note));
        }
        Ok(&self.annotations)
    }
}
