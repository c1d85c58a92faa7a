//! Google Gemini API (`generateContent`, `streamGenerateContent?alt=sse`, `x-goog-api-key`).

mod request;
mod response;
mod stream;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::{join_url, json_post, ChatProvider, ChatStreamTranslator, ResponseContext, Target};
use crate::error::ApiError;
use crate::openai::ChatRequest;

pub use request::generate_content_body;
pub use stream::GeminiStream;

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

pub struct Gemini;

impl ChatProvider for Gemini {
    fn chat_request(
        &self,
        target: &Target<'_>,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<http::Request<Bytes>, ApiError> {
        if !target.model.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(
                ApiError::invalid_request(format!("`{}` is not a Gemini model id", target.model)).with_param("model")
            );
        }
        let body = serde_json::to_vec(&generate_content_body(request)?)
            .map_err(|e| ApiError::invalid_request(e.to_string()))?;
        let base = target.provider.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let path = if request.is_stream() {
            format!("v1beta/models/{}:streamGenerateContent?alt=sse", target.model)
        } else {
            format!("v1beta/models/{}:generateContent", target.model)
        };
        let auth: Vec<(&str, String)> = api_key.map(|k| ("x-goog-api-key", k.to_owned())).into_iter().collect();
        json_post(&join_url(base, &path), target.provider, &auth, body)
    }

    fn chat_response(&self, body: &[u8], ctx: &ResponseContext) -> Result<Value, ApiError> {
        response::chat_completion(body, ctx)
    }

    fn chat_stream(&self, ctx: ResponseContext) -> Box<dyn ChatStreamTranslator> {
        Box::new(GeminiStream::new(ctx))
    }

    fn error(&self, provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
        response::error(provider_name, status, body)
    }
}

#[cfg(test)]
mod tests;
