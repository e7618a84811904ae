//! Balance statistics for the dashboard: the distribution buckets, and the outlier bound of a series.

/// A balance bucket `(low, high]`; `high = None` means "above `low`".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub low: f64,
    pub high: Option<f64>,
}

impl Bucket {
    pub fn label(&self) -> String {
        use super::keys::format_balance as f;
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

/// `count` equal-width buckets over `(min, max]` (from the data); one bucket when they are equal.
pub fn auto_buckets(min: f64, max: f64, count: usize) -> Vec<Bucket> {
    if !(min.is_finite() && max.is_finite()) {
        return vec![Bucket { low: 0.0, high: None }];
    }
    if max <= min || count == 0 {
        // One value (or nothing to split): one bucket that holds it.
        return vec![Bucket { low: min - 1.0, high: Some(max.max(min)) }];
    }
    let width = (max - min) / count as f64;
    // The first bucket starts just below the minimum so the smallest value falls in (low, high].
    (0..count)
        .map(|i| Bucket {
            low: if i == 0 { min - width * 1e-9 } else { min + width * i as f64 },
            high: Some(if i + 1 == count { max } else { min + width * (i + 1) as f64 }),
        })
        .collect()
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
        assert_eq!(b.len(), 4);
        assert!(b[0].low < -5.0 && b[3].high == Some(15.0));
        assert_eq!(auto_buckets(3.0, 3.0, 5), [Bucket { low: 2.0, high: Some(3.0) }], "one value is inside its bucket");
        assert_eq!(auto_buckets(-2.0, -2.0, 5), [Bucket { low: -3.0, high: Some(-2.0) }], "negative");
        assert_eq!(auto_buckets(f64::NAN, 1.0, 5).len(), 1);
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
