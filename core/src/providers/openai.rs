//! OpenAI Chat Completions and its compatible dialects (Azure, Groq, Mistral, Together,
//! DeepSeek): one implementation, parametrized by a [`Dialect`] (the data is in `dialects.rs`).

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    client_status, explain, json_post, opaque_upstream_error, ChatCall, ChatProvider, ChatStreamTranslator, Operation,
    ResponseContext, StreamEvent, Target, UploadHead,
};
use crate::error::ApiError;
use crate::openai::{ChatChunk, ChatRequest};
use crate::providers::TranslateError;
use crate::sse::SseParser;

/// How a vendor takes its key.
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    /// `Authorization: Bearer {key}`.
    Bearer,
    /// The key alone in this header (Azure's `api-key`).
    Header(&'static str),
}

/// What one OpenAI-compatible vendor does differently.
pub struct Dialect {
    /// The provider type, as config and error messages name it.
    pub name: &'static str,
    /// `gen_ai.provider.name`.
    pub otel_name: &'static str,
    pub auth: Auth,
    /// Top-level request fields the vendor cannot take: refused with a 400 naming them.
    pub rejected: &'static [&'static str],
    /// Message fields the vendor cannot take.
    pub rejected_in_messages: &'static [&'static str],
    /// Fields the vendor names differently: (OpenAI name, vendor name).
    pub renamed: &'static [(&'static str, &'static str)],
    /// `n` must be 1.
    pub single_choice: bool,
    /// What `tool_choice: "required"` is called.
    pub required_tool_choice: &'static str,
    /// The vendor accepts `stream_options`; when it does not, it reports stream usage on its own.
    pub stream_options: bool,
    /// Where the vendor's API is when the provider names no `base_url`.
    pub default_base: &'static str,
    /// The URL of an endpoint path (`chat/completions`, `embeddings`, ...) for a target, given
    /// `default_base`.
    pub url: fn(&Target<'_>, &str, &str) -> Result<String, TranslateError>,
    /// The other OpenAI endpoints the vendor offers.
    pub operations: &'static [Operation],
    /// The body's `model` for a target.
    pub model: fn(&Target<'_>) -> String,
}

impl Dialect {
    /// The URL of an endpoint path for a target.
    fn endpoint(&self, target: &Target<'_>, path: &str) -> Result<String, TranslateError> {
        (self.url)(target, self.default_base, path)
    }
}

/// A [`ChatProvider`] for any OpenAI-compatible dialect.
pub struct Compatible(pub &'static Dialect);

/// Whether a field the vendor cannot take holds a value that asks for nothing beyond its default.
fn asks_nothing(field: &str, value: &Value) -> bool {
    match field {
        "parallel_tool_calls" => value.is_null() || value == &Value::Bool(true),
        "n" => value.is_null() || value == &Value::from(1),
        _ => value.is_null() || value == &Value::Bool(false),
    }
}

fn unsupported(dialect: &Dialect, field: &str) -> TranslateError {
    TranslateError::unsupported(dialect.name, field)
}

impl Compatible {
    fn auth(&self, api_key: Option<&str>) -> Vec<(&'static str, String)> {
        match (api_key, self.0.auth) {
            (Some(key), Auth::Bearer) => vec![("authorization", format!("Bearer {key}"))],
            (Some(key), Auth::Header(name)) => vec![(name, key.to_owned())],
            (None, _) => Vec::new(),
        }
    }

    /// The request body in the vendor's dialect; what it cannot express is refused, never dropped.
    fn body(&self, target: &Target<'_>, request: &ChatRequest) -> Result<Map<String, Value>, TranslateError> {
        let dialect = self.0;
        let mut body = match serde_json::to_value(request) {
            Ok(Value::Object(map)) => map,
            _ => return Err(TranslateError::invalid("the request could not be re-encoded")),
        };
        body.insert("model".into(), Value::from((dialect.model)(target)));
        for field in dialect.rejected {
            match body.get(*field) {
                None => {}
                // A value that asks for nothing beyond the default (null, false, `n: 1`,
                // `parallel_tool_calls: true`) is dropped, not refused; `parallel_tool_calls: false`
                // asks for one call at a time, which the vendor cannot promise.
                Some(v) if asks_nothing(field, v) => {
                    body.remove(*field);
                }
                Some(_) => return Err(unsupported(dialect, field)),
            }
        }
        for (i, message) in body.get("messages").and_then(Value::as_array).into_iter().flatten().enumerate() {
            for field in dialect.rejected_in_messages {
                if message.get(*field).is_some() {
                    return Err(unsupported(dialect, &format!("messages[{i}].{field}")));
                }
            }
        }
        if dialect.single_choice && body.get("n").and_then(Value::as_u64).is_some_and(|n| n != 1) {
            return Err(unsupported(dialect, "n (other than 1)"));
        }
        // The OpenAI name wins when both are sent (`max_completion_tokens` over `max_tokens`).
        for (from, to) in dialect.renamed {
            if let Some(value) = body.remove(*from).filter(|v| !v.is_null()) {
                body.insert((*to).into(), value);
            }
        }
        if body.get("tool_choice").and_then(Value::as_str) == Some("required") {
            body.insert("tool_choice".into(), Value::from(dialect.required_tool_choice));
        }
        if !dialect.stream_options {
            // The vendor sends stream usage unasked; the gateway strips it unless the client asked.
            body.remove("stream_options");
        }
        Ok(body)
    }
}

impl ChatProvider for Compatible {
    fn chat_request(
        &self,
        ChatCall { target, request, api_key }: ChatCall<'_>,
    ) -> Result<http::Request<Bytes>, TranslateError> {
        let body = self.body(target, request)?;
        json_post(&self.0.endpoint(target, "chat/completions")?, target.provider, &self.auth(api_key), &body)
    }

    fn chat_response(&self, body: &[u8], _ctx: &ResponseContext) -> Result<Value, TranslateError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(mut v) if v.get("choices").is_some() => {
                normalize(&mut v);
                Ok(v)
            }
            _ => Err(TranslateError::malformed("the upstream's chat completion is not valid JSON with `choices`")),
        }
    }

    fn chat_stream(&self, _ctx: ResponseContext) -> Box<dyn ChatStreamTranslator> {
        Box::new(OpenAiStream::default())
    }

    fn error(&self, provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
        openai_style_error(provider_name, status, body)
    }

    fn offers(&self, op: Operation) -> bool {
        self.0.operations.contains(&op)
    }

    fn operation_request(
        &self,
        op: Operation,
        target: &Target<'_>,
        mut body: Map<String, Value>,
        api_key: Option<&str>,
    ) -> Option<Result<http::Request<Bytes>, TranslateError>> {
        if !self.offers(op) {
            return None;
        }
        body.insert("model".into(), Value::from((self.0.model)(target)));
        Some((|| json_post(&self.0.endpoint(target, op.path())?, target.provider, &self.auth(api_key), &body))())
    }

    fn upload_request(&self, op: Operation, target: &Target<'_>, api_key: Option<&str>) -> UploadHead {
        if !self.offers(op) {
            return None;
        }
        Some((|| {
            let head = super::post_head(&self.0.endpoint(target, op.path())?, target.provider, &self.auth(api_key))?;
            Ok((head, (self.0.model)(target)))
        })())
    }
}

/// Brings vendor dialects into OpenAI's shape, for a whole completion or one chunk: Groq's
/// `x_groq.usage` becomes `usage`; DeepSeek's `prompt_cache_hit_tokens` becomes
/// `prompt_tokens_details.cached_tokens`; Together's `eos` finish reason becomes `stop`; a
/// `reasoning` string (Groq, Together) becomes `reasoning_content`, as DeepSeek names it.
pub(crate) fn normalize(completion: &mut Value) {
    let Some(obj) = completion.as_object_mut() else { return };
    for choice in obj.get_mut("choices").and_then(Value::as_array_mut).into_iter().flatten() {
        if choice.get("finish_reason").and_then(Value::as_str) == Some("eos") {
            choice["finish_reason"] = Value::from("stop");
        }
        for key in ["message", "delta"] {
            if let Some(message) = choice.get_mut(key).and_then(Value::as_object_mut) {
                normalize_reasoning(message);
            }
        }
    }
    if !obj.get("usage").is_some_and(Value::is_object) {
        if let Some(usage) = groq_usage(obj) {
            obj.insert("usage".into(), usage);
        }
    }
    if let Some(usage) = obj.get_mut("usage").and_then(Value::as_object_mut) {
        cache_hits(usage);
    }
}

/// [`normalize`] for one chunk of a stream.
pub(crate) fn normalize_chunk(chunk: &mut ChatChunk) {
    for choice in &mut chunk.choices {
        if choice.finish_reason.as_deref() == Some("eos") {
            choice.finish_reason = Some("stop".into());
        }
        normalize_reasoning(&mut choice.delta);
    }
    if !chunk.usage.as_ref().is_some_and(Value::is_object) {
        if let Some(usage) = groq_usage(&mut chunk.rest) {
            chunk.usage = Some(usage);
        }
    }
    if let Some(usage) = chunk.usage.as_mut().and_then(Value::as_object_mut) {
        cache_hits(usage);
    }
}

/// A `reasoning` string becomes `reasoning_content`.
fn normalize_reasoning(message: &mut Map<String, Value>) {
    if message.contains_key("reasoning_content") {
        return;
    }
    if let Some(reasoning) = message.remove("reasoning") {
        let key = if reasoning.is_string() { "reasoning_content" } else { "reasoning" };
        message.insert(key.into(), reasoning);
    }
}

/// Groq's `x_groq.usage`, taken out to become `usage`.
fn groq_usage(object: &mut Map<String, Value>) -> Option<Value> {
    object.get_mut("x_groq")?.get_mut("usage").map(Value::take).filter(Value::is_object)
}

/// DeepSeek's `prompt_cache_hit_tokens` as `prompt_tokens_details.cached_tokens`.
fn cache_hits(usage: &mut Map<String, Value>) {
    if let Some(hit) = usage.get("prompt_cache_hit_tokens").and_then(Value::as_u64) {
        let details = usage.entry("prompt_tokens_details").or_insert_with(|| Value::Object(Map::new()));
        if let Some(details) = details.as_object_mut() {
            details.entry("cached_tokens").or_insert(Value::from(hit));
        }
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    param: Option<String>,
    code: Option<Value>,
}

/// Maps `{"error": {...}}` bodies (OpenAI and its compatible dialects) to an [`ApiError`].
pub(crate) fn openai_style_error(provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
    let Ok(ErrorEnvelope { error }) = serde_json::from_slice::<ErrorEnvelope>(body) else {
        return opaque_upstream_error(provider_name, status, body);
    };
    let message = error.message.unwrap_or_else(|| format!("provider `{provider_name}` answered HTTP {status}"));
    let mut err = ApiError::new(
        client_status(status),
        error.kind.unwrap_or_else(|| "upstream_error".into()),
        explain(provider_name, status, &message),
    );
    err.param = error.param;
    err.code = match error.code {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    err
}

/// Passes OpenAI chunks through, checking that the stream really completes.
#[derive(Default)]
struct OpenAiStream {
    parser: SseParser,
    finished: bool,
    ended: bool,
}

impl OpenAiStream {
    fn events(&mut self, events: Vec<crate::sse::SseEvent>) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        for event in events {
            if self.ended {
                break;
            }
            let data = event.data.trim();
            if data == "[DONE]" {
                self.ended = true;
                out.push(if self.finished { StreamEvent::Done } else { truncated() });
                continue;
            }
            match serde_json::from_str::<ChatChunk>(data) {
                Ok(chunk) if chunk.rest.contains_key("error") => {
                    let body = serde_json::to_vec(&chunk.rest).unwrap_or_default();
                    self.ended = true;
                    out.push(StreamEvent::Error(openai_style_error("upstream", StatusCode::BAD_GATEWAY, &body)));
                }
                Ok(mut chunk) => {
                    normalize_chunk(&mut chunk);
                    self.finished |= chunk.finishes();
                    out.push(StreamEvent::Chunk(chunk));
                }
                // An error object whose other fields do not read as a chunk's: still the upstream's error.
                Err(_) if serde_json::from_str::<Value>(data).is_ok_and(|v| v.get("error").is_some()) => {
                    self.ended = true;
                    let body = data.as_bytes();
                    out.push(StreamEvent::Error(openai_style_error("upstream", StatusCode::BAD_GATEWAY, body)));
                }
                Err(e) => {
                    self.ended = true;
                    out.push(StreamEvent::error(TranslateError::malformed(format!(
                        "the upstream sent a malformed stream chunk: {e}"
                    ))));
                }
            }
        }
        out
    }
}

fn truncated() -> StreamEvent {
    StreamEvent::Error(TranslateError::interrupted("the upstream stream ended before the completion finished").into())
}

impl ChatStreamTranslator for OpenAiStream {
    fn push(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        match self.parser.push(bytes) {
            Ok(events) => self.events(events),
            Err(e) if !self.ended => {
                self.ended = true;
                vec![StreamEvent::error(TranslateError::malformed(e.to_string()))]
            }
            Err(_) => Vec::new(),
        }
    }

    fn finish(mut self: Box<Self>) -> Vec<StreamEvent> {
        let parser = std::mem::take(&mut self.parser);
        let mut out = self.events(parser.finish());
        if !self.ended {
            out.push(truncated());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static OPENAI: Compatible = Compatible(&super::super::dialects::OPENAI);

    fn run(input: &[&[u8]]) -> Vec<StreamEvent> {
        let mut t: Box<dyn ChatStreamTranslator> = OPENAI.chat_stream(ResponseContext {
            created: 0,
            model: String::new(),
            fallback_id: String::new(),
            base64_embeddings: false,
            custom: None,
        });
        let mut out = Vec::new();
        for chunk in input {
            out.extend(t.push(chunk));
        }
        out.extend(t.finish());
        out
    }

    #[test]
    fn complete_stream_passes_chunks_and_done() {
        let out = run(&[
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        ]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2], StreamEvent::Done);
    }

    #[test]
    fn stream_cut_before_done_ends_with_an_error_event() {
        let out =
            run(&[b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n"]);
        assert!(matches!(out.last(), Some(StreamEvent::Error(e)) if e.code.as_deref() == Some("stream_interrupted")));
    }

    #[test]
    fn done_without_a_finish_reason_is_an_error() {
        let out = run(&[b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n"]);
        assert!(matches!(out.last(), Some(StreamEvent::Error(_))));
    }

    #[test]
    fn a_usage_null_on_every_chunk_is_passed_on_as_null_not_dropped() {
        let out = run(&[b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}],\"usage\":null}\n\n"]);
        let StreamEvent::Chunk(chunk) = &out[0] else { panic!("{out:?}") };
        assert_eq!(chunk.to_value()["usage"], Value::Null);
        assert!(chunk.to_value().as_object().unwrap().contains_key("usage"));
    }

    #[test]
    fn an_upstream_error_object_in_the_stream_keeps_its_words_even_beside_odd_fields() {
        let out =
            run(&[b"data: {\"choices\":5,\"error\":{\"message\":\"quota gone\",\"type\":\"insufficient_quota\"}}\n\n"]);
        assert!(matches!(&out[0], StreamEvent::Error(e) if e.message.contains("quota gone")), "{out:?}");
    }

    #[test]
    fn malformed_chunk_is_an_error_event() {
        let out = run(&[b"data: {not json\n\n"]);
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], StreamEvent::Error(e) if e.status == 502));
    }

    #[test]
    fn upstream_error_body_keeps_message_and_code() {
        let err = OPENAI.error(
            "openai",
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(err.status, 429);
        assert_eq!(err.message, "slow down");
        assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
    }

    #[test]
    fn upstream_auth_failure_is_a_502_naming_the_provider() {
        let err = OPENAI.error("openai", StatusCode::UNAUTHORIZED, br#"{"error":{"message":"bad key"}}"#);
        assert_eq!(err.status, 502);
        assert!(err.message.contains("rejected the gateway's credentials"));
    }

    fn provider(kind: &str, extra: serde_json::Value) -> crate::config::ProviderConfig {
        let mut doc = serde_json::json!({"type": kind});
        if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
            doc.extend(extra.clone());
        }
        serde_json::from_value(doc).unwrap()
    }

    fn request(body: serde_json::Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn build(
        kind: crate::config::ProviderType,
        config: &crate::config::ProviderConfig,
        model: &str,
        body: serde_json::Value,
    ) -> Result<(http::Request<Bytes>, Value), ApiError> {
        let target = Target { provider_name: "p", provider: config, model: model.into() };
        let req = crate::providers::chat_provider(kind).unwrap().chat_request(ChatCall {
            target: &target,
            request: &request(body),
            api_key: Some("k"),
        })?;
        let json = serde_json::from_slice(req.body()).unwrap();
        Ok((req, json))
    }

    use crate::config::ProviderType;
    use serde_json::json;

    #[test]
    fn groq_refuses_fields_it_cannot_take_naming_them() {
        let cfg = provider("groq", json!({}));
        let err = build(ProviderType::Groq, &cfg, "llama", json!({"model": "m", "messages": [], "logprobs": true}))
            .unwrap_err();
        assert_eq!((err.status.as_u16(), err.param.as_deref()), (400, Some("logprobs")));
        assert!(err.message.contains("groq"));
        let err = build(ProviderType::Groq, &cfg, "llama", json!({"model": "m", "n": 2, "messages": []})).unwrap_err();
        assert_eq!(err.status, 400);
        let err = build(
            ProviderType::Groq,
            &cfg,
            "l",
            json!({"model": "m", "messages": [{"role": "user", "content": "x", "name": "bob"}]}),
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].name"));
        let (req, _) = build(ProviderType::Groq, &cfg, "llama", json!({"model": "m", "messages": []})).unwrap();
        assert_eq!(req.uri(), "https://api.groq.com/openai/v1/chat/completions");
        assert_eq!(req.headers()["authorization"], "Bearer k");
    }

    #[test]
    fn mistral_renames_seed_and_required_and_drops_stream_options_it_would_reject() {
        let cfg = provider("mistral", json!({}));
        let body = json!({"model": "m", "messages": [], "seed": 4, "max_completion_tokens": 9, "tool_choice": "required",
                          "stream": true, "stream_options": {"include_usage": true}});
        let (req, sent) = build(ProviderType::Mistral, &cfg, "mistral-large", body).unwrap();
        assert_eq!(req.uri(), "https://api.mistral.ai/v1/chat/completions");
        assert_eq!(sent["random_seed"], 4);
        assert_eq!(sent["max_tokens"], 9);
        assert_eq!(sent["tool_choice"], "any");
        assert!(sent.get("seed").is_none() && sent.get("stream_options").is_none());
        assert_eq!(sent["model"], "mistral-large");
    }

    #[test]
    fn azure_uses_deployment_paths_with_api_version_or_the_v1_path_and_the_api_key_header() {
        let dated = provider(
            "azure",
            json!({"base_url": "https://res.openai.azure.com", "api_version": "2024-10-21",
                                              "deployments": {"gpt-4o": "prod-4o"}}),
        );
        let (req, sent) = build(ProviderType::Azure, &dated, "gpt-4o", json!({"model": "m", "messages": []})).unwrap();
        assert_eq!(
            req.uri(),
            "https://res.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(req.headers()["api-key"], "k");
        assert!(req.headers().get("authorization").is_none());
        assert_eq!(sent["model"], "prod-4o");
        let v1 = provider("azure", json!({"base_url": "https://res.openai.azure.com"}));
        let (req, sent) = build(ProviderType::Azure, &v1, "gpt-4o", json!({"model": "m", "messages": []})).unwrap();
        assert_eq!(req.uri(), "https://res.openai.azure.com/openai/v1/chat/completions");
        assert_eq!(sent["model"], "gpt-4o");
        let err = build(ProviderType::Azure, &dated, "../x", json!({"model": "m", "messages": []})).unwrap_err();
        assert_eq!(err.status, 400);
    }

    #[test]
    fn vendor_dialects_are_normalized_to_openai_shape() {
        let mut groq = json!({"choices": [{"index": 0, "delta": {"reasoning": "hmm"}, "finish_reason": null}],
                              "x_groq": {"usage": {"prompt_tokens": 3, "completion_tokens": 2}}});
        normalize(&mut groq);
        assert_eq!(groq["usage"]["prompt_tokens"], 3);
        assert_eq!(groq["choices"][0]["delta"]["reasoning_content"], "hmm");
        let mut deepseek = json!({"choices": [], "usage": {"prompt_tokens": 10, "prompt_cache_hit_tokens": 6}});
        normalize(&mut deepseek);
        assert_eq!(deepseek["usage"]["prompt_tokens_details"]["cached_tokens"], 6);
        let mut together = json!({"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "eos"}]});
        normalize(&mut together);
        assert_eq!(together["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn values_that_ask_for_nothing_are_dropped_and_the_openai_name_wins_a_rename() {
        let cfg = provider("mistral", json!({}));
        let body = json!({"model": "m", "messages": [], "logprobs": false, "store": null, "max_tokens": 5, "max_completion_tokens": 9});
        let (_, sent) = build(ProviderType::Mistral, &cfg, "m", body).unwrap();
        assert!(sent.get("logprobs").is_none() && sent.get("store").is_none());
        assert_eq!(sent["max_tokens"], 9);
        let cfg = provider("deepseek", json!({}));
        let (_, sent) =
            build(ProviderType::Deepseek, &cfg, "m", json!({"model": "m", "messages": [], "n": 1})).unwrap();
        assert!(sent.get("n").is_none());
    }
}
