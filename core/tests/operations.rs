//! Endpoints other than chat: forwarded as they are to providers that offer them, refused with a
//! 400 naming the provider and the endpoint otherwise.
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

const KEY: &str = "sk-gw-ops";

fn host() -> Rc<FakeHost> {
    let config = json!({
        "version": 1,
        "providers": {
            "openai": {"type": "openai", "base_url": "http://up.test/v1", "api_key_secret": "k"},
            "anthropic": {"type": "anthropic", "base_url": "http://up.test/anthropic", "api_key_secret": "k"},
            "gemini": {"type": "gemini", "base_url": "http://gem.test", "api_key_secret": "k"},
            "ollama": {"type": "ollama", "base_url": "http://ollama.test:11434"},
            "azure": {"type": "azure", "base_url": "http://az.test", "api_key_secret": "k", "api_version": "2024-10-21",
                      "deployments": {"text-embedding-3-small": "emb"}}
        },
        "keys": [{"sha256": hash_key(KEY), "principal": {"kind": "user", "id": "u"}}],
        "retry": {"attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 10}
    });
    let mut host = FakeHost::with_config(&config.to_string());
    host.secrets.insert("k".into(), "sk-upstream".into());
    Rc::new(host)
}

fn post(host: &Rc<FakeHost>, path: &str, body: Value) -> (u16, http::HeaderMap, Vec<u8>) {
    let request = http::Request::post(path)
        .header("authorization", format!("Bearer {KEY}"))
        .body(Body::Full(Bytes::from(body.to_string())))
        .unwrap();
    block_on(async {
        let response = gateway_core::handle(Rc::clone(host), &ConfigCache::default(), request).await;
        let (parts, body) = response.into_parts();
        let bytes = match body {
            Body::Full(b) => b.to_vec(),
            Body::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(chunk) = s.next().await {
                    match chunk {
                        Ok(c) => out.extend_from_slice(&c),
                        Err(e) => out.extend_from_slice(format!("<error: {e}>").as_bytes()),
                    }
                }
                out
            }
        };
        (parts.status.as_u16(), parts.headers, bytes)
    })
}

#[test]
fn embeddings_are_forwarded_whole_with_the_provider_model_and_key() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}}"#));
    let (status, headers, body) = post(
        &host,
        "/v1/embeddings",
        json!({"model": "openai/text-embedding-3-small", "input": "hi", "dimensions": 2}),
    );
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["data"][0]["embedding"], json!([0.1, 0.2]));
    let sent = &host.requests.borrow()[0];
    assert_eq!(sent.uri(), "http://up.test/v1/embeddings");
    assert_eq!(sent.headers()["authorization"], "Bearer sk-upstream");
    assert_eq!(
        serde_json::from_slice::<Value>(sent.body()).unwrap(),
        json!({"model": "text-embedding-3-small", "input": "hi", "dimensions": 2})
    );
}

#[test]
fn a_provider_without_the_endpoint_is_a_400_naming_both_and_nothing_is_sent() {
    let host = host();
    let (status, _, body) =
        post(&host, "/v1/embeddings", json!({"model": "anthropic/claude-sonnet-4-6", "input": "hi"}));
    assert_eq!(status, 400);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "unsupported_endpoint");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("`anthropic`") && message.contains("/v1/embeddings"), "{message}");
    assert!(host.requests.borrow().is_empty());
    let (status, _, _) = post(&host, "/v1/moderations", json!({"model": "azure/x", "input": "hi"}));
    assert_eq!(status, 400, "Azure has no moderations endpoint");
}

#[test]
fn azure_endpoints_use_the_deployment_path() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"object":"list","data":[]}"#));
    post(&host, "/v1/embeddings", json!({"model": "azure/text-embedding-3-small", "input": "hi"}));
    let sent = &host.requests.borrow()[0];
    assert_eq!(sent.uri(), "http://az.test/openai/deployments/emb/embeddings?api-version=2024-10-21");
    assert_eq!(sent.headers()["api-key"], "sk-upstream");
}

#[test]
fn speech_audio_streams_through_as_it_arrives() {
    let host = host();
    host.answer(FakeAnswer::Stream {
        chunks: vec![Bytes::from_static(b"ID3"), Bytes::from_static(b"\x00\x01")],
        then_error: false,
    });
    let (status, _, body) =
        post(&host, "/v1/audio/speech", json!({"model": "openai/tts-1", "input": "hi", "voice": "alloy"}));
    assert_eq!(status, 200);
    assert_eq!(body, b"ID3\x00\x01");
}

#[test]
fn a_responses_event_stream_that_breaks_ends_with_an_error_event() {
    let host = host();
    host.answer(FakeAnswer::Full {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into())],
        body: Bytes::from_static(b"event: response.created\ndata: {\"type\":\"response.created\"}\n\n"),
    });
    let (status, headers, body) =
        post(&host, "/v1/responses", json!({"model": "openai/gpt-4o", "input": "hi", "stream": true}));
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(String::from_utf8_lossy(&body).starts_with("event: response.created"));
    let host = self::host();
    host.answer(FakeAnswer::EventStream {
        chunks: vec![Bytes::from_static(b"event: response.created\ndata: {}\n\n")],
        then_error: true,
    });
    let (_, _, body) = post(&host, "/v1/responses", json!({"model": "openai/gpt-4o", "input": "hi", "stream": true}));
    let text = String::from_utf8_lossy(&body);
    // An event stream ends with an error event the client can read, not with a cut connection.
    assert!(text.contains("event: error\ndata: ") && text.contains("stream_interrupted"), "{text}");
    assert!(!text.contains("<error:"), "the stream itself did not fail: {text}");
}

#[test]
fn operations_are_retried_like_chat() {
    let host = host();
    host.answer(FakeAnswer::json(429, r#"{"error":{"message":"slow"}}"#));
    host.answer(FakeAnswer::json(200, r#"{"data":[{"url":"https://img"}]}"#));
    let (status, headers, _) =
        post(&host, "/v1/images/generations", json!({"model": "openai/dall-e-3", "prompt": "a cat"}));
    assert_eq!(status, 200);
    assert_eq!(headers["x-gateway-attempts"], "2");
}

#[test]
fn a_body_that_is_not_a_json_object_or_lacks_a_model_is_a_400() {
    let host = host();
    assert_eq!(post(&host, "/v1/embeddings", json!(["x"])).0, 400);
    let (status, _, body) = post(&host, "/v1/embeddings", json!({"input": "x"}));
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["param"], "model");
}

#[test]
fn gemini_embeddings_are_translated_through_batch_embed_contents() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"embeddings":[{"values":[0.1,0.2]},{"values":[0.3,0.4]}]}"#));
    let (status, _, body) = post(
        &host,
        "/v1/embeddings",
        json!({"model": "gemini/gemini-embedding-001", "input": ["a", "b"], "dimensions": 2}),
    );
    assert_eq!(status, 200);
    let out: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(out["object"], "list");
    assert_eq!(out["model"], "gemini-embedding-001");
    assert_eq!(out["data"][1], json!({"object": "embedding", "index": 1, "embedding": [0.3, 0.4]}));
    let sent = &host.requests.borrow()[0];
    assert_eq!(sent.uri(), "http://gem.test/v1beta/models/gemini-embedding-001:batchEmbedContents");
    assert_eq!(sent.headers()["x-goog-api-key"], "sk-upstream");
    let body: Value = serde_json::from_slice(sent.body()).unwrap();
    assert_eq!(
        body["requests"][0],
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 2})
    );
}

#[test]
fn ollama_embeddings_are_translated_through_api_embed() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"model":"all-minilm","embeddings":[[0.5,0.6]],"prompt_eval_count":3}"#));
    let (status, _, body) = post(&host, "/v1/embeddings", json!({"model": "ollama/all-minilm", "input": "hello"}));
    assert_eq!(status, 200);
    let out: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(out["data"][0]["embedding"], json!([0.5, 0.6]));
    assert_eq!(out["usage"]["prompt_tokens"], 3);
    let sent = &host.requests.borrow()[0];
    assert_eq!(sent.uri(), "http://ollama.test:11434/api/embed");
    assert_eq!(
        serde_json::from_slice::<Value>(sent.body()).unwrap(),
        json!({"model": "all-minilm", "input": ["hello"]})
    );
}

#[test]
fn embedding_options_a_translating_provider_cannot_honour_are_refused() {
    let host = host();
    let (status, _, body) = post(&host, "/v1/embeddings", json!({"model": "gemini/e", "input": "a", "user": "u"}));
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["param"], "user");
    let (status, _, _) = post(&host, "/v1/embeddings", json!({"model": "ollama/e", "input": [[1, 2, 3]]}));
    assert_eq!(status, 400);
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn translated_embeddings_come_back_base64_when_asked_as_the_openai_sdks_do() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"model":"m","embeddings":[[1.0]],"prompt_eval_count":1}"#));
    let (_, _, body) =
        post(&host, "/v1/embeddings", json!({"model": "ollama/m", "input": "a", "encoding_format": "base64"}));
    let out: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(out["data"][0]["embedding"], "AACAPw==", "1.0 as a little-endian f32");
}

#[test]
fn responses_for_anthropic_are_translated_through_chat_both_ways() {
    let host = host();
    host.answer(FakeAnswer::json(
        200,
        r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Hi there"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":2}}"#,
    ));
    let (status, headers, body) = post(
        &host,
        "/v1/responses",
        json!({"model": "anthropic/claude-sonnet-4-6", "instructions": "Be kind.", "input": "hello", "max_output_tokens": 50}),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    let out: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(out["object"], "response");
    assert_eq!(out["status"], "completed");
    assert_eq!(out["output"][0]["content"][0]["text"], "Hi there");
    assert_eq!(out["usage"]["input_tokens"], 5);
    assert_eq!(out["instructions"], "Be kind.");
    let sent: Value = serde_json::from_slice(host.requests.borrow()[0].body()).unwrap();
    assert_eq!(host.requests.borrow()[0].uri(), "http://up.test/anthropic/v1/messages");
    assert_eq!(sent["system"][0]["text"], "Be kind.");
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(sent["messages"][0]["content"][0]["text"], "hello");
}

#[test]
fn streamed_responses_for_anthropic_arrive_as_responses_events() {
    let host = host();
    let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\n\n\
               event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
               event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n\
               event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n\
               event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n\
               event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    host.answer(FakeAnswer::Stream { chunks: vec![Bytes::from(sse)], then_error: false });
    let (status, headers, body) =
        post(&host, "/v1/responses", json!({"model": "anthropic/claude-sonnet-4-6", "input": "hi", "stream": true}));
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let text = String::from_utf8_lossy(&body);
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(kinds.first(), Some(&"response.created"));
    assert_eq!(kinds.last(), Some(&"response.completed"));
    assert_eq!(kinds.iter().filter(|k| **k == "response.output_text.delta").count(), 2);
    assert!(text.contains("\"text\":\"Hello\""), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
}

#[test]
fn responses_that_chat_cannot_express_are_a_400_naming_the_provider_and_field() {
    let host = host();
    let (status, _, body) = post(
        &host,
        "/v1/responses",
        json!({"model": "anthropic/claude-sonnet-4-6", "input": "hi", "previous_response_id": "resp_1"}),
    );
    assert_eq!(status, 400);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["param"], "previous_response_id");
    assert!(error["error"]["message"].as_str().unwrap().contains("`anthropic`"));
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn responses_for_openai_stay_native() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"id":"resp_x","object":"response","output":[]}"#));
    let (status, _, _) = post(
        &host,
        "/v1/responses",
        json!({"model": "openai/gpt-4o", "input": "hi", "previous_response_id": "resp_1"}),
    );
    assert_eq!(status, 200);
    assert_eq!(host.requests.borrow()[0].uri(), "http://up.test/v1/responses");
}
