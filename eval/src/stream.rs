//! Features computed one bar at a time, for real-time serving: each expression is compiled
//! into a tree of small state machines that keep exactly the history their windows need (a
//! ring of the last n values for a rolling window or a lag, the running value of an
//! exponential average) and take the newest bar in O(window).
//!
//! The arithmetic is [`crate::features::eval`]'s, done on the same values in the same order,
//! so a file pushed bar by bar gives the batch evaluation's numbers exactly (tested on every
//! function and on the 65-expression Alpha158-like set).
use crate::features::{lead, mean, parse, std, window, Expr};
use std::collections::{BTreeSet, VecDeque};

/// One daily bar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    /// Days since 1970-01-01.
    pub day: i64,
    /// Open (NaN when the feed has none).
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
    /// Volume, when the feed has it.
    pub volume: Option<f64>,
}

/// The last `cap` values, oldest first.
#[derive(Clone, Debug)]
struct Ring {
    cap: usize,
    v: VecDeque<f64>,
    /// Values pushed so far.
    seen: usize,
}

impl Ring {
    fn new(cap: usize) -> Self {
        Ring {
            cap,
            v: VecDeque::with_capacity(cap),
            seen: 0,
        }
    }

    fn push(&mut self, x: f64) {
        if self.cap == 0 {
            self.seen += 1;
            return;
        }
        if self.v.len() == self.cap {
            self.v.pop_front();
        }
        self.v.push_back(x);
        self.seen += 1;
    }

    fn full(&self) -> bool {
        self.cap > 0 && self.v.len() == self.cap
    }

    /// The window, oldest first (full rings only).
    fn window(&mut self) -> &[f64] {
        self.v.make_contiguous()
    }
}

#[derive(Clone, Copy, Debug)]
enum Col {
    Open,
    High,
    Low,
    Close,
    Volume,
}

#[derive(Clone, Copy, Debug)]
enum Lag {
    Ref,
    Delta,
    Ret,
}

#[derive(Clone, Copy, Debug)]
enum Roll {
    Mean,
    Std,
    Min,
    Max,
    Sum,
    Rank,
    Zscore,
}

#[derive(Clone, Copy, Debug)]
enum Map {
    Log,
    Abs,
    Sign,
}

/// The exponential average's update, as in the batch evaluation (restarted by a NaN).
#[derive(Clone, Debug)]
struct Ema {
    a: f64,
    e: f64,
}

impl Ema {
    fn new(n: usize) -> Self {
        Ema {
            a: 2.0 / (n as f64 + 1.0),
            e: f64::NAN,
        }
    }

    fn push(&mut self, v: f64) -> f64 {
        self.e = if self.e.is_nan() {
            v
        } else {
            self.a * v + (1.0 - self.a) * self.e
        };
        self.e
    }
}

/// A rolling window's value at the newest bar, as the batch evaluation's `rolling`.
fn rolled(r: &mut Ring, f: impl Fn(&[f64]) -> f64) -> f64 {
    if !r.full() {
        return f64::NAN;
    }
    let w = r.window();
    if w.iter().any(|v| v.is_nan()) {
        f64::NAN
    } else {
        f(w)
    }
}

fn roll(kind: Roll, w: &[f64]) -> f64 {
    match kind {
        Roll::Mean => mean(w),
        Roll::Std => std(w),
        Roll::Min => w.iter().copied().fold(f64::INFINITY, f64::min),
        Roll::Max => w.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Roll::Sum => w.iter().sum(),
        Roll::Rank => {
            let last = w[w.len() - 1];
            w.iter().filter(|v| **v <= last).count() as f64 / w.len() as f64
        }
        Roll::Zscore => (w[w.len() - 1] - mean(w)) / std(w),
    }
}

#[derive(Clone, Debug)]
enum Node {
    Num(f64),
    Col(Col),
    /// `returns`: the close over the previous close, less one.
    Returns(f64),
    Neg(Box<Node>),
    Bin(char, Box<Node>, Box<Node>),
    Map(Map, Box<Node>),
    /// `ref`/`delta`/`ret` over `n` bars: the last n + 1 values of the argument.
    Lag(Lag, usize, Ring, Box<Node>),
    Roll(Roll, Ring, Box<Node>),
    Ema(Ema, Box<Node>),
    Corr(Ring, Ring, Box<Node>, Box<Node>),
    /// Previous close, then rings of the ups and downs.
    Rsi(f64, Ring, Ring),
    /// Previous close, ring of true ranges.
    Atr(f64, Ring),
    /// Ring of closes.
    Bbpos(Ring),
    Vratio(Ring),
    /// Fast and slow averages, the slow period and bars seen.
    Macd(Ema, Ema, usize, usize),
}

fn compile(e: &Expr) -> Result<Node, String> {
    Ok(match e {
        Expr::Num(x) => Node::Num(*x),
        Expr::Col(c) => match c.as_str() {
            "open" => Node::Col(Col::Open),
            "high" => Node::Col(Col::High),
            "low" => Node::Col(Col::Low),
            "close" => Node::Col(Col::Close),
            "volume" => Node::Col(Col::Volume),
            "returns" => Node::Returns(f64::NAN),
            other => return Err(format!("unknown column `{other}`")),
        },
        Expr::Neg(a) => Node::Neg(Box::new(compile(a)?)),
        Expr::Bin(op, a, b) => Node::Bin(*op, Box::new(compile(a)?), Box::new(compile(b)?)),
        Expr::Call(f, args) => {
            let arg = |i: usize| compile(&args[i]).map(Box::new);
            let pos = |i: usize| -> Result<usize, String> {
                let w = window(&args[i], f)?;
                if w < 1 {
                    return Err(format!("`{f}` needs a window of at least 1"));
                }
                Ok(w as usize)
            };
            let lag = |kind: Lag| -> Result<Node, String> {
                let n = window(&args[1], f)?;
                if n < 0 {
                    return Err(format!(
                        "`{e}` reads later bars, which a live feed does not have"
                    ));
                }
                let n = n as usize;
                Ok(Node::Lag(kind, n, Ring::new(n + 1), arg(0)?))
            };
            let rolling = |kind: Roll| -> Result<Node, String> {
                Ok(Node::Roll(kind, Ring::new(pos(1)?), arg(0)?))
            };
            match f.as_str() {
                "log" => Node::Map(Map::Log, arg(0)?),
                "abs" => Node::Map(Map::Abs, arg(0)?),
                "sign" => Node::Map(Map::Sign, arg(0)?),
                "ref" => lag(Lag::Ref)?,
                "delta" => lag(Lag::Delta)?,
                "ret" => lag(Lag::Ret)?,
                "mean" => rolling(Roll::Mean)?,
                "std" => rolling(Roll::Std)?,
                "min" => rolling(Roll::Min)?,
                "max" => rolling(Roll::Max)?,
                "sum" => rolling(Roll::Sum)?,
                "rank" => rolling(Roll::Rank)?,
                "zscore" => rolling(Roll::Zscore)?,
                "ema" => Node::Ema(Ema::new(pos(1)?), arg(0)?),
                "corr" => {
                    let w = pos(2)?;
                    Node::Corr(Ring::new(w), Ring::new(w), arg(0)?, arg(1)?)
                }
                "rsi" => {
                    let w = pos(0)?;
                    Node::Rsi(f64::NAN, Ring::new(w), Ring::new(w))
                }
                "atr" => Node::Atr(f64::NAN, Ring::new(pos(0)?)),
                "bbpos" => Node::Bbpos(Ring::new(pos(0)?)),
                "vratio" => Node::Vratio(Ring::new(pos(0)?)),
                "macd" => {
                    let (fa, sl) = (pos(0)?, pos(1)?);
                    Node::Macd(Ema::new(fa), Ema::new(sl), sl, 0)
                }
                other => return Err(format!("unknown function `{other}`")),
            }
        }
    })
}

impl Node {
    /// Takes the newest bar; its value there.
    fn push(&mut self, b: &Bar) -> f64 {
        let volume = b.volume.unwrap_or(f64::NAN);
        match self {
            Node::Num(x) => *x,
            Node::Col(c) => match c {
                Col::Open => b.open,
                Col::High => b.high,
                Col::Low => b.low,
                Col::Close => b.close,
                Col::Volume => volume,
            },
            Node::Returns(prev) => {
                let v = b.close / *prev - 1.0;
                *prev = b.close;
                v
            }
            Node::Neg(a) => -a.push(b),
            Node::Bin(op, x, y) => {
                let (a, c) = (x.push(b), y.push(b));
                match op {
                    '+' => a + c,
                    '-' => a - c,
                    '*' => a * c,
                    _ => a / c,
                }
            }
            Node::Map(m, a) => {
                let v = a.push(b);
                match m {
                    Map::Log => v.ln(),
                    Map::Abs => v.abs(),
                    Map::Sign => {
                        if v.is_nan() {
                            v
                        } else if v == 0.0 {
                            0.0
                        } else {
                            v.signum()
                        }
                    }
                }
            }
            Node::Lag(kind, n, ring, a) => {
                let x = a.push(b);
                ring.push(x);
                // x n bars ago: the oldest of the last n + 1, once there are n + 1.
                let s = if ring.seen > *n { ring.v[0] } else { f64::NAN };
                match kind {
                    Lag::Ref => s,
                    Lag::Delta => x - s,
                    Lag::Ret => x / s - 1.0,
                }
            }
            Node::Roll(kind, ring, a) => {
                let x = a.push(b);
                ring.push(x);
                let k = *kind;
                rolled(ring, |w| roll(k, w))
            }
            Node::Ema(e, a) => {
                let x = a.push(b);
                e.push(x)
            }
            Node::Corr(rx, ry, x, y) => {
                let (vx, vy) = (x.push(b), y.push(b));
                rx.push(vx);
                ry.push(vy);
                if !rx.full() {
                    return f64::NAN;
                }
                let (a, c) = (rx.window(), ry.window());
                let (ma, mc) = (mean(a), mean(c));
                let cov: f64 = a.iter().zip(c).map(|(p, q)| (p - ma) * (q - mc)).sum();
                let va: f64 = a.iter().map(|p| (p - ma).powi(2)).sum();
                let vc: f64 = c.iter().map(|q| (q - mc).powi(2)).sum();
                cov / (va * vc).sqrt()
            }
            Node::Rsi(prev, up, dn) => {
                let d = b.close - *prev;
                *prev = b.close;
                up.push(d.max(0.0));
                dn.push((-d).max(0.0));
                let u = rolled(up, mean);
                let dd = rolled(dn, mean);
                100.0 * u / (u + dd)
            }
            Node::Atr(pc, tr) => {
                let t = (b.high - b.low)
                    .max((b.high - *pc).abs())
                    .max((b.low - *pc).abs());
                *pc = b.close;
                tr.push(t);
                rolled(tr, mean)
            }
            Node::Bbpos(closes) => {
                closes.push(b.close);
                let m = rolled(closes, mean);
                let s = rolled(closes, std);
                (b.close - m) / (2.0 * s)
            }
            Node::Vratio(vols) => {
                vols.push(volume);
                volume / rolled(vols, mean)
            }
            Node::Macd(ef, es, sl, seen) => {
                let (f, s) = (ef.push(b.close), es.push(b.close));
                *seen += 1;
                if *seen < *sl {
                    f64::NAN
                } else {
                    (f - s) / b.close
                }
            }
        }
    }

    /// Values it keeps.
    fn kept(&self) -> usize {
        match self {
            Node::Num(_) | Node::Col(_) => 0,
            Node::Returns(_) => 1,
            Node::Neg(a) | Node::Map(_, a) => a.kept(),
            Node::Bin(_, a, c) => a.kept() + c.kept(),
            Node::Lag(_, _, r, a) | Node::Roll(_, r, a) => r.cap + a.kept(),
            Node::Ema(_, a) => 1 + a.kept(),
            Node::Corr(rx, ry, x, y) => rx.cap + ry.cap + x.kept() + y.kept(),
            Node::Rsi(_, u, d) => 1 + u.cap + d.cap,
            Node::Atr(_, r) => 1 + r.cap,
            Node::Bbpos(r) | Node::Vratio(r) => r.cap,
            Node::Macd(..) => 3,
        }
    }
}

/// The bar columns an expression reads.
pub fn columns(e: &Expr, out: &mut BTreeSet<&'static str>) {
    match e {
        Expr::Num(_) => {}
        Expr::Col(c) => {
            out.insert(match c.as_str() {
                "open" => "open",
                "high" => "high",
                "low" => "low",
                "volume" => "volume",
                _ => "close",
            });
        }
        Expr::Neg(a) => columns(a, out),
        Expr::Bin(_, a, b) => {
            columns(a, out);
            columns(b, out);
        }
        Expr::Call(f, args) => {
            match f.as_str() {
                "rsi" | "bbpos" | "macd" => {
                    out.insert("close");
                }
                "atr" => out.extend(["high", "low", "close"]),
                "vratio" => {
                    out.insert("volume");
                }
                _ => {}
            }
            args.iter().for_each(|a| columns(a, out));
        }
    }
}

/// A model's input rows computed bar by bar: its features (in column order) and, for a
/// sequence model, the last `lookback` days' rows.
#[derive(Clone, Debug)]
pub struct FeatureStream {
    nodes: Vec<Node>,
    lookback: usize,
    /// The last `lookback` rows (None where a feature was not defined).
    rows: VecDeque<Option<Vec<f64>>>,
    needs: BTreeSet<&'static str>,
    /// The newest bar's date.
    pub last_day: Option<i64>,
}

impl FeatureStream {
    /// The stream of `features` (name and expression, parameters substituted), `lookback`
    /// days per input (1 for a model of one day's features). Refuses a feature that reads
    /// later bars.
    pub fn new(features: &[(String, String)], lookback: u32) -> Result<Self, String> {
        let mut nodes = Vec::with_capacity(features.len());
        let mut needs = BTreeSet::new();
        for (name, text) in features {
            let e = parse(text).map_err(|e| format!("feature `{name}` = `{text}`: {e}"))?;
            if lead(&e).map_err(|e| format!("feature `{name}`: {e}"))? > 0 {
                return Err(format!(
                    "feature `{name}` = `{text}` reads later bars, which a live feed does not have"
                ));
            }
            columns(&e, &mut needs);
            nodes.push(compile(&e).map_err(|e| format!("feature `{name}`: {e}"))?);
        }
        let lookback = lookback.max(1) as usize;
        Ok(FeatureStream {
            nodes,
            lookback,
            rows: VecDeque::with_capacity(lookback),
            needs,
            last_day: None,
        })
    }

    /// The bar columns the features read (`open`, `high`, `low`, `close`, `volume`).
    pub fn needs(&self) -> &BTreeSet<&'static str> {
        &self.needs
    }

    /// Values kept between bars (the rolling history the features need), all features
    /// together.
    pub fn kept(&self) -> usize {
        self.nodes.iter().map(Node::kept).sum::<usize>() + self.lookback * self.nodes.len()
    }

    /// Takes the newest bar (the caller keeps dates increasing); the model's input row for
    /// it, when every feature is defined on each of the last `lookback` days.
    pub fn push(&mut self, bar: &Bar) -> Option<Vec<f64>> {
        let row: Vec<f64> = self.nodes.iter_mut().map(|n| n.push(bar)).collect();
        self.last_day = Some(bar.day);
        if self.rows.len() == self.lookback {
            self.rows.pop_front();
        }
        self.rows
            .push_back(row.iter().all(|v| v.is_finite()).then_some(row));
        if self.rows.len() < self.lookback {
            return None;
        }
        let mut out = Vec::with_capacity(self.lookback * self.nodes.len());
        for r in &self.rows {
            out.extend(r.as_ref()?);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Bars;
    use crate::features::eval;

    fn bars(n: usize, volume: bool) -> Bars {
        let mut b = crate::synthetic::generate(&crate::synthetic::Synthetic {
            days: n,
            ..Default::default()
        })
        .unwrap();
        if !volume {
            b.volume = None;
        }
        b
    }

    fn bar(b: &Bars, t: usize) -> Bar {
        Bar {
            day: b.days[t],
            open: b.open[t],
            high: b.high[t],
            low: b.low[t],
            close: b.close[t],
            volume: b.volume.as_ref().map(|v| v[t]),
        }
    }

    /// Every value of `text` pushed bar by bar equals the batch evaluation's, bit for bit
    /// (NaN where it is NaN).
    fn same(text: &str, b: &Bars) {
        let e = parse(text).unwrap();
        let batch = eval(&e, b).unwrap();
        let mut n = compile(&e).unwrap();
        for (t, want) in batch.iter().enumerate() {
            let got = n.push(&bar(b, t));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "`{text}` at bar {t}: streamed {got}, batch {want}"
            );
        }
    }

    #[test]
    fn every_function_streams_the_batch_values_exactly() {
        let b = bars(400, true);
        for text in [
            "close",
            "returns",
            "-open + high * 2 - low / close",
            "log(volume + 1)",
            "abs(returns)",
            "sign(returns)",
            "ref(close, 3)",
            "ref(close, 0)",
            "delta(close, 5)",
            "ret(close, 20)",
            "mean(close, 10)",
            "std(returns, 20)",
            "min(low, 7)",
            "max(high, 7)",
            "sum(returns, 5)",
            "rank(close, 30)",
            "zscore(close, 15)",
            "ema(close, 12)",
            "ema(ret(close, 3), 5)",
            "corr(close, log(volume + 1), 10)",
            "rsi(14)",
            "atr(14)",
            "bbpos(20)",
            "vratio(20)",
            "macd(12, 26)",
            "mean(std(returns, 5), 10) / ref(atr(3), 2)",
        ] {
            same(text, &b);
        }
    }

    #[test]
    fn a_row_is_given_once_every_feature_is_defined_over_the_lookback() {
        let b = bars(60, true);
        let feats = vec![
            ("m".to_string(), "mean(close, 5)".to_string()),
            ("r".to_string(), "ret(close, 1)".to_string()),
        ];
        let mut s = FeatureStream::new(&feats, 3).unwrap();
        let rows: Vec<_> = (0..b.len()).map(|t| s.push(&bar(&b, t))).collect();
        // mean(close, 5) is defined from bar 4 on, three days of it from bar 6.
        assert!(rows[..6].iter().all(Option::is_none));
        let r = rows[6].as_ref().unwrap();
        assert_eq!(r.len(), 6);
        assert_eq!(s.needs().iter().copied().collect::<Vec<_>>(), vec!["close"]);
        assert_eq!(s.last_day, Some(b.days[59]));
    }

    #[test]
    fn a_feature_that_reads_later_bars_is_refused() {
        let feats = vec![("peek".to_string(), "ref(close, -1)".to_string())];
        let e = FeatureStream::new(&feats, 1).unwrap_err();
        assert!(e.contains("peek") && e.contains("later bars"), "{e}");
    }
}
