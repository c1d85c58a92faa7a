//! Google Gemini API (`generateContent`, `streamGenerateContent?alt=sse`, `x-goog-api-key`).

mod request;
mod response;
mod stream;

use bytes::Bytes;
use serde_json::{json, Value};

use super::framed::Framed;
use super::native::{self, EmbeddingsCall, Native};
use super::{check_embedding_options, embedding_inputs, embedding_list, ChatCall, ResponseContext};
use crate::providers::TranslateError;

pub use request::generate_content_body;
pub use stream::GeminiStream;

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// Gemini, as the functions of this folder; embeddings through `batchEmbedContents`.
pub(crate) static GEMINI: Native =
    Native::new(chat_request, response::chat_completion, |ctx| Framed::boxed(GeminiStream::new(ctx)), response::error)
        .with_embeddings(embeddings_request, embeddings_response);

fn chat_request(ChatCall { target, request, api_key }: ChatCall<'_>) -> Result<http::Request<Bytes>, TranslateError> {
    check_model(&target.model)?;
    let body = generate_content_body(request)?;
    let path = if request.is_stream() {
        format!("v1beta/models/{}:streamGenerateContent?alt=sse", target.model)
    } else {
        format!("v1beta/models/{}:generateContent", target.model)
    };
    native::post(target, DEFAULT_BASE_URL, &path, &key(api_key), &body)
}

/// Embeddings through `batchEmbedContents` (one request per input).
fn embeddings_request(
    EmbeddingsCall { target, body, api_key }: EmbeddingsCall<'_>,
) -> Result<http::Request<Bytes>, TranslateError> {
    check_model(&target.model)?;
    check_embedding_options("gemini", body, &["dimensions"])?;
    let dimensions = body.get("dimensions").cloned();
    let requests: Vec<Value> = embedding_inputs(body)?
        .into_iter()
        .map(|text| {
            let mut request =
                json!({"model": format!("models/{}", target.model), "content": {"parts": [{"text": text}]}});
            if let (Some(d), Some(obj)) = (&dimensions, request.as_object_mut()) {
                obj.insert("outputDimensionality".into(), d.clone());
            }
            request
        })
        .collect();
    let path = format!("v1beta/models/{}:batchEmbedContents", target.model);
    native::post(target, DEFAULT_BASE_URL, &path, &key(api_key), &json!({"requests": requests}))
}

fn embeddings_response(body: &[u8], ctx: &ResponseContext) -> Result<Value, TranslateError> {
    let (_, embeddings) = native::embeddings_answer(body, "batchEmbedContents")?;
    let vectors =
        embeddings.into_iter().map(|mut e| e.get_mut("values").map(Value::take).unwrap_or(Value::Array(Vec::new())));
    Ok(embedding_list(&ctx.model, vectors.collect(), 0, ctx.base64_embeddings))
}

/// The key's header: `x-goog-api-key`.
fn key(api_key: Option<&str>) -> Vec<(&'static str, String)> {
    api_key.map(|k| ("x-goog-api-key", k.to_owned())).into_iter().collect()
}

fn check_model(model: &str) -> Result<(), TranslateError> {
    if model.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        Ok(())
    } else {
        Err(TranslateError::invalid(format!("`{model}` is not a Gemini model id")).with_param("model"))
    }
}

#[cfg(test)]
mod tests;
