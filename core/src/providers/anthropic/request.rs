//! OpenAI chat request -> Anthropic Messages request.

use serde_json::{json, Map, Value};

use crate::openai::{ChatMessage, ChatRequest, MessageContent, Role, ToolChoice};
use crate::providers::native::{self, content_parts, function_declarations, push_alternating, tool_arguments, Part};
use crate::providers::TranslateError;

/// Used when neither the client nor the provider config sets `max_tokens` (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

fn unsupported(field: &str) -> TranslateError {
    TranslateError::invalid(format!("`{field}` is not supported by provider type `anthropic`")).with_param(field)
}

/// Builds the Messages API body. Fields Anthropic cannot express are refused, never dropped.
pub fn messages_body(
    request: &ChatRequest,
    model: &str,
    default_max_tokens: Option<u32>,
) -> Result<Value, TranslateError> {
    if let Some(field) = request.rest.keys().next() {
        return Err(unsupported(field));
    }
    if let Some(opts) = &request.stream_options {
        if let Some(field) = opts.rest.keys().next() {
            return Err(unsupported(&format!("stream_options.{field}")));
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    let max_tokens = request.max_output_tokens().or(default_max_tokens).unwrap_or(DEFAULT_MAX_TOKENS);
    body.insert("max_tokens".into(), json!(max_tokens));

    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for message in native::messages(request, "anthropic") {
        let (at, message) = message?;
        match message.role {
            Role::System | Role::Developer => {
                let text = message.content.as_ref().map(MessageContent::text).unwrap_or_default();
                system.push(json!({"type": "text", "text": text}));
            }
            Role::User => push_alternating(&mut messages, "user", "content", user_blocks(message, &at)?),
            Role::Assistant => push_alternating(&mut messages, "assistant", "content", assistant_blocks(message, &at)?),
            Role::Tool => push_alternating(&mut messages, "user", "content", vec![tool_result(message, &at)?]),
            Role::Function => return Err(unsupported(&format!("{at}.role=function (use tools)"))),
        }
    }
    if messages.is_empty() {
        return Err(TranslateError::invalid(
            "`messages` needs at least one user message for provider type `anthropic`",
        )
        .with_param("messages"));
    }
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages));

    if let Some(stop) = &request.stop {
        body.insert("stop_sequences".into(), json!(stop.sequences()));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if request.is_stream() {
        body.insert("stream".into(), json!(true));
    }
    if let Some(user) = &request.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = &request.tools {
        let schema = json!({"type": "object", "properties": {}});
        let declared = function_declarations("anthropic", tools, "input_schema", Some(schema))?;
        body.insert("tools".into(), Value::Array(declared));
    }
    let disable_parallel = request.parallel_tool_calls == Some(false);
    let choice = match &request.tool_choice {
        None if disable_parallel => Some(json!({"type": "auto"})),
        None => None,
        Some(ToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            other => {
                return Err(TranslateError::invalid(format!("unknown tool_choice `{other}`")).with_param("tool_choice"))
            }
        }),
        Some(ToolChoice::Named(named)) => Some(json!({"type": "tool", "name": named.function.name})),
    };
    if let Some(mut choice) = choice {
        if disable_parallel {
            if let Some(obj) = choice.as_object_mut() {
                obj.insert("disable_parallel_tool_use".into(), json!(true));
            }
        }
        body.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(body))
}

fn user_blocks(message: &ChatMessage, at: &str) -> Result<Vec<Value>, TranslateError> {
    let Some(content) = &message.content else {
        return Err(TranslateError::invalid(format!("`{at}.content` is required for user messages"))
            .with_param(format!("{at}.content")));
    };
    blocks(content, at)
}

/// Content as Anthropic's text and image blocks.
fn blocks(content: &MessageContent, at: &str) -> Result<Vec<Value>, TranslateError> {
    let block = |(at, part): (String, Part)| match part {
        Part::Text(text) => Ok(json!({"type": "text", "text": text})),
        Part::Image(url) => image_block(url, &at),
    };
    content_parts(content, at, "anthropic")?.into_iter().map(block).collect()
}

/// `data:` URLs become base64 sources; http(s) URLs become URL sources.
fn image_block(url: &str, at: &str) -> Result<Value, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((meta, data)) = rest.split_once(',') else {
            return Err(TranslateError::invalid(format!("`{at}.image_url.url` is a malformed data URL")).with_param(at));
        };
        let Some(media_type) = meta.strip_suffix(";base64") else {
            return Err(TranslateError::invalid(format!("`{at}.image_url.url` must be base64-encoded")).with_param(at));
        };
        return Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(TranslateError::invalid(format!("`{at}.image_url.url` must be an http(s) or data URL")).with_param(at))
}

fn assistant_blocks(message: &ChatMessage, at: &str) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = Vec::new();
    match &message.content {
        Some(MessageContent::Text(text)) if !text.is_empty() => blocks.push(json!({"type": "text", "text": text})),
        Some(content @ MessageContent::Parts(_)) => blocks.extend(self::blocks(content, at)?),
        _ => {}
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let input = tool_arguments(call, at, j)?;
        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.function.name, "input": input}));
    }
    if blocks.is_empty() {
        blocks.push(json!({"type": "text", "text": ""}));
    }
    Ok(blocks)
}

fn tool_result(message: &ChatMessage, at: &str) -> Result<Value, TranslateError> {
    let Some(id) = &message.tool_call_id else {
        return Err(TranslateError::invalid(format!("`{at}.tool_call_id` is required for tool messages"))
            .with_param(format!("{at}.tool_call_id")));
    };
    let content = match &message.content {
        None => json!(""),
        Some(MessageContent::Text(text)) => json!(text),
        Some(content @ MessageContent::Parts(_)) => Value::Array(blocks(content, at)?),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}
