//! What people add to a study after the fact: tags and notes on a study or a trial
//! (`mlt-cluster tag`, `note`), kept beside the study's own records.
use crate::ids::{StudyId, TrialId};
use serde::{Deserialize, Serialize};

/// The longest tag key, in bytes.
pub const MAX_TAG_KEY: usize = 250;
/// The longest tag value, in bytes (MLflow's limit).
pub const MAX_TAG_VALUE: usize = 8000;
/// The longest note, in bytes.
pub const MAX_NOTE: usize = 64 * 1024;

/// One tag: `key = value` on a study (`trial` None) or one of its trials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    /// The study.
    pub study: StudyId,
    /// The trial, or None for the study itself.
    pub trial: Option<TrialId>,
    /// Key: letters, digits and `_ - . / :`.
    pub key: String,
    /// Value.
    pub value: String,
    /// When it was last set (ms since the Unix epoch).
    pub at_ms: u64,
    /// Who set it (the client's name).
    pub by: String,
}

/// One note: free text on a study or a trial, kept in order, never changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteRecord {
    /// The study.
    pub study: StudyId,
    /// The trial, or None for the study itself.
    pub trial: Option<TrialId>,
    /// Its place among the study's notes (0, 1, …).
    pub seq: u64,
    /// The text.
    pub text: String,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Who wrote it (the client's name).
    pub by: String,
}

/// A study's tags and notes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotations {
    /// Tags, by trial (the study's own first) then key.
    pub tags: Vec<TagRecord>,
    /// Notes, in the order they were written.
    pub notes: Vec<NoteRecord>,
}

impl Annotations {
    /// The tags of the study (`None`) or of one trial, as (key, value).
    pub fn tags_of(&self, trial: Option<TrialId>) -> impl Iterator<Item = (&str, &str)> {
        self.tags
            .iter()
            .filter(move |t| t.trial == trial)
            .map(|t| (t.key.as_str(), t.value.as_str()))
    }

    /// The notes of the study (`None`) or of one trial.
    pub fn notes_of(&self, trial: Option<TrialId>) -> impl Iterator<Item = &NoteRecord> {
        self.notes.iter().filter(move |n| n.trial == trial)
    }
}

/// Payload of [`crate::FromClient::Annotate`]: tags to set and remove, and a note to add, on a
/// study or one of its trials, in one durable change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnotateMsg {
    /// Study name or id.
    pub study: String,
    /// The trial's number, or None for the study.
    pub trial: Option<u64>,
    /// Tags to set (key, value).
    pub set: Vec<(String, String)>,
    /// Tag keys to remove.
    pub remove: Vec<String>,
    /// A note to add.
    pub note: Option<String>,
}

/// Why a tag key is refused, if it is.
pub fn check_tag_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a tag key is empty".into());
    }
    if key.len() > MAX_TAG_KEY {
        return Err(format!(
            "tag key `{}…` is longer than {MAX_TAG_KEY} bytes",
            &key[..key.floor_char_boundary(40)]
        ));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_alphanumeric() || "_-./:".contains(*c)))
    {
        return Err(format!(
            "tag key `{key}` has {c:?}: keys are letters, digits and _ - . / :"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_are_words_with_separators() {
        assert!(check_tag_key("desk").is_ok());
        assert!(check_tag_key("review/status:v2").is_ok());
        assert!(check_tag_key("").is_err());
        assert!(check_tag_key("a b").unwrap_err().contains("' '"));
        assert!(check_tag_key("x=y").is_err());
        assert!(check_tag_key(&"k".repeat(MAX_TAG_KEY + 1)).is_err());
    }
}
