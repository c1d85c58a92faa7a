//! Audio uploads (`multipart/form-data`): routed by their `model` field, rewritten to the
//! provider's model id, and passed through — whole when small, streamed when large.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use bytes::Bytes;
use futures::executor::block_on;
use gateway_core::auth::hash_key;
use gateway_core::host::{Body, BodyError};
use gateway_core::testing::{FakeAnswer, FakeHost};
use gateway_core::ConfigCache;
use serde_json::{json, Value};

const KEY: &str = "sk-gw-up";
const BOUNDARY: &str = "gw-test-boundary";

fn host() -> Rc<FakeHost> {
    let config = json!({
        "version": 1,
        "providers": {
            "openai": {"type": "openai", "base_url": "http://up.test/v1", "api_key_secret": "k"},
            "groq": {"type": "groq", "base_url": "http://groq.test/openai/v1", "api_key_secret": "k"},
            "anthropic": {"type": "anthropic", "api_key_secret": "k"}
        },
        "routes": {
            "stt": {"models": ["openai/whisper-1", "groq/whisper-large-v3"]},
            "stt-alerted": {"models": ["openai/whisper-1"], "policies": [{"id": "note-audio",
                "cedar": "@outcome(\"alert\")\nforbid(principal, action == Gateway::Action::\"process_prompt\", resource);"}]},
            "stt-monitored": {"models": ["openai/whisper-1"], "guard_mode": "monitor", "policies": [{"id": "no-audio",
                "cedar": "forbid(principal, action == Gateway::Action::\"process_prompt\", resource);"}]}
        },
        "keys": [{"sha256": hash_key(KEY), "principal": {"kind": "user", "id": "u"}}],
        "limits": {"max_upload_bytes": 3000000},
        "retry": {"attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 10}
    });
    let mut host = FakeHost::with_config(&config.to_string());
    host.secrets.insert("k".into(), "sk-upstream".into());
    Rc::new(host)
}

fn field(name: &str, value: &str) -> Vec<u8> {
    format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").into_bytes()
}

fn file(audio: &[u8]) -> Vec<u8> {
    let mut part = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\n"
    )
    .into_bytes();
    part.extend_from_slice(audio);
    part.extend_from_slice(b"\r\n");
    part
}

fn form(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut body = parts.concat();
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn send(host: &Rc<FakeHost>, path: &str, body: Body, length: Option<usize>) -> (u16, http::HeaderMap, Value) {
    let mut request = http::Request::post(path)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"));
    if let Some(length) = length {
        request = request.header("content-length", length);
    }
    block_on(async {
        let response =
            gateway_core::handle(Rc::clone(host), &ConfigCache::default(), request.body(body).unwrap()).await;
        let (parts, body) = response.into_parts();
        let Body::Full(bytes) = body else { panic!("a JSON answer is whole") };
        (parts.status.as_u16(), parts.headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    })
}

fn chunked(body: &[u8], size: usize) -> Body {
    let chunks: Vec<Result<Bytes, BodyError>> = body.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Body::Stream(Box::pin(futures::stream::iter(chunks)))
}

#[test]
fn a_small_upload_is_routed_by_its_model_rewritten_and_retried() {
    let host = host();
    host.answer(FakeAnswer::json(429, r#"{"error":{"message":"slow down"}}"#));
    host.answer(FakeAnswer::json(200, r#"{"text":"hello world"}"#));
    let body = form(&[file(b"ID3\x00audio"), field("model", "openai/whisper-1"), field("language", "en")]);
    let (status, headers, out) = send(&host, "/v1/audio/transcriptions", chunked(&body, 7), Some(body.len()));
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["text"], "hello world");
    assert_eq!(headers["x-gateway-attempts"], "2");
    let requests = host.requests.borrow();
    let sent = &requests[1];
    assert_eq!(sent.uri(), "http://up.test/v1/audio/transcriptions");
    assert_eq!(sent.headers()["authorization"], "Bearer sk-upstream");
    assert_eq!(sent.headers()["content-type"], format!("multipart/form-data; boundary={BOUNDARY}").as_str());
    let expected = form(&[file(b"ID3\x00audio"), field("model", "whisper-1"), field("language", "en")]);
    assert_eq!(sent.body().as_ref(), expected.as_slice());
    assert_eq!(host.streamed_uploads.get(), 0, "a small upload is held whole");
}

#[test]
fn a_large_upload_streams_through_once_with_its_length_adjusted() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"text":"long"}"#));
    let audio = vec![7u8; 2_000_000];
    let body = form(&[field("model", "openai/whisper-1"), file(&audio)]);
    let (status, _, out) = send(&host, "/v1/audio/translations", chunked(&body, 64 * 1024), Some(body.len()));
    assert_eq!(status, 200, "{out}");
    assert_eq!(host.streamed_uploads.get(), 1);
    let requests = host.requests.borrow();
    let expected = form(&[field("model", "whisper-1"), file(&audio)]);
    assert_eq!(requests[0].uri(), "http://up.test/v1/audio/translations");
    assert_eq!(requests[0].headers()["content-length"], expected.len().to_string().as_str());
    assert!(requests[0].body().as_ref() == expected.as_slice());
}

#[test]
fn a_streamed_upload_that_fails_upstream_is_not_retried_nor_sent_to_a_fallback() {
    let host = host();
    host.answer(FakeAnswer::json(500, r#"{"error":{"message":"boom"}}"#));
    let body = form(&[field("model", "stt"), file(&vec![1u8; 1_500_000])]);
    let (status, headers, _) = send(&host, "/v1/audio/transcriptions", chunked(&body, 50_000), None);
    assert_eq!(status, 502);
    assert_eq!(headers["x-gateway-attempts"], "1", "one attempt, and the error says so");
    assert_eq!(host.requests.borrow().len(), 1);
}

#[test]
fn a_small_upload_falls_back_through_a_route() {
    let host = host();
    host.answer(FakeAnswer::json(500, "{}"));
    host.answer(FakeAnswer::json(500, "{}"));
    host.answer(FakeAnswer::json(200, r#"{"text":"from groq"}"#));
    let body = form(&[field("model", "stt"), file(b"abc")]);
    let (status, headers, out) = send(&host, "/v1/audio/transcriptions", Body::Full(Bytes::from(body)), None);
    assert_eq!((status, out["text"].as_str()), (200, Some("from groq")));
    assert_eq!(headers["x-gateway-provider"], "groq");
    let requests = host.requests.borrow();
    assert_eq!(requests[2].uri(), "http://groq.test/openai/v1/audio/transcriptions");
    assert!(String::from_utf8_lossy(requests[2].body()).contains("\r\n\r\nwhisper-large-v3\r\n"));
}

#[test]
fn a_route_in_the_path_adds_the_model_field_when_the_form_has_none() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"text":"ok"}"#));
    let body = form(&[file(b"abc")]);
    let (status, _, _) = send(&host, "/stt/v1/audio/transcriptions", Body::Full(Bytes::from(body)), None);
    assert_eq!(status, 200);
    let sent = String::from_utf8_lossy(host.requests.borrow()[0].body()).into_owned();
    assert!(sent
        .starts_with(&format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n")));
}

#[test]
fn bad_uploads_are_clear_4xx_and_nothing_is_sent() {
    let host = host();
    let too_big = form(&[field("model", "openai/whisper-1"), file(&vec![0u8; 3_100_000])]);
    assert_eq!(send(&host, "/v1/audio/transcriptions", chunked(&too_big, 100_000), None).0, 413);
    assert_eq!(send(&host, "/v1/audio/transcriptions", Body::empty(), Some(4_000_000)).0, 413);
    let no_model = form(&[file(b"abc")]);
    let (status, _, out) = send(&host, "/v1/audio/transcriptions", Body::Full(Bytes::from(no_model)), None);
    assert_eq!((status, out["error"]["param"].as_str()), (400, Some("model")));
    let anthropic = form(&[field("model", "anthropic/claude-sonnet-4-6"), file(b"abc")]);
    let (status, _, out) = send(&host, "/v1/audio/transcriptions", Body::Full(Bytes::from(anthropic)), None);
    assert_eq!((status, out["error"]["code"].as_str()), (400, Some("unsupported_endpoint")));
    let truncated = form(&[field("model", "openai/whisper-1")]);
    let cut = &truncated[..truncated.len() - 10];
    assert_eq!(send(&host, "/v1/audio/transcriptions", Body::Full(Bytes::copy_from_slice(cut)), None).0, 400);
    let request = http::Request::post("/v1/audio/transcriptions")
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Body::Full(Bytes::from_static(b"{}")))
        .unwrap();
    let response = block_on(gateway_core::handle(Rc::clone(&host), &ConfigCache::default(), request));
    assert_eq!(response.status(), 400);
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn a_form_with_two_model_fields_is_refused_held_or_streamed() {
    // Held whole: refused before anything is sent.
    let host = host();
    let body = form(&[field("model", "openai/whisper-1"), file(&[1u8; 1000]), field("model", "openai/gpt-4o")]);
    let (status, _, out) = send(&host, "/v1/audio/transcriptions", Body::Full(Bytes::from(body)), None);
    assert_eq!(status, 400, "{out}");
    assert!(out["error"]["message"].as_str().unwrap().contains("two"), "{out}");
    assert!(host.requests.borrow().is_empty());

    // Streamed: the second field, behind a large file, cuts the upload as it passes.
    let host = self::host();
    host.answer(FakeAnswer::json(200, r#"{"text":"never"}"#));
    let body =
        form(&[field("model", "openai/whisper-1"), file(&vec![7u8; 1_500_000]), field("model", "openai/gpt-4o")]);
    let (status, _, out) = send(&host, "/v1/audio/transcriptions", chunked(&body, 64 * 1024), Some(body.len()));
    assert_eq!(status, 400, "{out}");
    assert!(out["error"]["message"].as_str().unwrap().contains("two"), "{out}");
}

#[test]
fn an_uploads_alert_and_monitor_outcomes_are_flagged_on_its_response() {
    let host = host();
    for (route, flag) in [("stt-alerted", "alert:note-audio"), ("stt-monitored", "monitor:deny:no-audio")] {
        host.answer(FakeAnswer::json(200, r#"{"text":"hello"}"#));
        let body = form(&[file(b"ID3\x00audio"), field("model", route)]);
        let (status, headers, out) = send(&host, "/v1/audio/transcriptions", Body::Full(Bytes::from(body)), None);
        assert_eq!(status, 200, "{route}: {out}");
        assert_eq!(headers.get("x-gateway-guardrail").map(|v| v.to_str().unwrap()), Some(flag), "{route}");
    }
}
