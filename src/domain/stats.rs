//! Balance statistics for the dashboard: the distribution buckets, and the outlier bound of a series.

/// A balance bucket `(low, high]`; `high = None` means "above `low`".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub low: f64,
    pub high: Option<f64>,
}

impl Bucket {
    pub fn label(&self) -> String {
        let f = format_bound;
        match self.high {
            Some(h) => format!("({}, {}]", f(self.low), f(h)),
            None => format!("> {}", f(self.low)),
        }
    }
}

/// The original's buckets: (0,10], (10,12], (12,13], (13,14], (14,100], (100,1000], >1000.
pub fn default_buckets() -> Vec<Bucket> {
    let edges = [0.0, 10.0, 12.0, 13.0, 14.0, 100.0, 1000.0];
    let mut out: Vec<Bucket> = edges.windows(2).map(|w| Bucket { low: w[0], high: Some(w[1]) }).collect();
    out.push(Bucket { low: 1000.0, high: None });
    out
}

/// About `count` buckets of a round width (1, 2 or 5 × 10^k) over the data's range `[min, max]`, with
/// bounds on multiples of that width, so labels read `(0, 50]` rather than `(0.0100015, 149.99125]`.
/// The first bucket starts below `min` so the smallest value falls in `(low, high]`.
pub fn auto_buckets(min: f64, max: f64, count: usize) -> Vec<Bucket> {
    if !(min.is_finite() && max.is_finite()) {
        return vec![Bucket { low: 0.0, high: None }];
    }
    let step =
        if max <= min || count == 0 { nice_step(min.abs().max(1.0)) } else { nice_step((max - min) / count as f64) };
    let round = |v: f64| (v / step).round() * step;
    let mut low = round((min / step).floor() * step);
    if low >= min {
        low = round(low - step);
    }
    let mut out = Vec::new();
    while out.is_empty() || (low < max && out.len() <= 2 * count + 2) {
        out.push(Bucket { low, high: Some(round(low + step)) });
        low = round(low + step);
    }
    out
}

/// The smallest 1, 2 or 5 × 10^k at least `raw` (positive and finite; 1 otherwise).
pub fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|s| *s >= raw * (1.0 - 1e-9));
    step.unwrap_or(10.0 * magnitude)
}

/// A bucket bound without float noise: at most as many decimals as the bucket width needs.
fn format_bound(v: f64) -> String {
    let text = format!("{v:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_owned() } else { text.to_owned() }
}

/// The value at quantile `q` of sorted data (linear interpolation).
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// Tukey's upper fence `Q3 + 1.5 × IQR` of a series (its order does not matter), when the series has
/// values above it; `None` when nothing would be cut.
pub fn outlier_cap(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let (q1, q3) = (quantile(&sorted, 0.25)?, quantile(&sorted, 0.75)?);
    let fence = q3 + 1.5 * (q3 - q1);
    sorted.last().is_some_and(|max| *max > fence).then_some(fence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_buckets_match_the_original() {
        let labels: Vec<String> = default_buckets().iter().map(Bucket::label).collect();
        assert_eq!(labels, ["(0, 10]", "(10, 12]", "(12, 13]", "(13, 14]", "(14, 100]", "(100, 1000]", "> 1000"]);
    }

    #[test]
    fn auto_buckets_cover_the_range() {
        let b = auto_buckets(-5.0, 15.0, 4);
        assert!(b[0].low < -5.0 && b.last().and_then(|b| b.high).is_some_and(|h| h >= 15.0), "{b:?}");
        assert_eq!(auto_buckets(3.0, 3.0, 5), [Bucket { low: 0.0, high: Some(5.0) }], "one value is inside its bucket");
        assert_eq!(auto_buckets(-2.0, -2.0, 5), [Bucket { low: -4.0, high: Some(-2.0) }], "negative");
        assert_eq!(auto_buckets(f64::NAN, 1.0, 5).len(), 1);
    }

    #[test]
    fn auto_buckets_have_round_bounds() {
        let labels: Vec<String> = auto_buckets(0.0100015000125, 149.99125, 8).iter().map(Bucket::label).collect();
        assert_eq!(labels.first().map(String::as_str), Some("(0, 20]"), "{labels:?}");
        assert_eq!(labels.last().map(String::as_str), Some("(140, 160]"), "{labels:?}");
        assert_eq!(labels.len(), 8, "{labels:?}");
        let small: Vec<String> = auto_buckets(0.1, 0.73, 6).iter().map(Bucket::label).collect();
        assert_eq!(small, ["(0, 0.2]", "(0.2, 0.4]", "(0.4, 0.6]", "(0.6, 0.8]"], "the 0.1 is in the first: {small:?}");
        let from_zero: Vec<String> = auto_buckets(0.0, 10.0, 5).iter().map(Bucket::label).collect();
        assert_eq!(from_zero.first().map(String::as_str), Some("(-2, 0]"), "0 itself is counted: {from_zero:?}");
        for b in auto_buckets(13.37, 9876.5, 8) {
            let label = b.label();
            assert!(!label.contains("000000") && label.len() < 16, "{label}");
        }
    }

    #[test]
    fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(18.7), 20.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(0.105), 0.2);
        assert_eq!(nice_step(1000.0), 1000.0);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn quantiles_and_outliers() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[4.0], 0.5), Some(4.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(outlier_cap(&[]), None, "no data");
        assert_eq!(outlier_cap(&[5.0]), None, "one point");
        assert_eq!(outlier_cap(&[10.0, 11.0, 12.0, 13.0]), None, "nothing to cut");
        let cap = outlier_cap(&[10.0, 11.0, 12.0, 13.0, 500.0]).unwrap_or_default();
        assert!(cap > 13.0 && cap < 500.0, "{cap}");
        assert_eq!(outlier_cap(&[-3.0, -2.0, -1.0]), None, "negative balances");
        assert!(outlier_cap(&[0.0, 0.0, 0.0, 0.0, 9.0]).is_some(), "all zero but one");
    }
}
