//! Golden tests: Ollama bodies as its API documents them, in `core/fixtures/ollama/`.

use http::StatusCode;
use serde_json::{json, Value};

use super::*;
use crate::error::ApiError;
use crate::openai::ChatRequest;
use crate::providers::test_support::chunks;
use crate::providers::ChatProvider;
use crate::providers::StreamEvent;

fn ctx() -> ResponseContext {
    crate::providers::test_support::ctx("m", "chatcmpl-x")
}

fn translate(ndjson: &str) -> Vec<StreamEvent> {
    crate::providers::test_support::translate(&OLLAMA, ctx(), ndjson, 13)
}

#[test]
fn ollama_request_translates_system_images_tool_calls_results_and_options() {
    let request: ChatRequest =
        serde_json::from_str(include_str!("../../../fixtures/ollama/chat_request.json")).unwrap();
    let expected: Value =
        serde_json::from_str(include_str!("../../../fixtures/ollama/chat_request.expected.json")).unwrap();
    assert_eq!(chat_body(&request, "llama3.2").unwrap(), expected);
}

#[test]
fn ollama_request_refuses_what_it_cannot_express() {
    for (body, param) in [
        (json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": true}), "logprobs"),
        (json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 2}), "n"),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"}),
            "tool_choice (only auto and none)",
        ),
        // A part without the field its type needs is named as Anthropic and Gemini name it.
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            "messages[0].content[0]",
        ),
    ] {
        let request: ChatRequest = serde_json::from_value(body).unwrap();
        assert_eq!(ApiError::from(chat_body(&request, "m").unwrap_err()).param.as_deref(), Some(param));
    }
    let none: ChatRequest =
        serde_json::from_value(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"}))
        .unwrap();
    assert!(chat_body(&none, "m").unwrap().get("tools").is_none(), "tool_choice none withholds the tools");
}

#[test]
fn ollama_response_maps_content_thinking_finish_and_usage() {
    let out = OLLAMA.chat_response(include_bytes!("../../../fixtures/ollama/chat_response.json"), &ctx()).unwrap();
    assert_eq!(out["model"], "qwen3");
    assert_eq!(out["choices"][0]["message"]["content"], "It is sunny.");
    assert_eq!(out["choices"][0]["message"]["reasoning_content"], "The user asks about weather.");
    assert_eq!(out["choices"][0]["finish_reason"], "length");
    assert_eq!(out["usage"]["prompt_tokens"], 12);
    assert_eq!(out["usage"]["completion_tokens"], 30);
}

#[test]
fn ollama_stream_emits_text_finish_usage_and_done() {
    let events = translate(include_str!("../../../fixtures/ollama/text_stream.ndjson"));
    let chunks = chunks(&events);
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello from Ollama");
    assert_eq!(chunks.iter().find_map(|c| c["choices"][0]["finish_reason"].as_str()), Some("stop"));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}

#[test]
fn ollama_stream_numbers_whole_tool_calls_and_finishes_with_tool_calls() {
    let events = translate(include_str!("../../../fixtures/ollama/tool_stream.ndjson"));
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
fn ollama_stream_cut_before_done_ends_with_an_error() {
    let full = include_str!("../../../fixtures/ollama/text_stream.ndjson");
    let cut: String = full.lines().take(2).map(|l| format!("{l}\n")).collect();
    let events = translate(&cut);
    assert!(matches!(events.last(), Some(StreamEvent::Error(e)) if e.code.as_deref() == Some("stream_interrupted")));
}

#[test]
fn ollama_errors_map_to_the_openai_shape() {
    let err = OLLAMA.error("ollama", StatusCode::NOT_FOUND, br#"{"error":"model 'nope' not found"}"#);
    assert_eq!((err.status.as_u16(), err.code.as_deref()), (404, Some("model_not_found")));
    assert!(err.message.contains("not found"));
}
