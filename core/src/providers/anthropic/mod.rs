//! Anthropic Messages API (`/v1/messages`, `x-api-key`, `anthropic-version`).

mod request;
mod response;
mod stream;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::{join_url, json_post, ChatCall, ChatProvider, ChatStreamTranslator, ResponseContext};
use crate::error::ApiError;

pub use request::{messages_body, DEFAULT_MAX_TOKENS};
pub use stream::AnthropicStream;

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const API_VERSION: &str = "2023-06-01";

pub struct Anthropic;

impl ChatProvider for Anthropic {
    fn chat_request(
        &self,
        ChatCall { target, request, api_key }: ChatCall<'_>,
    ) -> Result<http::Request<Bytes>, ApiError> {
        let body = messages_body(request, &target.model, target.provider.default_max_tokens)?;
        let base = target.provider.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let mut auth = vec![("anthropic-version", API_VERSION.to_owned())];
        if let Some(key) = api_key {
            auth.push(("x-api-key", key.to_owned()));
        }
        json_post(&join_url(base, "v1/messages"), target.provider, &auth, &body)
    }

    fn chat_response(&self, body: &[u8], ctx: &ResponseContext) -> Result<Value, ApiError> {
        response::chat_completion(body, ctx)
    }

    fn chat_stream(&self, ctx: ResponseContext) -> Box<dyn ChatStreamTranslator> {
        Box::new(AnthropicStream::new(ctx))
    }

    fn error(&self, provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
        response::error(provider_name, status, body)
    }
}

#[cfg(test)]
mod tests;
