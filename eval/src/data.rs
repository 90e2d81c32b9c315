//! Daily OHLCV bars from CSV or Parquet (told apart by the file's first bytes), validated: dates sorted and unique, NaNs, calendar gaps and OHLC
//! inconsistencies are warned about and counted (never a crash); a missing required column is
//! an error naming the file and the column.
use std::path::Path;

/// One instrument's daily bars, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bars {
    /// Instrument name (the file stem by default).
    pub instrument: String,
    /// Dates as days since 1970-01-01.
    pub days: Vec<i64>,
    /// Open.
    pub open: Vec<f64>,
    /// High.
    pub high: Vec<f64>,
    /// Low.
    pub low: Vec<f64>,
    /// Close (the adjusted close when the file has one and `adjusted` is asked for).
    pub close: Vec<f64>,
    /// Volume, when the file has it.
    pub volume: Option<Vec<f64>>,
    /// Price columns the file does not have (`open`, `high`, `low`: NaN here); a feature that
    /// uses one fails with its name.
    pub absent: Vec<String>,
}

impl Bars {
    /// Number of bars.
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// The first `n` bars (all of them when there are fewer).
    pub fn head(&self, n: usize) -> Bars {
        self.slice(0, n.min(self.len()))
    }

    /// Bars `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> Bars {
        Bars {
            instrument: self.instrument.clone(),
            days: self.days[start..end].to_vec(),
            open: self.open[start..end].to_vec(),
            high: self.high[start..end].to_vec(),
            low: self.low[start..end].to_vec(),
            close: self.close[start..end].to_vec(),
            volume: self.volume.as_ref().map(|v| v[start..end].to_vec()),
            absent: self.absent.clone(),
        }
    }

    /// Whether there are no bars.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// The bars as CSV text that [`read_csv`] reads back (a `Volume` column when they have
    /// volume).
    pub fn to_csv(&self) -> String {
        let mut text = String::from("Date,Open,High,Low,Close");
        text += if self.volume.is_some() {
            ",Volume\n"
        } else {
            "\n"
        };
        for i in 0..self.len() {
            text += &format!(
                "{},{},{},{},{}",
                format_day(self.days[i]),
                self.open[i],
                self.high[i],
                self.low[i],
                self.close[i]
            );
            match &self.volume {
                Some(v) => text += &format!(",{}\n", v[i]),
                None => text.push('\n'),
            }
        }
        text
    }
}

/// What the loader found and fixed or left as is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataReport {
    /// Rows read.
    pub rows: usize,
    /// Rows whose date repeated an earlier one (the later row is kept).
    pub duplicates: usize,
    /// Whether the rows had to be sorted by date.
    pub reordered: bool,
    /// Whether they were newest first (reversed, not merely out of order).
    pub reversed: bool,
    /// Cells that were empty, `nan` or `null`.
    pub nans: usize,
    /// Rows with fewer cells than the header (the missing ones count as NaN cells).
    pub short_rows: usize,
    /// Rows with a price of zero or less (kept as they are: returns through them are wrong).
    pub non_positive: usize,
    /// Rows where high < max(open, close) or low > min(open, close) or high < low.
    pub ohlc_inconsistent: usize,
    /// Gaps of more than 5 calendar days between consecutive bars.
    pub gaps: usize,
    /// Price columns the file does not have (open, high, low): features that use one fail
    /// with its name.
    pub absent: Vec<String>,
    /// One line per finding, naming the row's date or line.
    pub warnings: Vec<String>,
    /// The findings by kind (for [`DataReport::problems`]).
    notes: Vec<(Problem, String)>,
}

/// The kinds of data problems a loader reports, in the order they are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Problem {
    Reversed,
    Unsorted,
    Duplicate,
    Short,
    Missing,
    NonPositive,
    Inconsistent,
    Gap,
}

impl Problem {
    fn describe(self, n: usize) -> String {
        let s = |one: &str, many: &str| {
            if n == 1 {
                one.to_string()
            } else {
                many.to_string()
            }
        };
        match self {
            Problem::Reversed => "rows are newest first: sorted oldest first".into(),
            Problem::Unsorted => "rows are not in date order: sorted".into(),
            Problem::Duplicate => {
                format!("{n} repeated {} (the later row kept)", s("date", "dates"))
            }
            Problem::Short => format!(
                "{n} {} fewer cells than the header (the missing cells are NaN)",
                s("row has", "rows have")
            ),
            Problem::Missing => format!(
                "{n} empty or NaN {} (no feature, label or return on those days)",
                s("cell", "cells")
            ),
            Problem::NonPositive => format!(
                "{n} {} a price of zero or less (kept: returns through them are meaningless)",
                s("row has", "rows have")
            ),
            Problem::Inconsistent => format!(
                "{n} inconsistent {} (high below open or close, or low above them)",
                s("bar", "bars")
            ),
            Problem::Gap => format!("{n} {} of more than 5 calendar days", s("gap", "gaps")),
        }
    }
}

impl DataReport {
    fn note(&mut self, kind: Problem, what: String) {
        self.warnings.push(what.clone());
        self.notes.push((kind, what));
    }

    /// The problems found, one line each naming the file: what, how many, and the first
    /// three places (a date or a line). Empty for a clean file.
    pub fn problems(&self, name: &str) -> Vec<String> {
        let mut kinds: Vec<Problem> = self.notes.iter().map(|(k, _)| *k).collect();
        kinds.sort();
        kinds.dedup();
        let mut out: Vec<String> = kinds
            .into_iter()
            .map(|k| {
                let all: Vec<&String> = self
                    .notes
                    .iter()
                    .filter(|(kk, _)| *kk == k)
                    .map(|(_, w)| w)
                    .collect();
                let n = match k {
                    Problem::Missing => self.nans,
                    _ => all.len(),
                };
                let first = match k {
                    Problem::Reversed | Problem::Unsorted => String::new(),
                    _ => {
                        let ex: Vec<&str> = all.iter().take(3).map(|w| w.as_str()).collect();
                        format!("; first: {}", ex.join("; "))
                    }
                };
                format!("{name}: {}{first}", k.describe(n))
            })
            .collect();
        if !self.absent.is_empty() {
            out.push(format!(
                "{name}: no {} column (features that use {} fail)",
                self.absent.join(", "),
                if self.absent.len() == 1 { "it" } else { "them" }
            ));
        }
        out
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (a time part after it is ignored).
pub fn parse_day(s: &str) -> Option<i64> {
    let d = s.get(..10)?;
    let mut it = d.split('-');
    let (y, m, dd): (i64, i64, i64) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The date of a day number, `YYYY-MM-DD`.
pub fn format_day(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Reads a CSV of daily bars. Columns are found by name, case-insensitively: a date
/// (`date`, `datetime`, `timestamp`), `open`, `high`, `low`, `close`, optionally `adj close`
/// (with `adjusted`, every price of the row is scaled by adj close / close) and `volume`.
pub fn read_csv(path: &Path, adjusted: bool) -> Result<(Bars, DataReport), String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    parse_csv(&text, &name, adjusted)
}

/// Where a file's columns are, found by name case-insensitively: a date (`date`, `datetime`,
/// `timestamp`, `time`), `open`, `high`, `low`, `close`, with `adjusted` an adjusted close,
/// and `volume` when there is one.
struct Layout {
    date: usize,
    open: Option<usize>,
    high: Option<usize>,
    low: Option<usize>,
    close: usize,
    adj: Option<usize>,
    volume: Option<usize>,
}

impl Layout {
    /// The price columns the file lacks.
    fn absent(&self) -> Vec<String> {
        [("open", self.open), ("high", self.high), ("low", self.low)]
            .into_iter()
            .filter(|(_, c)| c.is_none())
            .map(|(n, _)| n.to_string())
            .collect()
    }
}

fn layout(cols: &[String], name: &str, adjusted: bool) -> Result<Layout, String> {
    let find = |names: &[&str]| cols.iter().position(|c| names.contains(&c.as_str()));
    let need = |names: &[&str], what: &str| {
        find(names).ok_or(format!(
            "{name}: no `{what}` column (columns: {})",
            cols.join(", ")
        ))
    };
    Ok(Layout {
        date: need(&["date", "datetime", "timestamp", "time"], "date")?,
        open: find(&["open"]),
        high: find(&["high"]),
        low: find(&["low"]),
        close: need(&["close"], "close")?,
        adj: if adjusted {
            find(&["adj close", "adj_close", "adjclose"])
        } else {
            None
        },
        volume: find(&["volume"]),
    })
}

/// One bar `[open, high, low, close, volume]` from a row's numbers, every price scaled by
/// adj close / close when there is an adjusted close (so the bar stays consistent).
fn bar(num: &mut impl FnMut(usize) -> Result<f64, String>, l: &Layout) -> Result<[f64; 5], String> {
    let c = num(l.close)?;
    let factor = match l.adj {
        Some(a) => num(a)? / c,
        None => 1.0,
    };
    let mut price = |c: Option<usize>| -> Result<f64, String> {
        Ok(match c {
            Some(c) => num(c)? * factor,
            None => f64::NAN,
        })
    };
    Ok([
        price(l.open)?,
        price(l.high)?,
        price(l.low)?,
        c * factor,
        match l.volume {
            Some(v) => num(v)?,
            None => f64::NAN,
        },
    ])
}

/// Reads bars from a CSV or a Parquet file (Parquet files start with `PAR1`).
pub fn read_bars(path: &Path, adjusted: bool) -> Result<(Bars, DataReport), String> {
    use std::io::Read;
    let name = path.display().to_string();
    let mut magic = [0u8; 4];
    let is_parquet = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"PAR1";
    if is_parquet {
        // The record reader panics on a few malformed files: an error, never a crash.
        std::panic::catch_unwind(|| read_parquet(path, adjusted))
            .unwrap_or_else(|_| Err(format!("{name}: the Parquet file could not be decoded")))
    } else {
        read_csv(path, adjusted)
    }
}

/// Reads a Parquet file of daily bars: the same columns as [`read_csv`], found by name; the
/// date may be a DATE, a TIMESTAMP (milli-, micro- or nanoseconds) or a `YYYY-MM-DD` string;
/// prices and volume any numeric type (nulls count as NaN).
pub fn read_parquet(path: &Path, adjusted: bool) -> Result<(Bars, DataReport), String> {
    use parquet::basic::{LogicalType, TimeUnit};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let reader = SerializedFileReader::new(file).map_err(|e| format!("{name}: {e}"))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let cols: Vec<String> = schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_ascii_lowercase())
        .collect();
    let l = layout(&cols, &name, adjusted)?;
    if schema.num_columns() != cols.len() {
        return Err(format!(
            "{name}: nested columns are not bars (flat columns expected: date, open, high, low, close[, volume])"
        ));
    }
    // A plain INT64 date needs its unit from the logical type.
    let per_day: Option<i64> = match schema.column(l.date).logical_type_ref() {
        Some(LogicalType::Timestamp(t)) => Some(match t.unit {
            TimeUnit::MILLIS => 86_400_000,
            TimeUnit::MICROS => 86_400_000_000,
            TimeUnit::NANOS => 86_400_000_000_000,
        }),
        _ => None,
    };
    let mut rep = DataReport::default();
    let mut rows: Vec<(i64, [f64; 5])> = Vec::new();
    let iter = reader
        .get_row_iter(None)
        .map_err(|e| format!("{name}: {e}"))?;
    for (i, row) in iter.enumerate() {
        let row = row.map_err(|e| format!("{name}: row {}: {e}", i + 1))?;
        let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        let day = match fields.get(l.date) {
            Some(Field::Date(d)) => Some(i64::from(*d)),
            Some(Field::TimestampMillis(ms)) => Some(ms.div_euclid(86_400_000)),
            Some(Field::TimestampMicros(us)) => Some(us.div_euclid(86_400_000_000)),
            Some(Field::Long(v)) => per_day.map(|k| v.div_euclid(k)),
            Some(Field::Str(s)) => parse_day(s),
            _ => None,
        }
        .ok_or(format!(
            "{name}: row {}: `{}` is not a date (DATE, TIMESTAMP or YYYY-MM-DD text)",
            i + 1,
            fields
                .get(l.date)
                .map_or("nothing".to_string(), |f| f.to_string())
        ))?;
        let mut num = |c: usize| -> Result<f64, String> {
            Ok(match fields.get(c) {
                Some(Field::Double(v)) => *v,
                Some(Field::Float(v)) => f64::from(*v),
                Some(Field::Long(v)) => *v as f64,
                Some(Field::Int(v)) => f64::from(*v),
                Some(Field::Short(v)) => f64::from(*v),
                Some(Field::Byte(v)) => f64::from(*v),
                Some(Field::ULong(v)) => *v as f64,
                Some(Field::UInt(v)) => f64::from(*v),
                Some(Field::Null) | None => {
                    rep.nans += 1;
                    rep.note(
                        Problem::Missing,
                        format!("row {} column `{}`", i + 1, cols[c]),
                    );
                    f64::NAN
                }
                Some(other) => {
                    return Err(format!(
                        "{name}: row {}: `{other}` in column `{}` is not a number",
                        i + 1,
                        cols[c]
                    ))
                }
            })
        };
        rows.push((day, bar(&mut num, &l)?));
    }
    rep.absent = l.absent();
    assemble(&name, rows, l.volume.is_some(), rep)
}

/// [`read_csv`] on text; `name` labels errors.
pub fn parse_csv(text: &str, name: &str, adjusted: bool) -> Result<(Bars, DataReport), String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, head) = lines.next().ok_or(format!("{name}: the file is empty"))?;
    let cols: Vec<String> = head
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    // With `adjusted`, every price is scaled by adj close / close so the bar stays consistent.
    let l = layout(&cols, name, adjusted)?;
    let mut rep = DataReport::default();
    let mut rows: Vec<(i64, [f64; 5])> = Vec::new();
    for (i, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() < cols.len() {
            rep.short_rows += 1;
            rep.note(
                Problem::Short,
                format!("line {} ({} of {} cells)", i + 1, cells.len(), cols.len()),
            );
        }
        let cell = |c: usize| cells.get(c).copied().unwrap_or("");
        let day = parse_day(cell(l.date)).ok_or(format!(
            "{name}:{}: `{}` is not a date (YYYY-MM-DD)",
            i + 1,
            cell(l.date)
        ))?;
        let mut num = |c: usize| -> Result<f64, String> {
            let s = cell(c);
            if s.is_empty() || s.eq_ignore_ascii_case("nan") || s.eq_ignore_ascii_case("null") {
                rep.nans += 1;
                rep.note(
                    Problem::Missing,
                    format!("line {} column `{}`", i + 1, cols[c]),
                );
                return Ok(f64::NAN);
            }
            s.parse::<f64>().map_err(|_| {
                format!(
                    "{name}:{}: `{s}` in column `{}` is not a number",
                    i + 1,
                    cols[c]
                )
            })
        };
        rows.push((day, bar(&mut num, &l)?));
    }
    rep.absent = l.absent();
    assemble(name, rows, l.volume.is_some(), rep)
}

/// Sorted, de-duplicated and checked bars from parsed rows `(day, [open, high, low, close,
/// volume])`: the part of loading that does not depend on the file format.
pub fn assemble(
    name: &str,
    mut rows: Vec<(i64, [f64; 5])>,
    has_volume: bool,
    mut rep: DataReport,
) -> Result<(Bars, DataReport), String> {
    rep.rows = rows.len();
    if rows.windows(2).any(|w| w[1].0 < w[0].0) {
        rep.reordered = true;
        rep.reversed = rows.windows(2).all(|w| w[1].0 <= w[0].0);
        if rep.reversed {
            rep.note(
                Problem::Reversed,
                "rows are newest first: sorted oldest first".into(),
            );
        } else {
            rep.note(
                Problem::Unsorted,
                "rows are not in date order: sorted".into(),
            );
        }
        // Stable: of rows with the same date, the one later in the file stays later.
        rows.sort_by_key(|r| r.0);
    }
    let mut kept: Vec<(i64, [f64; 5])> = Vec::with_capacity(rows.len());
    for r in rows {
        match kept.last_mut() {
            Some(last) if last.0 == r.0 => {
                rep.duplicates += 1;
                rep.note(
                    Problem::Duplicate,
                    format!("{}: duplicate date, the later row kept", format_day(r.0)),
                );
                *last = r;
            }
            _ => kept.push(r),
        }
    }
    if rep.nans > 0 {
        rep.warnings
            .push(format!("{} empty or NaN cells", rep.nans));
    }
    let mut bars = Bars {
        instrument: std::path::Path::new(name)
            .file_stem()
            .map_or(name.to_string(), |s| s.to_string_lossy().into_owned()),
        volume: has_volume.then(Vec::new),
        absent: rep.absent.clone(),
        ..Default::default()
    };
    for (k, (day, [o, h, l, c, v])) in kept.iter().enumerate() {
        if k > 0 && day - kept[k - 1].0 > 5 {
            rep.gaps += 1;
            rep.note(
                Problem::Gap,
                format!(
                    "{}: {} calendar days since the previous bar",
                    format_day(*day),
                    day - kept[k - 1].0
                ),
            );
        }
        let bad = h < &o.max(*c) || l > &o.min(*c) || h < l;
        if bad && [o, h, l, c].iter().all(|x| !x.is_nan()) {
            rep.ohlc_inconsistent += 1;
            rep.note(
                Problem::Inconsistent,
                format!(
                    "{}: inconsistent bar (open {o}, high {h}, low {l}, close {c})",
                    format_day(*day)
                ),
            );
        }
        if [o, h, l, c].iter().any(|x| **x <= 0.0) {
            rep.non_positive += 1;
            rep.note(
                Problem::NonPositive,
                format!(
                    "{}: open {o}, high {h}, low {l}, close {c}",
                    format_day(*day)
                ),
            );
        }
        bars.days.push(*day);
        bars.open.push(*o);
        bars.high.push(*h);
        bars.low.push(*l);
        bars.close.push(*c);
        if let Some(vol) = bars.volume.as_mut() {
            vol.push(*v);
        }
    }
    if bars.is_empty() {
        return Err(format!("{name}: no rows after the header"));
    }
    Ok((bars, rep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_written_as_csv_read_back_the_same() {
        let b = crate::synthetic::generate(&crate::synthetic::Synthetic {
            days: 50,
            ..Default::default()
        })
        .unwrap();
        let (back, rep) = parse_csv(&b.to_csv(), "b.csv", false).unwrap();
        assert_eq!(
            (back.days, back.close, back.volume),
            (b.days.clone(), b.close.clone(), b.volume.clone())
        );
        assert_eq!(rep.rows, 50);
        let mut no_volume = b.clone();
        no_volume.volume = None;
        assert!(no_volume.to_csv().starts_with("Date,Open,High,Low,Close\n"));
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2000-03-01"), Some(11_017));
        for d in [-1000, 0, 11_017, 17_500, 20_000] {
            assert_eq!(parse_day(&format_day(d)), Some(d));
        }
        assert_eq!(parse_day("2020-13-01"), None);
        assert_eq!(parse_day("yesterday"), None);
    }

    #[test]
    fn problems_are_warned_counted_and_fixed_not_fatal() {
        let text = "Date,Open,High,Low,Close,Volume\n\
            2024-01-03,10,11,9,10.5,100\n\
            2024-01-02,10,11,9,10,100\n\
            2024-01-03,10,11,9,10.6,120\n\
            2024-01-04,10,9.5,9,10,\n\
            2024-01-20,10,11,9,10,100\n";
        let (b, r) = parse_csv(text, "x.csv", false).unwrap();
        assert!(r.reordered);
        assert_eq!(r.duplicates, 1);
        assert_eq!(b.len(), 4);
        assert_eq!(b.close[1], 10.6); // the later duplicate row
        assert_eq!(r.nans, 1);
        assert_eq!(r.ohlc_inconsistent, 1); // high 9.5 < open 10
        assert_eq!(r.gaps, 1);
        assert!(r
            .warnings
            .iter()
            .any(|w| w.starts_with("2024-01-04: inconsistent bar")));
        // Missing columns and bad cells are errors naming the file, line and column.
        let e = parse_csv("Date,Open,High,Low\n2024-01-02,1,1,1\n", "y.csv", false).unwrap_err();
        assert!(e.contains("y.csv: no `close` column"), "{e}");
        let e = parse_csv(
            "Date,Open,High,Low,Close\n2024-01-02,1,1,x,1\n",
            "z.csv",
            false,
        )
        .unwrap_err();
        assert!(
            e.contains("z.csv:2: `x` in column `low` is not a number"),
            "{e}"
        );
        // Without a volume column there is no volume (features that need it will say so).
        let (b, _) = parse_csv(
            "date,open,high,low,close\n2024-01-02,1,1,1,1\n",
            "v.csv",
            false,
        )
        .unwrap();
        assert!(b.volume.is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_count_and_first_places_never_silently_fixed() {
        // Newest first, a repeated date, an empty cell, a short row, a zero price.
        let text = "date,open,high,low,close\n\
            2024-01-08,10,11,9,10\n\
            2024-01-05,10,11,9,0\n\
            2024-01-04,10,11,9,\n\
            2024-01-04,10,11,9,10.2\n\
            2024-01-03,10,11\n\
            2024-01-02,10,11,9,10\n";
        let (b, r) = parse_csv(text, "d.csv", false).unwrap();
        assert!(r.reversed && r.reordered);
        assert_eq!(b.days.len(), 5);
        assert!(b.days.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((r.duplicates, r.short_rows, r.non_positive), (1, 1, 1));
        // The short row's two missing cells and the empty one.
        assert_eq!(r.nans, 3);
        let p = r.problems("d.csv");
        let want = [
            "d.csv: rows are newest first: sorted oldest first",
            "d.csv: 1 repeated date (the later row kept); first: 2024-01-04: duplicate date, the later row kept",
            "d.csv: 1 row has fewer cells than the header (the missing cells are NaN); first: line 6 (3 of 5 cells)",
            "d.csv: 3 empty or NaN cells (no feature, label or return on those days); first: line 4 column `close`; line 6 column `close`; line 6 column `low`",
            "d.csv: 1 row has a price of zero or less (kept: returns through them are meaningless); first: 2024-01-05: open 10, high 11, low 9, close 0",
            "d.csv: 1 inconsistent bar (high below open or close, or low above them); first: 2024-01-05: inconsistent bar (open 10, high 11, low 9, close 0)",
        ];
        assert_eq!(p, want);
        // Merely out of order is said so, not "newest first".
        let (_, r) = parse_csv(
            "date,close\n2024-01-03,1\n2024-01-02,1\n2024-01-04,1\n",
            "u.csv",
            false,
        )
        .unwrap();
        assert_eq!(
            r.problems("u.csv")[0],
            "u.csv: rows are not in date order: sorted"
        );
        assert!(parse_csv("date,close\n2024-01-02,1\n", "c.csv", false)
            .unwrap()
            .1
            .problems("c.csv")
            .iter()
            .all(|p| p.contains("no open, high, low column")));
    }

    #[test]
    fn a_file_with_only_the_columns_its_features_need_is_read() {
        let (b, r) = parse_csv(
            "Date,Close\n2024-01-02,10\n2024-01-03,11\n2024-01-04,12\n",
            "c.csv",
            false,
        )
        .unwrap();
        assert_eq!(b.close, vec![10.0, 11.0, 12.0]);
        assert_eq!(b.absent, vec!["open", "high", "low"]);
        assert_eq!((r.nans, r.ohlc_inconsistent), (0, 0));
        use crate::features::{eval, parse};
        let ret = eval(&parse("ret(close, 1)").unwrap(), &b).unwrap();
        assert!((ret[1] - 0.1).abs() < 1e-12);
        // A feature that needs a price the file lacks says which, and whose.
        let e = eval(&parse("high - low").unwrap(), &b).unwrap_err();
        assert!(e.contains("needs `high`, which c does not have"), "{e}");
        let e = eval(&parse("atr(14)").unwrap(), &b).unwrap_err();
        assert!(e.contains("`atr` needs `high`"), "{e}");
    }

    #[test]
    fn the_spy_file_loads_with_its_two_quirks_warned() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/SPY.csv");
        if !path.exists() {
            eprintln!(
                "skipped: {} is absent (../shared/data holds the real market data)",
                path.display()
            );
            return;
        }
        let (b, r) = read_csv(&path, true).unwrap();
        assert_eq!(b.len(), 2519);
        assert_eq!(format_day(b.days[0]), "2007-12-31");
        let first: Vec<&String> = r.warnings.iter().take(5).collect();
        assert_eq!(r.ohlc_inconsistent, 2, "{first:?}");
        assert!(r.warnings.iter().any(|w| w.starts_with("2015-03-05")));
        assert!(r.warnings.iter().any(|w| w.starts_with("2015-03-30")));
        assert_eq!((r.duplicates, r.nans, r.reordered), (0, 0, false));
    }
}

#[cfg(test)]
mod parquet_tests {
    use super::*;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    /// One column's values (None = null, for OPTIONAL columns).
    enum Col {
        I32(Vec<i32>),
        I64(Vec<i64>),
        F64(Vec<Option<f64>>),
        Text(Vec<&'static str>),
    }

    fn write(path: &Path, schema: &str, cols: Vec<Col>) {
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build(),
        );
        let file = std::fs::File::create(path).unwrap();
        let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut cols = cols.into_iter();
        while let Some(mut c) = rg.next_column().unwrap() {
            match cols.next().unwrap() {
                Col::I32(v) => {
                    c.typed::<Int32Type>().write_batch(&v, None, None).unwrap();
                }
                Col::I64(v) => {
                    c.typed::<Int64Type>().write_batch(&v, None, None).unwrap();
                }
                Col::F64(v) => {
                    let defs: Vec<i16> = v.iter().map(|x| i16::from(x.is_some())).collect();
                    let vals: Vec<f64> = v.iter().flatten().copied().collect();
                    c.typed::<DoubleType>()
                        .write_batch(&vals, Some(&defs), None)
                        .unwrap();
                }
                Col::Text(v) => {
                    let vals: Vec<ByteArray> = v.iter().map(|s| ByteArray::from(*s)).collect();
                    c.typed::<ByteArrayType>()
                        .write_batch(&vals, None, None)
                        .unwrap();
                }
            }
            c.close().unwrap();
        }
        rg.close().unwrap();
        w.close().unwrap();
    }

    const CSV: &str = "Date,Open,High,Low,Close,Volume\n\
        2024-01-02,10,11,9,10,100\n\
        2024-01-03,10,11,9,,120\n\
        2024-01-04,10,11,9.5,10.5,90\n";

    fn prices() -> Vec<Col> {
        vec![
            Col::F64(vec![Some(10.0); 3]),
            Col::F64(vec![Some(11.0); 3]),
            Col::F64(vec![Some(9.0), Some(9.0), Some(9.5)]),
            Col::F64(vec![Some(10.0), None, Some(10.5)]),
        ]
    }

    #[test]
    fn parquet_bars_equal_the_same_csv_whatever_the_date_type() {
        let dir = tempfile::tempdir().unwrap();
        let (want, want_rep) = parse_csv(CSV, "x", false).unwrap();
        let d0 = parse_day("2024-01-02").unwrap() as i32;
        let day_ns = 86_400_000_000_000i64;
        let cases: Vec<(&str, Col)> = vec![
            (
                "REQUIRED INT32 Date (DATE);",
                Col::I32(vec![d0, d0 + 1, d0 + 2]),
            ),
            (
                // As pandas writes datetime64[ns] (a time of day is dropped).
                "REQUIRED INT64 Date (TIMESTAMP(NANOS,false));",
                Col::I64(vec![
                    i64::from(d0) * day_ns + 3600,
                    i64::from(d0 + 1) * day_ns,
                    i64::from(d0 + 2) * day_ns,
                ]),
            ),
            (
                "REQUIRED INT64 Date (TIMESTAMP(MILLIS,true));",
                Col::I64((0..3).map(|k| i64::from(d0 + k) * 86_400_000).collect()),
            ),
            (
                "REQUIRED BYTE_ARRAY Date (UTF8);",
                Col::Text(vec!["2024-01-02", "2024-01-03", "2024-01-04"]),
            ),
        ];
        for (i, (date, col)) in cases.into_iter().enumerate() {
            let schema = format!(
                "message bars {{ {date} REQUIRED DOUBLE Open; REQUIRED DOUBLE High; REQUIRED DOUBLE Low; OPTIONAL DOUBLE Close; REQUIRED INT64 Volume; }}"
            );
            let mut cols = vec![col];
            cols.extend(prices());
            cols.push(Col::I64(vec![100, 120, 90]));
            let p = dir.path().join(format!("x{i}.parquet"));
            write(&p, &schema, cols);
            let (got, rep) = read_bars(&p, false).unwrap();
            assert_eq!(got.days, want.days, "case {i}");
            assert_eq!(got.high, want.high);
            assert_eq!(got.volume, want.volume);
            assert!(got.close[1].is_nan() && got.close[2] == 10.5);
            assert_eq!((rep.rows, rep.nans), (want_rep.rows, want_rep.nans));
        }
    }

    #[test]
    fn a_parquet_file_without_a_column_or_with_garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nc.parquet");
        write(
            &p,
            "message bars { REQUIRED INT32 Date (DATE); REQUIRED DOUBLE Open; REQUIRED DOUBLE High; REQUIRED DOUBLE Low; }",
            vec![
                Col::I32(vec![19_000]),
                Col::F64(vec![Some(1.0)]),
                Col::F64(vec![Some(1.0)]),
                Col::F64(vec![Some(1.0)]),
            ],
        );
        let e = read_bars(&p, false).unwrap_err();
        assert!(
            e.contains("nc.parquet: no `close` column (columns: date, open, high, low)"),
            "{e}"
        );
        // Parquet magic, then nonsense.
        let g = dir.path().join("garbage.parquet");
        std::fs::write(&g, b"PAR1\x00\x01\x02garbagePAR1").unwrap();
        let e = read_bars(&g, false).unwrap_err();
        assert!(e.contains("garbage.parquet"), "{e}");
        // A date column of plain integers has no unit: refused, naming the row.
        let q = dir.path().join("int.parquet");
        write(
            &q,
            "message bars { REQUIRED INT64 Date; REQUIRED DOUBLE Open; REQUIRED DOUBLE High; REQUIRED DOUBLE Low; REQUIRED DOUBLE Close; }",
            vec![
                Col::I64(vec![20240102]),
                Col::F64(vec![Some(1.0)]),
                Col::F64(vec![Some(1.0)]),
                Col::F64(vec![Some(1.0)]),
                Col::F64(vec![Some(1.0)]),
            ],
        );
        let e = read_bars(&q, false).unwrap_err();
        assert!(e.contains("row 1: `20240102` is not a date"), "{e}");
    }
}
