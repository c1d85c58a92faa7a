//! Golden tests: Anthropic bodies in `core/fixtures/anthropic/` (hand-written to the documented
//! shapes; `documented_stream.sse` follows the documentation exactly, see `providers/documented.rs`),
//! expected translations beside them.

use http::StatusCode;
use serde_json::{json, Value};

use super::*;
use crate::error::ApiError;
use crate::openai::ChatRequest;
use crate::providers::test_support::chunks;
use crate::providers::StreamEvent;
use crate::providers::{ChatProvider, ResponseContext};

fn ctx() -> ResponseContext {
    crate::providers::test_support::ctx("claude", "resp-1")
}

/// Feeds a stream fixture in awkward slices (7 bytes at a time) to exercise reassembly.
fn translate_stream(sse: &str) -> Vec<StreamEvent> {
    crate::providers::test_support::translate(&ANTHROPIC, ctx(), sse, 7)
}

#[test]
fn anthropic_request_translates_system_images_tools_and_tool_results() {
    let request: ChatRequest =
        serde_json::from_str(include_str!("../../../fixtures/anthropic/chat_request.json")).unwrap();
    let expected: Value =
        serde_json::from_str(include_str!("../../../fixtures/anthropic/chat_request.expected.json")).unwrap();
    assert_eq!(messages_body(&request, "claude-sonnet-4-6", None).unwrap(), expected);
}

#[test]
fn anthropic_request_refuses_fields_it_cannot_express() {
    let request: ChatRequest = serde_json::from_value(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": true}),
    )
    .unwrap();
    let err = ApiError::from(messages_body(&request, "m", None).unwrap_err());
    assert_eq!(err.status, 400);
    assert_eq!(err.param.as_deref(), Some("logprobs"));
    assert!(err.message.contains("anthropic"), "{}", err.message);
}

#[test]
fn anthropic_request_defaults_max_tokens_and_merges_a_single_stop_string() {
    let request: ChatRequest =
        serde_json::from_value(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": "END"}))
            .unwrap();
    let body = messages_body(&request, "m", None).unwrap();
    assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(messages_body(&request, "m", Some(77)).unwrap()["max_tokens"], 77);
}

#[test]
fn anthropic_request_with_unparseable_tool_arguments_is_a_400() {
    let request: ChatRequest = serde_json::from_value(json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{nope"}}]},
    ]}))
    .unwrap();
    let err = ApiError::from(messages_body(&request, "m", None).unwrap_err());
    assert_eq!(err.param.as_deref(), Some("messages[1].tool_calls[0].function.arguments"));
}

#[test]
fn anthropic_response_maps_text_tool_calls_reasoning_and_usage() {
    let out =
        ANTHROPIC.chat_response(include_bytes!("../../../fixtures/anthropic/tool_response.json"), &ctx()).unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["created"], 1_700_000_000);
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Let me check.");
    assert_eq!(choice["message"]["reasoning_content"], "The user wants weather.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_C");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "c"}));
    assert_eq!(out["usage"]["prompt_tokens"], 155);
    assert_eq!(out["usage"]["completion_tokens"], 30);
    assert_eq!(out["usage"]["total_tokens"], 185);
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 50);
}

#[test]
fn anthropic_stream_emits_text_deltas_finish_reason_usage_and_done() {
    let events = translate_stream(include_str!("../../../fixtures/anthropic/text_stream.sse"));
    let chunks = chunks(&events);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["id"], "msg_01");
    let text: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
    assert_eq!(text, "Hello world");
    let finish = chunks.iter().find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("stop"));
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], 35);
    assert_eq!(usage["completion_tokens"], 15);
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}

#[test]
fn anthropic_stream_emits_tool_call_argument_deltas_with_stable_indexes() {
    let events = translate_stream(include_str!("../../../fixtures/anthropic/tool_stream.sse"));
    let mut calls: Vec<(u64, Option<String>, Option<String>, String)> = Vec::new();
    for chunk in chunks(&events) {
        for call in chunk["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap();
            let args = call["function"]["arguments"].as_str().unwrap_or("").to_owned();
            match calls.iter_mut().find(|c| c.0 == index) {
                Some(c) => c.3.push_str(&args),
                None => calls.push((
                    index,
                    call["id"].as_str().map(str::to_owned),
                    call["function"]["name"].as_str().map(str::to_owned),
                    args,
                )),
            }
        }
    }
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], (0, Some("toolu_A".into()), Some("get_weather".into()), "{\"city\": \"Paris\"}".into()));
    assert_eq!(calls[1], (1, Some("toolu_B".into()), Some("get_time".into()), "{\"tz\": \"CET\"}".into()));
    let finish = chunks(&events).iter().find_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned));
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}

#[test]
fn anthropic_refusal_finishes_with_content_filter_whole_and_streamed() {
    let out =
        ANTHROPIC.chat_response(include_bytes!("../../../fixtures/anthropic/refusal_response.json"), &ctx()).unwrap();
    assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(out["choices"][0]["message"]["content"], "I can't help with that.");
    let events = translate_stream(include_str!("../../../fixtures/anthropic/refusal_stream.sse"));
    let finish = chunks(&events).iter().find_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned));
    assert_eq!(finish.as_deref(), Some("content_filter"));
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}

#[test]
fn anthropic_stream_emits_thinking_deltas_as_reasoning_content() {
    let events = translate_stream(include_str!("../../../fixtures/anthropic/thinking_stream.sse"));
    let chunks = chunks(&events);
    let delta = |key: &str| -> String {
        chunks.iter().filter_map(|c| c["choices"][0]["delta"][key].as_str()).collect::<Vec<_>>().concat()
    };
    assert_eq!(delta("reasoning_content"), "27 * 453: 27 * 400 = 10800, 27 * 53 = 1431, so 12231.");
    assert_eq!(delta("content"), "27 * 453 = 12,231", "the thinking stays out of the answer");
    assert!(!chunks.iter().any(|c| c.to_string().contains("EqQBCgIYAhIM")), "the signature is not passed on");
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}

#[test]
fn anthropic_stream_cut_mid_way_ends_with_an_error_event() {
    let full = include_str!("../../../fixtures/anthropic/text_stream.sse");
    let cut = &full[..full.find("event: message_delta").unwrap()];
    let events = translate_stream(cut);
    assert!(matches!(events.last(), Some(StreamEvent::Error(e)) if e.code.as_deref() == Some("stream_interrupted")));
    assert!(!events.contains(&StreamEvent::Done));
}

#[test]
fn anthropic_stream_error_event_is_forwarded_as_an_error() {
    let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{}}}\n\n\
               event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let events = translate_stream(sse);
    assert!(matches!(events.last(), Some(StreamEvent::Error(e)) if e.message == "Overloaded"));
}

#[test]
fn anthropic_errors_map_to_openai_shape_and_status() {
    let err = ANTHROPIC.error(
        "anthropic",
        StatusCode::TOO_MANY_REQUESTS,
        br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}"#,
    );
    assert_eq!(err.status, 429);
    assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
    let err = ANTHROPIC.error(
        "anthropic",
        StatusCode::from_u16(529).unwrap(),
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    assert_eq!(err.status, 503);
    let err = ANTHROPIC.error("anthropic", StatusCode::INTERNAL_SERVER_ERROR, b"<html>oops</html>");
    assert_eq!(err.status, 502);
    assert!(err.message.contains("HTTP 500"));
}

#[test]
fn anthropic_stream_ignores_unknown_event_types_but_not_broken_known_ones() {
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{}}}\n\n";
    let unknown = format!("{start}event: future\ndata: {{\"type\":\"future_event\",\"x\":1}}\n\n");
    let events = translate_stream(&unknown);
    assert!(
        matches!(events.last(), Some(StreamEvent::Error(e)) if e.code.as_deref() == Some("stream_interrupted")),
        "only the early end is an error"
    );
    let broken = format!("{start}event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"delta\":{{\"type\":\"text_delta\",\"text\":\"x\"}}}}\n\n");
    let events = translate_stream(&broken);
    assert!(matches!(events.last(), Some(StreamEvent::Error(e)) if e.message.contains("malformed")));
}
