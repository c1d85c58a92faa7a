//! The whole pipeline in-process, against the fake host: what the client gets and what the
//! upstream would have received.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use bytes::Bytes;
use futures::executor::block_on;
use futures::StreamExt;
use gateway_core::auth::hash_key;
use gateway_core::host::Body;
use gateway_core::testing::{FakeAnswer, FakeHost};
use gateway_core::ConfigCache;
use serde_json::{json, Value};

const KEY: &str = "sk-gw-test";

fn config() -> String {
    json!({
        "version": 1,
        "providers": {
            "openai": {"type": "openai", "base_url": "http://up.test/v1", "api_key_secret": "openai_api_key"},
            "anthropic": {"type": "anthropic", "base_url": "http://up.test/anthropic", "api_key_secret": "anthropic_api_key"},
            "deepseek": {"type": "deepseek", "base_url": "http://up.test/deepseek", "api_key_secret": "deepseek_api_key"},
            "demo": {"type": "echo", "models": ["echo-1"]},
            "nokey": {"type": "openai", "base_url": "http://up.test/v1", "api_key_secret": "missing_secret", "models": ["m"]}
        },
        "routes": {
            "smart": {"models": ["anthropic/claude-sonnet-4-6", "openai/gpt-4o"]},
            "keyless-first": {"models": ["nokey/m", "openai/gpt-4o"]},
            "weighted": {"models": [{"model": "anthropic/claude-sonnet-4-6", "weight": 1}, {"model": "openai/gpt-4o", "weight": 1000000}]},
            "long-context": {"models": ["openai/gpt-4o-mini", "openai/gpt-4.1"], "fallback_on": [400]},
            "tuned": {"models": ["openai/gpt-4o"], "transform": {
                "request_headers": {"set": {"x-team": "search"}, "remove": ["accept"]},
                "response_headers": {"set": {"x-route": "tuned"}},
                "body_defaults": {"temperature": 0.1, "max_tokens": 64},
                "body_overrides": {"user": "route-tuned"}}}
        },
        "keys": [{"sha256": hash_key(KEY), "principal": {"kind": "user", "id": "alice"}}],
        "limits": {"max_request_bytes": 4096},
        "retry": {"attempts": 3, "initial_backoff_ms": 100, "max_backoff_ms": 1000, "max_retry_after_ms": 2000}
    })
    .to_string()
}

fn host() -> Rc<FakeHost> {
    host_with(&config())
}

fn host_with(config: &str) -> Rc<FakeHost> {
    let mut host = FakeHost::with_config(config);
    host.secrets.insert("openai_api_key".into(), "sk-openai-secret".into());
    host.secrets.insert("anthropic_api_key".into(), "sk-ant-secret".into());
    host.secrets.insert("deepseek_api_key".into(), "sk-deepseek-secret".into());
    Rc::new(host)
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    /// The `data:` payloads of an SSE body.
    fn sse(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.body)
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: ").map(str::to_owned))
            .collect()
    }
}

fn call(host: &Rc<FakeHost>, method: &str, path: &str, key: Option<&str>, body: &str) -> Reply {
    let mut builder = http::Request::builder().method(method).uri(path);
    if let Some(k) = key {
        builder = builder.header("authorization", format!("Bearer {k}"));
    }
    let request = builder.body(Body::Full(Bytes::from(body.to_owned()))).unwrap();
    block_on(async {
        let response = gateway_core::handle(Rc::clone(host), &ConfigCache::default(), request).await;
        let (parts, body) = response.into_parts();
        let body = match body {
            Body::Full(b) => b.to_vec(),
            Body::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(chunk) = s.next().await {
                    out.extend_from_slice(&chunk.unwrap());
                }
                out
            }
        };
        Reply { status: parts.status.as_u16(), headers: parts.headers, body }
    })
}

fn chat(host: &Rc<FakeHost>, body: Value) -> Reply {
    call(host, "POST", "/v1/chat/completions", Some(KEY), &body.to_string())
}

fn openai_completion() -> &'static str {
    r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#
}

fn upstream_json(host: &FakeHost, i: usize) -> Value {
    serde_json::from_slice(host.requests.borrow()[i].body()).unwrap()
}

#[test]
fn missing_and_wrong_keys_are_401_in_the_openai_shape() {
    let host = host();
    let r = call(&host, "POST", "/v1/chat/completions", None, "{}");
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = call(&host, "POST", "/v1/chat/completions", Some("sk-wrong"), "{}");
    assert_eq!(r.status, 401);
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn malformed_json_is_a_400_naming_the_problem() {
    let r = call(&host(), "POST", "/v1/chat/completions", Some(KEY), "{\"model\": ");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("not a valid chat completion request"));
}

#[test]
fn wrong_field_types_name_the_field() {
    let r = chat(&host(), json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": 5}]}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "messages[0].content");
    let r = chat(
        &host(),
        json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}),
    );
    assert_eq!(r.json()["error"]["param"], "max_tokens");
    let r = chat(&host(), json!({"model": "openai/gpt-4o", "messages": []}));
    assert_eq!(r.json()["error"]["param"], "messages");
}

#[test]
fn unknown_model_or_provider_is_a_404_model_not_found() {
    for model in ["nope/gpt-4o", "gpt-4o", "demo/not-enabled"] {
        let r = chat(&host(), json!({"model": model, "messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(r.status, 404, "{model}");
        assert_eq!(r.json()["error"]["code"], "model_not_found");
    }
}

#[test]
fn body_too_large_is_a_413() {
    let big = "x".repeat(5000);
    let r = chat(&host(), json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": big}]}));
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");
}

#[test]
fn openai_request_is_forwarded_whole_with_the_provider_model_and_key() {
    let host = host();
    host.answer(FakeAnswer::json(200, openai_completion()));
    let r = chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "seed": 7}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "hi");
    let requests = host.requests.borrow();
    assert_eq!(requests[0].uri(), "http://up.test/v1/chat/completions");
    assert_eq!(requests[0].headers()["authorization"], "Bearer sk-openai-secret");
    drop(requests);
    let sent = upstream_json(&host, 0);
    assert_eq!(sent["model"], "gpt-4o");
    assert_eq!(sent["seed"], 7);
}

#[test]
fn anthropic_non_streamed_chat_is_translated_both_ways() {
    let host = host();
    host.answer(FakeAnswer::json(
        200,
        r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Bonjour"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#,
    ));
    let r = chat(
        &host,
        json!({"model": "anthropic/claude-sonnet-4-6", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], "max_tokens": 50}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let out = r.json();
    assert_eq!(out["choices"][0]["message"]["content"], "Bonjour");
    assert_eq!(out["usage"]["total_tokens"], 4);
    let req = &host.requests.borrow()[0];
    assert_eq!(req.uri(), "http://up.test/anthropic/v1/messages");
    assert_eq!(req.headers()["x-api-key"], "sk-ant-secret");
    assert_eq!(req.headers()["anthropic-version"], "2023-06-01");
    let sent: Value = serde_json::from_slice(req.body()).unwrap();
    assert_eq!(sent["system"][0]["text"], "be brief");
    assert_eq!(sent["max_tokens"], 50);
}

#[test]
fn anthropic_stream_is_translated_chunk_by_chunk() {
    let host = host();
    let sse = include_str!("../fixtures/anthropic/text_stream.sse");
    let chunks = sse.split_inclusive("\n\n").map(|s| Bytes::from(s.to_owned())).collect();
    host.answer(FakeAnswer::Stream { chunks, then_error: false });
    let r = chat(
        &host,
        json!({"model": "anthropic/claude-sonnet-4-6", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/event-stream; charset=utf-8");
    let events = r.sse();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 15);
}

#[test]
fn stream_cut_mid_way_ends_with_an_error_event_not_done() {
    let host = host();
    let sse = include_str!("../fixtures/anthropic/text_stream.sse");
    let chunks: Vec<Bytes> = sse.split_inclusive("\n\n").take(4).map(|s| Bytes::from(s.to_owned())).collect();
    host.answer(FakeAnswer::Stream { chunks, then_error: true });
    let r = chat(
        &host,
        json!({"model": "anthropic/claude-sonnet-4-6", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let events = r.sse();
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(!events.iter().any(|e| e == "[DONE]"));
    assert_eq!(host.requests.borrow().len(), 1, "no retry once bytes reached the client");
}

#[test]
fn rate_limit_then_success_is_retried_after_the_upstreams_retry_after() {
    let host = host();
    host.answer(FakeAnswer::Full {
        status: 429,
        headers: vec![("retry-after", "1".into())],
        body: Bytes::from_static(
            br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        ),
    });
    host.answer(FakeAnswer::json(200, openai_completion()));
    let r = chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-gateway-attempts"], "2");
    assert_eq!(*host.slept.borrow(), vec![1000]);
}

#[test]
fn a_retry_after_past_the_cap_reaches_the_client_with_the_429() {
    let host = host();
    host.answer(FakeAnswer::Full {
        status: 429,
        headers: vec![("retry-after", "30".into())],
        body: Bytes::from_static(
            br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        ),
    });
    let r = chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "30", "the client learns when to come back");
    assert_eq!(host.requests.borrow().len(), 1, "not retried past the cap");
    assert!(host.slept.borrow().is_empty());
}

#[test]
fn an_error_says_which_provider_was_tried_and_how_many_attempts_it_took() {
    let host = host();
    for _ in 0..3 {
        host.answer(FakeAnswer::json(500, r#"{"error":{"message":"boom","type":"server_error"}}"#));
    }
    let r = chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 502);
    assert_eq!(
        (r.headers["x-gateway-provider"].to_str().unwrap(), r.headers["x-gateway-attempts"].to_str().unwrap()),
        ("openai", "3")
    );
}

#[test]
fn three_server_errors_surface_as_a_502_after_backoff() {
    let host = host();
    for _ in 0..3 {
        host.answer(FakeAnswer::json(500, r#"{"error":{"message":"boom","type":"server_error"}}"#));
    }
    let r = chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["message"], "boom");
    assert_eq!(host.requests.borrow().len(), 3);
    let slept = host.slept.borrow();
    assert_eq!(slept.len(), 2);
    assert!((50..=100).contains(&slept[0]) && (100..=200).contains(&slept[1]), "{slept:?}");
}

#[test]
fn client_errors_from_the_upstream_are_not_retried() {
    let host = host();
    host.answer(FakeAnswer::json(
        400,
        r#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature"}}"#,
    ));
    let r = chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "temperature");
    assert_eq!(host.requests.borrow().len(), 1);
}

#[test]
fn connection_failures_are_retried_and_then_a_502() {
    let host = host();
    let r = chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 502);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("cannot reach provider `openai`"));
    assert_eq!(host.requests.borrow().len(), 3);
}

#[test]
fn a_hung_upstream_times_out_with_a_504() {
    let host = host();
    for _ in 0..3 {
        host.answer(FakeAnswer::Hang);
    }
    let r = chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 504);
}

#[test]
fn route_falls_back_to_its_next_model_once_retries_are_spent() {
    let host = host();
    for _ in 0..3 {
        host.answer(FakeAnswer::json(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ));
    }
    host.answer(FakeAnswer::json(200, openai_completion()));
    let r = chat(&host, json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-gateway-provider"], "openai");
    assert_eq!(r.headers["x-gateway-attempts"], "4");
    assert_eq!(upstream_json(&host, 3)["model"], "gpt-4o");
}

#[test]
fn route_path_prefix_selects_the_route() {
    let host = host();
    host.answer(FakeAnswer::json(
        200,
        r#"{"id":"m","model":"claude-sonnet-4-6","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{}}"#,
    ));
    let body = json!({"model": "anything", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let r = call(&host, "POST", "/smart/v1/chat/completions", Some(KEY), &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-gateway-provider"], "anthropic");
    let r = call(&host, "POST", "/nope/v1/chat/completions", Some(KEY), &body);
    assert_eq!(r.status, 404);
}

#[test]
fn a_provider_whose_secret_is_unset_is_a_503_that_names_the_secret_not_its_value() {
    let r = chat(&host(), json!({"model": "nokey/m", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 503);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("missing_secret"));
}

#[test]
fn echo_provider_answers_without_any_upstream() {
    let host = host();
    let r = chat(&host, json!({"model": "demo/echo-1", "messages": [{"role": "user", "content": "hello gateway"}]}));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "hello gateway");
    let r = chat(
        &host,
        json!({"model": "demo/echo-1", "stream": true, "messages": [{"role": "user", "content": "hello gateway"}]}),
    );
    assert_eq!(r.sse().last().unwrap(), "[DONE]");
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn models_lists_usable_models_and_routes() {
    let r = call(&host(), "GET", "/v1/models", Some(KEY), "");
    let ids: Vec<String> =
        r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, vec!["demo/echo-1", "keyless-first", "long-context", "smart", "tuned", "weighted"]);
}

#[test]
fn missing_configuration_is_a_503() {
    let host = Rc::new(FakeHost::default());
    let r = call(&host, "GET", "/v1/models", Some(KEY), "");
    assert_eq!(r.status, 503);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("no configuration"));
}

#[test]
fn a_warm_instance_reuses_the_parsed_configuration_until_its_ttl_passes() {
    let host = host();
    let cache = ConfigCache::default();
    let models = |host: &Rc<FakeHost>| {
        let request = http::Request::get("/v1/models")
            .header("authorization", format!("Bearer {KEY}"))
            .body(Body::empty())
            .unwrap();
        block_on(gateway_core::handle(Rc::clone(host), &cache, request)).status().as_u16()
    };
    assert_eq!(models(&host), 200);
    host.kv.borrow_mut().insert("config".into(), Bytes::from_static(br#"{"version": 1}"#)); // no keys: 401
    assert_eq!(models(&host), 200, "served from the cache");
    host.now.set(host.now.get() + gateway_core::CONFIG_CACHE_TTL_MS);
    assert_eq!(models(&host), 401, "re-read once the entry expired");
}

#[test]
fn a_weighted_route_draws_its_primary_by_weight_and_keeps_the_rest_as_fallbacks() {
    let host = host();
    host.answer(FakeAnswer::json(200, openai_completion()));
    let r = chat(&host, json!({"model": "weighted", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.headers["x-gateway-provider"], "openai", "the heavy model is drawn first");
    // The drawn model failing (each of its attempts), the other one answers.
    let host = self::host();
    for _ in 0..3 {
        host.answer(FakeAnswer::json(500, r#"{"error":{"message":"down"}}"#));
    }
    host.answer(FakeAnswer::json(
        200,
        r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"from the fallback"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":3}}"#,
    ));
    let r = chat(&host, json!({"model": "weighted", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-gateway-provider"], "anthropic");
    assert_eq!(r.headers["x-gateway-attempts"], "4");
    assert_eq!(r.json()["choices"][0]["message"]["content"], "from the fallback");
    let uris: Vec<String> = host.requests.borrow().iter().map(|r| r.uri().to_string()).collect();
    assert_eq!(uris[..3], ["http://up.test/v1/chat/completions"; 3]);
    assert_eq!(uris[3], "http://up.test/anthropic/v1/messages");
}

#[test]
fn a_configured_status_moves_on_to_the_next_model_without_retrying() {
    let host = host();
    host.answer(FakeAnswer::json(
        400,
        r#"{"error":{"message":"context length exceeded","code":"context_length_exceeded"}}"#,
    ));
    host.answer(FakeAnswer::json(200, openai_completion()));
    let r = chat(&host, json!({"model": "long-context", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-gateway-attempts"], "2");
    assert_eq!(upstream_json(&host, 1)["model"], "gpt-4.1");
    assert!(host.slept.borrow().is_empty(), "no backoff before a fallback on status");
}

#[test]
fn route_transforms_edit_headers_and_body() {
    let host = host();
    host.answer(FakeAnswer::json(200, openai_completion()));
    let r = chat(
        &host,
        json!({"model": "tuned", "max_tokens": 5, "user": "client", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.headers["x-route"], "tuned");
    let sent = &host.requests.borrow()[0];
    assert_eq!(sent.headers()["x-team"], "search");
    assert!(sent.headers().get("accept").is_none());
    let body: Value = serde_json::from_slice(sent.body()).unwrap();
    assert_eq!(body["temperature"], 0.1, "a default fills what the client left out");
    assert_eq!(body["max_tokens"], 5, "a default never replaces what the client sent");
    assert_eq!(body["user"], "route-tuned", "an override always wins");
}

#[test]
fn a_target_that_cannot_be_used_hands_over_to_the_next() {
    let host = host();
    host.answer(FakeAnswer::json(200, openai_completion()));
    let r = chat(&host, json!({"model": "keyless-first", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-gateway-provider"], "openai");
}

#[test]
fn a_success_body_that_cannot_be_translated_is_not_retried() {
    let host = host();
    host.answer(FakeAnswer::json(200, "{\"not\": \"a completion\"}"));
    let r = chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 502);
    assert_eq!(host.requests.borrow().len(), 1, "the same generation is not paid for again");
}

#[test]
fn a_success_body_that_breaks_off_is_retried() {
    let host = host();
    host.answer(FakeAnswer::Stream { chunks: vec![Bytes::from_static(b"{\"id\":")], then_error: true });
    host.answer(FakeAnswer::json(200, openai_completion()));
    let r = chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-gateway-attempts"], "2");
}

#[test]
fn deepseek_refuses_fields_it_cannot_take_with_a_400_naming_them_and_sends_nothing() {
    let host = host();
    for (field, value) in [
        ("n", json!(2)),
        ("seed", json!(7)),
        ("parallel_tool_calls", json!(false)),
        ("service_tier", json!("flex")),
        ("store", json!(true)),
        ("metadata", json!({"team": "search"})),
    ] {
        let mut body = json!({"model": "deepseek/deepseek-chat", "messages": [{"role": "user", "content": "hi"}]});
        body[field] = value;
        let r = chat(&host, body);
        assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some(field)), "{field}");
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("deepseek"), "{field}");
    }
    assert!(host.requests.borrow().is_empty(), "none of them reached DeepSeek");
    // Values that ask for nothing beyond the default are dropped, not refused.
    host.answer(FakeAnswer::json(200, openai_completion()));
    let r = chat(
        &host,
        json!({"model": "deepseek/deepseek-chat", "messages": [{"role": "user", "content": "hi"}],
               "parallel_tool_calls": true, "n": 1, "store": false}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(host.requests.borrow()[0].uri(), "http://up.test/deepseek/chat/completions");
    let sent = upstream_json(&host, 0);
    assert!(sent.get("parallel_tool_calls").is_none() && sent.get("n").is_none() && sent.get("store").is_none());
}

#[test]
fn an_upstream_answer_over_max_response_bytes_is_a_502_and_one_within_it_is_delivered() {
    let within = openai_completion();
    let over = within.replace(r#""content":"hi""#, r#""content":"hi!""#);
    let mut config: Value = serde_json::from_str(&config()).unwrap();
    config["limits"]["max_response_bytes"] = json!(within.len());
    let host = host_with(&config.to_string());
    let in_pieces = |body: &str| FakeAnswer::Stream {
        chunks: body.as_bytes().chunks(64).map(Bytes::copy_from_slice).collect(),
        then_error: false,
    };
    let ask = || chat(&host, json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hello"}]}));

    host.answer(in_pieces(within));
    let r = ask();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["choices"][0]["message"]["content"], "hi", "an answer of exactly the limit is delivered");

    host.answer(in_pieces(&over));
    let r = ask();
    assert_eq!(r.status, 502);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(&format!("exceeds {} bytes", within.len())), "{message}");
    assert!(!String::from_utf8_lossy(&r.body).contains("hi!"), "nothing of the answer is delivered");
    assert_eq!(host.requests.borrow().len(), 2, "not asked again");
}

#[test]
fn every_response_success_or_error_carries_its_own_request_id() {
    let host = host();
    host.answer(FakeAnswer::json(200, openai_completion()));
    let hi = json!([{"role": "user", "content": "hi"}]);
    let replies = [
        chat(&host, json!({"model": "openai/gpt-4o", "messages": hi})),
        chat(&host, json!({"model": "demo/echo-1", "stream": true, "messages": hi})),
        call(&host, "GET", "/v1/models", Some(KEY), ""),
        call(&host, "POST", "/v1/chat/completions", None, "{}"),
        chat(&host, json!({"model": "nope/x", "messages": hi})),
        chat(&host, json!({"model": "openai/gpt-4o", "messages": hi})),
    ];
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 401, 404, 502]);
    let ids: Vec<&str> = replies.iter().map(|r| r.headers["x-request-id"].to_str().unwrap()).collect();
    assert!(ids.iter().all(|id| id.starts_with("gw-")), "{ids:?}");
    let distinct: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "one id per request: {ids:?}");
}
