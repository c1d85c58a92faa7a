//! Google Gemini API (`generateContent`, `streamGenerateContent?alt=sse`, `x-goog-api-key`).

mod request;
mod response;
mod stream;

use bytes::Bytes;
use serde_json::{json, Value};

use super::framed::Framed;
use super::native::{self, EmbeddingsCall, Native, NativeEmbeddings};
use super::{check_embedding_options, embedding_inputs, embedding_list, ChatCall, ResponseContext, Target};
use crate::providers::TranslateError;

pub use request::generate_content_body;
pub use stream::GeminiStream;

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// Gemini, as the functions of this folder; embeddings through `batchEmbedContents`.
pub(crate) static GEMINI: Native = Native {
    request: chat_request,
    response: response::chat_completion,
    stream: |ctx| Framed::boxed(GeminiStream::new(ctx)),
    error: response::error,
    embeddings: Some(NativeEmbeddings { request: embeddings_request, response: embeddings_response }),
};

fn chat_request(ChatCall { target, request, api_key }: ChatCall<'_>) -> Result<http::Request<Bytes>, TranslateError> {
    check_model(&target.model)?;
    let body = generate_content_body(request)?;
    let path = if request.is_stream() {
        format!("v1beta/models/{}:streamGenerateContent?alt=sse", target.model)
    } else {
        format!("v1beta/models/{}:generateContent", target.model)
    };
    post(target, &path, api_key, &body)
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
    post(target, &path, api_key, &json!({"requests": requests}))
}

fn embeddings_response(body: &[u8], ctx: &ResponseContext) -> Result<Value, TranslateError> {
    let (_, embeddings) = native::embeddings_answer(body, "batchEmbedContents")?;
    let vectors =
        embeddings.into_iter().map(|mut e| e.get_mut("values").map(Value::take).unwrap_or(Value::Array(Vec::new())));
    Ok(embedding_list(&ctx.model, vectors.collect(), 0, ctx.base64_embeddings))
}

/// A POST to `path` under the provider's base URL, with the key as `x-goog-api-key`.
fn post(
    target: &Target<'_>,
    path: &str,
    api_key: Option<&str>,
    body: &Value,
) -> Result<http::Request<Bytes>, TranslateError> {
    let auth: Vec<(&str, String)> = api_key.map(|k| ("x-goog-api-key", k.to_owned())).into_iter().collect();
    native::post(target, DEFAULT_BASE_URL, path, &auth, body)
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
