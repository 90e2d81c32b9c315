//! The universe of a study: one `Bars` per instrument from a data source (the seeded synthetic
//! market or files), aligned on the dates every instrument has; what identifies those bars for
//! the node's caches; and bars cut before a hold-out.
use crate::data::{format_day, read_bars, Bars};
use crate::synthetic::{generate, Synthetic};
use mlt_protocol::spec::DataSource;
use std::path::Path;

/// Loads the bars of a data source, one `Bars` per instrument, restricted to the dates all
/// instruments have (relative files are taken from the study's folder).
pub fn load(data: &DataSource, workdir: Option<&str>) -> Result<Vec<Bars>, String> {
    load_reported(data, workdir).map(|(b, _)| b)
}

/// [`load`], with the data's problems: each file's ([`crate::data::DataReport::problems`])
/// and the dates dropped because not every instrument has them.
pub fn load_reported(
    data: &DataSource,
    workdir: Option<&str>,
) -> Result<(Vec<Bars>, Vec<String>), String> {
    let mut problems = Vec::new();
    let all: Vec<Bars> = match data {
        DataSource::Synthetic {
            days,
            seed,
            strength,
            instruments,
        } => (0..*instruments as u64)
            .map(|i| {
                generate(&Synthetic {
                    days: *days as usize,
                    seed: seed.wrapping_add(i),
                    strength: *strength,
                    ..Default::default()
                })
            })
            .collect::<Result<_, _>>()?,
        DataSource::Files { paths, adjusted } => paths
            .iter()
            .map(|path| {
                let p = Path::new(path);
                let full = match workdir {
                    Some(w) if p.is_relative() => Path::new(w).join(p),
                    _ => p.to_path_buf(),
                };
                let (b, report) = read_bars(&full, *adjusted)?;
                problems.extend(report.problems(path));
                Ok::<Bars, String>(b)
            })
            .collect::<Result<_, _>>()?,
        DataSource::Datasets { files, .. } => {
            return Err(format!(
                "dataset {} was not fetched (uploaded datasets are read from the node's cache)",
                files.first().map_or(String::new(), |f| f.to_spec())
            ))
        }
    };
    if all.len() < 2 {
        return Ok((all, problems));
    }
    let mut common: std::collections::BTreeSet<i64> = all[0].days.iter().copied().collect();
    for b in &all[1..] {
        let d: std::collections::BTreeSet<i64> = b.days.iter().copied().collect();
        common = common.intersection(&d).copied().collect();
    }
    if common.is_empty() {
        return Err("the instruments have no date in common".into());
    }
    for b in &all {
        let dropped: Vec<i64> = b
            .days
            .iter()
            .copied()
            .filter(|d| !common.contains(d))
            .collect();
        if !dropped.is_empty() {
            let first: Vec<String> = dropped.iter().take(3).map(|d| format_day(*d)).collect();
            problems.push(format!(
                "{}: {} dates not in every instrument's data, dropped; first: {}",
                b.instrument,
                dropped.len(),
                first.join(", ")
            ));
        }
    }
    let bars = all
        .into_iter()
        .map(|b| {
            let keep: Vec<usize> = (0..b.len())
                .filter(|&i| common.contains(&b.days[i]))
                .collect();
            let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
            Bars {
                instrument: b.instrument.clone(),
                days: keep.iter().map(|&i| b.days[i]).collect(),
                open: pick(&b.open),
                high: pick(&b.high),
                low: pick(&b.low),
                close: pick(&b.close),
                volume: b.volume.as_ref().map(|v| pick(v)),
                absent: b.absent.clone(),
            }
        })
        .collect();
    Ok((bars, problems))
}

/// What identifies the bars of a data source for the feature cache: the synthetic market's
/// settings, or each file's path, size and modification time (uploaded files are named by
/// their hash).
pub fn data_key(data: &DataSource, workdir: Option<&str>) -> String {
    match data {
        DataSource::Synthetic {
            days,
            seed,
            strength,
            instruments,
        } => format!("synthetic:{days}:{seed}:{strength}:{instruments}"),
        DataSource::Files { paths, adjusted } => {
            let files: Vec<String> = paths
                .iter()
                .map(|p| {
                    let full = match workdir {
                        Some(w) if Path::new(p).is_relative() => Path::new(w).join(p),
                        _ => Path::new(p).to_path_buf(),
                    };
                    let stamp = std::fs::metadata(&full).ok().map(|m| {
                        let t = m
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_nanos());
                        (m.len(), t)
                    });
                    format!("{}:{stamp:?}", full.display())
                })
                .collect();
            format!("files:{adjusted}:{}", files.join("|"))
        }
        DataSource::Datasets { files, adjusted } => {
            let shas: Vec<&str> = files.iter().map(|f| f.sha256.as_str()).collect();
            format!("datasets:{adjusted}:{}", shas.join("|"))
        }
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;

    #[test]
    fn instruments_are_aligned_on_their_common_dates() {
        let dir = tempfile::tempdir().unwrap();
        let a = "Date,Open,High,Low,Close\n2024-01-02,1,1,1,1\n2024-01-03,1,1,1,2\n2024-01-04,1,1,1,3\n";
        let b = "Date,Open,High,Low,Close\n2024-01-03,1,1,1,5\n2024-01-04,1,1,1,6\n2024-01-05,1,1,1,7\n";
        std::fs::write(dir.path().join("a.csv"), a).unwrap();
        std::fs::write(dir.path().join("b.csv"), b).unwrap();
        let data = DataSource::Files {
            paths: vec!["a.csv".into(), "b.csv".into()],
            adjusted: true,
        };
        let bars = load(&data, dir.path().to_str()).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].close, vec![2.0, 3.0]);
        assert_eq!(bars[1].close, vec![5.0, 6.0]);
        assert_eq!(bars[0].days, bars[1].days);
        std::fs::write(
            dir.path().join("c.csv"),
            "Date,Open,High,Low,Close\n2020-01-02,1,1,1,1\n",
        )
        .unwrap();
        let none = DataSource::Files {
            paths: vec!["a.csv".into(), "c.csv".into()],
            adjusted: true,
        };
        assert!(load(&none, dir.path().to_str())
            .unwrap_err()
            .contains("no date in common"));
        // A missing file names itself.
        let missing = DataSource::Files {
            paths: vec!["nope.csv".into()],
            adjusted: true,
        };
        assert!(load(&missing, dir.path().to_str())
            .unwrap_err()
            .contains("nope.csv"));
    }
}
