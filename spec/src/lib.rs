//! mlt-spec: the search-spec language. A researcher's TOML file (DESIGN §10, docs/spec.md) is
//! read into raw structs that refuse unknown keys, then every value is validated into
//! mlt-protocol's spec types. Every error names the file, the line and the key; all errors
//! are collected, not only the first.
//!
//! ```text
//! raw.rs           the TOML as written (unknown keys refused, spans kept)
//! validate.rs      the whole file: [study], then each section below; errors collected
//! space.rs         [space]: distributions, conditions, bounds; which values fit
//! keys.rs          a kind-dependent table read key by key (unknown keys named)
//! sampler.rs       [sampler]
//! pruner.rs        [pruner]
//! objective.rs     [objective]: benchmark, command, walk_forward
//! walk_forward.rs  the walk-forward objective and its ensemble
//! enqueue.rs       [[enqueue]]
//! constraints.rs   [[constraint]]
//! tables.rs        model settings (names, bounds, aliases) and the metrics a trial reports
//! grid.rs          grid enumeration
//! functions.rs     the benchmark objective's analytic functions
//! ```
#![deny(unsafe_code)]

mod constraints;
mod enqueue;
pub mod functions;
pub mod grid;
mod keys;
mod objective;
mod pruner;
mod raw;
mod sampler;
mod space;
pub mod tables;
mod validate;
mod walk_forward;

pub use grid::{grid_points, grid_values, MAX_GRID_POINTS};
pub use space::fits;
pub use validate::parse_spec;

use std::fmt;

/// One problem in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecIssue {
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `space.lr.low`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A spec that failed to parse or validate: every problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The file (or `<stdin>`).
    pub file: String,
    /// The problems, in file order.
    pub issues: Vec<SpecIssue>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match issue.line {
                Some(line) => write!(f, "{}:{}: ", self.file, line)?,
                None => write!(f, "{}: ", self.file)?,
            }
            if issue.key.is_empty() {
                write!(f, "{}", issue.message)?;
            } else {
                write!(f, "`{}`: {}", issue.key, issue.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// Parses and validates a spec; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<mlt_protocol::spec::Spec, SpecError> {
    parse_spec(text, file)
}

#[cfg(test)]
mod tests;
