//! A node's settings, from `mlt-cluster join` (flags, `MLT_*` variables, cluster.toml) or
//! from `mlt-cluster run`'s local node.
use mlt_protocol::messages::{AssignMsg, SlotInfo};
use mlt_protocol::spec::{DataSource, ObjectiveSpec};
use mlt_protocol::token::Token;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings of a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Scheduler address, `host:port`.
    pub scheduler: String,
    /// The join token.
    pub token: Token,
    /// Name shown in listings.
    pub name: String,
    /// The slots.
    pub slots: Vec<SlotInfo>,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// On SIGTERM, how long running trials may take before they are handed back.
    pub drain_timeout: Duration,
    /// Where uploaded datasets are cached, by SHA-256.
    pub cache_dir: std::path::PathBuf,
    /// Whether `command` objectives run here: a program of the submitter's choice, with this
    /// node's rights (`join --allow-command`; off by default).
    pub allow_command: bool,
    /// The folder walk-forward specs may read data files from on this node (`join
    /// --data-root`); None: none (uploaded datasets only).
    pub data_root: Option<PathBuf>,
}

impl NodeConfig {
    /// Why this node does not run `a` (its operator did not allow it), or None. A client
    /// token must not be a way to run any program, or read any file, on every node.
    pub fn refuses(&self, a: &AssignMsg) -> Option<String> {
        match &a.objective {
            ObjectiveSpec::Command(_) if !self.allow_command => Some(format!(
                "node {} does not run `command` objectives (a program of the submitter's choice): its operator allows them with `mlt-cluster join --allow-command`",
                self.name
            )),
            ObjectiveSpec::WalkForward(wf) => match &wf.data {
                DataSource::Files { paths, .. } => paths
                    .iter()
                    .find_map(|p| self.outside_root(p, a.workdir.as_deref())),
                _ => None,
            },
            _ => None,
        }
    }

    /// Why `path` (relative to the study's folder) may not be read here, or None.
    fn outside_root(&self, path: &str, workdir: Option<&str>) -> Option<String> {
        let Some(root) = &self.data_root else {
            return Some(format!(
                "node {} reads no data file from its own disk (`{path}`): submit the file (it is uploaded), or its operator allows a folder with `mlt-cluster join --data-root DIR`",
                self.name
            ));
        };
        let p = Path::new(path);
        let full = match workdir {
            Some(w) if p.is_relative() => Path::new(w).join(p),
            _ => p.to_path_buf(),
        };
        // Symbolic links and `..` resolved: what would really be read.
        match (full.canonicalize(), root.canonicalize()) {
            (Ok(f), Ok(r)) if f.starts_with(&r) => None,
            (Ok(f), Ok(r)) => Some(format!(
                "`{}` is outside node {}'s data root {}",
                f.display(),
                self.name,
                r.display()
            )),
            (Err(e), _) => Some(format!("`{}`: {e}", full.display())),
            (_, Err(e)) => Some(format!("the data root {}: {e}", root.display())),
        }
    }
}
