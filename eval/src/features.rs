//! Feature expressions over daily bars, in the spirit of Qlib's expression language:
//!
//! ```text
//! columns      open high low close volume returns
//! arithmetic   + - * /, unary -, numbers, parentheses
//! time         ref(x, n)  delta(x, n)  ret(x, n)          (n > 0 looks back; n < 0 would look ahead)
//! rolling      mean std min max sum rank zscore ema (x, n), corr(x, y, n)
//! elementwise  log(x) abs(x) sign(x)
//! indicators   rsi(n) atr(n) bbpos(n) vratio(n) macd(fast, slow)
//! ```
//!
//! Values before a window is full are NaN. [`lookahead_check`] evaluates a feature on the data
//! cut at many times t and requires the value at t to equal the value computed on all the
//! data: a feature that peeks at the future (e.g. `ref(close, -1)`) is refused by name.
use crate::data::Bars;
use mlt_protocol::records::{ParamValue, Params};

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number.
    Num(f64),
    /// A column.
    Col(String),
    /// `-x`.
    Neg(Box<Expr>),
    /// `a op b`.
    Bin(char, Box<Expr>, Box<Expr>),
    /// `f(args)`.
    Call(String, Vec<Expr>),
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Num(x) => write!(f, "{x}"),
            Expr::Col(c) => write!(f, "{c}"),
            Expr::Neg(x) => write!(f, "-{x}"),
            Expr::Bin(op, a, b) => write!(f, "({a} {op} {b})"),
            Expr::Call(name, args) => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{a}")?;
                }
                write!(f, ")")
            }
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("at character {}: {what}", self.i + 1))
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut a = self.term()?;
        while let Some(c @ (b'+' | b'-')) = self.peek() {
            self.i += 1;
            a = Expr::Bin(c as char, Box::new(a), Box::new(self.term()?));
        }
        Ok(a)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut a = self.factor()?;
        while let Some(c @ (b'*' | b'/')) = self.peek() {
            self.i += 1;
            a = Expr::Bin(c as char, Box::new(a), Box::new(self.factor()?));
        }
        Ok(a)
    }

    fn factor(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(b'-') => {
                self.i += 1;
                Ok(Expr::Neg(Box::new(self.factor()?)))
            }
            Some(b'(') => {
                self.i += 1;
                let e = self.expr()?;
                if self.peek() != Some(b')') {
                    return self.err("expected `)`");
                }
                self.i += 1;
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_digit() || b".eE".contains(&self.s[self.i]))
                {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                t.parse()
                    .map(Expr::Num)
                    .or_else(|_| self.err(&format!("`{t}` is not a number")))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
                {
                    self.i += 1;
                }
                let name = std::str::from_utf8(&self.s[start..self.i])
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if self.peek() != Some(b'(') {
                    return Ok(Expr::Col(name));
                }
                self.i += 1;
                let mut args = Vec::new();
                if self.peek() != Some(b')') {
                    loop {
                        args.push(self.expr()?);
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b')') => break,
                            _ => return self.err("expected `,` or `)`"),
                        }
                    }
                }
                self.i += 1;
                Ok(Expr::Call(name, args))
            }
            Some(c) => self.err(&format!("unexpected `{}`", c as char)),
            None => self.err("unexpected end"),
        }
    }
}

/// Parses an expression, checking names and argument counts.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let e = p.expr()?;
    if p.peek().is_some() {
        return p.err("unexpected text after the expression");
    }
    check(&e)?;
    Ok(e)
}

fn arity(name: &str) -> Option<usize> {
    Some(match name {
        "log" | "abs" | "sign" => 1,
        "rsi" | "atr" | "bbpos" | "vratio" => 1,
        "ref" | "delta" | "ret" | "mean" | "std" | "min" | "max" | "sum" | "rank" | "zscore"
        | "ema" | "macd" => 2,
        "corr" => 3,
        _ => return None,
    })
}

fn check(e: &Expr) -> Result<(), String> {
    match e {
        Expr::Num(_) => Ok(()),
        Expr::Col(c) => match c.as_str() {
            "open" | "high" | "low" | "close" | "volume" | "returns" => Ok(()),
            _ => Err(format!(
                "unknown column `{c}` (open, high, low, close, volume, returns)"
            )),
        },
        Expr::Neg(a) => check(a),
        Expr::Bin(_, a, b) => check(a).and(check(b)),
        Expr::Call(f, args) => {
            let n = arity(f).ok_or(format!("unknown function `{f}`"))?;
            if args.len() != n {
                return Err(format!("`{f}` takes {n} argument(s), got {}", args.len()));
            }
            args.iter().try_for_each(check)
        }
    }
}

/// The longest period a feature may name, in bars (about 4,000 years of daily bars): far
/// beyond any data, and small enough that sums of periods cannot overflow.
const MAX_PERIOD: f64 = 1_000_000.0;

pub(crate) fn window(e: &Expr, f: &str) -> Result<i64, String> {
    match e {
        Expr::Num(x) if x.fract() == 0.0 && x.abs() > MAX_PERIOD => Err(format!(
            "`{f}`: a period of {x} bars is out of range (at most {MAX_PERIOD} either way)"
        )),
        Expr::Num(x) if x.fract() == 0.0 => Ok(*x as i64),
        Expr::Neg(inner) => window(inner, f).map(|w| -w),
        _ => Err(format!("`{f}` needs a whole number of periods")),
    }
}

fn rolling(x: &[f64], n: usize, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    (0..x.len())
        .map(|t| {
            if n == 0 || t + 1 < n {
                return f64::NAN;
            }
            let w = &x[t + 1 - n..=t];
            if w.iter().any(|v| v.is_nan()) {
                f64::NAN
            } else {
                f(w)
            }
        })
        .collect()
}

pub(crate) fn mean(w: &[f64]) -> f64 {
    w.iter().sum::<f64>() / w.len() as f64
}

pub(crate) fn std(w: &[f64]) -> f64 {
    let m = mean(w);
    (w.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (w.len() as f64 - 1.0).max(1.0)).sqrt()
}

fn shift(x: &[f64], n: i64) -> Vec<f64> {
    (0..x.len() as i64)
        .map(|t| {
            let s = t - n;
            if s >= 0 && (s as usize) < x.len() {
                x[s as usize]
            } else {
                f64::NAN
            }
        })
        .collect()
}

fn ema(x: &[f64], n: usize) -> Vec<f64> {
    let a = 2.0 / (n as f64 + 1.0);
    let mut out = Vec::with_capacity(x.len());
    let mut e = f64::NAN;
    for v in x {
        e = if e.is_nan() {
            *v
        } else {
            a * v + (1.0 - a) * e
        };
        out.push(e);
    }
    out
}

/// Evaluates `e` on `bars`.
pub fn eval(e: &Expr, b: &Bars) -> Result<Vec<f64>, String> {
    let n = b.len();
    Ok(match e {
        Expr::Num(x) => vec![*x; n],
        Expr::Col(c) if b.absent.contains(c) => {
            return Err(format!(
                "this feature needs `{c}`, which {} does not have",
                b.instrument
            ))
        }
        Expr::Col(c) => match c.as_str() {
            "open" => b.open.clone(),
            "high" => b.high.clone(),
            "low" => b.low.clone(),
            "close" => b.close.clone(),
            "volume" => b
                .volume
                .clone()
                .ok_or("this feature needs `volume`, which the data does not have")?,
            "returns" => {
                let p = shift(&b.close, 1);
                b.close.iter().zip(p).map(|(c, p)| c / p - 1.0).collect()
            }
            other => return Err(format!("unknown column `{other}`")),
        },
        Expr::Neg(a) => eval(a, b)?.into_iter().map(|v| -v).collect(),
        Expr::Bin(op, x, y) => {
            let (x, y) = (eval(x, b)?, eval(y, b)?);
            x.iter()
                .zip(&y)
                .map(|(a, c)| match op {
                    '+' => a + c,
                    '-' => a - c,
                    '*' => a * c,
                    _ => a / c,
                })
                .collect()
        }
        Expr::Call(f, args) => {
            let arg = |i: usize| eval(&args[i], b);
            let per = |i: usize| window(&args[i], f);
            let pos = |i: usize| -> Result<usize, String> {
                let w = window(&args[i], f)?;
                if w < 1 {
                    return Err(format!("`{f}` needs a window of at least 1"));
                }
                Ok(w as usize)
            };
            match f.as_str() {
                "log" => arg(0)?.into_iter().map(f64::ln).collect(),
                "abs" => arg(0)?.into_iter().map(f64::abs).collect(),
                "sign" => arg(0)?
                    .into_iter()
                    .map(|v| {
                        if v.is_nan() {
                            v
                        } else if v == 0.0 {
                            0.0
                        } else {
                            v.signum()
                        }
                    })
                    .collect(),
                "ref" => shift(&arg(0)?, per(1)?),
                "delta" => {
                    let x = arg(0)?;
                    let s = shift(&x, per(1)?);
                    x.iter().zip(s).map(|(a, c)| a - c).collect()
                }
                "ret" => {
                    let x = arg(0)?;
                    let s = shift(&x, per(1)?);
                    x.iter().zip(s).map(|(a, c)| a / c - 1.0).collect()
                }
                "mean" => rolling(&arg(0)?, pos(1)?, mean),
                "std" => rolling(&arg(0)?, pos(1)?, std),
                "min" => rolling(&arg(0)?, pos(1)?, |w| {
                    w.iter().copied().fold(f64::INFINITY, f64::min)
                }),
                "max" => rolling(&arg(0)?, pos(1)?, |w| {
                    w.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                }),
                "sum" => rolling(&arg(0)?, pos(1)?, |w| w.iter().sum()),
                "rank" => rolling(&arg(0)?, pos(1)?, |w| {
                    let last = w[w.len() - 1];
                    w.iter().filter(|v| **v <= last).count() as f64 / w.len() as f64
                }),
                "zscore" => rolling(&arg(0)?, pos(1)?, |w| (w[w.len() - 1] - mean(w)) / std(w)),
                "ema" => ema(&arg(0)?, pos(1)?),
                "corr" => {
                    let (x, y, w) = (arg(0)?, arg(1)?, pos(2)?);
                    (0..n)
                        .map(|t| {
                            if t + 1 < w {
                                return f64::NAN;
                            }
                            let (a, c) = (&x[t + 1 - w..=t], &y[t + 1 - w..=t]);
                            let (ma, mc) = (mean(a), mean(c));
                            let cov: f64 = a.iter().zip(c).map(|(p, q)| (p - ma) * (q - mc)).sum();
                            let va: f64 = a.iter().map(|p| (p - ma).powi(2)).sum();
                            let vc: f64 = c.iter().map(|q| (q - mc).powi(2)).sum();
                            cov / (va * vc).sqrt()
                        })
                        .collect()
                }
                "rsi" => {
                    let w = pos(0)?;
                    let d = eval(&parse("delta(close, 1)")?, b)?;
                    let up: Vec<f64> = d.iter().map(|v| v.max(0.0)).collect();
                    let dn: Vec<f64> = d.iter().map(|v| (-v).max(0.0)).collect();
                    let (mu, md) = (rolling(&up, w, mean), rolling(&dn, w, mean));
                    mu.iter()
                        .zip(md)
                        .map(|(u, dd)| 100.0 * u / (u + dd))
                        .collect()
                }
                "atr" => {
                    let w = pos(0)?;
                    if let Some(c) = b.absent.iter().find(|c| *c != "open") {
                        return Err(format!(
                            "`atr` needs `{c}`, which {} does not have",
                            b.instrument
                        ));
                    }
                    let pc = shift(&b.close, 1);
                    let tr: Vec<f64> = (0..n)
                        .map(|t| {
                            (b.high[t] - b.low[t])
                                .max((b.high[t] - pc[t]).abs())
                                .max((b.low[t] - pc[t]).abs())
                        })
                        .collect();
                    rolling(&tr, w, mean)
                }
                "bbpos" => {
                    let w = pos(0)?;
                    let (m, s) = (rolling(&b.close, w, mean), rolling(&b.close, w, std));
                    (0..n).map(|t| (b.close[t] - m[t]) / (2.0 * s[t])).collect()
                }
                "vratio" => {
                    let w = pos(0)?;
                    let v = b
                        .volume
                        .as_ref()
                        .ok_or("`vratio` needs `volume`, which the data does not have")?;
                    let m = rolling(v, w, mean);
                    v.iter().zip(m).map(|(a, c)| a / c).collect()
                }
                "macd" => {
                    let (fa, sl) = (pos(0)?, pos(1)?);
                    let (ef, es) = (ema(&b.close, fa), ema(&b.close, sl));
                    (0..n)
                        .map(|t| {
                            if t + 1 < sl {
                                f64::NAN
                            } else {
                                (ef[t] - es[t]) / b.close[t]
                            }
                        })
                        .collect()
                }
                other => return Err(format!("unknown function `{other}`")),
            }
        }
    })
}

/// How many earlier bars the value of `e` at t reads at most (None: all of them, as an
/// exponential average does). Reads of later bars are not counted: the guard catches those.
pub fn lookback(e: &Expr) -> Option<usize> {
    let n = |a: &Expr| match a {
        Expr::Num(x) if *x >= 0.0 => Some(*x as usize),
        Expr::Neg(_) | Expr::Num(_) => Some(0),
        _ => None,
    };
    match e {
        Expr::Num(_) => Some(0),
        Expr::Col(c) => Some(usize::from(c == "returns")),
        Expr::Neg(x) => lookback(x),
        Expr::Bin(_, a, b) => Some(lookback(a)?.max(lookback(b)?)),
        Expr::Call(f, args) => {
            let arg = |i: usize| args.get(i).and_then(lookback);
            let k = |i: usize| args.get(i).and_then(n);
            match f.as_str() {
                "log" | "abs" | "sign" => arg(0),
                "ref" | "delta" | "ret" => Some(arg(0)? + k(1)?),
                "mean" | "std" | "min" | "max" | "sum" | "rank" | "zscore" => {
                    Some(arg(0)? + k(1)?.saturating_sub(1))
                }
                "corr" => Some(arg(0)?.max(arg(1)?) + k(2)?.saturating_sub(1)),
                "rsi" | "atr" => k(0),
                "bbpos" | "vratio" => Some(k(0)?.saturating_sub(1)),
                _ => None,
            }
        }
    }
}

/// How many bars after t the value of `e` at t reads (0: none, as a causal feature; negative
/// when it reads only earlier bars), or an error when a period is not a whole number. The
/// static half of the look-ahead guard: it covers every bar, not sampled dates.
pub fn lead(e: &Expr) -> Result<i64, String> {
    Ok(match e {
        Expr::Num(_) | Expr::Col(_) => 0,
        Expr::Neg(x) => lead(x)?,
        Expr::Bin(_, a, b) => lead(a)?.max(lead(b)?),
        Expr::Call(f, args) => match f.as_str() {
            // x at t − p.
            "ref" => lead(&args[0])? - window(&args[1], f)?,
            // x at t and at t − p.
            "delta" | "ret" => {
                let x = lead(&args[0])?;
                x.max(x - window(&args[1], f)?)
            }
            // Windows ending at t (their length is checked when evaluated).
            "mean" | "std" | "min" | "max" | "sum" | "rank" | "zscore" | "ema" => lead(&args[0])?,
            "corr" => lead(&args[0])?.max(lead(&args[1])?),
            "log" | "abs" | "sign" => lead(&args[0])?,
            // Indicators of the bars up to t.
            _ => 0,
        },
    })
}

/// The first sub-expression of `e` (outermost first) that reads a later bar although its own
/// arguments do not: where a look-ahead enters.
fn lookahead_source(e: &Expr) -> Option<&Expr> {
    let children: Vec<&Expr> = match e {
        Expr::Num(_) | Expr::Col(_) => Vec::new(),
        Expr::Neg(x) => vec![x],
        Expr::Bin(_, a, b) => vec![a, b],
        Expr::Call(_, args) => args.iter().collect(),
    };
    if let Some(inner) = children.iter().find_map(|c| lookahead_source(c)) {
        return Some(inner);
    }
    (lead(e).is_ok_and(|l| l > 0)).then_some(e)
}

/// The static look-ahead proof: `e` reads no bar after the day it is used, or an error naming
/// the feature and the sub-expression that does.
pub fn causal(name: &str, e: &Expr) -> Result<(), String> {
    let l = lead(e).map_err(|err| format!("feature `{name}`: {err}"))?;
    if l <= 0 {
        return Ok(());
    }
    let what = lookahead_source(e).unwrap_or(e);
    Err(format!(
        "feature `{name}` looks ahead: `{what}` reads {} day(s) after the day it is used",
        lead(what).unwrap_or(l)
    ))
}

/// The power of price a feature's value scales with (1: a price level such as `close` or
/// `atr(14)`; 0: a ratio, a return or an oscillator; −1: `1 / close`). With adjusted data
/// every price is scaled by a factor that depends on later dividends, so only a feature of
/// power 0 is free of it.
pub fn price_power(e: &Expr) -> i32 {
    match e {
        Expr::Num(_) => 0,
        Expr::Col(c) => i32::from(matches!(c.as_str(), "open" | "high" | "low" | "close")),
        Expr::Neg(x) => price_power(x),
        Expr::Bin('*', a, b) => price_power(a) + price_power(b),
        Expr::Bin('/', a, b) => price_power(a) - price_power(b),
        // A sum or difference scales with its largest term (`close - 100` is a level).
        Expr::Bin(_, a, b) => {
            let (p, q) = (price_power(a), price_power(b));
            if p.abs() >= q.abs() {
                p
            } else {
                q
            }
        }
        Expr::Call(f, args) => match f.as_str() {
            "ref" | "delta" | "mean" | "std" | "min" | "max" | "sum" | "ema" | "abs" => {
                price_power(&args[0])
            }
            "atr" => 1,
            // A logarithm of a level moves with the factor too (additively).
            "log" => i32::from(price_power(&args[0]) != 0),
            _ => 0,
        },
    }
}

/// How many values the guard may evaluate for a feature with an unbounded lookback before it
/// spaces its cuts out (a bounded one is checked at every day whatever the length).
const GUARD_BUDGET: usize = 20_000_000;

/// The look-ahead guard. First the static proof ([`causal`]); then, on the data, the value of
/// `e` at every day t computed on the data up to t must equal its value on all the data, the
/// missing-value pattern included (a value on one side and none on the other is a
/// look-ahead). When the expression reads a bounded number L of earlier bars, the data up to
/// t is also cut in front (to the 2L + 10 bars before t): the same value, and the guard costs
/// O(n · L). Cutting the front never hides a read of later bars; a lookback counted too short
/// can only refuse a clean feature, never pass a leaking one. A feature with an unbounded
/// lookback (an exponential average) is compared at every day up to [`GUARD_BUDGET`] values
/// evaluated, at evenly spaced days beyond. A feature with no value on any day is an error. Returns the
/// feature on all the data.
pub fn lookahead_check(name: &str, e: &Expr, b: &Bars) -> Result<Vec<f64>, String> {
    causal(name, e)?;
    let f = |bars: &Bars| eval(e, bars).map_err(|err| format!("feature `{name}`: {err}"));
    let full = match lookback(e) {
        Some(l) => guard_window(name, &f, b, 2 * l + 10)?,
        None => {
            let n = b.len().max(1);
            let checks = (GUARD_BUDGET / n).clamp(25, n);
            guard(name, &f, b, checks, 0)?
        }
    };
    if !b.is_empty() && full.iter().all(|v| !v.is_finite()) {
        return Err(format!(
            "feature `{name}` has no value on any of the {} days (a window or shift as long as the data?)",
            b.len()
        ));
    }
    Ok(full)
}

/// The values a cut and the full data give at one day agree: both missing, or both values and
/// equal to 1e-9 (relative).
fn agree(a: f64, c: f64) -> bool {
    (a.is_nan() && c.is_nan()) || (a - c).abs() <= 1e-9 * c.abs().max(1.0)
}

/// [`guard`] at every day for features with a bounded lookback: each check evaluates only the
/// `keep` bars up to t.
fn guard_window(
    name: &str,
    f: &dyn Fn(&Bars) -> Result<Vec<f64>, String>,
    b: &Bars,
    keep: usize,
) -> Result<Vec<f64>, String> {
    let full = f(b)?;
    for t in 0..b.len() {
        let from = t.saturating_sub(keep);
        let part = f(&b.slice(from, t + 1))?;
        let (a, c) = (part[t - from], full[t]);
        if !agree(a, c) {
            return Err(format!(
                "feature `{name}` looks ahead: at {} its value on the data up to that day is {a}, on all the data {c}",
                crate::data::format_day(b.days[t]),
            ));
        }
    }
    Ok(full)
}

/// The guard for any series built from the bars: its value at t computed on the data up to
/// t + `allowed` (0 for features, the horizon for labels) must equal its value on all the data.
/// Returns the series on all the data.
pub fn guard(
    name: &str,
    f: &dyn Fn(&Bars) -> Result<Vec<f64>, String>,
    b: &Bars,
    checks: usize,
    allowed: usize,
) -> Result<Vec<f64>, String> {
    let full = f(b)?;
    let n = b.len();
    for k in 1..=checks {
        let t = (n - 1 - allowed.min(n - 1)) * k / (checks + 1);
        let part = f(&b.head(t + 1 + allowed))?;
        let (a, c) = (part[t], full[t]);
        if !agree(a, c) {
            return Err(format!(
                "feature `{name}` looks ahead: at {} its value on the data up to {} is {a}, on all the data {c}",
                crate::data::format_day(b.days[t]),
                if allowed == 0 { "that day".to_string() } else { format!("{allowed} days later") }
            ));
        }
    }
    Ok(full)
}

/// The first `$name` in `text`: the text before it, the name, the text after it.
fn next_parameter(text: &str) -> Option<(&str, &str, &str)> {
    let i = text.find('$')?;
    let tail = &text[i + 1..];
    let end = tail
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(tail.len());
    Some((&text[..i], &tail[..end], &tail[end..]))
}

/// The `$names` an expression uses, each once, in order of appearance.
pub fn parameters(expr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = expr;
    while let Some((_, name, after)) = next_parameter(rest) {
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
        rest = after;
    }
    out
}

/// `$name` in an expression replaced by the trial's parameter of that name.
pub fn substitute(expr: &str, params: &Params) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = expr;
    while let Some((before, name, after)) = next_parameter(rest) {
        out.push_str(before);
        let v = match params.get(name) {
            Some(ParamValue::Int(x)) => x.to_string(),
            Some(ParamValue::Float(x)) => format!("{x:?}"),
            Some(other) => {
                return Err(format!("`${name}` must be a number, the trial has {other}"))
            }
            None => return Err(format!("`${name}` is not a parameter of this trial")),
        };
        out.push_str(&v);
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{generate, Synthetic};

    fn bars() -> Bars {
        generate(&Synthetic {
            days: 300,
            ..Default::default()
        })
        .unwrap()
    }

    /// Found by the fuzzer: a period far outside i64 overflowed the shift and the look-ahead
    /// sum. Now a clear error, in the static check and in evaluation alike.
    #[test]
    fn an_absurd_period_is_an_error_not_an_overflow() {
        let b = bars();
        for text in [
            "ref(close, -37777777777777777777777777777777777777777777777777777777777777777777777777777)",
            "ref(close, 1000001)",
            "delta(close, -1e300)",
            "mean(close, 1e18)",
        ] {
            let e = parse(text).unwrap();
            let err = eval(&e, &b).unwrap_err();
            assert!(err.contains("out of range"), "{text}: {err}");
            if !text.starts_with("mean") {
                assert!(lead(&e).unwrap_err().contains("out of range"), "{text}");
            }
        }
        // The largest period allowed still evaluates (to nothing on 300 bars).
        let v = eval(&parse("ref(close, 1000000)").unwrap(), &b).unwrap();
        assert!(v.iter().all(|x| x.is_nan()));
        assert_eq!(lead(&parse("ref(close, -1000000)").unwrap()), Ok(1_000_000));
    }

    #[test]
    fn expressions_evaluate_as_defined() {
        let b = bars();
        let v = |s: &str| eval(&parse(s).unwrap(), &b).unwrap();
        let r = v("returns");
        assert!(r[0].is_nan() && (r[5] - (b.close[5] / b.close[4] - 1.0)).abs() < 1e-15);
        let m = v("mean(close, 5)");
        assert!(m[3].is_nan());
        assert!((m[10] - b.close[6..=10].iter().sum::<f64>() / 5.0).abs() < 1e-9);
        assert_eq!(v("ref(close, 2)")[10], b.close[8]);
        assert!((v("ret(close, 5)")[20] - (b.close[20] / b.close[15] - 1.0)).abs() < 1e-15);
        assert!((v("-(close - open) / 2")[7] + (b.close[7] - b.open[7]) / 2.0).abs() < 1e-12);
        let rsi = v("rsi(14)");
        assert!(rsi[20..].iter().all(|x| (0.0..=100.0).contains(x)));
        let rk = v("rank(close, 10)");
        assert!(rk[20..].iter().all(|x| (0.1..=1.0).contains(x)));
        assert!(v("corr(close, volume, 20)")[30].abs() <= 1.0);
        // Errors name what is wrong.
        assert!(parse("mean(close)").unwrap_err().contains("takes 2"));
        assert!(parse("foo(close, 3)")
            .unwrap_err()
            .contains("unknown function `foo`"));
        assert!(parse("close +").unwrap_err().contains("unexpected end"));
        assert!(parse("vwap").unwrap_err().contains("unknown column `vwap`"));
        let mut nov = b.clone();
        nov.volume = None;
        assert!(eval(&parse("vratio(20)").unwrap(), &nov)
            .unwrap_err()
            .contains("volume"));
    }

    #[test]
    fn lookbacks_bound_what_a_feature_reads_and_the_windowed_guard_agrees() {
        let l = |s: &str| lookback(&parse(s).unwrap());
        assert_eq!(l("close"), Some(0));
        assert_eq!(l("returns"), Some(1));
        assert_eq!(l("mean(returns, 20)"), Some(20));
        assert_eq!(l("ref(close, 5) / close"), Some(5));
        assert_eq!(l("corr(close, ref(volume, 2), 10)"), Some(11));
        assert_eq!(l("std(ret(close, 5), 20)"), Some(24));
        assert_eq!(l("ema(close, 10)"), None);
        assert_eq!(l("macd(12, 26)"), None);
        // For a bounded lookback the value at t on the last 2L + 10 bars equals the value on
        // all the data: the windowed guard passes exactly the features the full one passes.
        let b = bars();
        for f in [
            "mean(returns, 20)",
            "zscore(close, 30) * rsi(14)",
            "corr(close, volume, 10)",
        ] {
            let e = parse(f).unwrap();
            let full = eval(&e, &b).unwrap();
            let lb = lookback(&e).unwrap();
            for t in [100, 200, 299] {
                let from = t - (2 * lb + 10).min(t);
                let part = eval(&e, &b.slice(from, t + 1)).unwrap();
                assert!(
                    (part[t - from] - full[t]).abs() <= 1e-9 * full[t].abs().max(1.0),
                    "{f} at {t}"
                );
            }
        }
    }

    #[test]
    fn the_guard_refuses_features_that_look_ahead() {
        let b = bars();
        for ok in [
            "mean(returns, 20)",
            "zscore(close, 20)",
            "rsi(14)",
            "atr(14)",
            "bbpos(20)",
            "vratio(20)",
            "macd(12, 26)",
            "corr(returns, ref(returns, 1), 30)",
            "ema(close, 10) / close - 1",
        ] {
            lookahead_check(ok, &parse(ok).unwrap(), &b).unwrap();
        }
        for leak in [
            "ref(close, -1)",
            "mean(ref(returns, -3), 5)",
            "delta(close, -2)",
        ] {
            let e = lookahead_check("f", &parse(leak).unwrap(), &b).unwrap_err();
            assert!(e.contains("feature `f` looks ahead"), "{leak}: {e}");
        }
    }

    #[test]
    fn the_static_proof_names_the_sub_expression_that_reads_ahead() {
        let leaks = [
            ("ref(close, -1)", "ref(close, -1)"),
            ("mean(ref(returns, -3), 5) / close", "ref(returns, -3)"),
            ("delta(close, -2)", "delta(close, -2)"),
            ("ret(close, -1) * 0 + close", "ret(close, -1)"),
            ("corr(returns, ref(volume, -1), 10)", "ref(volume, -1)"),
            // Shifts that cancel out inside: the outer one still reaches tomorrow.
            ("ref(ref(close, 2), -3)", "ref(ref(close, 2), -3)"),
            // The class of the NaN-pattern leak: a future value fed to a function undefined on
            // part of its domain, then multiplied by zero.
            (
                "log(ref(close, -1) / close - 1.02) * 0 + mean(returns, 5)",
                "ref(close, -1)",
            ),
            ("log(delta(close, -1)) * 0 + close", "delta(close, -1)"),
            ("rank(ret(close, -5), 10) * 0 + rsi(14)", "ret(close, -5)"),
        ];
        for (text, source) in leaks {
            let e = causal("f", &parse(text).unwrap()).unwrap_err();
            assert!(
                e.contains("feature `f` looks ahead") && e.contains(&format!("`{source}`")),
                "{text}: {e}"
            );
        }
        for ok in [
            "ref(close, 1)",
            "ref(ref(close, -2), 3)",
            "delta(close, 0)",
            "ema(close, 10) / close",
            "macd(12, 26) * rsi(14)",
        ] {
            causal("f", &parse(ok).unwrap()).unwrap();
        }
        assert_eq!(lead(&parse("delta(ref(close, -4), 2)").unwrap()), Ok(4));
        assert_eq!(lead(&parse("ref(close, 3)").unwrap()), Ok(-3));
    }

    #[test]
    fn the_guard_compares_every_day_and_the_missing_value_pattern() {
        let b = bars();
        let n = b.len();
        // Leaks the static proof cannot see (the series is computed outside the language):
        // the value is there only on days whose NEXT close rises by more than `cut`, a
        // pattern of missing values that reads the future. The rarer the event, the fewer
        // sampled dates would catch it; every day catches each.
        // Cuts at quantiles of the daily return: from half the days present to 2% of them.
        let mut r: Vec<f64> = b.close.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
        r.sort_by(f64::total_cmp);
        let q = |p: f64| r[((r.len() - 1) as f64 * p) as usize];
        for cut in [q(0.5), q(0.8), q(0.95), q(0.98)] {
            let leak = |bars: &Bars| -> Result<Vec<f64>, String> {
                let c = &bars.close;
                Ok((0..c.len())
                    .map(|t| match c.get(t + 1) {
                        Some(next) if next / c[t] - 1.0 > cut => 1.0,
                        _ => f64::NAN,
                    })
                    .collect())
            };
            let full = leak(&b).unwrap();
            let present = full.iter().filter(|v| v.is_finite()).count();
            assert!(present > 0 && present < n, "cut {cut}: {present} of {n}");
            let e = guard_window("f", &leak, &b, 10).unwrap_err();
            assert!(e.contains("feature `f` looks ahead"), "{e}");
            let e = guard("f", &leak, &b, n, 0).unwrap_err();
            assert!(e.contains("feature `f` looks ahead"), "{e}");
        }
        // A causal series with missing values passes.
        let causal_gaps = |bars: &Bars| -> Result<Vec<f64>, String> {
            let c = &bars.close;
            Ok((0..c.len())
                .map(|t| match t.checked_sub(1).map(|p| c[p]) {
                    Some(prev) if c[t] > prev => 1.0,
                    _ => f64::NAN,
                })
                .collect())
        };
        guard_window("g", &causal_gaps, &b, 10).unwrap();
    }

    #[test]
    fn a_feature_with_no_value_on_any_day_is_an_error() {
        let b = bars();
        let e = lookahead_check("long", &parse("ref(close, 300)").unwrap(), &b).unwrap_err();
        assert!(
            e.contains("feature `long` has no value on any of the 300 days"),
            "{e}"
        );
        let e = lookahead_check("wide", &parse("mean(close, 400)").unwrap(), &b).unwrap_err();
        assert!(e.contains("no value"), "{e}");
        lookahead_check("ok", &parse("ref(close, 299)").unwrap(), &b).unwrap();
    }

    #[test]
    fn parameters_are_listed_once_in_order() {
        assert_eq!(
            parameters("ref(close, $k) / mean(returns, $w) + ref(open, $k)"),
            vec!["k".to_string(), "w".to_string()]
        );
        assert!(parameters("close").is_empty());
    }

    #[test]
    fn price_levels_are_told_from_ratios() {
        let p = |s: &str| price_power(&parse(s).unwrap());
        for level in [
            "close",
            "mean(close, 20)",
            "atr(14)",
            "close - 100",
            "ema(high, 5)",
            "log(close)",
        ] {
            assert_ne!(p(level), 0, "{level}");
        }
        for ratio in [
            "close / ref(close, 5)",
            "ret(close, 5)",
            "returns",
            "std(returns, 20)",
            "atr(14) / close",
            "rsi(14) / 100",
            "macd(12, 26)",
            "zscore(close, 20)",
            "log(close / open)",
            "delta(close, 1) / close",
        ] {
            assert_eq!(p(ratio), 0, "{ratio}");
        }
    }
}
