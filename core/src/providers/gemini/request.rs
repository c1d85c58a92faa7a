//! OpenAI chat request -> Gemini `generateContent` request.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::openai::{ChatMessage, ChatRequest, MessageContent, Role, ToolChoice};
use crate::providers::native::{
    self, function_declarations, push_alternating, sampling, tool_arguments, tool_call_names, OutputFormat, Part,
    SamplingNames,
};
use crate::providers::TranslateError;

fn unsupported(field: &str) -> TranslateError {
    native::unsupported("gemini", field)
}

/// Where Gemini's `generationConfig` takes OpenAI's sampling parameters.
const GENERATION: SamplingNames = SamplingNames {
    provider_type: "gemini",
    max_tokens: "maxOutputTokens",
    temperature: "temperature",
    top_p: "topP",
    stop: "stopSequences",
    extra: &[
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("n", "candidateCount"),
    ],
};

/// Builds the `generateContent` body. Fields Gemini cannot express are refused, never dropped.
pub fn generate_content_body(request: &ChatRequest) -> Result<Value, TranslateError> {
    let (mut generation, format) = sampling(request, &GENERATION)?;
    match format {
        None | Some(OutputFormat::Text) => {}
        Some(OutputFormat::JsonObject) => {
            generation.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(OutputFormat::JsonSchema(schema)) => {
            generation.insert("responseMimeType".into(), json!("application/json"));
            generation.insert("responseJsonSchema".into(), schema.clone());
        }
    }
    let call_names = tool_call_names(request);
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for message in native::messages(request, "gemini") {
        let (at, message) = message?;
        match message.role {
            Role::System | Role::Developer => {
                let text = message.content.as_ref().map(MessageContent::text).unwrap_or_default();
                system.push(json!({"text": text}));
            }
            Role::User => push_alternating(&mut contents, "user", "parts", parts(message, &at)?),
            Role::Assistant => push_alternating(&mut contents, "model", "parts", model_parts(message, &at)?),
            Role::Tool => {
                push_alternating(&mut contents, "user", "parts", vec![function_response(message, &at, &call_names)?])
            }
            Role::Function => return Err(unsupported(&format!("{at}.role=function (use tools)"))),
        }
    }
    if contents.is_empty() {
        return Err(TranslateError::invalid("`messages` needs at least one user message for provider type `gemini`")
            .with_param("messages"));
    }
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if let Some(tools) = &request.tools {
        let declarations = function_declarations("gemini", tools, "parametersJsonSchema", None)?;
        body.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
    }
    if let Some(choice) = &request.tool_choice {
        let config = match choice {
            ToolChoice::Mode(mode) => match mode.as_str() {
                "auto" => json!({"mode": "AUTO"}),
                "none" => json!({"mode": "NONE"}),
                "required" => json!({"mode": "ANY"}),
                other => {
                    return Err(
                        TranslateError::invalid(format!("unknown tool_choice `{other}`")).with_param("tool_choice")
                    )
                }
            },
            ToolChoice::Named(named) => json!({"mode": "ANY", "allowedFunctionNames": [named.function.name]}),
        };
        body.insert("toolConfig".into(), json!({"functionCallingConfig": config}));
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    Ok(Value::Object(body))
}

fn parts(message: &ChatMessage, at: &str) -> Result<Vec<Value>, TranslateError> {
    let Some(content) = &message.content else {
        return Err(TranslateError::invalid(format!("`{at}.content` is required")).with_param(format!("{at}.content")));
    };
    let part = |(at, part): (String, Part)| match part {
        Part::Text(text) => Ok(json!({"text": text})),
        Part::Image(url) => {
            let (mime, data) = native::base64_image(url, &at, "gemini")?;
            Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
        }
    };
    native::content_parts(content, at, "gemini")?.into_iter().map(part).collect()
}

fn model_parts(message: &ChatMessage, at: &str) -> Result<Vec<Value>, TranslateError> {
    let mut out = match &message.content {
        Some(MessageContent::Text(text)) if !text.is_empty() => vec![json!({"text": text})],
        Some(MessageContent::Parts(_)) => parts(message, at)?,
        _ => Vec::new(),
    };
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let args = tool_arguments(call, at, j)?;
        out.push(json!({"functionCall": {"id": call.id, "name": call.function.name, "args": args}}));
    }
    if out.is_empty() {
        out.push(json!({"text": ""}));
    }
    Ok(out)
}

/// A tool result: its content as the function's response object (JSON objects as they are,
/// anything else under `result`).
fn function_response(
    message: &ChatMessage,
    at: &str,
    call_names: &BTreeMap<&str, &str>,
) -> Result<Value, TranslateError> {
    let Some(id) = message.tool_call_id.as_deref() else {
        return Err(TranslateError::invalid(format!("`{at}.tool_call_id` is required for tool messages"))
            .with_param(format!("{at}.tool_call_id")));
    };
    let Some(name) = call_names.get(id) else {
        return Err(TranslateError::invalid(format!(
            "`{at}.tool_call_id` `{id}` matches no earlier assistant tool call (provider type `gemini` needs the function name)"
        ))
        .with_param(format!("{at}.tool_call_id")));
    };
    let text = message.content.as_ref().map(MessageContent::text).unwrap_or_default();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"result": text}),
    };
    Ok(json!({"functionResponse": {"id": id, "name": name, "response": response}}))
}
