//! When to retry an upstream attempt, and how long to wait first.

use http::{HeaderMap, StatusCode};

use crate::config::RetryConfig;

/// Whether a failed attempt is worth another try.
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The upstream's requested wait, from `retry-after-ms` or `retry-after` (delta seconds).
/// HTTP-date values are not honoured; the exponential backoff applies then.
pub fn retry_after_ms(headers: &HeaderMap) -> Option<u64> {
    if let Some(ms) =
        headers.get("retry-after-ms").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok())
    {
        return (ms.is_finite() && ms >= 0.0).then_some(ms as u64);
    }
    let secs = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some((secs * 1000.0) as u64)
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then try the same target again.
    RetryAfter { millis: u64 },
    /// Attempts are spent (or the upstream asked for a wait past the cap): move on.
    GiveUp,
}

/// Exponential backoff with full jitter, capped; an upstream `Retry-After` is honoured up to its cap.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    config: RetryConfig,
}

impl RetryPolicy {
    pub fn new(config: RetryConfig) -> Self {
        RetryPolicy { config }
    }

    /// `failed_attempt` counts from 1; `random` is any `u64` (jitter source).
    #[must_use]
    pub fn after_failure(&self, failed_attempt: u32, retry_after: Option<u64>, random: u64) -> RetryDecision {
        if failed_attempt >= self.config.attempts {
            return RetryDecision::GiveUp;
        }
        if let Some(asked) = retry_after {
            return if asked <= self.config.max_retry_after_ms {
                RetryDecision::RetryAfter { millis: asked }
            } else {
                RetryDecision::GiveUp
            };
        }
        let exp = self.config.initial_backoff_ms.saturating_mul(1u64 << failed_attempt.saturating_sub(1).min(20));
        let ceiling = exp.min(self.config.max_backoff_ms);
        // Full jitter between half the ceiling and the ceiling: spread out, never zero.
        let half = ceiling / 2;
        let jitter = if half == 0 { 0 } else { random % (half + 1) };
        RetryDecision::RetryAfter { millis: half + jitter }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            attempts: 3,
            initial_backoff_ms: 100,
            max_backoff_ms: 300,
            max_retry_after_ms: 1000,
        })
    }

    #[test]
    fn backoff_grows_exponentially_within_jitter_bounds_and_is_capped() {
        let p = policy();
        for random in [0, 7, u64::MAX] {
            let RetryDecision::RetryAfter { millis: first } = p.after_failure(1, None, random) else { panic!() };
            assert!((50..=100).contains(&first), "{first}");
            let RetryDecision::RetryAfter { millis: second } = p.after_failure(2, None, random) else { panic!() };
            assert!((100..=200).contains(&second), "{second}");
        }
        let capped = RetryPolicy::new(RetryConfig { attempts: 9, ..policy().config });
        assert!(matches!(capped.after_failure(8, None, 3), RetryDecision::RetryAfter { millis } if millis <= 300));
    }

    #[test]
    fn attempts_are_bounded() {
        assert_eq!(policy().after_failure(3, None, 0), RetryDecision::GiveUp);
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        assert_eq!(policy().after_failure(1, Some(700), 0), RetryDecision::RetryAfter { millis: 700 });
        assert_eq!(policy().after_failure(1, Some(5000), 0), RetryDecision::GiveUp);
    }

    #[test]
    fn retry_after_headers_parse_seconds_and_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "1.5".parse().unwrap());
        assert_eq!(retry_after_ms(&h), Some(1500));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after_ms(&h), Some(250));
        let mut h = HeaderMap::new();
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after_ms(&h), None);
    }

    #[test]
    fn only_429_and_5xx_are_retryable() {
        assert!(is_retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable_status(StatusCode::BAD_GATEWAY));
        assert!(!is_retryable_status(StatusCode::BAD_REQUEST));
        assert!(!is_retryable_status(StatusCode::UNAUTHORIZED));
    }
}
