//! A chat completion → a Responses API `response` object.

use serde_json::{json, Map, Value};

use super::request::ECHOED;
use super::set;

/// What a finished response is made of, however it was gathered (whole, or from a stream).
#[derive(Debug, Default)]
pub struct Outcome {
    /// Output items in order (`reasoning`, `message`, `function_call`).
    pub items: Vec<Value>,
    pub finish_reason: Option<String>,
    /// The chat completion's `usage`, when it had one.
    pub usage: Option<Value>,
}

/// The response's fixed facts: its id, creation time, model and the request fields it echoes.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    pub created_at: u64,
    pub model: String,
    pub echoed: Map<String, Value>,
}

impl Envelope {
    /// The envelope for a request; `id` is unique per request.
    pub fn new(request: &Map<String, Value>, id: String, created_at: u64) -> Self {
        let echoed = ECHOED.iter().filter_map(|k| request.get(*k).map(|v| ((*k).to_owned(), v.clone()))).collect();
        let model = request.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
        Envelope { id, created_at, model, echoed }
    }

    /// An item id derived from the response id, unique within it.
    pub fn item_id(&self, prefix: &str, index: usize) -> String {
        format!("{prefix}_{}_{index}", self.id.trim_start_matches("resp_"))
    }

    /// The `response` object in a given status, with its items so far.
    pub fn response(&self, status: &str, outcome: &Outcome) -> Value {
        let incomplete = match outcome.finish_reason.as_deref() {
            Some("length") => Some("max_output_tokens"),
            Some("content_filter") => Some("content_filter"),
            _ => None,
        };
        let status = if status == "completed" && incomplete.is_some() { "incomplete" } else { status };
        let mut response = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": incomplete.filter(|_| status == "incomplete").map(|r| json!({"reason": r})),
            "model": self.model,
            "output": outcome.items,
            "usage": outcome.usage.as_ref().map(usage),
            "instructions": null,
            "metadata": {},
            "parallel_tool_calls": true,
            "temperature": null,
            "tool_choice": "auto",
            "tools": [],
            "top_p": null,
            "store": false,
            "text": {"format": {"type": "text"}},
        });
        for (key, value) in &self.echoed {
            set(&mut response, key.as_str(), value.clone());
        }
        response
    }
}

/// Chat usage → Responses usage.
fn usage(chat: &Value) -> Value {
    let input = chat["prompt_tokens"].as_u64().unwrap_or(0);
    let output = chat["completion_tokens"].as_u64().unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": chat.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_u64).unwrap_or(0)},
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": chat.pointer("/completion_tokens_details/reasoning_tokens").and_then(Value::as_u64).unwrap_or(0)
        },
        "total_tokens": chat["total_tokens"].as_u64().unwrap_or(input + output),
    })
}

/// The output items of a reasoning text, an assistant text (or refusal) and tool calls.
pub fn reasoning_item(id: String, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [{"type": "summary_text", "text": text}]})
}

pub fn message_item(id: String, status: &str, parts: Vec<Value>) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": parts})
}

pub fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

pub fn refusal_part(text: &str) -> Value {
    json!({"type": "refusal", "refusal": text})
}

pub fn function_call_item(id: String, status: &str, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"type": "function_call", "id": id, "status": status, "call_id": call_id, "name": name, "arguments": arguments})
}

/// A whole chat completion → a `response` object (its first choice: Responses has no `n`).
pub fn from_completion(completion: &Value, envelope: &Envelope) -> Value {
    let choice = completion.pointer("/choices/0").unwrap_or(&Value::Null);
    let message = &choice["message"];
    let mut items = Vec::new();
    if let Some(text) = message["reasoning_content"].as_str().filter(|t| !t.is_empty()) {
        items.push(reasoning_item(envelope.item_id("rs", items.len()), text));
    }
    let mut parts = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        parts.push(text_part(text));
    }
    if let Some(text) = message["refusal"].as_str().filter(|t| !t.is_empty()) {
        parts.push(refusal_part(text));
    }
    if !parts.is_empty() {
        items.push(message_item(envelope.item_id("msg", items.len()), "completed", parts));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let function = &call["function"];
        items.push(function_call_item(
            envelope.item_id("fc", items.len()),
            "completed",
            call["id"].as_str().unwrap_or_default(),
            function["name"].as_str().unwrap_or_default(),
            function["arguments"].as_str().unwrap_or_default(),
        ));
    }
    let outcome = Outcome {
        items,
        finish_reason: choice["finish_reason"].as_str().map(str::to_owned),
        usage: completion.get("usage").filter(|u| u.is_object()).cloned(),
    };
    envelope.response("completed", &outcome)
}
