//! Ollama's native API (`/api/chat` with NDJSON streaming). No key by default (`api_key_secret`
//! sends `Authorization: Bearer` for a proxy in front); the base URL is configurable for
//! self-hosting.

mod request;
mod response;
mod stream;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::{join_url, json_post, ChatProvider, ChatStreamTranslator, ResponseContext, Target};
use crate::error::ApiError;
use crate::openai::ChatRequest;

pub use request::chat_body;
pub use stream::OllamaStream;

pub const DEFAULT_BASE_URL: &str = "http://localhost:11434";

pub struct Ollama;

impl ChatProvider for Ollama {
    fn chat_request(
        &self,
        target: &Target<'_>,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<http::Request<Bytes>, ApiError> {
        let body = serde_json::to_vec(&chat_body(request, &target.model)?)
            .map_err(|e| ApiError::invalid_request(e.to_string()))?;
        let base = target.provider.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let auth: Vec<(&str, String)> = api_key.map(|k| ("authorization", format!("Bearer {k}"))).into_iter().collect();
        json_post(&join_url(base, "api/chat"), target.provider, &auth, body)
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
}

#[cfg(test)]
mod tests;
