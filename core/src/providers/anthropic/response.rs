//! Anthropic Messages response -> OpenAI chat completion, and Anthropic errors.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::openai::Usage;
use crate::providers::TranslateError;
use crate::providers::{client_status, explain, opaque_upstream_error, ResponseContext};

#[derive(Deserialize)]
struct MessagesResponse {
    id: String,
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    Thinking {
        thinking: String,
    },
    #[serde(other)]
    Other,
}

/// Anthropic's usage object; input counts exclude cache reads and writes, which OpenAI includes.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct AnthropicUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    pub fn to_openai(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: self
                .input_tokens
                .saturating_add(cached)
                .saturating_add(self.cache_creation_input_tokens.unwrap_or(0)),
            completion_tokens: self.output_tokens,
            cached_tokens: cached,
            reasoning_tokens: 0,
        }
    }
}

/// Anthropic `stop_reason` -> OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

pub fn chat_completion(body: &[u8], ctx: &ResponseContext) -> Result<Value, TranslateError> {
    let response: MessagesResponse = serde_json::from_slice(body)
        .map_err(|e| TranslateError::malformed(format!("the upstream's Messages response is malformed: {e}")))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::Thinking { thinking } => reasoning.push_str(&thinking),
            Block::ToolUse { id, name, input } => tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": serde_json::to_string(&input).unwrap_or_default()},
            })),
            Block::Other => {}
        }
    }
    let mut message = serde_json::Map::new();
    message.insert("role".into(), json!("assistant"));
    let content = if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), json!(reasoning));
    }
    Ok(json!({
        "id": response.id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": response.model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(response.stop_reason.as_deref().unwrap_or("end_turn")),
            "logprobs": null,
        }],
        "usage": response.usage.to_openai().to_json(),
    }))
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// `{"type":"error","error":{"type","message"}}` -> the OpenAI error shape.
pub fn error(provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope { error }) => error_from_parts(provider_name, status, &error.kind, &error.message),
        Err(_) => opaque_upstream_error(provider_name, status, body),
    }
}

/// Maps Anthropic's error type names to OpenAI's.
pub fn error_from_parts(provider_name: &str, status: StatusCode, kind: &str, message: &str) -> ApiError {
    let (openai_kind, code) = match kind {
        "invalid_request_error" => ("invalid_request_error", None),
        "authentication_error" | "permission_error" => ("upstream_error", Some("upstream_auth_failed")),
        "not_found_error" => ("invalid_request_error", Some("model_not_found")),
        "request_too_large" => ("invalid_request_error", Some("request_too_large")),
        "rate_limit_error" => ("rate_limit_error", Some("rate_limit_exceeded")),
        "overloaded_error" => ("server_error", Some("overloaded")),
        _ => ("server_error", None),
    };
    let mut err = ApiError::new(client_status(status), openai_kind, explain(provider_name, status, message));
    err.code = code.map(str::to_owned);
    err
}
