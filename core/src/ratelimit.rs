//! Rate limiting as pure functions over a small stored state (GCRA, the generic cell rate
//! algorithm), so a Durable Object, a compare-and-swap loop over Spin's key-value store and an
//! in-memory test host all run the same code. The clock comes in with each step.

use serde::{Deserialize, Serialize};

/// The window every quota is expressed over.
pub const PERIOD_MS: u64 = 60_000;
const PERIOD_US: u64 = PERIOD_MS * 1_000;

/// What one limiter key stores: the theoretical arrival time of each quota, in microseconds since the Unix epoch (0 = never used).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitState {
    #[serde(default, rename = "r")]
    pub requests_tat_us: u64,
    #[serde(default, rename = "t")]
    pub tokens_tat_us: u64,
}

/// One quota of a step: so many units per minute, and what this step costs (negative: a refund).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub per_minute: u64,
    pub cost: i64,
}

/// One atomic operation on a limiter key.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitStep {
    pub now_ms: u64,
    pub requests: Option<Quota>,
    pub tokens: Option<Quota>,
    /// Applied whatever the outcome (reconciling actual usage after the fact); never refused.
    #[serde(default)]
    pub force: bool,
}

/// Where one quota stands after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub limit: u64,
    pub remaining: u64,
    /// until the quota is whole again
    pub reset_ms: u64,
}

/// The answer to a step.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    pub allowed: bool,
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
    /// When refused: how long until the step would be admitted (0 when allowed).
    #[serde(default)]
    pub retry_after_ms: u64,
}

/// What one quota says about a step, ordered so the strictest quota of a step wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Admits,
    RetryAfterMs(u64),
    /// The cost alone exceeds the whole quota: waiting will not help.
    Never,
}

/// Applies a step to a state: the admission and the state to store (unchanged when refused).
#[must_use]
pub fn apply(state: LimitState, step: &LimitStep) -> (Admission, LimitState) {
    let now_us = step.now_ms.saturating_mul(1_000);
    let requests = step.requests.map(|quota| (quota, weigh(state.requests_tat_us, quota, now_us)));
    let tokens = step.tokens.map(|quota| (quota, weigh(state.tokens_tat_us, quota, now_us)));
    let strictest = [requests, tokens].into_iter().flatten().map(|(_, (_, verdict))| verdict).max();
    let allowed = step.force || matches!(strictest, None | Some(Verdict::Admits));

    let stored = if allowed {
        LimitState {
            requests_tat_us: requests.map_or(state.requests_tat_us, |(_, (tat, _))| tat),
            tokens_tat_us: tokens.map_or(state.tokens_tat_us, |(_, (tat, _))| tat),
        }
    } else {
        state
    };
    let retry_after_ms = match strictest {
        _ if allowed => 0,
        Some(Verdict::RetryAfterMs(ms)) => ms.max(1),
        _ => PERIOD_MS,
    };
    let admission = Admission {
        allowed,
        requests: requests.map(|(quota, _)| window(quota.per_minute, stored.requests_tat_us, now_us)),
        tokens: tokens.map(|(quota, _)| window(quota.per_minute, stored.tokens_tat_us, now_us)),
        retry_after_ms,
    };
    (admission, stored)
}

/// The TAT one quota would store after a step, and whether it admits the step.
fn weigh(tat: u64, quota: Quota, now_us: u64) -> (u64, Verdict) {
    let Quota { per_minute, cost } = quota;
    if per_minute == 0 && cost < 0 {
        return (tat, Verdict::Admits);
    }
    if cost == 0 {
        // Costs nothing, but a quota already overdrawn (settled beyond its minute) still refuses
        // until it is back within one: an upload estimated at nothing cannot ride an overdraft.
        let overdraft = tat.saturating_sub(now_us).saturating_sub(PERIOD_US);
        let verdict = if overdraft == 0 { Verdict::Admits } else { Verdict::RetryAfterMs(overdraft.div_ceil(1_000)) };
        return (tat, verdict);
    }
    if per_minute == 0 {
        // A zero quota admits nothing; its TAT stays put even when forced, so raising the
        // limit later does not inherit an endless overdraft.
        return (tat, Verdict::Never);
    }
    let span = spacing(cost.unsigned_abs(), per_minute);
    if cost < 0 {
        return (tat.saturating_sub(span).max(now_us), Verdict::Admits);
    }
    let next = tat.max(now_us).saturating_add(span);
    let overdraft = next.saturating_sub(now_us).saturating_sub(PERIOD_US);
    let verdict = if overdraft == 0 {
        Verdict::Admits
    } else if cost.unsigned_abs() > per_minute {
        Verdict::Never
    } else {
        Verdict::RetryAfterMs(overdraft.div_ceil(1_000))
    };
    (next, verdict)
}

/// `units * T` in microseconds, computed as `units * PERIOD / limit` so nothing is lost to
/// rounding `T` first; saturates at `u64::MAX`. `per_minute` is never 0 here.
fn spacing(units: u64, per_minute: u64) -> u64 {
    let exact = u128::from(units) * u128::from(PERIOD_US) / u128::from(per_minute.max(1));
    u64::try_from(exact).unwrap_or(u64::MAX)
}

/// Where a quota stands given the TAT stored after a step.
fn window(per_minute: u64, tat: u64, now_us: u64) -> Window {
    let ahead = tat.saturating_sub(now_us);
    let room = PERIOD_US.saturating_sub(ahead);
    let remaining = match PERIOD_US.checked_div(per_minute) {
        None => 0,
        // Limits above one unit per microsecond: count the room proportionally.
        Some(0) => {
            u64::try_from(u128::from(room) * u128::from(per_minute) / u128::from(PERIOD_US)).unwrap_or(per_minute)
        }
        Some(interval) => room / interval,
    };
    Window { limit: per_minute, remaining: remaining.min(per_minute), reset_ms: ahead.div_ceil(1_000) }
}

/// The stored state from bytes (absent or unreadable bytes are a fresh state: a limiter never fails closed on a corrupt entry).
#[must_use]
pub fn decode(bytes: Option<&[u8]>) -> LimitState {
    bytes.and_then(|bytes| serde_json::from_slice(bytes).ok()).unwrap_or_default()
}

/// The state as stored (compact JSON, e.g. {"r":1,"t":2}).
#[must_use]
pub fn encode(state: &LimitState) -> Vec<u8> {
    // Written by hand so there is no error path: the shape is fixed and matches the serde names.
    format!(r#"{{"r":{},"t":{}}}"#, state.requests_tat_us, state.tokens_tat_us).into_bytes()
}

/// The response headers that describe an admission, OpenAI's names:
/// x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests,
/// x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens
/// (only for the quotas present), and `retry-after` (whole seconds, rounded up, at least 1) when refused.
#[must_use]
pub fn headers(admission: &Admission) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(7);
    if let Some(window) = admission.requests {
        out.push(("x-ratelimit-limit-requests", window.limit.to_string()));
        out.push(("x-ratelimit-remaining-requests", window.remaining.to_string()));
        out.push(("x-ratelimit-reset-requests", duration(window.reset_ms)));
    }
    if let Some(window) = admission.tokens {
        out.push(("x-ratelimit-limit-tokens", window.limit.to_string()));
        out.push(("x-ratelimit-remaining-tokens", window.remaining.to_string()));
        out.push(("x-ratelimit-reset-tokens", duration(window.reset_ms)));
    }
    if !admission.allowed {
        out.push(("retry-after", admission.retry_after_ms.div_ceil(1_000).max(1).to_string()));
    }
    out
}

/// A duration the way OpenAI (and Go) print one: "0s", "0.5s", "59.999s", "1m30s", "1h0m0s".
fn duration(ms: u64) -> String {
    let (hours, minutes, millis) = (ms / 3_600_000, ms / 60_000 % 60, ms % 60_000);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if ms >= 60_000 {
        out.push_str(&format!("{minutes}m"));
    }
    let (seconds, fraction) = (millis / 1_000, millis % 1_000);
    if fraction == 0 {
        out.push_str(&format!("{seconds}s"));
    } else {
        let fraction = format!("{fraction:03}");
        out.push_str(&format!("{seconds}.{}s", fraction.trim_end_matches('0')));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn requests(now_ms: u64, per_minute: u64, cost: i64) -> LimitStep {
        LimitStep { now_ms, requests: Some(Quota { per_minute, cost }), tokens: None, force: false }
    }

    fn both(now_ms: u64, requests: (u64, i64), tokens: (u64, i64)) -> LimitStep {
        LimitStep {
            now_ms,
            requests: Some(Quota { per_minute: requests.0, cost: requests.1 }),
            tokens: Some(Quota { per_minute: tokens.0, cost: tokens.1 }),
            force: false,
        }
    }

    /// Applies the steps in order to a fresh key, returning each verdict and the final state.
    fn run(steps: &[LimitStep]) -> (Vec<bool>, LimitState) {
        run_from(LimitState::default(), steps)
    }

    fn run_from(mut state: LimitState, steps: &[LimitStep]) -> (Vec<bool>, LimitState) {
        let verdicts = steps
            .iter()
            .map(|step| {
                let (admission, next) = apply(state, step);
                state = next;
                admission.allowed
            })
            .collect();
        (verdicts, state)
    }

    #[test]
    fn a_fresh_key_admits_exactly_the_limit_at_one_instant_and_refuses_the_next() {
        for limit in [1, 3, 7, 60] {
            let (verdicts, _) = run(&vec![requests(1_000, limit, 1); limit as usize + 1]);
            assert_eq!(verdicts.iter().filter(|allowed| **allowed).count() as u64, limit, "limit {limit}");
            assert!(!verdicts[limit as usize]);
        }
    }

    #[test]
    fn one_emission_interval_later_exactly_one_more_is_admitted() {
        let (_, full) = run(&[requests(1_000, 3, 1), requests(1_000, 3, 1), requests(1_000, 3, 1)]);
        assert!(!apply(full, &requests(20_999, 3, 1)).0.allowed, "20 s per request at 3 a minute");
        let (admission, state) = apply(full, &requests(21_000, 3, 1));
        assert!(admission.allowed);
        assert!(!apply(state, &requests(21_000, 3, 1)).0.allowed);
    }

    #[test]
    fn a_refused_step_consumes_nothing() {
        let (_, full) = run(&[requests(0, 2, 1), requests(0, 2, 1)]);
        let (admission, state) = apply(full, &requests(10_000, 2, 1));
        assert!(!admission.allowed);
        assert_eq!(state, full);
        assert_eq!(admission.retry_after_ms, 20_000);
        assert_eq!(admission.requests, Some(Window { limit: 2, remaining: 0, reset_ms: 50_000 }));
    }

    #[test]
    fn two_quotas_refuse_when_either_refuses_and_tokens_refusing_leaves_requests_unconsumed() {
        let (admission, state) = apply(LimitState::default(), &both(0, (10, 1), (100, 100)));
        assert!(admission.allowed);
        let (admission, after) = apply(state, &both(0, (10, 1), (100, 1)));
        assert!(!admission.allowed, "tokens are spent");
        assert_eq!(after, state, "the requests quota is not consumed");
        assert_eq!(admission.requests.unwrap().remaining, 9);

        let (_, requests_spent) = run(&[requests(0, 1, 1)]);
        assert!(!apply(requests_spent, &both(0, (1, 1), (100, 1))).0.allowed, "requests are spent");
    }

    #[test]
    fn a_token_cost_of_half_the_limit_admits_twice_then_refuses() {
        let step =
            LimitStep { tokens: Some(Quota { per_minute: 1_000, cost: 500 }), requests: None, ..requests(0, 0, 0) };
        let (verdicts, _) = run(&[step, step, step]);
        assert_eq!(verdicts, [true, true, false]);
    }

    #[test]
    fn zero_cost_admits_and_leaves_the_state_unchanged() {
        let (_, full) = run(&[requests(0, 1, 1)]);
        let (admission, state) = apply(full, &requests(0, 1, 0));
        assert!(admission.allowed);
        assert_eq!(state, full);
    }

    #[test]
    fn zero_cost_is_refused_while_the_quota_is_overdrawn() {
        let overdrawn = LimitStep { force: true, ..requests(0, 2, 4) };
        let (_, state) = apply(LimitState::default(), &overdrawn);
        let (admission, after) = apply(state, &requests(0, 2, 0));
        assert!(!admission.allowed, "two minutes' worth spent: nothing until one has drained");
        assert_eq!(admission.retry_after_ms, 60_000);
        assert_eq!(after, state);
        assert!(apply(state, &requests(60_000, 2, 0)).0.allowed);
    }

    #[test]
    fn refunds_give_capacity_back_but_never_beyond_full() {
        let (_, full) = run(&[requests(0, 3, 1), requests(0, 3, 1), requests(0, 3, 1)]);
        let (admission, refunded) = apply(full, &requests(0, 3, -1));
        assert!(admission.allowed);
        assert_eq!(admission.requests.unwrap().remaining, 1);
        let (admission, overfunded) = apply(refunded, &requests(0, 3, -10));
        assert_eq!(overfunded.requests_tat_us, 0, "a full bucket stays full");
        assert_eq!(admission.requests, Some(Window { limit: 3, remaining: 3, reset_ms: 0 }));
        let (verdicts, _) = run_from(overfunded, &vec![requests(0, 3, 1); 4]);
        assert_eq!(verdicts, [true, true, true, false]);
    }

    #[test]
    fn force_overdraws_and_the_next_step_waits_out_the_overdraft() {
        let forced = LimitStep { force: true, ..requests(1_000, 60, 90) };
        let (admission, state) = apply(LimitState::default(), &forced);
        assert!(admission.allowed);
        assert_eq!(admission.retry_after_ms, 0);
        assert_eq!(state.requests_tat_us, 91_000_000);
        assert_eq!(admission.requests, Some(Window { limit: 60, remaining: 0, reset_ms: 90_000 }));

        let (admission, after) = apply(state, &requests(1_000, 60, 1));
        assert!(!admission.allowed);
        assert_eq!(after, state);
        assert_eq!(admission.retry_after_ms, 31_000, "30 s of overdraft plus the 1 s this request costs");
        assert!(apply(state, &requests(32_000, 60, 1)).0.allowed);
    }

    #[test]
    fn a_cost_beyond_the_whole_quota_is_refused_with_a_full_period_retry() {
        let (admission, state) = apply(LimitState::default(), &both(0, (10, 1), (100, 101)));
        assert!(!admission.allowed);
        assert_eq!(admission.retry_after_ms, PERIOD_MS);
        assert_eq!(state, LimitState::default());
    }

    #[test]
    fn an_allowed_admission_reports_windows_and_headers_on_known_numbers() {
        let (_, state) = run(&[requests(10_000, 60, 3)]);
        let (admission, _) = apply(state, &both(11_500, (60, 0), (1_000, 300)));
        assert_eq!(admission.requests, Some(Window { limit: 60, remaining: 58, reset_ms: 1_500 }));
        assert_eq!(admission.tokens, Some(Window { limit: 1_000, remaining: 700, reset_ms: 18_000 }));
        let expected = [
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "58"),
            ("x-ratelimit-reset-requests", "1.5s"),
            ("x-ratelimit-limit-tokens", "1000"),
            ("x-ratelimit-remaining-tokens", "700"),
            ("x-ratelimit-reset-tokens", "18s"),
        ];
        assert_eq!(headers(&admission), expected.map(|(name, value)| (name, value.to_string())));
        let (admission, _) = apply(LimitState::default(), &requests(0, 7, 1));
        assert_eq!(admission.requests, Some(Window { limit: 7, remaining: 6, reset_ms: 8_572 }));
    }

    #[test]
    fn headers_on_a_refusal_carry_retry_after_in_seconds_rounded_up() {
        let (_, full) = run(&[requests(0, 1, 1)]);
        let (admission, _) = apply(full, &requests(29_999, 1, 1));
        assert_eq!(admission.retry_after_ms, 30_001);
        let expected = [
            ("x-ratelimit-limit-requests", "1"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "30.001s"),
            ("retry-after", "31"),
        ];
        assert_eq!(headers(&admission), expected.map(|(name, value)| (name, value.to_string())));
        let barely = Admission { allowed: false, requests: None, tokens: None, retry_after_ms: 0 };
        assert_eq!(headers(&barely), [("retry-after", "1".to_string())]);
    }

    #[test]
    fn durations_use_openais_format() {
        let cases = [
            (0, "0s"),
            (500, "0.5s"),
            (1_050, "1.05s"),
            (12_000, "12s"),
            (59_999, "59.999s"),
            (60_000, "1m0s"),
            (90_000, "1m30s"),
            (90_500, "1m30.5s"),
            (360_000, "6m0s"),
            (3_661_000, "1h1m1s"),
        ];
        for (ms, text) in cases {
            assert_eq!(duration(ms), text, "{ms} ms");
        }
    }

    #[test]
    fn the_state_round_trips_and_garbage_decodes_to_a_fresh_state() {
        let state = LimitState { requests_tat_us: 1, tokens_tat_us: u64::MAX };
        assert_eq!(encode(&LimitState { requests_tat_us: 1, tokens_tat_us: 2 }), br#"{"r":1,"t":2}"#);
        assert_eq!(encode(&state), serde_json::to_vec(&state).unwrap());
        assert_eq!(decode(Some(&encode(&state))), state);
        assert_eq!(decode(Some(br#"{"r":5}"#)), LimitState { requests_tat_us: 5, tokens_tat_us: 0 });
        for garbage in [&b""[..], b"null", b"{\"r\":-1}", b"\xff\xfe", b"{\"r\":\"1\"}", b"{\"r\":1"] {
            assert_eq!(decode(Some(garbage)), LimitState::default());
        }
        assert_eq!(decode(None), LimitState::default());
    }

    #[test]
    fn a_zero_limit_admits_nothing_and_never_divides_by_zero() {
        let (admission, state) = apply(LimitState::default(), &requests(0, 0, 1));
        assert!(!admission.allowed);
        assert_eq!(admission.retry_after_ms, PERIOD_MS);
        assert_eq!(admission.requests, Some(Window { limit: 0, remaining: 0, reset_ms: 0 }));
        let forced = LimitStep { force: true, ..requests(0, 0, 5) };
        assert_eq!(apply(state, &forced).1, LimitState::default(), "a zero quota stores no overdraft");
        assert!(apply(state, &requests(0, 0, -5)).0.allowed);
    }

    #[test]
    fn huge_costs_limits_and_clocks_never_panic() {
        let extremes = [0, 1, 1_000, u64::MAX / 1_000, u64::MAX];
        let costs = [i64::MIN, -1, 0, 1, i64::MAX];
        let limits = [0, 1, 60_000_001, u64::MAX];
        let states = [(0, false), (0, true), (u64::MAX, false), (u64::MAX, true)];
        for now_ms in extremes {
            for cost in costs {
                for per_minute in limits {
                    for (tat, force) in states {
                        let state = LimitState { requests_tat_us: tat, tokens_tat_us: tat };
                        let quota = Some(Quota { per_minute, cost });
                        let (admission, _) = apply(state, &LimitStep { now_ms, requests: quota, tokens: quota, force });
                        let _ = headers(&admission);
                    }
                }
            }
        }
        let huge = LimitStep { tokens: Some(Quota { per_minute: u64::MAX, cost: i64::MAX }), ..requests(0, 0, 0) };
        let (admission, _) = apply(LimitState::default(), &huge);
        assert!(admission.allowed, "i64::MAX of u64::MAX is half the minute");
        let remaining = admission.tokens.unwrap().remaining;
        assert!(remaining > u64::MAX / 2 && remaining < u64::MAX, "{remaining}");
    }

    #[test]
    fn a_clock_going_backwards_sees_the_stored_overdraft() {
        let (_, state) = run(&[requests(100_000, 2, 1)]);
        let (admission, _) = apply(state, &requests(50_000, 2, 2));
        assert!(!admission.allowed);
        assert_eq!(admission.retry_after_ms, 80_000, "a TAT of 130 s plus 60 s of cost, less the period, from 50 s");
        assert_eq!(admission.requests, Some(Window { limit: 2, remaining: 0, reset_ms: 80_000 }));
    }
}
