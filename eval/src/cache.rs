//! Feature columns already computed and guarded on this node, reused by later trials.
//!
//! Most trials of a study share most of their features (only those with a `$parameter` differ),
//! and the look-ahead guard costs about 13 evaluations of each. A column depends only on the
//! data and the expression text, so it is kept, least recently used first out, within a
//! budget of values, and a later trial on the same data takes it as it is.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// What identifies a column: the data (source, instrument, length) and the expression.
pub type Key = (String, String);

/// Columns by key within a budget of values, the least recently used evicted first.
pub struct Lru {
    map: HashMap<Key, (Arc<Vec<f64>>, u64)>,
    clock: u64,
    values: usize,
    budget: usize,
}

impl Lru {
    /// An empty cache holding at most `budget` values.
    pub fn new(budget: usize) -> Self {
        Self {
            map: HashMap::new(),
            clock: 0,
            values: 0,
            budget,
        }
    }

    /// The column under `key`, marked as just used.
    pub fn get(&mut self, key: &Key) -> Option<Arc<Vec<f64>>> {
        self.clock += 1;
        let now = self.clock;
        let (col, used) = self.map.get_mut(key)?;
        *used = now;
        Some(col.clone())
    }

    /// Keeps `col` under `key` (not when it alone exceeds the budget), evicting as needed.
    pub fn insert(&mut self, key: Key, col: Arc<Vec<f64>>) {
        if col.len() > self.budget {
            return;
        }
        self.clock += 1;
        if let Some((old, _)) = self.map.remove(&key) {
            self.values -= old.len();
        }
        self.values += col.len();
        self.map.insert(key, (col, self.clock));
        while self.values > self.budget {
            let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, u))| *u)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((old, _)) = self.map.remove(&oldest) {
                self.values -= old.len();
            }
        }
    }

    /// Values held.
    pub fn values(&self) -> usize {
        self.values
    }
}

/// Values kept by default: 32 M (256 MiB of f64).
pub const DEFAULT_BUDGET: usize = 32 << 20;

fn cache() -> &'static Mutex<Lru> {
    static CACHE: OnceLock<Mutex<Lru>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Lru::new(DEFAULT_BUDGET)))
}

/// The node's column under `key`, computing (and keeping) it with `make` when absent.
pub fn get_or_compute(
    key: Key,
    make: impl FnOnce() -> Result<Vec<f64>, String>,
) -> Result<Arc<Vec<f64>>, String> {
    if let Some(c) = cache().lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(c);
    }
    // Computed outside the lock: other workers go on meanwhile.
    let col = Arc::new(make()?);
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, col.clone());
    Ok(col)
}

/// Data sources' bars kept on this node, most recently used last.
type BarsCache = Vec<(String, Arc<Vec<crate::data::Bars>>)>;

/// Data sources whose bars are kept (each trial otherwise reads and checks its files again).
const BARS_KEPT: usize = 4;

fn bars_cache() -> &'static Mutex<BarsCache> {
    static BARS: OnceLock<Mutex<BarsCache>> = OnceLock::new();
    BARS.get_or_init(|| Mutex::new(Vec::new()))
}

/// The bars of the data source `key` names (its files' paths, sizes and modification times,
/// or the synthetic market's settings), loading (and keeping) them with `load` when absent.
pub fn bars(
    key: &str,
    load: impl FnOnce() -> Result<Vec<crate::data::Bars>, String>,
) -> Result<Arc<Vec<crate::data::Bars>>, String> {
    {
        let mut kept = bars_cache().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = kept.iter().position(|(k, _)| k == key) {
            let hit = kept.remove(i);
            let bars = hit.1.clone();
            kept.push(hit);
            return Ok(bars);
        }
    }
    let bars = Arc::new(load()?);
    let mut kept = bars_cache().lock().unwrap_or_else(|p| p.into_inner());
    kept.retain(|(k, _)| k != key);
    kept.push((key.to_string(), bars.clone()));
    if kept.len() > BARS_KEPT {
        kept.remove(0);
    }
    Ok(bars)
}

/// Drops every column and every source's bars kept on this node and sets the columns' budget
/// (values): for benchmarks.
pub fn reset(budget: usize) {
    *cache().lock().unwrap_or_else(|p| p.into_inner()) = Lru::new(budget);
    bars_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        ("data".to_string(), s.to_string())
    }

    #[test]
    fn the_least_recently_used_column_leaves_first() {
        let mut c = Lru::new(25);
        c.insert(k("a"), Arc::new(vec![1.0; 10]));
        c.insert(k("b"), Arc::new(vec![2.0; 10]));
        assert!(c.get(&k("a")).is_some());
        // 30 values > 25: b (used longest ago) goes, a stays.
        c.insert(k("c"), Arc::new(vec![3.0; 10]));
        assert!(c.get(&k("b")).is_none());
        assert_eq!(c.get(&k("a")).unwrap()[0], 1.0);
        assert_eq!(c.values(), 20);
        // Too big alone: not kept.
        c.insert(k("huge"), Arc::new(vec![0.0; 26]));
        assert!(c.get(&k("huge")).is_none());
    }

    #[test]
    fn bars_are_loaded_once_per_source_and_errors_are_not_kept() {
        use crate::synthetic::{generate, Synthetic};
        let make = |seed| {
            generate(&Synthetic {
                days: 50,
                seed,
                ..Default::default()
            })
        };
        let mut loads = 0;
        let a = bars("bars-test:a", || {
            loads += 1;
            Ok(vec![make(1)?])
        })
        .unwrap();
        let again = bars("bars-test:a", || {
            loads += 1;
            Ok(vec![make(2)?])
        })
        .unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(loads, 1);
        assert!(bars("bars-test:bad", || Err("unreadable".into())).is_err());
        let b = bars("bars-test:bad", || Ok(vec![make(3)?])).unwrap();
        assert_eq!(b[0].close, make(3).unwrap().close);
        // Only the last few sources stay.
        for i in 0..BARS_KEPT {
            bars(&format!("bars-test:{i}"), || Ok(vec![make(4)?])).unwrap();
        }
        let mut reloaded = false;
        bars("bars-test:a", || {
            reloaded = true;
            Ok(vec![make(1)?])
        })
        .unwrap();
        assert!(reloaded);
    }

    #[test]
    fn a_column_is_computed_once_and_errors_are_not_kept() {
        // Keys unique to this test: the node's cache is shared by the whole test binary.
        let key = ("cache-test".to_string(), "x".to_string());
        let mut made = 0;
        let a = get_or_compute(key.clone(), || {
            made += 1;
            Ok(vec![1.0; 3])
        })
        .unwrap();
        let b = get_or_compute(key, || {
            made += 1;
            Ok(vec![9.0; 3])
        })
        .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(made, 1);
        let bad = ("cache-test".to_string(), "bad".to_string());
        assert!(get_or_compute(bad.clone(), || Err("no".into())).is_err());
        assert_eq!(*get_or_compute(bad, || Ok(vec![2.0])).unwrap(), vec![2.0]);
    }
}
