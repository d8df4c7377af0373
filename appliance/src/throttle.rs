//! Rates: [`TokenBucket`] for what a client may send, and [`LogThrottle`]
//! for warnings that can repeat thousands of times a second (a flooding
//! client, a full queue), written at most once per interval with the number
//! held back since the last one, so the log stays readable and bounded.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `burst` at once, then `per_second` on average.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self { per_second: f64::from(per_second), burst, tokens: burst, refilled: Instant::now() }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.per_second <= 0.0 {
            return Err(Duration::from_secs(3600));
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
    }
}

pub struct LogThrottle {
    interval_ms: u64,
    /// Milliseconds since [`epoch`] of the last admitted line, plus one (0:
    /// never).
    last: AtomicU64,
    held_back: AtomicU64,
}

impl LogThrottle {
    pub const fn new(interval: Duration) -> Self {
        Self { interval_ms: interval.as_millis() as u64, last: AtomicU64::new(0), held_back: AtomicU64::new(0) }
    }

    /// `Some(held_back)` if this occurrence should be logged now, with how
    /// many were not since the last logged one; `None` to stay quiet.
    pub fn admit(&self) -> Option<u64> {
        let now = epoch().elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.interval_ms;
        if due && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut bucket = TokenBucket::new(100, 5);
        for _ in 0..5 {
            assert_eq!(bucket.take(), Ok(()));
        }
        let wait = bucket.take().expect_err("empty");
        assert!(wait <= Duration::from_millis(10), "{wait:?}");
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(bucket.take(), Ok(()));
    }

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let throttle = LogThrottle::new(Duration::from_millis(50));
        assert_eq!(throttle.admit(), Some(0));
        for _ in 0..99 {
            assert_eq!(throttle.admit(), None);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(throttle.admit(), Some(99));
        assert_eq!(throttle.admit(), None);
    }
}
