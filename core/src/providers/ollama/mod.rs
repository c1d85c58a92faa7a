//! Ollama's native API (`/api/chat` with NDJSON streaming). No key by default (`api_key_secret`
//! sends `Authorization: Bearer` for a proxy in front); the base URL is configurable for
//! self-hosting.

mod request;
mod response;
mod stream;

use bytes::Bytes;
use serde_json::{json, Value};

use super::framed::Framed;
use super::native::{self, EmbeddingsCall, Native, NativeEmbeddings};
use super::{check_embedding_options, embedding_inputs, embedding_list, ChatCall, ResponseContext, Target};
use crate::providers::TranslateError;

pub use request::chat_body;
pub use stream::OllamaStream;

pub const DEFAULT_BASE_URL: &str = "http://localhost:11434";

/// Ollama's native API, as the functions of this folder; embeddings through `/api/embed`.
pub(crate) static OLLAMA: Native = Native {
    request: chat_request,
    response: response::chat_completion,
    stream: |ctx| Framed::boxed(OllamaStream::new(ctx)),
    error: response::error,
    embeddings: Some(NativeEmbeddings { request: embeddings_request, response: embeddings_response }),
};

fn chat_request(ChatCall { target, request, api_key }: ChatCall<'_>) -> Result<http::Request<Bytes>, TranslateError> {
    post(target, "api/chat", api_key, &chat_body(request, &target.model)?)
}

fn embeddings_request(
    EmbeddingsCall { target, body, api_key }: EmbeddingsCall<'_>,
) -> Result<http::Request<Bytes>, TranslateError> {
    check_embedding_options("ollama", body, &["dimensions"])?;
    let mut request = json!({"model": target.model, "input": embedding_inputs(body)?});
    if let (Some(d), Some(obj)) = (body.get("dimensions"), request.as_object_mut()) {
        obj.insert("dimensions".into(), d.clone());
    }
    post(target, "api/embed", api_key, &request)
}

fn embeddings_response(body: &[u8], ctx: &ResponseContext) -> Result<Value, TranslateError> {
    let (parsed, vectors) = native::embeddings_answer(body, "/api/embed")?;
    let model = parsed.get("model").and_then(Value::as_str).unwrap_or(&ctx.model);
    let tokens = parsed.get("prompt_eval_count").and_then(Value::as_u64).unwrap_or(0);
    Ok(embedding_list(model, vectors, tokens, ctx.base64_embeddings))
}

/// A POST to `path` under the provider's base URL, with the key (if any) as a bearer token.
fn post(
    target: &Target<'_>,
    path: &str,
    api_key: Option<&str>,
    body: &Value,
) -> Result<http::Request<Bytes>, TranslateError> {
    let auth: Vec<(&str, String)> = api_key.map(|k| ("authorization", format!("Bearer {k}"))).into_iter().collect();
    native::post(target, DEFAULT_BASE_URL, path, &auth, body)
}

#[cfg(test)]
mod tests;
