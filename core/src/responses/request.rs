//! A Responses API request → a chat completion request, or a 400 naming what chat cannot express.

use serde_json::{json, Map, Value};

use super::set;
use crate::error::ApiError;
use crate::openai::ChatRequest;

/// Request fields echoed back on the response object, as the Responses API does.
pub const ECHOED: &[&str] = &[
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "reasoning",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "user",
];

/// Fields with the same name and meaning in both APIs.
const SHARED: &[&str] =
    &["temperature", "top_p", "parallel_tool_calls", "user", "metadata", "service_tier", "safety_identifier"];

fn refuse(param: impl Into<String>, why: impl std::fmt::Display) -> ApiError {
    let param = param.into();
    ApiError::invalid_request(format!("`{param}` {why}")).with_param(param)
}

/// Translates a Responses request body into a chat request. Reasoning items passed back in
/// `input` are not resent (chat has no place for them); anything else chat cannot express is
/// refused, never dropped.
pub fn to_chat(body: &Map<String, Value>) -> Result<ChatRequest, ApiError> {
    let mut chat = Map::new();
    let mut messages = Vec::new();
    if let Some(instructions) = body.get("instructions").filter(|v| !v.is_null()) {
        let text = instructions.as_str().ok_or_else(|| refuse("instructions", "must be a string"))?;
        messages.push(json!({"role": "system", "content": text}));
    }
    for (key, value) in body {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "stream" => {
                chat.insert(key.clone(), value.clone());
            }
            "instructions" => {}
            "input" => input_messages(value, &mut messages)?,
            "max_output_tokens" => {
                chat.insert("max_completion_tokens".into(), value.clone());
            }
            "tools" => {
                chat.insert("tools".into(), tools(value)?);
            }
            "tool_choice" => {
                chat.insert("tool_choice".into(), tool_choice(value)?);
            }
            "text" => text_options(value, &mut chat)?,
            "reasoning" => reasoning(value, &mut chat)?,
            // Accepted as no-ops: the gateway never obfuscates, stores or truncates.
            "stream_options" | "store" | "truncation" | "include" | "background" => no_op(key, value)?,
            k if SHARED.contains(&k) => {
                chat.insert(key.clone(), value.clone());
            }
            _ => return Err(refuse(key.clone(), "has no chat completions equivalent")),
        }
    }
    if !body.contains_key("input") {
        return Err(refuse("input", "is required"));
    }
    if chat.get("stream").and_then(Value::as_bool) == Some(true) {
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    chat.insert("messages".into(), Value::Array(messages));
    serde_json::from_value(Value::Object(chat))
        .map_err(|e| ApiError::invalid_request(format!("the request cannot be translated to chat: {e}")))
}

/// Options that change nothing here in their default values; anything else is refused.
fn no_op(key: &str, value: &Value) -> Result<(), ApiError> {
    let fine = match key {
        "stream_options" => value.as_object().is_some_and(|o| o.keys().all(|k| k == "include_obfuscation")),
        "store" | "background" => value == &Value::Bool(false),
        "truncation" => value == "disabled",
        "include" => value.as_array().is_some_and(Vec::is_empty),
        _ => false,
    };
    if fine {
        return Ok(());
    }
    let why = match key {
        "store" => "must be false: the gateway keeps no responses for providers without a native Responses API",
        "background" => "must be false: background responses need a provider with a native Responses API",
        _ => "cannot be honoured by a provider without a native Responses API",
    };
    Err(refuse(key, why))
}

fn input_messages(input: &Value, messages: &mut Vec<Value>) -> Result<(), ApiError> {
    let items = match input {
        Value::String(text) => {
            messages.push(json!({"role": "user", "content": text}));
            return Ok(());
        }
        Value::Array(items) => items,
        _ => return Err(refuse("input", "must be a string or an array of items")),
    };
    for (i, item) in items.iter().enumerate() {
        let at = |field: &str| format!("input[{i}].{field}");
        let kind = match item.get("type").and_then(Value::as_str) {
            Some(kind) => kind,
            None if item.get("role").is_some() => "message",
            None => return Err(refuse(format!("input[{i}]"), "must have a `type` or a `role`")),
        };
        match kind {
            "message" => messages.push(message(item, i)?),
            "function_call" => {
                let call = json!({
                    "id": string(item, "call_id").ok_or_else(|| refuse(at("call_id"), "is required"))?,
                    "type": "function",
                    "function": {
                        "name": string(item, "name").ok_or_else(|| refuse(at("name"), "is required"))?,
                        "arguments": string(item, "arguments").unwrap_or("{}"),
                    },
                });
                // Consecutive calls (and calls right after the assistant's text) form one turn.
                match messages.last_mut() {
                    Some(last) if last["role"] == "assistant" => match last.get_mut("tool_calls") {
                        Some(Value::Array(calls)) => calls.push(call),
                        _ => {
                            set(last, "tool_calls", json!([call]));
                        }
                    },
                    _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let call_id = string(item, "call_id").ok_or_else(|| refuse(at("call_id"), "is required"))?;
                let content = match item.get("output") {
                    Some(Value::String(text)) => Value::String(text.clone()),
                    Some(Value::Array(parts)) => Value::Array(content_parts(parts, &at("output"))?),
                    _ => return Err(refuse(at("output"), "must be a string or an array of content parts")),
                };
                messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
            }
            // The model's own reasoning from an earlier turn: chat has no field to send it back in.
            "reasoning" => {}
            other => return Err(refuse(at("type"), format_args!("`{other}` has no chat completions equivalent"))),
        }
    }
    Ok(())
}

fn string<'v>(item: &'v Value, field: &str) -> Option<&'v str> {
    item.get(field).and_then(Value::as_str)
}

fn message(item: &Value, i: usize) -> Result<Value, ApiError> {
    let role = string(item, "role").unwrap_or_default();
    if !matches!(role, "user" | "system" | "developer" | "assistant") {
        return Err(refuse(format!("input[{i}].role"), "must be `user`, `system`, `developer` or `assistant`"));
    }
    let content = match item.get("content") {
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(Value::Array(parts)) => {
            let parts = content_parts(parts, &format!("input[{i}].content"))?;
            if role == "assistant" {
                // Chat's assistant content is text: join the output text (and refusal) parts.
                let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
                Value::String(text.concat())
            } else {
                Value::Array(parts)
            }
        }
        _ => return Err(refuse(format!("input[{i}].content"), "must be a string or an array of content parts")),
    };
    Ok(json!({"role": role, "content": content}))
}

fn content_parts(parts: &[Value], at: &str) -> Result<Vec<Value>, ApiError> {
    parts
        .iter()
        .enumerate()
        .map(|(j, part)| {
            let at = format!("{at}[{j}]");
            match string(part, "type").unwrap_or_default() {
                "input_text" | "output_text" => Ok(json!({"type": "text", "text": string(part, "text").unwrap_or("")})),
                "refusal" => Ok(json!({"type": "text", "text": string(part, "refusal").unwrap_or("")})),
                "input_image" => {
                    let url = string(part, "image_url").ok_or_else(|| {
                        refuse(
                            format!("{at}.image_url"),
                            "is required (`file_id` images need the provider's own file store)",
                        )
                    })?;
                    let mut image = json!({"url": url});
                    if let Some(detail) = string(part, "detail") {
                        set(&mut image, "detail", json!(detail));
                    }
                    Ok(json!({"type": "image_url", "image_url": image}))
                }
                other => {
                    Err(refuse(format!("{at}.type"), format_args!("`{other}` has no chat completions equivalent")))
                }
            }
        })
        .collect()
}

fn tools(value: &Value) -> Result<Value, ApiError> {
    let tools = value.as_array().ok_or_else(|| refuse("tools", "must be an array"))?;
    let translated = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if string(tool, "type") != Some("function") {
                let kind = string(tool, "type").unwrap_or("?");
                return Err(refuse(
                    format!("tools[{i}].type"),
                    format_args!("`{kind}` is a hosted tool: only `function` tools translate to chat"),
                ));
            }
            let mut function = Map::new();
            for field in ["name", "description", "parameters", "strict"] {
                if let Some(v) = tool.get(field).filter(|v| !v.is_null()) {
                    function.insert(field.into(), v.clone());
                }
            }
            Ok(json!({"type": "function", "function": function}))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(translated))
}

fn tool_choice(value: &Value) -> Result<Value, ApiError> {
    match value {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => Ok(value.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name =
                o.get("name").and_then(Value::as_str).ok_or_else(|| refuse("tool_choice.name", "is required"))?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(refuse("tool_choice", "must be `auto`, `none`, `required` or a function")),
    }
}

fn text_options(value: &Value, chat: &mut Map<String, Value>) -> Result<(), ApiError> {
    let options = value.as_object().ok_or_else(|| refuse("text", "must be an object"))?;
    for (key, option) in options {
        match key.as_str() {
            "format" => {
                let format = match string(option, "type") {
                    Some("text") => continue,
                    Some("json_object") => json!({"type": "json_object"}),
                    Some("json_schema") => {
                        let mut schema = Map::new();
                        for field in ["name", "schema", "description", "strict"] {
                            if let Some(v) = option.get(field).filter(|v| !v.is_null()) {
                                schema.insert(field.into(), v.clone());
                            }
                        }
                        json!({"type": "json_schema", "json_schema": schema})
                    }
                    _ => return Err(refuse("text.format.type", "must be `text`, `json_object` or `json_schema`")),
                };
                chat.insert("response_format".into(), format);
            }
            "verbosity" => {
                chat.insert("verbosity".into(), option.clone());
            }
            other => return Err(refuse(format!("text.{other}"), "has no chat completions equivalent")),
        }
    }
    Ok(())
}

fn reasoning(value: &Value, chat: &mut Map<String, Value>) -> Result<(), ApiError> {
    let options = value.as_object().ok_or_else(|| refuse("reasoning", "must be an object"))?;
    for (key, option) in options {
        match key.as_str() {
            "effort" if !option.is_null() => {
                chat.insert("reasoning_effort".into(), option.clone());
            }
            // Reasoning the provider returns comes back as a summary whatever its style.
            "effort" | "summary" | "generate_summary" => {}
            other => return Err(refuse(format!("reasoning.{other}"), "has no chat completions equivalent")),
        }
    }
    Ok(())
}
