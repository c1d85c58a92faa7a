//! Gemini `GenerateContentResponse` -> OpenAI chat completion (and chunk deltas), and errors.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::openai::Usage;
use crate::providers::TranslateError;
use crate::providers::{client_status, explain, opaque_upstream_error, ResponseContext};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: Option<UsageMetadata>,
    pub model_version: Option<String>,
    pub response_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(default)]
    pub index: u64,
    pub content: Option<Content>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Content {
    #[serde(default)]
    pub parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    pub text: Option<String>,
    #[serde(default)]
    pub thought: bool,
    pub function_call: Option<FunctionCall>,
}

#[derive(Debug, Deserialize)]
pub struct FunctionCall {
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub args: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    pub block_reason: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
}

impl UsageMetadata {
    /// Thinking tokens count as output, as OpenAI counts reasoning tokens.
    pub fn to_openai(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_token_count,
            completion_tokens: self.candidates_token_count.saturating_add(self.thoughts_token_count),
            cached_tokens: self.cached_content_token_count,
            reasoning_tokens: self.thoughts_token_count,
        }
    }
}

/// Gemini `finishReason` -> OpenAI `finish_reason`; safety and policy blocks are content filters.
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" | "LANGUAGE" => {
            "content_filter"
        }
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// One candidate's parts as OpenAI message fields; tool calls numbered from `first_call`.
pub struct Translated {
    pub text: String,
    pub reasoning: String,
    pub tool_calls: Vec<Value>,
}

/// A call id: Gemini's own when it sends one, else derived from the response and position.
pub fn call_id(call: &FunctionCall, response_id: &str, candidate: u64, position: usize) -> String {
    call.id.clone().unwrap_or_else(|| format!("call_{response_id}_{candidate}_{position}"))
}

pub fn translate_parts(parts: &[Part], response_id: &str, candidate: u64, first_call: usize) -> Translated {
    let mut out = Translated { text: String::new(), reasoning: String::new(), tool_calls: Vec::new() };
    for part in parts {
        if let Some(call) = &part.function_call {
            let position = first_call + out.tool_calls.len();
            out.tool_calls.push(json!({
                "index": position,
                "id": call_id(call, response_id, candidate, position),
                "type": "function",
                "function": {"name": call.name, "arguments": serde_json::to_string(&call.args).unwrap_or_default()},
            }));
        } else if let Some(text) = &part.text {
            if part.thought {
                out.reasoning.push_str(text);
            } else {
                out.text.push_str(text);
            }
        }
    }
    out
}

pub fn chat_completion(body: &[u8], ctx: &ResponseContext) -> Result<Value, TranslateError> {
    let response: GenerateContentResponse = serde_json::from_slice(body)
        .map_err(|e| TranslateError::malformed(format!("the upstream's generateContent response is malformed: {e}")))?;
    let id = response.response_id.clone().unwrap_or_else(|| ctx.fallback_id.clone());
    let mut choices = Vec::new();
    for candidate in &response.candidates {
        let parts = candidate.content.as_ref().map(|c| c.parts.as_slice()).unwrap_or_default();
        let t = translate_parts(parts, &id, candidate.index, 0);
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        let content = if t.text.is_empty() && !t.tool_calls.is_empty() { Value::Null } else { json!(t.text) };
        message.insert("content".into(), content);
        message.insert("refusal".into(), Value::Null);
        let has_calls = !t.tool_calls.is_empty();
        if has_calls {
            let calls = t.tool_calls.into_iter().map(strip_index).collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        if !t.reasoning.is_empty() {
            message.insert("reasoning_content".into(), json!(t.reasoning));
        }
        let reason = finish_reason(candidate.finish_reason.as_deref().unwrap_or("STOP"), has_calls);
        choices.push(json!({"index": candidate.index, "message": message, "finish_reason": reason, "logprobs": null}));
    }
    if choices.is_empty() {
        // The prompt itself was blocked: no candidates, only feedback.
        let blocked = response.prompt_feedback.as_ref().and_then(|f| f.block_reason.as_deref()).is_some();
        let reason = if blocked { "content_filter" } else { "stop" };
        choices.push(json!({"index": 0, "message": {"role": "assistant", "content": "", "refusal": null},
                            "finish_reason": reason, "logprobs": null}));
    }
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": response.model_version.unwrap_or_default(),
        "choices": choices,
        "usage": response.usage_metadata.unwrap_or_default().to_openai().to_json(),
    }))
}

/// Whole responses carry no `index` on their tool calls (only stream deltas do).
fn strip_index(mut call: Value) -> Value {
    if let Some(obj) = call.as_object_mut() {
        obj.remove("index");
    }
    call
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
    status: Option<String>,
}

/// `{"error": {"code", "message", "status"}}` -> the OpenAI error shape.
pub fn error(provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
    // Streamed errors may come as a one-element JSON array.
    let parsed = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .or_else(|| serde_json::from_slice::<Vec<ErrorEnvelope>>(body).ok().and_then(|v| v.into_iter().next()));
    let Some(ErrorEnvelope { error }) = parsed else {
        return opaque_upstream_error(provider_name, status, body);
    };
    let (kind, code) = match error.status.as_deref() {
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => ("invalid_request_error", None),
        Some("UNAUTHENTICATED" | "PERMISSION_DENIED") => ("upstream_error", Some("upstream_auth_failed")),
        Some("NOT_FOUND") => ("invalid_request_error", Some("model_not_found")),
        Some("RESOURCE_EXHAUSTED") => ("rate_limit_error", Some("rate_limit_exceeded")),
        Some("UNAVAILABLE") => ("server_error", Some("overloaded")),
        Some("DEADLINE_EXCEEDED") => ("server_error", Some("upstream_timeout")),
        _ => ("server_error", None),
    };
    let mut err = ApiError::new(client_status(status), kind, explain(provider_name, status, &error.message));
    err.code = code.map(str::to_owned);
    err
}
