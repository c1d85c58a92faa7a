//! One hub (the OpenAI format), many spokes: each provider type translates to and from it.

pub mod anthropic;
pub mod dialects;
pub mod echo;
pub mod gemini;
pub mod ollama;
pub mod openai;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use crate::config::{ProviderConfig, ProviderType};
use crate::error::ApiError;
use crate::openai::ChatRequest;

/// Where one attempt goes: a provider from config and the provider's own model id.
#[derive(Debug, Clone)]
pub struct Target<'c> {
    /// The provider's name in config (the part before the first `/`).
    pub provider_name: &'c str,
    pub provider: &'c ProviderConfig,
    /// Everything after the first `/` of `provider/model`.
    pub model: String,
}

/// Facts a response translator needs that the upstream does not send.
#[derive(Debug, Clone)]
pub struct ResponseContext {
    /// Unix seconds, for `created`.
    pub created: u64,
    /// The client asked for `stream_options.include_usage`.
    pub include_usage: bool,
    /// An id for the response when the upstream sends none (unique per request).
    pub fallback_id: String,
}

/// One translated stream event, before SSE encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A `chat.completion.chunk` object.
    Chunk(Value),
    /// The stream completed normally: `data: [DONE]`.
    Done,
    /// The stream failed: an error event, after which nothing more is sent.
    Error(ApiError),
}

/// Translates a provider's streamed body into OpenAI chunks, incrementally.
pub trait ChatStreamTranslator {
    /// Feeds upstream bytes as they arrive; returns the events they complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<StreamEvent>;
    /// The upstream body ended; a stream that did not complete properly yields an error event.
    fn finish(self: Box<Self>) -> Vec<StreamEvent>;
}

/// OpenAI endpoints other than chat, forwarded as they are to vendors that offer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Embeddings,
    ImageGenerations,
    Moderations,
    Speech,
    Responses,
}

impl Operation {
    /// The path under a vendor's OpenAI-compatible base URL.
    pub fn path(self) -> &'static str {
        match self {
            Operation::Embeddings => "embeddings",
            Operation::ImageGenerations => "images/generations",
            Operation::Moderations => "moderations",
            Operation::Speech => "audio/speech",
            Operation::Responses => "responses",
        }
    }

    /// `gen_ai.operation.name` (OpenTelemetry's values where one exists).
    pub fn otel_name(self) -> &'static str {
        match self {
            Operation::Embeddings => "embeddings",
            Operation::ImageGenerations => "generate_content",
            Operation::Moderations => "moderation",
            Operation::Speech => "speech",
            Operation::Responses => "chat",
        }
    }
}

/// The 400 for a provider that does not offer an endpoint, naming both.
pub fn unsupported_operation(provider_name: &str, kind: ProviderType, op: Operation) -> ApiError {
    ApiError::invalid_request(format!(
        "provider `{provider_name}` (type `{}`) does not offer `/v1/{}`",
        serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        op.path()
    ))
    .with_param("model")
    .with_code("unsupported_endpoint")
}

/// What the pipeline needs from one provider wire format.
pub trait ChatProvider {
    /// Builds the upstream request; `api_key` is the resolved secret, if the provider has one.
    fn chat_request(
        &self,
        target: &Target<'_>,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<http::Request<Bytes>, ApiError>;
    /// Translates a whole (non-streamed) successful response body.
    fn chat_response(&self, body: &[u8], ctx: &ResponseContext) -> Result<Value, ApiError>;
    /// A translator for a streamed successful response.
    fn chat_stream(&self, ctx: ResponseContext) -> Box<dyn ChatStreamTranslator>;
    /// Maps a non-success upstream response to the OpenAI error shape.
    fn error(&self, provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError;
    /// The upstream request for another endpoint, or `None` when the provider does not offer it.
    fn operation_request(
        &self,
        _op: Operation,
        _target: &Target<'_>,
        _body: serde_json::Map<String, Value>,
        _api_key: Option<&str>,
    ) -> Option<Result<http::Request<Bytes>, ApiError>> {
        None
    }
}

/// What the gateway knows about a provider type: its one entry in [`spec`].
#[derive(Clone, Copy)]
pub struct ProviderSpec {
    /// `gen_ai.provider.name` (OpenTelemetry's well-known value where one exists).
    pub otel_name: &'static str,
    /// The chat implementation; `None` for types answered in-process (echo).
    pub chat: Option<&'static dyn ChatProvider>,
}

/// The one place that maps a provider type to its implementation.
pub fn spec(kind: ProviderType) -> ProviderSpec {
    static OPENAI: openai::Compatible = openai::Compatible(&dialects::OPENAI);
    static AZURE: openai::Compatible = openai::Compatible(&dialects::AZURE);
    static GROQ: openai::Compatible = openai::Compatible(&dialects::GROQ);
    static MISTRAL: openai::Compatible = openai::Compatible(&dialects::MISTRAL);
    static TOGETHER: openai::Compatible = openai::Compatible(&dialects::TOGETHER);
    static DEEPSEEK: openai::Compatible = openai::Compatible(&dialects::DEEPSEEK);
    let compatible = |c: &'static openai::Compatible| ProviderSpec { otel_name: c.0.otel_name, chat: Some(c) };
    match kind {
        ProviderType::Openai => compatible(&OPENAI),
        ProviderType::Azure => compatible(&AZURE),
        ProviderType::Groq => compatible(&GROQ),
        ProviderType::Mistral => compatible(&MISTRAL),
        ProviderType::Together => compatible(&TOGETHER),
        ProviderType::Deepseek => compatible(&DEEPSEEK),
        ProviderType::Anthropic => ProviderSpec { otel_name: "anthropic", chat: Some(&anthropic::Anthropic) },
        ProviderType::Gemini => ProviderSpec { otel_name: "gcp.gemini", chat: Some(&gemini::Gemini) },
        ProviderType::Ollama => ProviderSpec { otel_name: "ollama", chat: Some(&ollama::Ollama) },
        ProviderType::Echo => ProviderSpec { otel_name: "gateway.echo", chat: None },
    }
}

/// The chat implementation behind a provider type; `None` for types answered in-process (echo).
pub fn chat_provider(kind: ProviderType) -> Option<&'static dyn ChatProvider> {
    spec(kind).chat
}

/// `gen_ai.provider.name` for a provider type.
pub fn otel_provider_name(kind: ProviderType) -> &'static str {
    spec(kind).otel_name
}

/// Joins a base URL and a path without doubling or dropping the slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// Builds a JSON POST with the provider's configured extra headers.
pub(crate) fn json_post(
    url: &str,
    provider: &ProviderConfig,
    auth: &[(&str, String)],
    body: Vec<u8>,
) -> Result<http::Request<Bytes>, ApiError> {
    let mut builder = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream");
    for (name, value) in &provider.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    for (name, value) in auth {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(Bytes::from(body))
        .map_err(|e| ApiError::unavailable(format!("cannot build the upstream request to {url}: {e}")))
}

/// The client-facing status for an upstream failure status.
pub(crate) fn client_status(upstream: StatusCode) -> StatusCode {
    match upstream.as_u16() {
        // The provider refused the gateway's own credential: the caller cannot fix that.
        401 | 403 => StatusCode::BAD_GATEWAY,
        408 | 504 => StatusCode::GATEWAY_TIMEOUT,
        503 | 529 => StatusCode::SERVICE_UNAVAILABLE,
        s if upstream.is_client_error() => StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST),
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// An upstream error whose body could not be understood.
pub(crate) fn opaque_upstream_error(provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
    let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
    ApiError::new(
        client_status(status),
        "upstream_error",
        format!("provider `{provider_name}` answered HTTP {}: {snippet}", status.as_u16()),
    )
    .with_code("upstream_error")
}

/// Prefix that makes an upstream credential failure explicit to the caller.
pub(crate) fn explain(provider_name: &str, status: StatusCode, message: &str) -> String {
    match status.as_u16() {
        401 | 403 => {
            format!("provider `{provider_name}` rejected the gateway's credentials: {message}")
        }
        _ => message.to_owned(),
    }
}
