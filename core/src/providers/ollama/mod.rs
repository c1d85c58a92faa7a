//! Ollama's native API (`/api/chat` with NDJSON streaming). No key by default (`api_key_secret`
//! sends `Authorization: Bearer` for a proxy in front); the base URL is configurable for
//! self-hosting.

mod request;
mod response;
mod stream;

use bytes::Bytes;
use serde_json::{json, Value};

use super::framed::Framed;
use super::native::{self, EmbeddingsCall, Native};
use super::{check_embedding_options, embedding_inputs, embedding_list, ChatCall, ResponseContext};
use crate::providers::TranslateError;

pub use request::chat_body;
pub use stream::OllamaStream;

pub const DEFAULT_BASE_URL: &str = "http://localhost:11434";

/// Ollama's native API, as the functions of this folder; embeddings through `/api/embed`.
pub(crate) static OLLAMA: Native =
    Native::new(chat_request, response::chat_completion, |ctx| Framed::boxed(OllamaStream::new(ctx)), response::error)
        .with_embeddings(embeddings_request, embeddings_response);

fn chat_request(ChatCall { target, request, api_key }: ChatCall<'_>) -> Result<http::Request<Bytes>, TranslateError> {
    native::post(target, DEFAULT_BASE_URL, "api/chat", &key(api_key), &chat_body(request, &target.model)?)
}

fn embeddings_request(
    EmbeddingsCall { target, body, api_key }: EmbeddingsCall<'_>,
) -> Result<http::Request<Bytes>, TranslateError> {
    check_embedding_options("ollama", body, &["dimensions"])?;
    let mut request = json!({"model": target.model, "input": embedding_inputs(body)?});
    if let (Some(d), Some(obj)) = (body.get("dimensions"), request.as_object_mut()) {
        obj.insert("dimensions".into(), d.clone());
    }
    native::post(target, DEFAULT_BASE_URL, "api/embed", &key(api_key), &request)
}

fn embeddings_response(body: &[u8], ctx: &ResponseContext) -> Result<Value, TranslateError> {
    let (parsed, vectors) = native::embeddings_answer(body, "/api/embed")?;
    let model = parsed.get("model").and_then(Value::as_str).unwrap_or(&ctx.model);
    let tokens = parsed.get("prompt_eval_count").and_then(Value::as_u64).unwrap_or(0);
    Ok(embedding_list(model, vectors, tokens, ctx.base64_embeddings))
}

/// The key's header, when there is a key (a proxy in front): a bearer token.
fn key(api_key: Option<&str>) -> Vec<(&'static str, String)> {
    api_key.map(|k| ("authorization", format!("Bearer {k}"))).into_iter().collect()
}

#[cfg(test)]
mod tests;
