//! Ollama's native API (`/api/chat` with NDJSON streaming). No key by default (`api_key_secret`
//! sends `Authorization: Bearer` for a proxy in front); the base URL is configurable for
//! self-hosting.

mod request;
mod response;
mod stream;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{
    check_embedding_options, embedding_inputs, embedding_list, join_url, json_post, ChatCall, ChatProvider,
    ChatStreamTranslator, Operation, ResponseContext, Target,
};
use crate::error::ApiError;

pub use request::chat_body;
pub use stream::OllamaStream;

pub const DEFAULT_BASE_URL: &str = "http://localhost:11434";

pub struct Ollama;

impl ChatProvider for Ollama {
    fn chat_request(
        &self,
        ChatCall { target, request, api_key }: ChatCall<'_>,
    ) -> Result<http::Request<Bytes>, ApiError> {
        let body = chat_body(request, &target.model)?;
        let base = target.provider.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let auth: Vec<(&str, String)> = api_key.map(|k| ("authorization", format!("Bearer {k}"))).into_iter().collect();
        json_post(&join_url(base, "api/chat"), target.provider, &auth, &body)
    }

    fn chat_response(&self, body: &[u8], ctx: &ResponseContext) -> Result<Value, ApiError> {
        response::chat_completion(body, ctx)
    }

    fn chat_stream(&self, ctx: ResponseContext) -> Box<dyn ChatStreamTranslator> {
        Box::new(OllamaStream::new(ctx))
    }

    fn error(&self, provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
        response::error(provider_name, status, body)
    }

    fn offers(&self, op: Operation) -> bool {
        op == Operation::Embeddings
    }

    /// Embeddings through the native `/api/embed`.
    fn operation_request(
        &self,
        op: Operation,
        target: &Target<'_>,
        body: Map<String, Value>,
        api_key: Option<&str>,
    ) -> Option<Result<http::Request<Bytes>, ApiError>> {
        if !self.offers(op) {
            return None;
        }
        Some((|| {
            check_embedding_options("ollama", &body, &["dimensions"])?;
            let mut request = json!({"model": target.model, "input": embedding_inputs(&body)?});
            if let (Some(d), Some(obj)) = (body.get("dimensions"), request.as_object_mut()) {
                obj.insert("dimensions".into(), d.clone());
            }
            let body = request;
            let base = target.provider.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
            let auth: Vec<(&str, String)> =
                api_key.map(|k| ("authorization", format!("Bearer {k}"))).into_iter().collect();
            json_post(&join_url(base, "api/embed"), target.provider, &auth, &body)
        })())
    }

    fn operation_response(&self, op: Operation, body: &[u8], ctx: &ResponseContext) -> Option<Result<Value, ApiError>> {
        (op == Operation::Embeddings).then(|| {
            let parsed: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_gateway(format!("the upstream's /api/embed response is malformed: {e}")))?;
            let vectors = parsed
                .get("embeddings")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| ApiError::bad_gateway("the upstream's /api/embed response has no `embeddings`"))?;
            let model = parsed.get("model").and_then(Value::as_str).unwrap_or(&ctx.model);
            let tokens = parsed.get("prompt_eval_count").and_then(Value::as_u64).unwrap_or(0);
            Ok(embedding_list(model, vectors, tokens, ctx.base64_embeddings))
        })
    }
}

#[cfg(test)]
mod tests;
