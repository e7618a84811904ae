//! How long the usable balance lasts at the recent rate of spending.
//!
//! Two measures of the rate, over the last 7 days:
//! - the **measured cost**: the estimated cost of the requests through keypool (tokens × prices),
//!   per day of the span that had traffic;
//! - the **balance decline**: the pool's usable balance in its snapshots, first minus last, per day
//!   between them (it also sees spending that did not go through keypool, and top-ups hide it).
//!
//! With at least [`SOLID_DAYS`] of data, the forecast is one figure from the higher rate of the two
//! (the cautious one); with less (but at least [`MIN_DAYS`]), or when the two disagree by more than
//! a quarter, it is a range between them (a lone thin measure gives ± 50 %). With less than
//! [`MIN_DAYS`] of either, there is not enough data; with no spending measured, the balance is not
//! being spent.

const DAY_MS: f64 = 86_400_000.0;
/// The least span of data a forecast needs, in days.
pub const MIN_DAYS: f64 = 1.0;
/// The span from which a single figure is given, in days.
pub const SOLID_DAYS: f64 = 3.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Forecast {
    NotEnoughData,
    /// Nothing was spent in the window.
    NotSpending,
    /// About `low`–`high` days (equal when one figure).
    Days {
        low: f64,
        high: f64,
    },
}

/// A rate of spending per day, and the days of data behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_day: f64,
    pub span_days: f64,
}

/// The measured cost as a rate: `hourly` is (hour start, cost) for hours with traffic since the
/// window began; the span runs from the first such hour to `now`.
pub fn cost_rate(hourly: &[(i64, f64)], now: i64) -> Option<Rate> {
    let first = hourly.first()?.0;
    let span_days = (now - first) as f64 / DAY_MS;
    let total: f64 = hourly.iter().map(|(_, c)| c).sum();
    (span_days > 0.0).then(|| Rate { per_day: total / span_days.max(1.0 / 24.0), span_days })
}

/// The balance decline as a rate, from (time, usable balance) snapshots in time order.
pub fn decline_rate(snapshots: &[(i64, f64)]) -> Option<Rate> {
    let (first, last) = (snapshots.first()?, snapshots.last()?);
    let span_days = (last.0 - first.0) as f64 / DAY_MS;
    (span_days > 0.0).then(|| Rate { per_day: ((first.1 - last.1) / span_days).max(0.0), span_days })
}

pub fn forecast(balance: f64, cost: Option<Rate>, decline: Option<Rate>) -> Forecast {
    let usable = |r: &Option<Rate>| r.filter(|r| r.span_days >= MIN_DAYS);
    let rates: Vec<Rate> = [usable(&cost), usable(&decline)].into_iter().flatten().collect();
    if rates.is_empty() {
        return Forecast::NotEnoughData;
    }
    let spending: Vec<&Rate> = rates.iter().filter(|r| r.per_day > 0.0).collect();
    if spending.is_empty() {
        return Forecast::NotSpending;
    }
    let days = |r: &Rate| balance.max(0.0) / r.per_day;
    let solid = rates.iter().any(|r| r.span_days >= SOLID_DAYS);
    let mut low = spending.iter().map(|r| days(r)).fold(f64::INFINITY, f64::min);
    let mut high = spending.iter().map(|r| days(r)).fold(0.0, f64::max);
    if spending.len() == 1 && !solid {
        (low, high) = (low * 0.5, low * 1.5);
    } else if solid && high <= low * 1.25 {
        high = low;
    }
    Forecast::Days { low, high }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const D: i64 = 24 * H;

    #[test]
    fn a_steady_week_gives_one_figure_from_the_cautious_rate() {
        let now = 7 * D;
        // 10 a day measured, for a week.
        let hourly: Vec<(i64, f64)> = (0..7 * 24).map(|h| (h * H, 10.0 / 24.0)).collect();
        let cost = cost_rate(&hourly, now);
        assert!((cost.unwrap().per_day - 10.0).abs() < 1e-9);
        // The balance fell 11 a day: a little more than measured, within a quarter: one figure.
        let decline = decline_rate(&[(0, 1077.0), (now, 1000.0)]);
        match forecast(1000.0, cost, decline) {
            Forecast::Days { low, high } => {
                assert_eq!(low, high);
                assert!((low - 1000.0 / 11.0).abs() < 1e-6, "{low}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn thin_or_disagreeing_data_gives_a_range_and_too_thin_none() {
        let now = 2 * D;
        let hourly: Vec<(i64, f64)> = (0..48).map(|h| (h * H, 1.0)).collect();
        // Two days at 24 a day, nothing else: 100 / 24 ± 50 %.
        let f = forecast(100.0, cost_rate(&hourly, now), None);
        let Forecast::Days { low, high } = f else { panic!("{f:?}") };
        assert!((low - 100.0 / 24.0 * 0.5).abs() < 1e-9 && (high - 100.0 / 24.0 * 1.5).abs() < 1e-9);
        // Measured 24 a day, balance fell 48 a day: between the two.
        let f = forecast(96.0, cost_rate(&hourly, now), decline_rate(&[(0, 196.0), (now, 100.0)]));
        assert_eq!(f, Forecast::Days { low: 2.0, high: 4.0 });
        // Twelve hours of data: not enough.
        let half_day: Vec<(i64, f64)> = (0..12).map(|h| (h * H, 1.0)).collect();
        assert_eq!(forecast(100.0, cost_rate(&half_day, 12 * H), None), Forecast::NotEnoughData);
        assert_eq!(forecast(100.0, None, None), Forecast::NotEnoughData);
        // Traffic on free models only, balance steady: not spending.
        let free: Vec<(i64, f64)> = (0..72).map(|h| (h * H, 0.0)).collect();
        assert_eq!(
            forecast(100.0, cost_rate(&free, 3 * D), decline_rate(&[(0, 50.0), (3 * D, 50.0)])),
            Forecast::NotSpending
        );
        // A top-up (the balance rose) is no negative spending.
        assert_eq!(decline_rate(&[(0, 10.0), (2 * D, 90.0)]).unwrap().per_day, 0.0);
    }
}
