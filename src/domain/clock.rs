//! Time as unix epoch milliseconds, from a clock that tests can move forward.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock that stands still until moved by the returned handle.
    pub fn manual(start_ms: i64) -> (Self, ManualClock) {
        let cell = Arc::new(AtomicI64::new(start_ms));
        (Self(Source::Manual(cell.clone())), ManualClock(cell))
    }

    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Source::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Source::Manual(cell) => cell.load(Ordering::SeqCst),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now_ms())
    }
}

/// The handle that moves a manual clock.
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}
