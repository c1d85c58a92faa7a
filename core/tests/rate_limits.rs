//! Rate limits in the pipeline, against the fake host: requests and tokens per minute on a
//! route (per key or shared) and on a key, the 429 a refused request gets, refill on the
//! virtual clock, token reservations settled from the usage the upstream reports (whole and
//! streamed), refunds when a later limiter refuses, and a limiter store that is down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use bytes::Bytes;
use futures::executor::block_on;
use futures::StreamExt;
use gateway_core::auth::hash_key;
use gateway_core::host::Body;
use gateway_core::ratelimit::{LimitStep, Quota};
use gateway_core::testing::{FakeAnswer, FakeHost};
use gateway_core::ConfigCache;
use serde_json::{json, Value};
use support::{post_chat, run_deferred, upstream_calls, Reply};

mod support;

const ALICE: &str = "sk-gw-alice";
const BOB: &str = "sk-gw-bob";
/// A key with its own quota of 2 requests a minute, across every route.
const CAROL: &str = "sk-gw-carol";
/// A key with its own quota of 1 request a minute, across every route.
const DAVE: &str = "sk-gw-dave";

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
            "per-key": {"models": openai(), "rate_limit": {"requests_per_minute": 3}},
            "shared": {"models": openai(), "rate_limit": {"requests_per_minute": 2, "per": "route"}},
            "tokens": {"models": openai(), "rate_limit": {"tokens_per_minute": 1000}},
            "metered": {"models": openai(), "rate_limit": {"requests_per_minute": 3, "tokens_per_minute": 10000}},
            "capped": {"models": openai(), "rate_limit": {"tokens_per_minute": 1000},
                       "transform": {"body_overrides": {"max_tokens": 42}}},
            "reserved": {"models": openai(), "rate_limit": {"tokens_per_minute": 1000}, "default_max_output_tokens": 300},
            "plain-a": {"models": openai()},
            "plain-b": {"models": openai()}
        },
        "keys": [
            {"sha256": hash_key(ALICE), "principal": {"kind": "user", "id": "alice"}},
            {"sha256": hash_key(BOB), "principal": {"kind": "user", "id": "bob"}},
            {"sha256": hash_key(CAROL), "principal": {"kind": "agent", "id": "carol"},
             "rate_limit": {"requests_per_minute": 2}},
            {"sha256": hash_key(DAVE), "principal": {"kind": "agent", "id": "dave"},
             "rate_limit": {"requests_per_minute": 1}}
        ],
        "retry": {"attempts": 1}
    });
    gateway_core::policy::accept(config.to_string().as_bytes()).unwrap();
    let mut host = FakeHost::with_config(&config.to_string());
    host.secrets.insert("openai_api_key".into(), "sk-openai-secret".into());
    Rc::new(host)
}

/// Posts a raw chat body with a key and reads the whole response.
fn send(host: &Rc<FakeHost>, key: &str, body: &str) -> Reply {
    post_chat(host, key, body, &[])
}

fn body(route: &str) -> String {
    json!({"model": route, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

fn chat(host: &Rc<FakeHost>, key: &str, route: &str) -> Reply {
    send(host, key, &body(route))
}

/// A whole completion whose usage the test chooses.
fn completion(prompt_tokens: u64, completion_tokens: u64) -> FakeAnswer {
    let body = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}});
    FakeAnswer::json(200, &body.to_string())
}

fn ok() -> FakeAnswer {
    completion(1, 1)
}

/// A streamed completion ("Hello") whose last chunk, before `[DONE]`, carries the usage.
fn streamed_completion(prompt_tokens: u64, completion_tokens: u64) -> FakeAnswer {
    let chunk = |choices: Value| json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": choices});
    let mut usage = chunk(json!([]));
    usage["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                            "total_tokens": prompt_tokens + completion_tokens});
    let events = [
        chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": null}])),
        chunk(json!([{"index": 0, "delta": {"content": "lo"}, "finish_reason": null}])),
        chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
        usage,
    ];
    let mut chunks: Vec<Bytes> = events.iter().map(|e| Bytes::from(format!("data: {e}\n\n"))).collect();
    chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
    FakeAnswer::Stream { chunks, then_error: false }
}

/// The limiter a key is counted on: keys are named by the first 16 hex digits of their hash.
fn key_name(key: &str) -> String {
    hash_key(key)[..16].to_owned()
}

/// The token estimate a request reserves: a quarter of its body's bytes, plus its `max_tokens`.
fn estimate(body: &str, max_tokens: u64) -> i64 {
    (body.len().div_ceil(4) as u64 + max_tokens) as i64
}

fn steps_on(host: &FakeHost, limiter: &str) -> Vec<LimitStep> {
    host.limit_steps.borrow().iter().filter(|(k, _)| k == limiter).map(|(_, s)| *s).collect()
}

#[test]
fn a_route_admits_exactly_its_requests_per_minute_at_one_instant_and_refuses_the_next_with_a_429() {
    let host = host();
    for remaining in ["2", "1", "0"] {
        host.answer(ok());
        let reply = chat(&host, ALICE, "per-key");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(reply.header("x-ratelimit-remaining-requests"), Some(remaining));
        assert_eq!(reply.header("retry-after"), None, "only a refusal says when to come back");
    }
    let refused = chat(&host, ALICE, "per-key");
    assert_eq!(refused.status, 429);
    let error = &refused.json()["error"];
    assert_eq!(error["type"], "requests");
    assert_eq!(error["code"], "rate_limit_exceeded");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("route `per-key` per key") && message.contains("3 requests per minute"), "{message}");
    assert_eq!(refused.header("retry-after"), Some("20"), "one request every 20 s at 3 a minute");
    assert_eq!(refused.header("x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(refused.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(refused.header("x-ratelimit-reset-requests"), Some("1m0s"));
    assert_eq!(upstream_calls(&host), 3, "the refused request never went upstream");
}

#[test]
fn one_emission_interval_later_exactly_one_more_request_is_admitted() {
    let host = host();
    for _ in 0..3 {
        host.answer(ok());
        assert_eq!(chat(&host, ALICE, "per-key").status, 200);
    }
    host.now.set(host.now.get() + 19_999);
    let early = chat(&host, ALICE, "per-key");
    assert_eq!(early.status, 429);
    assert_eq!(early.header("retry-after"), Some("1"), "1 ms short, rounded up to a whole second");

    host.now.set(host.now.get() + 1);
    host.answer(ok());
    let refilled = chat(&host, ALICE, "per-key");
    assert_eq!(refilled.status, 200, "{}", refilled.body);
    assert_eq!(refilled.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(chat(&host, ALICE, "per-key").status, 429, "one request refilled, not two");
    assert_eq!(upstream_calls(&host), 4);
}

#[test]
fn a_per_key_route_quota_is_counted_separately_for_each_key() {
    let host = host();
    for _ in 0..3 {
        host.answer(ok());
        assert_eq!(chat(&host, ALICE, "per-key").status, 200);
    }
    assert_eq!(chat(&host, ALICE, "per-key").status, 429);

    host.answer(ok());
    let bob = chat(&host, BOB, "per-key");
    assert_eq!(bob.status, 200, "alice's spent quota is not bob's");
    assert_eq!(bob.header("x-ratelimit-remaining-requests"), Some("2"));
    let limiters: Vec<String> = host.limiters.borrow().keys().cloned().collect();
    assert_eq!(
        limiters,
        [format!("route/per-key/key/{}", key_name(ALICE)), format!("route/per-key/key/{}", key_name(BOB))]
    );
}

#[test]
fn a_route_quota_shared_per_route_is_spent_by_all_keys_together() {
    let host = host();
    host.answer(ok()).answer(ok());
    assert_eq!(chat(&host, ALICE, "shared").status, 200);
    assert_eq!(chat(&host, BOB, "shared").status, 200);
    for key in [ALICE, BOB] {
        let refused = chat(&host, key, "shared");
        assert_eq!(refused.status, 429);
        let message = refused.error_message();
        assert!(message.contains("route `shared`:") && !message.contains("per key"), "{message}");
    }
    assert_eq!(host.limiters.borrow().keys().cloned().collect::<Vec<_>>(), ["route/shared"]);
    assert_eq!(upstream_calls(&host), 2);
}

#[test]
fn a_key_quota_applies_across_routes() {
    let host = host();
    host.answer(ok()).answer(ok());
    assert_eq!(chat(&host, CAROL, "plain-a").status, 200);
    assert_eq!(chat(&host, CAROL, "plain-b").status, 200);
    let refused = chat(&host, CAROL, "plain-a");
    assert_eq!(refused.status, 429);
    let message = refused.error_message();
    assert!(message.contains("this key") && message.contains("2 requests per minute"), "{message}");
    assert_eq!(refused.header("retry-after"), Some("30"));
    assert_eq!(steps_on(&host, &format!("key/{}", key_name(CAROL))).len(), 3);

    host.answer(ok());
    assert_eq!(chat(&host, ALICE, "plain-a").status, 200, "a key without a quota is not limited");
    assert_eq!(upstream_calls(&host), 3);
}

#[test]
fn the_token_reservation_is_the_estimate_and_the_settlement_charges_the_actual_usage() {
    let host = host();
    let body =
        json!({"model": "tokens", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let reserved = estimate(&body, 100);
    host.answer(completion(300, 600));
    let reply = send(&host, ALICE, &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-ratelimit-limit-tokens"), Some("1000"));
    assert_eq!(reply.header("x-ratelimit-remaining-tokens"), Some((1000 - reserved).to_string().as_str()));
    assert_eq!(reply.header("x-ratelimit-limit-requests"), None, "the route limits tokens only");

    let limiter = format!("route/tokens/key/{}", key_name(ALICE));
    let admission = steps_on(&host, &limiter);
    assert_eq!(admission.len(), 1);
    assert_eq!(admission[0].tokens, Some(Quota { per_minute: 1000, cost: reserved }));
    assert_eq!(admission[0].requests, None);
    assert!(!admission[0].force);

    run_deferred(&host);
    let steps = steps_on(&host, &limiter);
    assert_eq!(steps.len(), 2, "one settlement");
    assert!(steps[1].force, "a settlement is never refused");
    assert_eq!(steps[1].tokens, Some(Quota { per_minute: 1000, cost: 900 - reserved }));

    let refused = send(&host, ALICE, &body);
    assert_eq!(refused.status, 429, "900 of 1000 tokens are spent, and this asks for {reserved}");
    assert_eq!(refused.json()["error"]["type"], "tokens");
    assert!(refused.error_message().contains("1000 tokens per minute"), "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(upstream_calls(&host), 1);
}

#[test]
fn a_settlement_gives_back_what_the_estimate_overstated() {
    let body =
        json!({"model": "tokens", "max_tokens": 800, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let reserved = estimate(&body, 800);
    assert!(2 * reserved > 1000, "two estimates do not fit in a minute");

    // Without the settlement, the second request waits for the first one's estimate.
    let unsettled = host();
    unsettled.answer(completion(10, 20));
    assert_eq!(send(&unsettled, ALICE, &body).status, 200);
    assert_eq!(send(&unsettled, ALICE, &body).status, 429);

    // With it, only the 30 tokens actually used stay charged.
    let settled = host();
    settled.answer(completion(10, 20)).answer(completion(10, 20));
    assert_eq!(send(&settled, ALICE, &body).status, 200);
    run_deferred(&settled);
    let limiter = format!("route/tokens/key/{}", key_name(ALICE));
    assert_eq!(steps_on(&settled, &limiter)[1].tokens, Some(Quota { per_minute: 1000, cost: 30 - reserved }));
    let again = send(&settled, ALICE, &body);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("x-ratelimit-remaining-tokens"), Some((1000 - 30 - reserved).to_string().as_str()));
}

#[test]
fn a_streamed_answer_settles_its_tokens_from_the_usage_in_its_last_chunk() {
    let host = host();
    let body = json!({"model": "tokens", "stream": true, "max_tokens": 100,
                      "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let reserved = estimate(&body, 100);
    host.answer(streamed_completion(400, 500));
    let reply = send(&host, ALICE, &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("\"Hel\"") && reply.body.ends_with("data: [DONE]\n\n"), "{}", reply.body);
    assert!(!reply.body.contains("\"usage\""), "the client did not ask for usage: {}", reply.body);
    let sent: Value = serde_json::from_slice(host.requests.borrow()[0].body()).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true, "the gateway asks for usage on its own behalf");

    run_deferred(&host);
    let limiter = format!("route/tokens/key/{}", key_name(ALICE));
    let steps = steps_on(&host, &limiter);
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].tokens, Some(Quota { per_minute: 1000, cost: reserved }));
    assert!(steps[1].force);
    assert_eq!(steps[1].tokens, Some(Quota { per_minute: 1000, cost: 900 - reserved }));

    let refused = send(&host, ALICE, &body);
    assert_eq!(refused.status, 429, "the streamed 900 tokens count against the minute");
    assert_eq!(upstream_calls(&host), 1);
}

#[test]
fn a_request_whose_estimate_alone_exceeds_the_tokens_per_minute_is_a_429_naming_it_too_large() {
    let host = host();
    let body =
        json!({"model": "tokens", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let reply = send(&host, ALICE, &body);
    assert_eq!(reply.status, 429);
    let error = &reply.json()["error"];
    assert_eq!(error["type"], "tokens");
    assert_eq!(error["code"], "rate_limit_exceeded");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("too large") && message.contains("route `tokens` per key"), "{message}");
    assert!(message.contains(&format!("an estimated {} tokens", estimate(&body, 2000))), "{message}");
    assert_eq!(upstream_calls(&host), 0);
    assert!(host.limit_steps.borrow().is_empty(), "nothing is reserved for a request that can never fit");
}

#[test]
fn a_limiter_store_that_is_down_lets_requests_through_with_a_warning() {
    let host = host();
    host.limiter_down.set(true);
    for _ in 0..4 {
        host.answer(ok());
        let reply = chat(&host, ALICE, "per-key");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("x-ratelimit-limit-requests"), None);
    }
    assert_eq!(upstream_calls(&host), 4, "more than the quota of 3, since nothing could count them");
    let logs = host.logs.borrow();
    let warnings: Vec<&String> = logs.iter().filter(|l| l.contains("rate limiter unavailable")).collect();
    assert_eq!(warnings.len(), 4);
    assert!(warnings[0].contains("route `per-key` per key") && warnings[0].contains("limiter unreachable"));
}

#[test]
fn a_later_limiter_refusing_gives_back_what_the_earlier_one_took() {
    let host = host();
    let route_limiter = format!("route/metered/key/{}", key_name(DAVE));
    let key_limiter = format!("key/{}", key_name(DAVE));
    host.answer(ok());
    assert_eq!(chat(&host, DAVE, "metered").status, 200);
    run_deferred(&host);
    let before = host.limiters.borrow()[&route_limiter];

    let refused = chat(&host, DAVE, "metered");
    assert_eq!(refused.status, 429);
    assert!(refused.error_message().contains("this key"), "{}", refused.body);
    assert_ne!(host.limiters.borrow()[&route_limiter], before, "the route admitted it before the key refused");

    run_deferred(&host);
    let route_steps = steps_on(&host, &route_limiter);
    let refund = route_steps.last().unwrap();
    assert!(refund.force);
    assert_eq!(refund.requests, Some(Quota { per_minute: 3, cost: -1 }));
    // No `max_tokens`: the default output reserve was taken, and is given back whole.
    assert_eq!(refund.tokens, Some(Quota { per_minute: 10000, cost: -estimate(&body("metered"), 4096) }));
    assert_eq!(host.limiters.borrow()[&route_limiter], before, "the route's quota is whole again");
    assert!(steps_on(&host, &key_limiter).iter().all(|s| !s.force), "the refusing key is not refunded");
    assert_eq!(upstream_calls(&host), 1);
}

/// Sends a streamed request and reads only its first `chunks` chunks before going away.
fn send_and_leave(host: &Rc<FakeHost>, key: &str, body: &str, chunks: usize) -> u16 {
    let request = http::Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::Full(Bytes::from(body.to_owned())))
        .unwrap();
    block_on(async {
        let response = gateway_core::handle(Rc::clone(host), &ConfigCache::default(), request).await;
        let status = response.status().as_u16();
        if let Body::Stream(mut s) = response.into_body() {
            for _ in 0..chunks {
                s.next().await;
            }
        }
        status
    })
}

#[test]
fn a_stream_that_ends_before_its_usage_keeps_its_token_reservation() {
    let body = json!({"model": "tokens", "stream": true, "max_tokens": 800,
                      "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let reserved = estimate(&body, 800);
    let limiter = format!("route/tokens/key/{}", key_name(ALICE));

    // The upstream breaks off after two chunks of text: no usage chunk ever arrives.
    let cut = host();
    let FakeAnswer::Stream { mut chunks, .. } = streamed_completion(400, 500) else { unreachable!() };
    chunks.truncate(2);
    cut.answer(FakeAnswer::Stream { chunks, then_error: true });
    let reply = send(&cut, ALICE, &body);
    assert!(reply.body.contains("stream_interrupted"), "{}", reply.body);
    run_deferred(&cut);
    let given_back: Vec<LimitStep> = steps_on(&cut, &limiter).into_iter().filter(|s| s.force).collect();
    assert!(
        given_back.iter().all(|s| s.tokens.is_some_and(|t| t.cost >= 0)),
        "tokens were spent upstream (at least the prompt), yet {reserved} were given back: {given_back:?}"
    );
    cut.answer(ok());
    assert_eq!(send(&cut, ALICE, &body).status, 429, "the first request's reservation still stands");

    // The client reads the first chunk and leaves: the rest of the answer, usage included, is never read.
    let left = host();
    left.answer(streamed_completion(400, 500));
    assert_eq!(send_and_leave(&left, ALICE, &body, 1), 200);
    run_deferred(&left);
    left.answer(ok());
    assert_eq!(send(&left, ALICE, &body).status, 429, "leaving early must not reset the token quota");
}

#[test]
fn a_keys_own_quota_counts_its_mcp_requests_too_and_refuses_them_as_json_rpc() {
    let host = host();
    host.answer(ok());
    assert_eq!(chat(&host, CAROL, "plain-a").status, 200);
    let mcp = |host: &Rc<FakeHost>| {
        let request = http::Request::post("/mcp/tools")
            .header("authorization", format!("Bearer {CAROL}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Body::Full(Bytes::from(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)))
            .unwrap();
        block_on(async {
            let response = gateway_core::handle(Rc::clone(host), &ConfigCache::default(), request).await;
            let (parts, body) = response.into_parts();
            let Body::Full(bytes) = body else { panic!("a whole JSON-RPC answer") };
            (parts.status.as_u16(), parts.headers, serde_json::from_slice::<Value>(&bytes).unwrap())
        })
    };
    // The second request of the minute is an MCP one (to no registered server: it still counts).
    let (status, _, _) = mcp(&host);
    assert_eq!(status, 404);
    let (status, headers, refused) = mcp(&host);
    assert_eq!(status, 429);
    assert_eq!(refused["jsonrpc"], "2.0");
    assert!(refused["error"]["message"].as_str().unwrap().contains("this key"), "{refused}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(headers["x-ratelimit-limit-requests"], "2");
    assert_eq!(chat(&host, CAROL, "plain-b").status, 429, "and the LLM side shares the same quota");
}

#[test]
fn a_stream_without_max_tokens_left_early_is_still_limited() {
    // The dodge: no `max_tokens` (nothing reserved for the output), then leave before the usage.
    let body = json!({"model": "tokens", "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let host = host();
    host.answer(streamed_completion(400, 500));
    assert_eq!(send_and_leave(&host, ALICE, &body, 1), 200);
    run_deferred(&host);
    let limiter = format!("route/tokens/key/{}", key_name(ALICE));
    let reserved = steps_on(&host, &limiter)[0].tokens.unwrap().cost;
    assert_eq!(reserved, 1000, "the default output reserve, capped at the quota");
    host.answer(ok());
    assert_eq!(send(&host, ALICE, &body).status, 429, "the reservation stands: the quota is spent");
}

#[test]
fn the_reserve_is_the_routes_default_or_its_transformed_maximum() {
    let host = host();
    for (route, max_tokens, output) in [("reserved", None, 300), ("capped", Some(800), 42), ("capped", None, 42)] {
        let mut request = json!({"model": route, "messages": [{"role": "user", "content": "hi"}]});
        if let Some(max) = max_tokens {
            request["max_tokens"] = json!(max);
        }
        let request = request.to_string();
        host.answer(ok());
        assert_eq!(send(&host, BOB, &request).status, 200);
        let limiter = format!("route/{route}/key/{}", key_name(BOB));
        let first = steps_on(&host, &limiter).last().unwrap().tokens.unwrap().cost;
        assert_eq!(first, estimate(&request, output), "{route} {max_tokens:?}");
        run_deferred(&host);
    }
}

#[test]
fn a_native_responses_stream_settles_from_its_completed_event() {
    let host = host();
    let completed = json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed",
        "usage": {"input_tokens": 300, "output_tokens": 600, "total_tokens": 900}}});
    host.answer(FakeAnswer::Full {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into())],
        body: Bytes::from(format!("event: response.created\ndata: {{\"type\":\"response.created\"}}\n\nevent: response.completed\ndata: {completed}\n\n")),
    });
    let request = json!({"model": "openai/gpt-4o", "input": "hi", "stream": true, "max_output_tokens": 50}).to_string();
    let auth = format!("Bearer {ALICE}");
    let reply = support::request(
        &host,
        &ConfigCache::default(),
        "POST",
        "/tokens/v1/responses",
        &[("authorization", &auth)],
        &request,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    run_deferred(&host);
    let limiter = format!("route/tokens/key/{}", key_name(ALICE));
    let steps = steps_on(&host, &limiter);
    assert_eq!(steps.len(), 2, "admitted, then settled: {steps:?}");
    assert_eq!(steps[1].tokens.unwrap().cost, 900 - estimate(&request, 50));
}
