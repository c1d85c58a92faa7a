//! Anthropic Messages API (`/v1/messages`, `x-api-key`, `anthropic-version`).

mod request;
mod response;
mod stream;

use bytes::Bytes;

use super::framed::Framed;
use super::native::{self, Native};
use super::ChatCall;
use crate::providers::TranslateError;

pub use request::{messages_body, DEFAULT_MAX_TOKENS};
pub use stream::AnthropicStream;

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const API_VERSION: &str = "2023-06-01";

/// Anthropic, as the functions of this folder.
pub(crate) static ANTHROPIC: Native = Native::new(
    chat_request,
    response::chat_completion,
    |ctx| Framed::boxed(AnthropicStream::new(ctx)),
    response::error,
);

fn chat_request(ChatCall { target, request, api_key }: ChatCall<'_>) -> Result<http::Request<Bytes>, TranslateError> {
    let body = messages_body(request, &target.model, target.provider.default_max_tokens)?;
    let mut auth = vec![("anthropic-version", API_VERSION.to_owned())];
    if let Some(key) = api_key {
        auth.push(("x-api-key", key.to_owned()));
    }
    native::post(target, DEFAULT_BASE_URL, "v1/messages", &auth, &body)
}

#[cfg(test)]
mod tests;
