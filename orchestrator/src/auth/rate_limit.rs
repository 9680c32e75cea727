//! Failed sign-ins, counted per key (an account name, a client address) over a sliding
//! window: past the limit, a key is refused until its oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(max_failures: usize, window: Duration) -> RateLimiter {
        RateLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long until every one of `keys` may try again; `None` when all may now.
    pub fn retry_after(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let mut failures = self
            .failures
            .lock()
            .expect("the limiter's lock is never poisoned");
        keys.iter()
            .filter_map(|key| {
                let times = failures.get_mut(key)?;
                self.forget_old(times, now);
                (times.len() >= self.max_failures)
                    .then(|| self.window.saturating_sub(now - times[0]))
            })
            .max()
    }

    /// One more failure for each of `keys`.
    pub fn failed(&self, keys: &[String], now: Instant) {
        let mut failures = self
            .failures
            .lock()
            .expect("the limiter's lock is never poisoned");
        // Keys whose failures all left the window go, so the map stays as small as the
        // attempts of the last window.
        failures.retain(|_, times| times.back().is_some_and(|t| now - *t < self.window));
        for key in keys {
            let times = failures.entry(key.clone()).or_default();
            self.forget_old(times, now);
            times.push_back(now);
        }
    }

    /// A success clears `key` (the account name: its owner got in).
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .expect("the limiter's lock is never poisoned")
            .remove(key);
    }

    fn forget_old(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times.front().is_some_and(|t| now - *t >= self.window) {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_after_its_failures_until_the_oldest_leaves_the_window() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let name = vec!["name:olga".to_string()];
        let both = vec!["name:olga".to_string(), "ip:10.0.0.1".to_string()];
        for s in 0..3 {
            assert_eq!(
                limiter.retry_after(&both, t0 + Duration::from_secs(s)),
                None
            );
            limiter.failed(&both, t0 + Duration::from_secs(s));
        }
        assert_eq!(
            limiter.retry_after(&name, t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        // Another address trying the same name is refused too; the name's address alone
        // is refused for another name.
        assert!(limiter.retry_after(&["ip:10.0.0.1".into()], t0).is_some());
        assert!(
            limiter
                .retry_after(&["name:ivan".into(), "ip:10.0.0.2".into()], t0)
                .is_none()
        );
        assert_eq!(
            limiter.retry_after(&name, t0 + Duration::from_secs(60)),
            None
        );
        for s in 61..64 {
            limiter.failed(&name, t0 + Duration::from_secs(s));
        }
        assert!(
            limiter
                .retry_after(&name, t0 + Duration::from_secs(63))
                .is_some()
        );
        limiter.succeeded("name:olga");
        assert_eq!(
            limiter.retry_after(&name, t0 + Duration::from_secs(63)),
            None
        );
    }
}
