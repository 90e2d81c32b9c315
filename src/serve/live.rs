//! Real-time state: per model name and instrument, the newest bar's date, each served
//! version's feature stream (exactly the rolling history its features need), and the last
//! `history` raw bars, from which a version that starts serving the instrument later (a new
//! production version, a rollout's candidate) is warmed up.
use mlt_eval::stream::{Bar, FeatureStream};
use mlt_protocol::records::ModelArtifact;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// One instrument of one model name.
#[derive(Default)]
pub struct Track {
    /// The newest bar's date.
    pub last_day: Option<i64>,
    ring: VecDeque<Bar>,
    streams: HashMap<u32, FeatureStream>,
}

impl Track {
    /// Why `bars` (in order) cannot follow what the track has: a date not after the one
    /// before it.
    pub fn check(&self, instrument: &str, bars: &[(&Bar, &str)]) -> Result<(), String> {
        let day = mlt_eval::data::format_day;
        let mut last = self.last_day;
        for (b, at) in bars {
            if let Some(l) = last {
                if b.day == l {
                    return Err(format!(
                        "{at}: {instrument} already has a bar for {} (duplicate date)",
                        day(b.day)
                    ));
                }
                if b.day < l {
                    return Err(format!(
                        "{at}: the bar of {} for {instrument} comes after {}: bars go oldest first",
                        day(b.day),
                        day(l)
                    ));
                }
            }
            last = Some(b.day);
        }
        Ok(())
    }

    /// Bars `bars` (dates increasing) from the model's own data, before any bar is posted.
    pub fn seed(&mut self, bars: &[Bar], history: usize) {
        for b in bars.iter().skip(bars.len().saturating_sub(history)) {
            self.ring.push_back(*b);
        }
        self.last_day = bars.last().map(|b| b.day);
    }

    /// Takes the newest bar for every version that has a stream, after making streams for
    /// `wanted` (warmed on the kept bars); each wanted version's input row for it.
    pub fn push(
        &mut self,
        bar: &Bar,
        wanted: &[(u32, &ModelArtifact)],
        history: usize,
    ) -> Result<Vec<Option<Vec<f64>>>, String> {
        for (v, a) in wanted {
            if !self.streams.contains_key(v) {
                let mut s = FeatureStream::new(&a.features, a.lookback)?;
                for b in &self.ring {
                    s.push(b);
                }
                self.streams.insert(*v, s);
            }
        }
        let mut rows: HashMap<u32, Option<Vec<f64>>> = HashMap::new();
        for (v, s) in &mut self.streams {
            rows.insert(*v, s.push(bar));
        }
        if history > 0 {
            if self.ring.len() == history {
                self.ring.pop_front();
            }
            self.ring.push_back(*bar);
        }
        self.last_day = Some(bar.day);
        Ok(wanted
            .iter()
            .map(|(v, _)| rows.get(v).cloned().flatten())
            .collect())
    }

    /// Drops the streams of versions no longer served.
    pub fn prune(&mut self, keep: &HashSet<u32>) {
        self.streams.retain(|v, _| keep.contains(v));
    }
}

/// One name's tracks by instrument.
type ByInstrument = HashMap<String, Arc<Mutex<Track>>>;

/// Every model name's tracks.
pub struct Tracks {
    /// Raw bars kept per track for warming up.
    pub history: usize,
    /// Instruments kept per name.
    pub max_instruments: usize,
    map: Mutex<HashMap<String, ByInstrument>>,
}

impl Tracks {
    /// Tracks keeping `history` raw bars each, at most `max_instruments` per name.
    pub fn new(history: usize, max_instruments: usize) -> Self {
        Tracks {
            history,
            max_instruments,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The track of `instrument` for `name`, made (with `seed`'s bars) when new; None when
    /// the name has `max_instruments` already.
    pub fn get(
        &self,
        name: &str,
        instrument: &str,
        seed: impl FnOnce() -> Option<Vec<Bar>>,
    ) -> Option<Arc<Mutex<Track>>> {
        let mut g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let by = g.entry(name.to_string()).or_default();
        if let Some(t) = by.get(instrument) {
            return Some(t.clone());
        }
        if by.len() >= self.max_instruments {
            return None;
        }
        let mut t = Track::default();
        if let Some(bars) = seed() {
            t.seed(&bars, self.history);
        }
        let t = Arc::new(Mutex::new(t));
        by.insert(instrument.to_string(), t.clone());
        Some(t)
    }

    /// Drops streams of versions of `name` outside `keep`.
    pub fn prune(&self, name: &str, keep: &HashSet<u32>) {
        let tracks: Vec<_> = {
            let g = self.map.lock().unwrap_or_else(|p| p.into_inner());
            g.get(name)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default()
        };
        for t in tracks {
            t.lock().unwrap_or_else(|p| p.into_inner()).prune(keep);
        }
    }

    /// Instruments tracked per name.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = g.iter().map(|(n, m)| (n.clone(), m.len())).collect();
        v.sort();
        v
    }
}
