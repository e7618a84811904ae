//! Throttling of password guesses per client address. An attempt is reserved (counted) before the
//! password is verified, so concurrent guesses cannot all slip past the check: after `max_failures`
//! attempts within `window`, further attempts are refused for `lockout` after the latest one, without
//! being verified. A success forgets the address; an attempt that never reached the password check
//! can be released.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

pub struct Throttle {
    max_failures: usize,
    window_ms: i64,
    lockout_ms: i64,
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
}

/// A reserved attempt; hand it back to [`Throttle::release`] if the password was never checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Attempt {
    at: i64,
}

impl Throttle {
    pub fn new(max_failures: usize, window: Duration, lockout: Duration) -> Self {
        Self {
            max_failures,
            window_ms: window.as_millis() as i64,
            lockout_ms: lockout.as_millis() as i64,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt from `addr` at `now`, or `Err(seconds to wait)` when the address is locked
    /// out (a refused attempt is not counted). Check and count happen under one lock.
    pub fn reserve(&self, addr: &str, now: i64) -> Result<Attempt, u64> {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() > 100_000 {
            // Bound the memory an address-rotating attacker can take: drop stale entries.
            let horizon = now - self.window_ms;
            map.retain(|_, t| t.back().is_some_and(|last| *last > horizon));
        }
        let times = map.entry(addr.to_owned()).or_default();
        while times.front().is_some_and(|t| *t <= now - self.window_ms) {
            times.pop_front();
        }
        if times.len() >= self.max_failures
            && let Some(last) = times.back()
            && now < last + self.lockout_ms
        {
            return Err(((last + self.lockout_ms - now) as u64).div_ceil(1000));
        }
        times.push_back(now);
        Ok(Attempt { at: now })
    }

    /// Uncounts an attempt that never got to check a password (e.g. a form that did not validate).
    pub fn release(&self, addr: &str, attempt: Attempt) {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(times) = map.get_mut(addr) {
            if let Some(i) = times.iter().rposition(|t| *t == attempt.at) {
                times.remove(i);
            }
            if times.is_empty() {
                map.remove(addr);
            }
        }
    }

    /// Forgets an address after a success.
    pub fn succeed(&self, addr: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.remove(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_attempts_and_unlocks_after_lockout() {
        let t = Throttle::new(3, Duration::from_secs(60), Duration::from_secs(30));
        for i in 0..3 {
            assert!(t.reserve("a", i * 1000).is_ok());
        }
        assert_eq!(t.reserve("a", 2_000), Err(30));
        assert!(t.reserve("b", 2_000).is_ok());
        assert_eq!(t.reserve("a", 31_999), Err(1), "refused attempts do not extend the lockout");
        assert!(t.reserve("a", 32_000).is_ok());
        // Still three attempts inside the window: the next one is refused at once.
        assert_eq!(t.reserve("a", 33_000), Err(29));
        t.succeed("a");
        assert!(t.reserve("a", 33_000).is_ok());
    }

    #[test]
    fn concurrent_reservations_cannot_exceed_the_limit() {
        let t = std::sync::Arc::new(Throttle::new(5, Duration::from_secs(60), Duration::from_secs(30)));
        let threads: Vec<_> = (0..60)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || t.reserve("a", 1_000).is_ok())
            })
            .collect();
        let admitted = threads.into_iter().filter_map(|h| h.join().ok()).filter(|ok| *ok).count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn a_released_attempt_is_not_counted() {
        let t = Throttle::new(2, Duration::from_secs(60), Duration::from_secs(30));
        let Ok(first) = t.reserve("a", 0) else { panic!("the first attempt is allowed") };
        t.release("a", first);
        assert!(t.reserve("a", 1).is_ok());
        assert!(t.reserve("a", 2).is_ok());
        assert_eq!(t.reserve("a", 3), Err(30));
    }

    #[test]
    fn old_attempts_leave_the_window() {
        let t = Throttle::new(2, Duration::from_secs(10), Duration::from_secs(5));
        assert!(t.reserve("a", 0).is_ok());
        assert!(t.reserve("a", 20_000).is_ok());
        assert!(t.reserve("a", 20_000).is_ok());
    }
}
