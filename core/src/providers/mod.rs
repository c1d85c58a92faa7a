//! One hub (the OpenAI format), many spokes: each provider type translates to and from it.

pub mod anthropic;
pub mod custom;
pub mod dialects;
#[cfg(test)]
mod documented;
pub mod echo;
mod error;
pub use error::TranslateError;
pub(crate) mod framed;
pub mod gemini;
pub(crate) mod native;
pub mod ollama;
pub mod openai;
#[cfg(test)]
pub(crate) mod test_support;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use crate::config::{ProviderConfig, ProviderType};
use crate::error::ApiError;
use crate::openai::{ChatChunk, ChatRequest};

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
    /// The provider's model id, for translated responses that do not name it.
    pub model: String,
    /// An id for the response when the upstream sends none (unique per request).
    pub fallback_id: String,
    /// Embeddings: the client asked for base64 vectors (the OpenAI SDKs' default).
    pub base64_embeddings: bool,
    /// Custom providers: where the answer is in the upstream's JSON.
    pub custom: Option<crate::config::ResponseMapping>,
}

/// One translated stream event, before SSE encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A `chat.completion.chunk` object.
    Chunk(ChatChunk),
    /// The stream completed normally: `data: [DONE]`.
    Done,
    /// The stream failed: an error event, after which nothing more is sent.
    Error(ApiError),
}

impl StreamEvent {
    pub fn error(error: impl Into<ApiError>) -> Self {
        StreamEvent::Error(error.into())
    }
}

/// The head of an upload to a provider (the request without its form, and the form's `model`),
/// or the reason it cannot be sent; `None` when the provider does not offer the endpoint.
pub type UploadHead = Option<Result<(http::Request<()>, String), TranslateError>>;

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
    /// `multipart/form-data` uploads, passed through as they stream.
    Transcriptions,
    Translations,
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
            Operation::Transcriptions => "audio/transcriptions",
            Operation::Translations => "audio/translations",
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
            Operation::Transcriptions => "transcription",
            Operation::Translations => "translation",
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
/// What a chat request to one target is made of: the target, the client's request (as the
/// route's transforms and the guard left it) and the provider's key, if it has one.
#[derive(Clone, Copy)]
pub struct ChatCall<'a> {
    pub target: &'a Target<'a>,
    pub request: &'a ChatRequest,
    pub api_key: Option<&'a str>,
}

pub trait ChatProvider {
    /// Builds the upstream request for one target.
    fn chat_request(&self, call: ChatCall<'_>) -> Result<http::Request<Bytes>, TranslateError>;
    /// Translates a whole (non-streamed) successful response body.
    fn chat_response(&self, body: &[u8], ctx: &ResponseContext) -> Result<Value, TranslateError>;
    /// A translator for a streamed successful response.
    fn chat_stream(&self, ctx: ResponseContext) -> Box<dyn ChatStreamTranslator>;
    /// Maps a non-success upstream response to the OpenAI error shape.
    fn error(&self, provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError;
    /// Whether the provider offers another endpoint natively.
    fn offers(&self, _op: Operation) -> bool {
        false
    }
    /// The upstream request for another endpoint, or `None` when the provider does not offer it.
    fn operation_request(
        &self,
        _op: Operation,
        _target: &Target<'_>,
        _body: serde_json::Map<String, Value>,
        _api_key: Option<&str>,
    ) -> Option<Result<http::Request<Bytes>, TranslateError>> {
        None
    }
    /// The head of an upload (`multipart/form-data`) to another endpoint: URL and credentials,
    /// and the model id to put in the form's `model` field; `None` when the provider does not
    /// offer the endpoint.
    fn upload_request(&self, _op: Operation, _target: &Target<'_>, _api_key: Option<&str>) -> UploadHead {
        None
    }
    /// Translates another endpoint's successful JSON response into OpenAI's shape; `None` when the
    /// provider answers in OpenAI's shape already.
    fn operation_response(
        &self,
        _op: Operation,
        _body: &[u8],
        _ctx: &ResponseContext,
    ) -> Option<Result<Value, TranslateError>> {
        None
    }
}

/// The inputs of an embeddings request as texts (token-array inputs cannot be translated).
pub(crate) fn embedding_inputs(body: &serde_json::Map<String, Value>) -> Result<Vec<String>, TranslateError> {
    let bad = || {
        TranslateError::invalid("`input` must be a string or an array of strings for this provider").with_param("input")
    };
    match body.get("input") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(bad)).collect(),
        _ => Err(bad()),
    }
}

/// Refuses embedding options a translating provider cannot honour.
pub(crate) fn check_embedding_options(
    provider_type: &str,
    body: &serde_json::Map<String, Value>,
    allowed: &[&str],
) -> Result<(), TranslateError> {
    for (field, value) in body {
        let fine = matches!(field.as_str(), "model" | "input")
            || allowed.contains(&field.as_str())
            || (field == "encoding_format" && (value == "float" || value == "base64"));
        if !fine {
            return Err(TranslateError::invalid(format!(
                "`{field}` is not supported for embeddings by provider type `{provider_type}`"
            ))
            .with_param(field.clone()));
        }
    }
    Ok(())
}

/// A vector as OpenAI's base64 encoding: little-endian `f32`s.
fn base64_vector(vector: &Value) -> Value {
    let bytes: Vec<u8> = vector
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .flat_map(|x| (x as f32).to_le_bytes())
        .collect();
    Value::String(base64(&bytes))
}

#[cfg(test)]
mod embedding_tests {
    #[test]
    fn base64_matches_known_encodings_and_float_vectors_round_trip() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
        // 1.0f32 little-endian is 00 00 80 3f.
        assert_eq!(super::base64_vector(&serde_json::json!([1.0])), "AACAPw==");
    }
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(TABLE.get(((n >> shift) & 63) as usize).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// OpenAI's embeddings list from vectors (as floats, or base64 when the client asked).
pub(crate) fn embedding_list(model: &str, vectors: Vec<Value>, prompt_tokens: u64, as_base64: bool) -> Value {
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let v = if as_base64 { base64_vector(&v) } else { v };
            serde_json::json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    serde_json::json!({"object": "list", "data": data, "model": model,
                       "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})
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
        ProviderType::Anthropic => ProviderSpec { otel_name: "anthropic", chat: Some(&anthropic::ANTHROPIC) },
        ProviderType::Gemini => ProviderSpec { otel_name: "gcp.gemini", chat: Some(&gemini::GEMINI) },
        ProviderType::Ollama => ProviderSpec { otel_name: "ollama", chat: Some(&ollama::OLLAMA) },
        ProviderType::Echo => ProviderSpec { otel_name: "gateway.echo", chat: None },
        ProviderType::Custom => ProviderSpec { otel_name: "gateway.custom", chat: Some(&custom::Custom) },
    }
}

/// The chat implementation behind a provider type; `None` for types answered in-process (echo).
pub fn chat_provider(kind: ProviderType) -> Option<&'static dyn ChatProvider> {
    spec(kind).chat
}

/// Whether a provider type offers an endpoint other than chat natively.
pub fn offers(kind: ProviderType, op: Operation) -> bool {
    spec(kind).chat.is_some_and(|provider| provider.offers(op))
}

/// `gen_ai.provider.name` for a provider type.
pub fn otel_provider_name(kind: ProviderType) -> &'static str {
    spec(kind).otel_name
}

/// Joins a base URL and a path without doubling or dropping the slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// A POST with the provider's configured extra headers and its credentials.
fn post_with<B>(
    url: &str,
    provider: &ProviderConfig,
    auth: &[(&str, String)],
    builder: http::request::Builder,
    body: B,
) -> Result<http::Request<B>, TranslateError> {
    let mut builder = builder.method(http::Method::POST).uri(url);
    for (name, value) in &provider.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    for (name, value) in auth {
        builder = builder.header(*name, value.as_str());
    }
    builder
        .body(body)
        .map_err(|e| TranslateError::Misconfigured(format!("cannot build the upstream request to {url}: {e}")))
}

/// Builds a JSON POST of `body` with the provider's configured extra headers.
pub(crate) fn json_post(
    url: &str,
    provider: &ProviderConfig,
    auth: &[(&str, String)],
    body: &impl serde::Serialize,
) -> Result<http::Request<Bytes>, TranslateError> {
    let body = serde_json::to_vec(body).map_err(|e| TranslateError::invalid(e.to_string()))?;
    let builder = http::Request::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream");
    post_with(url, provider, auth, builder, Bytes::from(body))
}

/// The head of a POST (an upload's; its body and content type come from the client).
pub(crate) fn post_head(
    url: &str,
    provider: &ProviderConfig,
    auth: &[(&str, String)],
) -> Result<http::Request<()>, TranslateError> {
    post_with(url, provider, auth, http::Request::builder(), ())
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
    if matches!(status.as_u16(), 401 | 403) {
        return ApiError::new(client_status(status), "upstream_error", explain(provider_name, status, ""))
            .with_code("upstream_auth_failed");
    }
    let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
    ApiError::new(
        client_status(status),
        "upstream_error",
        format!("provider `{provider_name}` answered HTTP {}: {snippet}", status.as_u16()),
    )
    .with_code("upstream_error")
}

/// The client-facing message for an upstream error. A credential failure gets a fixed message:
/// providers often quote the (masked or not) key they refused, which must not reach the client.
pub(crate) fn explain(provider_name: &str, status: StatusCode, message: &str) -> String {
    match status.as_u16() {
        401 | 403 => format!(
            "provider `{provider_name}` rejected the gateway's credentials (HTTP {}); check its secret",
            status.as_u16()
        ),
        _ => message.to_owned(),
    }
}
