//! Tables whose keys depend on their `kind` (`[sampler]`, `[pruner]`, `[objective]`'s
//! settings), read key by key so that an unknown or misplaced key is named with its line and
//! the keys the kind does accept.
use crate::raw::{RawTable, S};
use crate::validate::Ctx;
use std::collections::BTreeSet;

/// Reads typed keys from a table and reports the keys nobody asked for.
pub(crate) struct Keys<'t> {
    pub(crate) section: &'static str,
    pub(crate) kind: String,
    pub(crate) table: &'t RawTable,
    pub(crate) asked: BTreeSet<&'static str>,
}

impl<'t> Keys<'t> {
    pub(crate) fn new(section: &'static str, table: &'t RawTable) -> Self {
        let kind = match table.get("kind").map(|v| v.get_ref()) {
            Some(toml::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        Self {
            section,
            kind,
            table,
            asked: BTreeSet::from(["kind"]),
        }
    }

    pub(crate) fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.section)
    }

    pub(crate) fn get(&mut self, k: &'static str) -> Option<&'t S<toml::Value>> {
        self.asked.insert(k);
        self.table.get(k)
    }

    pub(crate) fn int(
        &mut self,
        cx: &mut Ctx,
        k: &'static str,
        default: i64,
        min: i64,
        max: i64,
    ) -> i64 {
        let Some(v) = self.get(k) else {
            return default;
        };
        match v.get_ref() {
            toml::Value::Integer(i) if (min..=max).contains(i) => *i,
            toml::Value::Integer(i) => {
                cx.err(
                    v.span(),
                    self.key(k),
                    format!("must be between {min} and {max}, got {i}"),
                );
                default
            }
            other => {
                cx.err(
                    v.span(),
                    self.key(k),
                    format!("must be an integer, got {other}"),
                );
                default
            }
        }
    }

    pub(crate) fn opt_float(
        &mut self,
        cx: &mut Ctx,
        k: &'static str,
        lo: f64,
        hi: f64,
    ) -> Option<f64> {
        let v = self.get(k)?;
        let x = match v.get_ref() {
            toml::Value::Integer(i) => *i as f64,
            toml::Value::Float(f) => *f,
            other => {
                cx.err(
                    v.span(),
                    self.key(k),
                    format!("must be a number, got {other}"),
                );
                return None;
            }
        };
        if !(lo..=hi).contains(&x) {
            cx.err(
                v.span(),
                self.key(k),
                format!("must be between {lo} and {hi}, got {x}"),
            );
            return None;
        }
        Some(x)
    }

    pub(crate) fn float(
        &mut self,
        cx: &mut Ctx,
        k: &'static str,
        default: f64,
        lo: f64,
        hi: f64,
    ) -> f64 {
        self.opt_float(cx, k, lo, hi).unwrap_or(default)
    }

    pub(crate) fn bool(&mut self, cx: &mut Ctx, k: &'static str, default: bool) -> bool {
        match self.get(k) {
            None => default,
            Some(v) => match v.get_ref() {
                toml::Value::Boolean(b) => *b,
                other => {
                    cx.err(
                        v.span(),
                        self.key(k),
                        format!("must be true or false, got {other}"),
                    );
                    default
                }
            },
        }
    }

    pub(crate) fn choice(
        &mut self,
        cx: &mut Ctx,
        k: &'static str,
        default: &'static str,
        allowed: &[&'static str],
    ) -> &'static str {
        let Some(v) = self.get(k) else {
            return default;
        };
        if let toml::Value::String(s) = v.get_ref() {
            if let Some(a) = allowed.iter().find(|a| **a == s) {
                return a;
            }
        }
        cx.err(
            v.span(),
            self.key(k),
            format!("must be one of {}, got {}", allowed.join(", "), v.get_ref()),
        );
        default
    }

    /// Every key that no reader asked for is an error naming the accepted ones.
    pub(crate) fn finish(self, cx: &mut Ctx, what: &str) {
        let accepted: Vec<&str> = self
            .asked
            .iter()
            .copied()
            .filter(|k| *k != "kind")
            .collect();
        for (k, v) in self.table {
            if !self.asked.contains(k.as_str()) {
                let hint = if accepted.is_empty() {
                    format!("the {} {what} has no settings", self.kind)
                } else {
                    format!(
                        "settings of the {} {what}: {}",
                        self.kind,
                        accepted.join(", ")
                    )
                };
                cx.err(
                    v.span(),
                    self.key(k),
                    format!("is not a setting of the {} {what} ({hint})", self.kind),
                );
            }
        }
    }
}

/// The `kind` key of a section, or an error naming the accepted kinds.
pub(crate) fn kind(cx: &mut Ctx, section: &str, t: &S<RawTable>, kinds: &[&str]) -> Option<String> {
    let key = format!("{section}.kind");
    match t.get_ref().get("kind") {
        None => {
            cx.err(
                t.span(),
                key,
                format!("missing (expected one of: {})", kinds.join(", ")),
            );
            None
        }
        Some(v) => match v.get_ref() {
            toml::Value::String(s) if kinds.contains(&s.as_str()) => Some(s.clone()),
            other => {
                let shown = match other {
                    toml::Value::String(s) => s.clone(),
                    o => o.to_string(),
                };
                cx.err(
                    v.span(),
                    key,
                    format!(
                        "unknown {section} `{shown}` (expected: {})",
                        kinds.join(", ")
                    ),
                );
                None
            }
        },
    }
}

pub(crate) fn num_value(
    cx: &mut Ctx,
    v: &Option<S<toml::Value>>,
    key: &str,
    default: f64,
    lo: f64,
    hi: f64,
) -> f64 {
    let Some(v) = v else {
        return default;
    };
    let x = match v.get_ref() {
        toml::Value::Integer(i) => *i as f64,
        toml::Value::Float(f) => *f,
        other => {
            cx.err(v.span(), key, format!("must be a number, got {other}"));
            return default;
        }
    };
    if !(lo..=hi).contains(&x) {
        cx.err(
            v.span(),
            key,
            format!("must be between {lo} and {hi}, got {x}"),
        );
        return default;
    }
    x
}

pub(crate) fn days(cx: &mut Ctx, v: &Option<S<i64>>, key: &str, default: i64, min: i64) -> u32 {
    match v {
        None => default as u32,
        Some(x) if *x.get_ref() < min || *x.get_ref() > 1_000_000 => {
            cx.err(
                x.span(),
                key,
                format!("must be between {min} and 1000000, got {}", x.get_ref()),
            );
            default as u32
        }
        Some(x) => *x.get_ref() as u32,
    }
}

pub(crate) static EMPTY: RawTable = RawTable::new();
