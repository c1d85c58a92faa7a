//! Ollama `/api/chat` responses (whole, or one NDJSON line of a stream) -> OpenAI shapes.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::openai::Usage;
use crate::providers::TranslateError;
use crate::providers::{client_status, explain, opaque_upstream_error, ResponseContext};

#[derive(Debug, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub model: String,
    pub message: Option<Message>,
    #[serde(default)]
    pub done: bool,
    pub done_reason: Option<String>,
    #[serde(default)]
    pub prompt_eval_count: u64,
    #[serde(default)]
    pub eval_count: u64,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub content: String,
    pub thinking: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Debug, Deserialize)]
pub struct ToolCall {
    pub function: Function,
}

#[derive(Debug, Deserialize)]
pub struct Function {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

impl ChatResponse {
    pub fn usage(&self) -> Usage {
        Usage { prompt_tokens: self.prompt_eval_count, completion_tokens: self.eval_count, ..Usage::default() }
    }
}

/// Ollama's `done_reason` -> OpenAI's `finish_reason`.
pub fn finish_reason(done_reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    match done_reason {
        Some("length") => "length",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// Tool calls in OpenAI's shape, numbered from `first`; Ollama sends no ids, so they are derived.
pub fn tool_calls(calls: &[ToolCall], id: &str, first: usize) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            json!({
                "index": first + i,
                "id": format!("call_{id}_{}", first + i),
                "type": "function",
                "function": {"name": call.function.name, "arguments": serde_json::to_string(&call.function.arguments).unwrap_or_default()},
            })
        })
        .collect()
}

pub fn chat_completion(body: &[u8], ctx: &ResponseContext) -> Result<Value, TranslateError> {
    let response: ChatResponse = serde_json::from_slice(body)
        .map_err(|e| TranslateError::malformed(format!("the upstream's /api/chat response is malformed: {e}")))?;
    let message = response.message.as_ref();
    let calls = message.map(|m| tool_calls(&m.tool_calls, &ctx.fallback_id, 0)).unwrap_or_default();
    let mut out = Map::new();
    out.insert("role".into(), json!("assistant"));
    let text = message.map(|m| m.content.clone()).unwrap_or_default();
    let content = if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) };
    out.insert("content".into(), content);
    out.insert("refusal".into(), Value::Null);
    if let Some(thinking) = message.and_then(|m| m.thinking.as_deref()).filter(|t| !t.is_empty()) {
        out.insert("reasoning_content".into(), json!(thinking));
    }
    let has_calls = !calls.is_empty();
    if has_calls {
        let calls = calls
            .into_iter()
            .map(|mut c| {
                if let Some(obj) = c.as_object_mut() {
                    obj.remove("index");
                }
                c
            })
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(json!({
        "id": ctx.fallback_id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": response.model,
        "choices": [{"index": 0, "message": out, "finish_reason": finish_reason(response.done_reason.as_deref(), has_calls), "logprobs": null}],
        "usage": response.usage().to_json(),
    }))
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// `{"error": "..."}` -> the OpenAI error shape.
pub fn error(provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => {
            let kind = if status.is_client_error() { "invalid_request_error" } else { "server_error" };
            let mut err = ApiError::new(client_status(status), kind, explain(provider_name, status, &error));
            if status == StatusCode::NOT_FOUND {
                err.code = Some("model_not_found".into());
            }
            err
        }
        Err(_) => opaque_upstream_error(provider_name, status, body),
    }
}
