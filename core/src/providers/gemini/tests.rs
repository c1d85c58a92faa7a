//! Golden tests: Gemini bodies as the API documents them, in `core/fixtures/gemini/`.

use http::StatusCode;
use serde_json::{json, Value};

use super::*;
use crate::error::ApiError;
use crate::openai::ChatRequest;
use crate::providers::test_support::chunks;
use crate::providers::ChatProvider;
use crate::providers::StreamEvent;

fn ctx() -> ResponseContext {
    crate::providers::test_support::ctx("m", "fallback")
}

fn translate(sse: &str) -> Vec<StreamEvent> {
    crate::providers::test_support::translate(&GEMINI, ctx(), sse, 11)
}

#[test]
fn gemini_request_translates_system_images_tools_results_and_generation_config() {
    let request: ChatRequest =
        serde_json::from_str(include_str!("../../../fixtures/gemini/chat_request.json")).unwrap();
    let expected: Value =
        serde_json::from_str(include_str!("../../../fixtures/gemini/chat_request.expected.json")).unwrap();
    assert_eq!(generate_content_body(&request).unwrap(), expected);
}

#[test]
fn gemini_request_puts_penalties_and_a_json_object_format_in_generation_config() {
    let request: ChatRequest =
        serde_json::from_value(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "frequency_penalty": 0.5, "presence_penalty": -0.25, "response_format": {"type": "json_object"}}))
        .unwrap();
    let body = generate_content_body(&request).unwrap();
    assert_eq!(
        body["generationConfig"],
        json!({"frequencyPenalty": 0.5, "presencePenalty": -0.25, "responseMimeType": "application/json"})
    );
}

#[test]
fn gemini_request_refuses_what_it_cannot_express() {
    for (body, param) in [
        (json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": true}), "logprobs"),
        (json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": "u"}), "user"),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "parallel_tool_calls": false}),
            "parallel_tool_calls=false",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
            "messages[1].tool_call_id",
        ),
    ] {
        let request: ChatRequest = serde_json::from_value(body).unwrap();
        let err = ApiError::from(generate_content_body(&request).unwrap_err());
        assert_eq!((err.status.as_u16(), err.param.as_deref()), (400, Some(param)));
    }
}

#[test]
fn gemini_response_maps_text_thoughts_calls_and_usage() {
    let out = GEMINI.chat_response(include_bytes!("../../../fixtures/gemini/tool_response.json"), &ctx()).unwrap();
    assert_eq!(out["id"], "resp-g3");
    assert_eq!(out["model"], "gemini-2.5-pro");
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Let me look.");
    assert_eq!(choice["message"]["reasoning_content"], "Considering the request.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "fc-1");
    assert!(call.get("index").is_none());
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris", "unit": "c"})
    );
    assert_eq!(out["usage"]["prompt_tokens"], 100);
    assert_eq!(out["usage"]["completion_tokens"], 35);
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 40);
    assert_eq!(out["usage"]["completion_tokens_details"]["reasoning_tokens"], 15);
}

#[test]
fn gemini_blocked_prompt_is_a_content_filter_finish() {
    let out = GEMINI.chat_response(include_bytes!("../../../fixtures/gemini/blocked_response.json"), &ctx()).unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(out["id"], "fallback");
}

#[test]
fn gemini_finish_reasons_map_to_length_and_content_filter_whole_and_streamed() {
    for (reason, expected) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
    ] {
        let response = json!({"candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"},
            "finishReason": reason, "index": 0}], "modelVersion": "gemini-2.5-flash", "responseId": "r"});
        let out = GEMINI.chat_response(response.to_string().as_bytes(), &ctx()).unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], expected, "{reason}");
        let events = translate(&format!("data: {response}\n\n"));
        let streamed =
            chunks(&events).iter().find_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned));
        assert_eq!(streamed.as_deref(), Some(expected), "{reason} streamed");
    }
}

#[test]
fn gemini_stream_emits_text_then_finish_usage_and_done() {
    let events = translate(include_str!("../../../fixtures/gemini/text_stream.sse"));
    let chunks = chunks(&events);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["id"], "resp-g1");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello from Gemini");
    assert_eq!(chunks.iter().find_map(|c| c["choices"][0]["finish_reason"].as_str()), Some("stop"));
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(8), Some(23)));
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}

#[test]
fn gemini_stream_emits_whole_tool_calls_with_stable_indexes_and_ids() {
    let events = translate(include_str!("../../../fixtures/gemini/tool_stream.sse"));
    let all = chunks(&events);
    let calls: Vec<&Value> =
        all.iter().flat_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten()).collect();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0]["index"].as_u64(), calls[1]["index"].as_u64()), (Some(0), Some(1)));
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(calls[1]["function"]["arguments"], "{\"city\":\"Lyon\"}");
    let finish = chunks(&events).iter().find_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned));
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

#[test]
fn gemini_stream_cut_before_its_finish_reason_ends_with_an_error() {
    let full = include_str!("../../../fixtures/gemini/text_stream.sse");
    let cut = &full[..full.rfind("data:").unwrap()];
    let events = translate(cut);
    assert!(matches!(events.last(), Some(StreamEvent::Error(e)) if e.code.as_deref() == Some("stream_interrupted")));
}

#[test]
fn gemini_errors_map_to_openai_shape_and_status() {
    let body = br#"{"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}"#;
    let err = GEMINI.error("gemini", StatusCode::TOO_MANY_REQUESTS, body);
    assert_eq!((err.status.as_u16(), err.code.as_deref()), (429, Some("rate_limit_exceeded")));
    let err = GEMINI.error(
        "gemini",
        StatusCode::BAD_REQUEST,
        br#"[{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}]"#,
    );
    assert_eq!((err.status.as_u16(), &*err.kind), (400, "invalid_request_error"));
    assert_eq!(GEMINI.error("gemini", StatusCode::BAD_REQUEST, b"[]").status, 400);
}
