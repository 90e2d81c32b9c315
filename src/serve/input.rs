//! Request bodies: bars as JSON (one object, an array of objects, or `{"bars": [...]}`) or
//! CSV with a header line, keyed by an `instrument` field or column where there are several.
//! Cells are read as the file reader reads them (`mlt_eval::data`): empty, `nan` and `null`
//! are missing values, every price is scaled by adj close / close when the model trained on
//! adjusted prices and the bar has an adjusted close.
use mlt_eval::data::{assemble, parse_day, Bars, DataReport};
use mlt_eval::stream::Bar;
use std::collections::{BTreeMap, BTreeSet};

/// The instrument of bars that name none.
pub const DEFAULT_INSTRUMENT: &str = "default";

/// Why a body was refused.
#[derive(Debug)]
pub enum BodyError {
    /// Not JSON or CSV at all (400).
    Malformed(String),
    /// Well-formed, but a field is missing or wrong (422).
    Unprocessable(String),
}

/// One bar of a body.
#[derive(Clone, Debug)]
pub struct InBar {
    /// Its instrument.
    pub instrument: String,
    /// The bar (prices adjusted when asked).
    pub bar: Bar,
    /// Where it was: `line 3` or `bars[2]`.
    pub at: String,
}

/// A body's bars, in the order sent, and the columns it has.
#[derive(Debug, Default)]
pub struct Body {
    /// The bars.
    pub bars: Vec<InBar>,
    /// Columns present (`open`, `high`, `low`, `close`, `volume`).
    pub columns: BTreeSet<&'static str>,
}

impl Body {
    /// The bars of each instrument in file order, as the file reader would assemble them
    /// (sorted, the later of two rows of a date kept, problems noted).
    pub fn instruments(&self) -> Result<Vec<Bars>, BodyError> {
        let mut by: BTreeMap<&str, Vec<(i64, [f64; 5])>> = BTreeMap::new();
        for b in &self.bars {
            let v = b.bar.volume.unwrap_or(f64::NAN);
            by.entry(&b.instrument).or_default().push((
                b.bar.day,
                [b.bar.open, b.bar.high, b.bar.low, b.bar.close, v],
            ));
        }
        let absent: Vec<String> = ["open", "high", "low"]
            .into_iter()
            .filter(|c| !self.columns.contains(c))
            .map(String::from)
            .collect();
        by.into_iter()
            .map(|(inst, rows)| {
                let mut rep = DataReport::default();
                rep.absent = absent.clone();
                let (mut bars, _) = assemble(inst, rows, self.columns.contains("volume"), rep)
                    .map_err(BodyError::Unprocessable)?;
                bars.instrument = inst.to_string();
                Ok(bars)
            })
            .collect()
    }
}

fn column(name: &str) -> Option<&'static str> {
    Some(match name {
        "open" => "open",
        "high" => "high",
        "low" => "low",
        "close" => "close",
        "volume" => "volume",
        "adj close" | "adj_close" | "adjclose" => "adj",
        "date" | "datetime" | "timestamp" | "time" => "date",
        "instrument" | "symbol" | "ticker" => "instrument",
        _ => return None,
    })
}

/// A bar from its cells; `adjusted` scales prices by adj close / close.
fn bar(day: i64, cell: &BTreeMap<&'static str, f64>, adjusted: bool) -> Bar {
    let get = |c: &str| cell.get(c).copied().unwrap_or(f64::NAN);
    let c = get("close");
    let factor = match cell.get("adj") {
        Some(a) if adjusted => a / c,
        _ => 1.0,
    };
    Bar {
        day,
        open: get("open") * factor,
        high: get("high") * factor,
        low: get("low") * factor,
        close: c * factor,
        volume: cell.get("volume").copied(),
    }
}

fn number(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("nan") || s.eq_ignore_ascii_case("null") {
        return Some(f64::NAN);
    }
    s.parse().ok()
}

/// Parses a body: CSV when the content type says so or it does not start with `{` or `[`.
pub fn parse(body: &[u8], content_type: Option<&str>, adjusted: bool) -> Result<Body, BodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| BodyError::Malformed(format!("the body is not UTF-8: {e}")))?;
    let first = text.trim_start().chars().next();
    let csv =
        content_type.is_some_and(|t| t.contains("csv")) || !matches!(first, Some('{') | Some('['));
    if first.is_none() {
        return Err(BodyError::Malformed("the body is empty".into()));
    }
    if csv {
        parse_csv(text, adjusted)
    } else {
        parse_json(text, adjusted)
    }
}

fn parse_csv(text: &str, adjusted: bool) -> Result<Body, BodyError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, head) = lines
        .next()
        .ok_or_else(|| BodyError::Malformed("the CSV body is empty".into()))?;
    let names: Vec<String> = head
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let cols: Vec<Option<&'static str>> = names.iter().map(|n| column(n)).collect();
    let at = |c: &str| cols.iter().position(|x| *x == Some(c));
    let date = at("date").ok_or_else(|| {
        BodyError::Unprocessable(format!("no `date` column (columns: {})", names.join(", ")))
    })?;
    if at("close").is_none() {
        return Err(BodyError::Unprocessable(format!(
            "no `close` column (columns: {})",
            names.join(", ")
        )));
    }
    let inst = at("instrument");
    let mut out = Body::default();
    for c in cols.iter().flatten() {
        if let Some(k) = ["open", "high", "low", "close", "volume"]
            .into_iter()
            .find(|k| k == c)
        {
            out.columns.insert(k);
        }
    }
    for (i, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |c: usize| cells.get(c).copied().unwrap_or("");
        let day = parse_day(cell(date)).ok_or_else(|| {
            BodyError::Unprocessable(format!(
                "line {}: `{}` is not a date (YYYY-MM-DD)",
                i + 1,
                cell(date)
            ))
        })?;
        let mut values = BTreeMap::new();
        for (c, kind) in cols.iter().enumerate() {
            let Some(kind) = kind else { continue };
            if matches!(*kind, "date" | "instrument") {
                continue;
            }
            let v = number(cell(c)).ok_or_else(|| {
                BodyError::Unprocessable(format!(
                    "line {}: `{}` in column `{}` is not a number",
                    i + 1,
                    cell(c),
                    names[c]
                ))
            })?;
            values.insert(*kind, v);
        }
        let instrument = match inst.map(cell) {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => DEFAULT_INSTRUMENT.to_string(),
        };
        out.bars.push(InBar {
            instrument,
            bar: bar(day, &values, adjusted),
            at: format!("line {}", i + 1),
        });
    }
    Ok(out)
}

fn parse_json(text: &str, adjusted: bool) -> Result<Body, BodyError> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| BodyError::Malformed(format!("malformed JSON: {e}")))?;
    let items: Vec<serde_json::Value> = match v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(mut o) => match o.remove("bars") {
            Some(serde_json::Value::Array(a)) => a,
            Some(_) => {
                return Err(BodyError::Unprocessable(
                    "`bars` must be an array of bars".into(),
                ))
            }
            None => vec![serde_json::Value::Object(o)],
        },
        _ => {
            return Err(BodyError::Unprocessable(
                "expected a bar (an object), an array of bars, or {\"bars\": [...]}".into(),
            ))
        }
    };
    if items.is_empty() {
        return Err(BodyError::Unprocessable("no bars in the body".into()));
    }
    let mut out = Body::default();
    for (i, item) in items.iter().enumerate() {
        let at = format!("bars[{i}]");
        let serde_json::Value::Object(o) = item else {
            return Err(BodyError::Unprocessable(format!(
                "{at}: a bar is an object"
            )));
        };
        let mut values = BTreeMap::new();
        let mut day = None;
        let mut instrument = None;
        for (k, v) in o {
            let key = k.trim().to_ascii_lowercase();
            let Some(kind) = column(&key) else { continue };
            match kind {
                "date" => {
                    let s = v.as_str().ok_or_else(|| {
                        BodyError::Unprocessable(format!("{at}.{k}: a date is a string YYYY-MM-DD"))
                    })?;
                    day = Some(parse_day(s).ok_or_else(|| {
                        BodyError::Unprocessable(format!(
                            "{at}.{k}: `{s}` is not a date (YYYY-MM-DD)"
                        ))
                    })?);
                }
                "instrument" => {
                    let s = v.as_str().ok_or_else(|| {
                        BodyError::Unprocessable(format!("{at}.{k}: an instrument is a string"))
                    })?;
                    if s.is_empty() || s.len() > 200 {
                        return Err(BodyError::Unprocessable(format!(
                            "{at}.{k}: an instrument has 1 to 200 bytes"
                        )));
                    }
                    instrument = Some(s.to_string());
                }
                _ => {
                    let x = match v {
                        serde_json::Value::Null => f64::NAN,
                        serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                        serde_json::Value::String(s) => number(s).ok_or_else(|| {
                            BodyError::Unprocessable(format!("{at}.{k}: `{s}` is not a number"))
                        })?,
                        other => {
                            return Err(BodyError::Unprocessable(format!(
                                "{at}.{k}: expected a number, got {other}"
                            )))
                        }
                    };
                    values.insert(kind, x);
                    if let Some(c) = ["open", "high", "low", "close", "volume"]
                        .into_iter()
                        .find(|c| *c == kind)
                    {
                        out.columns.insert(c);
                    }
                }
            }
        }
        let day = day.ok_or_else(|| BodyError::Unprocessable(format!("{at}: no `date`")))?;
        if !values.contains_key("close") {
            return Err(BodyError::Unprocessable(format!("{at}: no `close`")));
        }
        out.bars.push(InBar {
            instrument: instrument.unwrap_or_else(|| DEFAULT_INSTRUMENT.to_string()),
            bar: bar(day, &values, adjusted),
            at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_give_the_same_bars() {
        let csv = "Date,Instrument,Open,High,Low,Close,Volume\n2020-01-02,A,1,2,0.5,1.5,100\n2020-01-03,A,1.5,2,1,1.8,\n2020-01-02,B,10,11,9,10.5,7\n";
        let json = r#"[{"date":"2020-01-02","instrument":"A","open":1,"high":2,"low":0.5,"close":1.5,"volume":100},
            {"date":"2020-01-03","instrument":"A","open":1.5,"high":2,"low":1,"close":1.8,"volume":null},
            {"date":"2020-01-02","instrument":"B","open":10,"high":11,"low":9,"close":10.5,"volume":7}]"#;
        let a = parse(csv.as_bytes(), Some("text/csv"), false).unwrap();
        let b = parse(json.as_bytes(), None, false).unwrap();
        let (ia, ib) = (a.instruments().unwrap(), b.instruments().unwrap());
        assert_eq!(ia.len(), 2);
        assert_eq!(format!("{ia:?}"), format!("{ib:?}"));
        assert_eq!(ia[0].instrument, "A");
        assert!(ia[0].volume.as_ref().unwrap()[1].is_nan());
    }

    #[test]
    fn bad_bodies_say_what_and_where() {
        let e = |b: &str| match parse(b.as_bytes(), None, false) {
            Err(BodyError::Malformed(m)) => format!("400 {m}"),
            Err(BodyError::Unprocessable(m)) => format!("422 {m}"),
            Ok(_) => "ok".into(),
        };
        assert!(e(r#"{"date": "2020-01-02", "close": "#).starts_with("400 malformed JSON"));
        assert_eq!(
            e(r#"{"date": "2020-01-02", "open": 1}"#),
            "422 bars[0]: no `close`"
        );
        assert!(e("date,open\n2020-01-02,1\n").starts_with("422 no `close` column"));
        assert!(e("date,close\n2020-01-02,abc\n").contains("line 2: `abc` in column `close`"));
        assert!(e(r#"[{"date": "yesterday", "close": 1}]"#).contains("`yesterday` is not a date"));
        assert!(e("").starts_with("400"));
    }

    #[test]
    fn adjusted_prices_are_scaled_as_the_file_reader_scales_them() {
        let b = parse(
            b"date,open,high,low,close,adj close\n2020-01-02,10,12,9,11,5.5\n",
            None,
            true,
        )
        .unwrap();
        let x = b.bars[0].bar;
        assert_eq!((x.open, x.close), (10.0 * 0.5, 11.0 * 0.5));
    }
}
