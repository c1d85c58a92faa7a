//! What providers with a native format (Anthropic, Gemini, Ollama) share: the one
//! implementation of [`ChatProvider`] that calls the functions each names ([`Native`]), and, when
//! they translate an OpenAI request, sampling parameters under their own names,
//! `response_format`, tool-call names and arguments, and merging consecutive same-role messages.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{join_url, json_post, ChatCall, ChatProvider, ChatStreamTranslator, Operation, ResponseContext, Target};
use crate::error::ApiError;
use crate::openai::{ChatMessage, ChatRequest, ContentPart, MessageContent, ToolCall};
use crate::providers::TranslateError;

/// A provider with its own wire format, as data: the functions of its folder (`request.rs`,
/// `response.rs`, `stream.rs`) that build its requests and read its answers.
pub struct Native {
    pub request: fn(ChatCall<'_>) -> Result<http::Request<Bytes>, TranslateError>,
    pub response: fn(&[u8], &ResponseContext) -> Result<Value, TranslateError>,
    pub stream: fn(ResponseContext) -> Box<dyn ChatStreamTranslator>,
    pub error: fn(&str, StatusCode, &[u8]) -> ApiError,
    /// Embeddings in its own format, when it offers them.
    pub embeddings: Option<NativeEmbeddings>,
}

impl Native {
    /// A native format from the functions of its folder, without embeddings.
    pub(crate) const fn new(
        request: fn(ChatCall<'_>) -> Result<http::Request<Bytes>, TranslateError>,
        response: fn(&[u8], &ResponseContext) -> Result<Value, TranslateError>,
        stream: fn(ResponseContext) -> Box<dyn ChatStreamTranslator>,
        error: fn(&str, StatusCode, &[u8]) -> ApiError,
    ) -> Self {
        Native { request, response, stream, error, embeddings: None }
    }

    /// The same format, with its own embeddings endpoint.
    pub(crate) const fn with_embeddings(
        self,
        request: EmbeddingsRequest,
        response: fn(&[u8], &ResponseContext) -> Result<Value, TranslateError>,
    ) -> Self {
        Native { embeddings: Some(NativeEmbeddings { request, response }), ..self }
    }
}

/// An OpenAI embeddings body to translate for a target, with the provider's key.
pub struct EmbeddingsCall<'a> {
    pub target: &'a Target<'a>,
    pub body: &'a Map<String, Value>,
    pub api_key: Option<&'a str>,
}

/// Builds the upstream request for an OpenAI embeddings body.
pub type EmbeddingsRequest = fn(EmbeddingsCall<'_>) -> Result<http::Request<Bytes>, TranslateError>;

/// A native embeddings endpoint: the request for an OpenAI embeddings body, and its answer read.
pub struct NativeEmbeddings {
    pub request: EmbeddingsRequest,
    pub response: fn(&[u8], &ResponseContext) -> Result<Value, TranslateError>,
}

impl ChatProvider for Native {
    fn chat_request(&self, call: ChatCall<'_>) -> Result<http::Request<Bytes>, TranslateError> {
        (self.request)(call)
    }

    fn chat_response(&self, body: &[u8], ctx: &ResponseContext) -> Result<Value, TranslateError> {
        (self.response)(body, ctx)
    }

    fn chat_stream(&self, ctx: ResponseContext) -> Box<dyn ChatStreamTranslator> {
        (self.stream)(ctx)
    }

    fn error(&self, provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
        (self.error)(provider_name, status, body)
    }

    fn offers(&self, op: Operation) -> bool {
        op == Operation::Embeddings && self.embeddings.is_some()
    }

    fn operation_request(
        &self,
        op: Operation,
        target: &Target<'_>,
        body: Map<String, Value>,
        api_key: Option<&str>,
    ) -> Option<Result<http::Request<Bytes>, TranslateError>> {
        let embeddings = self.embeddings.as_ref().filter(|_| op == Operation::Embeddings)?;
        Some((embeddings.request)(EmbeddingsCall { target, body: &body, api_key }))
    }

    fn operation_response(
        &self,
        op: Operation,
        body: &[u8],
        ctx: &ResponseContext,
    ) -> Option<Result<Value, TranslateError>> {
        let embeddings = self.embeddings.as_ref().filter(|_| op == Operation::Embeddings)?;
        Some((embeddings.response)(body, ctx))
    }
}

/// A JSON POST to `path` under the provider's `base_url` (else the vendor's `default_base`).
pub(crate) fn post(
    target: &Target<'_>,
    default_base: &str,
    path: &str,
    auth: &[(&str, String)],
    body: &impl Serialize,
) -> Result<http::Request<Bytes>, TranslateError> {
    json_post(&join_url(target.provider.base_url.as_deref().unwrap_or(default_base), path), target.provider, auth, body)
}

/// The parsed answer of a native embeddings endpoint and its `embeddings` array; `endpoint`
/// names the endpoint in the 502 a malformed answer gets.
pub(crate) fn embeddings_answer(body: &[u8], endpoint: &str) -> Result<(Value, Vec<Value>), TranslateError> {
    let mut parsed: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::malformed(format!("the upstream's {endpoint} response is malformed: {e}")))?;
    let vectors = match parsed.get_mut("embeddings").map(Value::take) {
        Some(Value::Array(vectors)) => vectors,
        _ => return Err(TranslateError::malformed(format!("the upstream's {endpoint} response has no `embeddings`"))),
    };
    Ok((parsed, vectors))
}

/// Where a provider puts OpenAI's sampling parameters.
pub(crate) struct SamplingNames {
    /// The provider type, for error messages.
    pub provider_type: &'static str,
    pub max_tokens: &'static str,
    pub temperature: &'static str,
    pub top_p: &'static str,
    pub stop: &'static str,
    /// Untyped OpenAI fields the provider takes, and its names for them.
    pub extra: &'static [(&'static str, &'static str)],
}

/// OpenAI's `response_format`, parsed.
pub(crate) enum OutputFormat<'a> {
    Text,
    JsonObject,
    JsonSchema(&'a Value),
}

/// OpenAI's function tools as a native format declares them: `name`, `description` when given,
/// and the parameters' schema under `schema_key` (or `default_schema` when the tool has none).
/// A tool of another type is refused, naming it.
pub(crate) fn function_declarations(
    provider_type: &str,
    tools: &[crate::openai::Tool],
    schema_key: &str,
    default_schema: Option<Value>,
) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool.kind != "function" {
            return Err(unsupported(provider_type, &format!("tools[{i}].type={}", tool.kind)));
        }
        let mut declared = Map::new();
        declared.insert("name".into(), json!(tool.function.name));
        if let Some(description) = &tool.function.description {
            declared.insert("description".into(), json!(description));
        }
        if let Some(schema) = tool.function.parameters.clone().or_else(|| default_schema.clone()) {
            declared.insert(schema_key.into(), schema);
        }
        out.push(Value::Object(declared));
    }
    Ok(out)
}

/// One content part of a message, as a native translator reads it.
pub(crate) enum Part<'a> {
    Text(&'a str),
    /// `image_url.url`: a `data:` URL or a web address.
    Image(&'a str),
}

/// A message's content as parts, each with where it is (`{at}.content[j]`; plain text is one
/// part at `{at}.content`). A part with a field or type the provider cannot take, or without the
/// field its type needs, is refused naming it.
pub(crate) fn content_parts<'a>(
    content: &'a MessageContent,
    at: &str,
    provider_type: &str,
) -> Result<Vec<(String, Part<'a>)>, TranslateError> {
    let parts = match content {
        MessageContent::Text(text) => return Ok(vec![(format!("{at}.content"), Part::Text(text))]),
        MessageContent::Parts(parts) => parts,
    };
    let part = |(j, part): (usize, &'a ContentPart)| {
        let at = format!("{at}.content[{j}]");
        if let Some(field) = part.rest.keys().next() {
            return Err(unsupported(provider_type, &format!("{at}.{field}")));
        }
        let read = match (part.kind.as_str(), &part.text, &part.image_url) {
            ("text", Some(text), _) => Part::Text(text),
            ("image_url", _, Some(image)) => Part::Image(&image.url),
            ("text" | "image_url", _, _) => {
                let message = format!("`{at}` is missing its `{}` field", part.kind);
                return Err(TranslateError::invalid(message).with_param(at));
            }
            (other, _, _) => return Err(unsupported(provider_type, &format!("{at}.type={other}"))),
        };
        Ok((at, read))
    };
    parts.iter().enumerate().map(part).collect()
}

/// The media type and base64 data of an image given as a `data:` URL, for a provider that takes
/// images no other way.
pub(crate) fn base64_image<'a>(
    url: &'a str,
    at: &str,
    provider_type: &str,
) -> Result<(&'a str, &'a str), TranslateError> {
    match url.strip_prefix("data:").and_then(|rest| rest.split_once(',')) {
        Some((meta, data)) if meta.ends_with(";base64") => Ok((meta.trim_end_matches(";base64"), data)),
        _ => Err(TranslateError::invalid(format!(
            "`{at}.image_url.url`: provider type `{provider_type}` takes images as base64 data URLs"
        ))
        .with_param(at)),
    }
}

pub(crate) fn unsupported(provider_type: &str, field: &str) -> TranslateError {
    TranslateError::unsupported(provider_type, field)
}

/// The sampling parameters in the provider's names, and the request's `response_format`. Any
/// other untyped field, `user`, `parallel_tool_calls: false` and unknown `stream_options` are
/// refused (a no-op `n: 1` is accepted).
pub(crate) fn sampling<'a>(
    request: &'a ChatRequest,
    names: &SamplingNames,
) -> Result<(Map<String, Value>, Option<OutputFormat<'a>>), TranslateError> {
    let refuse = |field: &str| unsupported(names.provider_type, field);
    let mut params = Map::new();
    let mut format = None;
    for (field, value) in &request.rest {
        if field == "response_format" {
            format = Some(output_format(value).ok_or_else(|| refuse("response_format"))??);
            continue;
        }
        match names.extra.iter().find(|(openai, _)| openai == field) {
            Some((_, name)) if !value.is_null() => {
                params.insert((*name).into(), value.clone());
            }
            Some(_) => {}
            None if field == "n" && value.as_u64() == Some(1) => {}
            None => return Err(refuse(field)),
        }
    }
    if let Some(field) = request.stream_options.as_ref().and_then(|o| o.rest.keys().next()) {
        return Err(refuse(&format!("stream_options.{field}")));
    }
    if request.user.is_some() {
        return Err(refuse("user"));
    }
    if request.parallel_tool_calls == Some(false) {
        return Err(refuse("parallel_tool_calls=false"));
    }
    if let Some(max) = request.max_output_tokens() {
        params.insert(names.max_tokens.into(), json!(max));
    }
    if let Some(t) = request.temperature {
        params.insert(names.temperature.into(), json!(t));
    }
    if let Some(p) = request.top_p {
        params.insert(names.top_p.into(), json!(p));
    }
    if let Some(stop) = &request.stop {
        params.insert(names.stop.into(), json!(stop.sequences()));
    }
    Ok((params, format))
}

/// `None` for a format type that is not OpenAI's; an error for a JSON schema without its schema.
fn output_format(value: &Value) -> Option<Result<OutputFormat<'_>, TranslateError>> {
    match value.get("type").and_then(Value::as_str)? {
        "text" => Some(Ok(OutputFormat::Text)),
        "json_object" => Some(Ok(OutputFormat::JsonObject)),
        "json_schema" => Some(
            value.get("json_schema").and_then(|s| s.get("schema")).map(OutputFormat::JsonSchema).ok_or_else(|| {
                TranslateError::invalid("`response_format.json_schema.schema` is required")
                    .with_param("response_format")
            }),
        ),
        _ => None,
    }
}

/// Tool-call id -> function name, from the assistant messages (native formats name the function
/// in tool results; OpenAI's tool messages carry only the call id).
pub(crate) fn tool_call_names(request: &ChatRequest) -> BTreeMap<&str, &str> {
    let mut names = BTreeMap::new();
    for message in &request.messages {
        for call in message.tool_calls.iter().flatten() {
            names.insert(call.id.as_str(), call.function.name.as_str());
        }
    }
    names
}

/// The request's messages with where each is (`messages[i]`), each checked by [`check_message`].
pub(crate) fn messages<'a>(
    request: &'a ChatRequest,
    provider_type: &'a str,
) -> impl Iterator<Item = Result<(String, &'a ChatMessage), TranslateError>> + 'a {
    request.messages.iter().enumerate().map(move |(i, message)| {
        let at = format!("messages[{i}]");
        check_message(provider_type, message, &at)?;
        Ok((at, message))
    })
}

/// Refuses message fields a native format has no place for (anything untyped, and `name`).
fn check_message(provider_type: &str, message: &ChatMessage, at: &str) -> Result<(), TranslateError> {
    if let Some(field) = message.rest.keys().next() {
        return Err(unsupported(provider_type, &format!("{at}.{field}")));
    }
    if message.name.is_some() {
        return Err(unsupported(provider_type, &format!("{at}.name")));
    }
    Ok(())
}

/// A tool call's JSON arguments (empty means `{}`); invalid JSON is a 400 naming the field.
pub(crate) fn tool_arguments(call: &ToolCall, at: &str, index: usize) -> Result<Value, TranslateError> {
    let raw = if call.function.arguments.trim().is_empty() { "{}" } else { &call.function.arguments };
    serde_json::from_str(raw).map_err(|e| {
        TranslateError::invalid(format!("`{at}.tool_calls[{index}].function.arguments` is not valid JSON: {e}"))
            .with_param(format!("{at}.tool_calls[{index}].function.arguments"))
    })
}

/// Appends a message, merging it into the previous one when the roles match (Anthropic and Gemini
/// want alternating roles). `items` is the message's list under `key` (`content`, `parts`).
pub(crate) fn push_alternating(messages: &mut Vec<Value>, role: &str, key: &str, items: Vec<Value>) {
    if let Some(last) = messages.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some(role) {
            if let Some(existing) = last.get_mut(key).and_then(Value::as_array_mut) {
                existing.extend(items);
                return;
            }
        }
    }
    messages.push(json!({"role": role, key: items}));
}
