//! OpenAI chat request -> Ollama native `/api/chat` request.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::openai::{ChatMessage, ChatRequest, MessageContent, Role, ToolChoice};
use crate::providers::native::{self, sampling, tool_arguments, tool_call_names, OutputFormat, Part, SamplingNames};
use crate::providers::TranslateError;

fn unsupported(field: &str) -> TranslateError {
    native::unsupported("ollama", field)
}

/// Where Ollama's `options` take OpenAI's sampling parameters.
const OPTIONS: SamplingNames = SamplingNames {
    provider_type: "ollama",
    max_tokens: "num_predict",
    temperature: "temperature",
    top_p: "top_p",
    stop: "stop",
    extra: &[("seed", "seed"), ("presence_penalty", "presence_penalty"), ("frequency_penalty", "frequency_penalty")],
};

/// Builds the `/api/chat` body. Fields Ollama cannot express are refused, never dropped.
pub fn chat_body(request: &ChatRequest, model: &str) -> Result<Value, TranslateError> {
    let (options, format) = sampling(request, &OPTIONS)?;
    let mut body = Map::new();
    match format {
        None | Some(OutputFormat::Text) => {}
        Some(OutputFormat::JsonObject) => {
            body.insert("format".into(), json!("json"));
        }
        Some(OutputFormat::JsonSchema(schema)) => {
            body.insert("format".into(), schema.clone());
        }
    }
    let call_names = tool_call_names(request);
    let mut messages = Vec::new();
    for message in native::messages(request, "ollama") {
        let (at, message) = message?;
        messages.push(message_body(message, &at, &call_names)?);
    }
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(request.is_stream()));
    // `tool_choice: none` is honoured by not offering the tools; Ollama cannot force a call.
    let offer_tools = match &request.tool_choice {
        None => true,
        Some(ToolChoice::Mode(mode)) if mode == "auto" => true,
        Some(ToolChoice::Mode(mode)) if mode == "none" => false,
        Some(_) => return Err(unsupported("tool_choice (only auto and none)")),
    };
    if let (Some(tools), true) = (&request.tools, offer_tools) {
        for (i, tool) in tools.iter().enumerate() {
            if tool.kind != "function" {
                return Err(unsupported(&format!("tools[{i}].type={}", tool.kind)));
            }
        }
        body.insert("tools".into(), serde_json::to_value(tools).unwrap_or_default());
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    Ok(Value::Object(body))
}

fn message_body(message: &ChatMessage, at: &str, call_names: &BTreeMap<&str, &str>) -> Result<Value, TranslateError> {
    let role = match message.role {
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
        Role::Function => return Err(unsupported(&format!("{at}.role=function (use tools)"))),
    };
    let mut out = Map::new();
    out.insert("role".into(), json!(role));
    let mut images = Vec::new();
    let content = match &message.content {
        None => String::new(),
        Some(MessageContent::Text(text)) => text.clone(),
        Some(content @ MessageContent::Parts(_)) => {
            let mut text = Vec::new();
            for (at, part) in native::content_parts(content, at, "ollama")? {
                match part {
                    Part::Text(t) => text.push(t),
                    Part::Image(url) => images.push(json!(native::base64_image(url, &at, "ollama")?.1)),
                }
            }
            text.join("\n")
        }
    };
    out.insert("content".into(), json!(content));
    if !images.is_empty() {
        out.insert("images".into(), Value::Array(images));
    }
    if let Some(calls) = &message.tool_calls {
        let mut converted = Vec::new();
        for (j, call) in calls.iter().enumerate() {
            let args = tool_arguments(call, at, j)?;
            converted.push(json!({"function": {"name": call.function.name, "arguments": args}}));
        }
        out.insert("tool_calls".into(), Value::Array(converted));
    }
    if message.role == Role::Tool {
        let name = message.tool_call_id.as_deref().and_then(|id| call_names.get(id));
        if let Some(name) = name {
            out.insert("tool_name".into(), json!(name));
        }
    }
    Ok(Value::Object(out))
}
