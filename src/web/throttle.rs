//! Throttling of password guesses per client address: after `max_failures` failures within `window`,
//! further attempts are refused for `lockout` after the latest failure. A success forgets the address.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

pub struct Throttle {
    max_failures: usize,
    window_ms: i64,
    lockout_ms: i64,
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
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

    /// `Err(seconds to wait)` when this address is locked out at `now`.
    pub fn check(&self, addr: &str, now: i64) -> Result<(), u64> {
        let Ok(mut map) = self.failures.lock() else { return Ok(()) };
        let Some(times) = map.get_mut(addr) else { return Ok(()) };
        while times.front().is_some_and(|t| *t <= now - self.window_ms) {
            times.pop_front();
        }
        if times.len() >= self.max_failures
            && let Some(last) = times.back()
            && now < last + self.lockout_ms
        {
            return Err(((last + self.lockout_ms - now) as u64).div_ceil(1000));
        }
        Ok(())
    }

    /// Records a failed attempt.
    pub fn fail(&self, addr: &str, now: i64) {
        let Ok(mut map) = self.failures.lock() else { return };
        if map.len() > 100_000 {
            // Bound the memory an address-rotating attacker can take: drop stale entries.
            let horizon = now - self.window_ms;
            map.retain(|_, t| t.back().is_some_and(|last| *last > horizon));
        }
        map.entry(addr.to_owned()).or_default().push_back(now);
    }

    /// Forgets an address after a success.
    pub fn succeed(&self, addr: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_unlocks_after_lockout() {
        let t = Throttle::new(3, Duration::from_secs(60), Duration::from_secs(30));
        for i in 0..3 {
            assert_eq!(t.check("a", i * 1000), Ok(()));
            t.fail("a", i * 1000);
        }
        assert_eq!(t.check("a", 2_000), Err(30));
        assert_eq!(t.check("b", 2_000), Ok(()));
        assert_eq!(t.check("a", 31_999), Err(1));
        assert_eq!(t.check("a", 32_000), Ok(()));
        // Still three failures inside the window: one more locks again at once.
        t.fail("a", 33_000);
        assert_eq!(t.check("a", 33_000), Err(30));
        t.succeed("a");
        assert_eq!(t.check("a", 33_000), Ok(()));
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t = Throttle::new(2, Duration::from_secs(10), Duration::from_secs(5));
        t.fail("a", 0);
        t.fail("a", 20_000);
        assert_eq!(t.check("a", 20_000), Ok(()));
    }
}
