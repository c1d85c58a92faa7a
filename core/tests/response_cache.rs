//! The exact-match response cache in the pipeline, against the fake host: misses go upstream
//! and are stored after the response, identical requests are hits served without the upstream
//! (replayed as a stream when asked), entries expire on the virtual clock, `Cache-Control`
//! skips or bypasses the cache, entries are per principal unless shared, only whole finished
//! answers are kept, and a hit still passes the input guardrails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use bytes::Bytes;
use gateway_core::auth::hash_key;
use gateway_core::testing::{FakeAnswer, FakeHost};
use serde_json::{json, Value};
use support::{post_chat, run_deferred, upstream_calls, Reply};

mod support;

const ALICE: &str = "sk-gw-alice";
/// A contractor: the `guarded-cache` route's policy refuses its prompts.
const BOB: &str = "sk-gw-bob";

const NO_CONTRACTORS: &str = r#"forbid(principal, action == Gateway::Action::"process_prompt", resource)
when { principal has team && principal.team == "contractors" };"#;
/// Contractors get secrets in answers redacted; staff see them.
const REDACT_FOR_CONTRACTORS: &str = r#"@outcome("redact")
@redact("secret")
forbid(principal, action == Gateway::Action::"process_response", resource)
when { principal has team && principal.team == "contractors" && context.secret_count > 0 };"#;
const SECRET: &str = "sk-proj-Ab3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5";

fn host() -> Rc<FakeHost> {
    let openai = || json!(["openai/gpt-4o"]);
    let config = json!({
        "version": 1,
        // Whole traces in the log: the tests read spans and audit records there.
        "telemetry": {"log_traces": true},
        "providers": {
            "openai": {"type": "openai", "base_url": "http://up.test/v1", "api_key_secret": "openai_api_key"}
        },
        "routes": {
            "cached": {"models": openai(), "cache": {"ttl_seconds": 60}},
            "shared-cache": {"models": openai(), "cache": {"ttl_seconds": 60, "shared": true}},
            "guarded-cache": {"models": openai(), "cache": {"ttl_seconds": 60, "shared": true},
                              "policies": [{"id": "no-contractors", "cedar": NO_CONTRACTORS}]},
            "redacting-cache": {"models": openai(), "cache": {"ttl_seconds": 60, "shared": true},
                                "policies": [{"id": "redact-for-contractors", "cedar": REDACT_FOR_CONTRACTORS}]},
            "uncached": {"models": openai()}
        },
        "keys": [
            {"sha256": hash_key(ALICE), "principal": {"kind": "user", "id": "alice", "attributes": {"team": "staff"}}},
            {"sha256": hash_key(BOB), "principal": {"kind": "user", "id": "bob", "attributes": {"team": "contractors"}}}
        ],
        "retry": {"attempts": 1}
    });
    gateway_core::policy::accept(config.to_string().as_bytes()).unwrap();
    let mut host = FakeHost::with_config(&config.to_string());
    host.secrets.insert("openai_api_key".into(), "sk-openai-secret".into());
    Rc::new(host)
}

/// Posts a raw chat body with a key and extra headers; reads the whole response.
fn send(host: &Rc<FakeHost>, key: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    post_chat(host, key, body, headers)
}

/// The same question to `route`, its fields in the order a client might write them.
fn question(route: &str) -> String {
    format!(r#"{{"model": "{route}", "messages": [{{"role": "user", "content": "What is GCRA?"}}], "temperature": 0}}"#)
}

/// The same question again, every object's keys in another order and without the spaces.
fn question_reordered(route: &str) -> String {
    format!(r#"{{"temperature":0,"messages":[{{"content":"What is GCRA?","role":"user"}}],"model":"{route}"}}"#)
}

/// The same question, streamed.
fn question_streamed(route: &str) -> String {
    format!(
        r#"{{"model": "{route}", "messages": [{{"role": "user", "content": "What is GCRA?"}}], "temperature": 0, "stream": true}}"#
    )
}

fn ask(host: &Rc<FakeHost>, key: &str, route: &str) -> Reply {
    send(host, key, &question(route), &[])
}

fn completion_with(content: &str, finish_reason: &str) -> FakeAnswer {
    let body = json!({"id": "chatcmpl-c", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46}});
    FakeAnswer::json(200, &body.to_string())
}

fn completion(content: &str) -> FakeAnswer {
    completion_with(content, "stop")
}

/// A streamed upstream answer of these text pieces.
fn stream_of(pieces: &[&str]) -> FakeAnswer {
    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        Bytes::from(format!("data: {chunk}\n\n"))
    };
    let mut chunks: Vec<Bytes> = pieces.iter().map(|p| chunk(json!({"content": p}), Value::Null)).collect();
    chunks.push(chunk(json!({}), json!("stop")));
    chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
    FakeAnswer::Stream { chunks, then_error: false }
}

fn entries(host: &FakeHost) -> usize {
    host.cache.borrow().len()
}

/// Asks once and lets the answer be stored.
fn prime(host: &Rc<FakeHost>, key: &str, route: &str, content: &str) -> Reply {
    host.answer(completion(content));
    let miss = ask(host, key, route);
    assert_eq!(miss.status, 200, "{}", miss.body);
    assert_eq!(miss.cache(), Some("miss"));
    run_deferred(host);
    miss
}

#[test]
fn a_first_request_is_a_miss_and_an_identical_second_is_a_hit_served_without_the_upstream() {
    let host = host();
    host.answer(completion("A rate limiting algorithm."));
    let miss = ask(&host, ALICE, "cached");
    assert_eq!(miss.status, 200, "{}", miss.body);
    assert_eq!(miss.cache(), Some("miss"));
    assert_eq!(miss.header("age"), None);
    assert_eq!(upstream_calls(&host), 1);
    assert_eq!(entries(&host), 0, "stored only after the response has left");

    run_deferred(&host);
    assert_eq!(entries(&host), 1);
    assert!(host.cache.borrow().keys().all(|k| k.starts_with("chat/")));

    host.now.set(host.now.get() + 5_000);
    let hit = send(&host, ALICE, &question_reordered("cached"), &[]);
    assert_eq!(hit.status, 200, "{}", hit.body);
    assert_eq!(hit.cache(), Some("hit"), "key order and whitespace do not make another request");
    assert_eq!(hit.header("age"), Some("5"));
    assert_eq!(hit.header("x-gateway-provider"), Some("openai"));
    assert_eq!(hit.json(), miss.json(), "the same answer");
    assert_eq!(upstream_calls(&host), 1, "the upstream is not asked again");
}

#[test]
fn a_request_that_differs_in_any_field_is_another_entry() {
    let host = host();
    prime(&host, ALICE, "cached", "zero");
    host.answer(completion("warmer"));
    let warmer = r#"{"model": "cached", "messages": [{"role": "user", "content": "What is GCRA?"}], "temperature": 1}"#;
    let reply = send(&host, ALICE, warmer, &[]);
    assert_eq!(reply.cache(), Some("miss"));
    assert_eq!(reply.content(), "warmer");
    assert_eq!(upstream_calls(&host), 2);
}

#[test]
fn an_entry_is_served_until_its_ttl_has_passed_and_then_it_is_a_miss_again() {
    let host = host();
    prime(&host, ALICE, "cached", "first");
    let stored_at = host.now.get();

    host.now.set(stored_at + 59_999);
    let hit = ask(&host, ALICE, "cached");
    assert_eq!(hit.cache(), Some("hit"));
    assert_eq!(hit.header("age"), Some("59"));

    host.now.set(stored_at + 60_000);
    host.answer(completion("second"));
    let expired = ask(&host, ALICE, "cached");
    assert_eq!(expired.cache(), Some("miss"));
    assert_eq!(expired.content(), "second");
    assert_eq!(upstream_calls(&host), 2);

    run_deferred(&host);
    let renewed = ask(&host, ALICE, "cached");
    assert_eq!((renewed.cache(), renewed.content().as_str()), (Some("hit"), "second"), "the fresh answer replaced it");
}

#[test]
fn cache_control_no_cache_skips_the_lookup_and_refreshes_the_entry() {
    let host = host();
    prime(&host, ALICE, "cached", "old");
    host.answer(completion("new"));
    let fresh = send(&host, ALICE, &question("cached"), &[("cache-control", "no-cache")]);
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.cache(), Some("miss"));
    assert_eq!(fresh.content(), "new");
    assert_eq!(upstream_calls(&host), 2, "the upstream answered though an entry was there");

    run_deferred(&host);
    let hit = ask(&host, ALICE, "cached");
    assert_eq!((hit.cache(), hit.content().as_str()), (Some("hit"), "new"));
    assert_eq!(upstream_calls(&host), 2);
}

#[test]
fn cache_control_only_if_cached_answers_a_miss_with_a_504_and_never_asks_the_upstream() {
    let host = host();
    let missed = send(&host, ALICE, &question("cached"), &[("cache-control", "only-if-cached")]);
    assert_eq!(missed.status, 504);
    assert!(missed.body.contains("cache_miss"), "{}", missed.body);
    assert_eq!(upstream_calls(&host), 0);
    prime(&host, ALICE, "cached", "kept");
    let hit = send(&host, ALICE, &question("cached"), &[("cache-control", "only-if-cached")]);
    assert_eq!((hit.status, hit.cache(), hit.content().as_str()), (200, Some("hit"), "kept"));
    assert_eq!(upstream_calls(&host), 1);
    // A route with no cache has nothing to serve it from.
    let uncached = send(&host, ALICE, &question("uncached"), &[("cache-control", "only-if-cached")]);
    assert_eq!(uncached.status, 504, "{}", uncached.body);
    assert_eq!(upstream_calls(&host), 1);
}

#[test]
fn cache_control_no_store_neither_reads_nor_writes_the_cache() {
    let host = host();
    host.answer(completion("unkept"));
    let first = send(&host, ALICE, &question("cached"), &[("cache-control", "no-store")]);
    assert_eq!(first.status, 200);
    assert_eq!(first.cache(), Some("miss"), "every response on a cached route says which it was");
    run_deferred(&host);
    assert_eq!(entries(&host), 0, "nothing written");

    prime(&host, ALICE, "cached", "kept");
    let stored = host.cache.borrow().clone();
    host.answer(completion("bypassed"));
    let bypass = send(&host, ALICE, &question("cached"), &[("cache-control", "private, No-Store")]);
    assert_eq!(bypass.content(), "bypassed", "nothing read");
    run_deferred(&host);
    assert_eq!(*host.cache.borrow(), stored, "and the kept entry is left as it was");
    assert_eq!(ask(&host, ALICE, "cached").content(), "kept");
    assert_eq!(upstream_calls(&host), 3);
}

#[test]
fn two_principals_do_not_share_entries_unless_the_route_shares_them() {
    let host = host();
    prime(&host, ALICE, "cached", "for alice");
    host.answer(completion("for bob"));
    let bob = ask(&host, BOB, "cached");
    assert_eq!((bob.cache(), bob.content().as_str()), (Some("miss"), "for bob"));
    run_deferred(&host);
    assert_eq!(entries(&host), 2, "one entry per principal");
    assert_eq!(ask(&host, ALICE, "cached").content(), "for alice");

    prime(&host, ALICE, "shared-cache", "for everyone");
    let bob = ask(&host, BOB, "shared-cache");
    assert_eq!((bob.cache(), bob.content().as_str()), (Some("hit"), "for everyone"));
    assert_eq!(upstream_calls(&host), 3);
}

#[test]
fn a_streamed_request_after_a_whole_one_is_served_as_a_replayed_stream() {
    let host = host();
    let answer = "GCRA spaces requests evenly: each one moves a theoretical arrival time forward by the \
                  emission interval, and a request is refused when that time runs too far ahead.";
    let whole = prime(&host, ALICE, "cached", answer);

    let streamed = r#"{"model": "cached", "stream": true, "messages": [{"role": "user", "content": "What is GCRA?"}], "temperature": 0}"#;
    let replay = send(&host, ALICE, streamed, &[]);
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.cache(), Some("hit"));
    assert!(replay.header("content-type").unwrap().starts_with("text/event-stream"));
    assert_eq!(replay.streamed_content(), answer, "the pieces put back together");
    assert!(replay.events().len() > 4, "in several pieces: {}", replay.body);
    assert_eq!(replay.events().last(), Some(&"[DONE]"));
    assert!(!replay.body.contains("\"usage\""), "no usage chunk unless asked: {}", replay.body);
    let first: Value = serde_json::from_str(replay.events()[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["id"], whole.json()["id"]);

    let with_usage = r#"{"model": "cached", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "What is GCRA?"}], "temperature": 0}"#;
    let replay = send(&host, ALICE, with_usage, &[]);
    assert_eq!(replay.cache(), Some("hit"));
    let events = replay.events();
    let usage: Value = serde_json::from_str(events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], whole.json()["usage"]);
    assert_eq!(upstream_calls(&host), 1);
}

#[test]
fn a_streamed_first_request_is_not_stored() {
    let host = host();
    host.answer(stream_of(&["GCRA is ", "a rate limiter."]));
    let streamed = r#"{"model": "cached", "stream": true, "messages": [{"role": "user", "content": "What is GCRA?"}], "temperature": 0}"#;
    let reply = send(&host, ALICE, streamed, &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.cache(), Some("miss"));
    assert_eq!(reply.streamed_content(), "GCRA is a rate limiter.");
    run_deferred(&host);
    assert_eq!(entries(&host), 0);

    host.answer(completion("asked again"));
    let whole = ask(&host, ALICE, "cached");
    assert_eq!((whole.cache(), whole.content().as_str()), (Some("miss"), "asked again"));
    assert_eq!(upstream_calls(&host), 2);
}

#[test]
fn an_error_or_a_filtered_answer_is_not_stored() {
    let host = host();
    host.answer(FakeAnswer::json(
        400,
        r#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature"}}"#,
    ));
    let refused = ask(&host, ALICE, "cached");
    assert_eq!(refused.status, 400);
    run_deferred(&host);
    assert_eq!(entries(&host), 0);

    host.answer(completion_with("", "content_filter"));
    let filtered = ask(&host, ALICE, "cached");
    assert_eq!(filtered.status, 200);
    assert_eq!(filtered.cache(), Some("miss"));
    run_deferred(&host);
    assert_eq!(entries(&host), 0, "a filtered answer is not kept");

    host.answer(completion("finally"));
    let answered = ask(&host, ALICE, "cached");
    assert_eq!((answered.cache(), answered.content().as_str()), (Some("miss"), "finally"));
    assert_eq!(upstream_calls(&host), 3);
}

#[test]
fn a_cache_store_that_fails_is_a_miss_answered_by_the_upstream_and_logged() {
    let host = host();
    prime(&host, ALICE, "cached", "kept");
    host.cache_down.set(true);
    host.answer(completion("fresh"));
    let reply = ask(&host, ALICE, "cached");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!((reply.cache(), reply.content().as_str()), (Some("miss"), "fresh"));
    assert_eq!(upstream_calls(&host), 2);
    run_deferred(&host);
    {
        let logs = host.logs.borrow();
        assert!(logs.iter().any(|l| l.contains("response cache unavailable")), "{logs:?}");
        assert!(logs.iter().any(|l| l.contains("response cache entry not stored")), "{logs:?}");
    }

    host.cache_down.set(false);
    let hit = ask(&host, ALICE, "cached");
    assert_eq!((hit.cache(), hit.content().as_str()), (Some("hit"), "kept"), "the entry outlived the outage");
    assert_eq!(upstream_calls(&host), 2);
}

#[test]
fn a_route_without_a_cache_has_no_cache_header_and_stores_nothing() {
    let host = host();
    host.answer(completion("one")).answer(completion("two"));
    let first = ask(&host, ALICE, "uncached");
    assert_eq!(first.status, 200);
    assert_eq!(first.cache(), None);
    run_deferred(&host);
    assert_eq!(entries(&host), 0);
    let second = ask(&host, ALICE, "uncached");
    assert_eq!((second.cache(), second.content().as_str()), (None, "two"));
    assert_eq!(upstream_calls(&host), 2);
}

#[test]
fn a_cache_hit_still_passes_the_input_guardrails() {
    let host = host();
    prime(&host, ALICE, "guarded-cache", "shared answer");
    let allowed = ask(&host, ALICE, "guarded-cache");
    assert_eq!((allowed.status, allowed.cache()), (200, Some("hit")));

    let denied = ask(&host, BOB, "guarded-cache");
    assert_eq!(denied.status, 403, "{}", denied.body);
    let error = &denied.json()["error"];
    assert_eq!(error["code"], "policy_denied");
    assert!(error["message"].as_str().unwrap().contains("no-contractors"), "{error}");
    assert!(!denied.body.contains("shared answer"), "the cached answer is not delivered");
    assert_eq!(upstream_calls(&host), 1);
}

#[test]
fn a_cache_hit_still_passes_the_output_guardrails_whole_and_replayed() {
    let host = host();
    let answer = format!("the key is {SECRET}");
    prime(&host, ALICE, "redacting-cache", &answer);
    let staff = ask(&host, ALICE, "redacting-cache");
    assert_eq!((staff.cache(), staff.content()), (Some("hit"), answer.clone()), "staff see it as stored");

    let contractor = ask(&host, BOB, "redacting-cache");
    assert_eq!(contractor.cache(), Some("hit"));
    assert!(!contractor.body.contains(SECRET), "{}", contractor.body);
    assert!(contractor.content().contains("[REDACTED:"), "{}", contractor.body);

    let streamed = send(&host, BOB, &question_streamed("redacting-cache"), &[]);
    assert_eq!(streamed.cache(), Some("hit"));
    assert!(!streamed.body.contains(SECRET), "{}", streamed.body);
    assert_eq!(upstream_calls(&host), 1);
}
