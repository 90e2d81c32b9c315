//! Labels: the forward return over `h` periods (regression) or its direction
//! (classification). The label at t is known only at t + h, which the splits purge for.

/// Forward simple return over `h` periods: close[t + h] / close[t] − 1 (NaN for the last h).
pub fn forward_return(close: &[f64], h: usize) -> Vec<f64> {
    (0..close.len())
        .map(|t| match close.get(t + h) {
            Some(c) if h > 0 => c / close[t] - 1.0,
            _ => f64::NAN,
        })
        .collect()
}

/// Direction of the forward return: 1 when up, 0 otherwise (NaN where unknown).
pub fn direction(close: &[f64], h: usize) -> Vec<f64> {
    forward_return(close, h)
        .into_iter()
        .map(|r| if r.is_nan() { r } else { f64::from(r > 0.0) })
        .collect()
}
