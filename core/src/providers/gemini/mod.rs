//! Google Gemini API (`generateContent`, `streamGenerateContent?alt=sse`, `x-goog-api-key`).

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

pub use request::generate_content_body;
pub use stream::GeminiStream;

pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

pub struct Gemini;

impl ChatProvider for Gemini {
    fn chat_request(
        &self,
        ChatCall { target, request, api_key }: ChatCall<'_>,
    ) -> Result<http::Request<Bytes>, ApiError> {
        check_model(&target.model)?;
        let body = generate_content_body(request)?;
        let base = target.provider.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let path = if request.is_stream() {
            format!("v1beta/models/{}:streamGenerateContent?alt=sse", target.model)
        } else {
            format!("v1beta/models/{}:generateContent", target.model)
        };
        let auth: Vec<(&str, String)> = api_key.map(|k| ("x-goog-api-key", k.to_owned())).into_iter().collect();
        json_post(&join_url(base, &path), target.provider, &auth, &body)
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

    fn offers(&self, op: Operation) -> bool {
        op == Operation::Embeddings
    }

    /// Embeddings through `batchEmbedContents` (one request per input).
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
            check_model(&target.model)?;
            check_embedding_options("gemini", &body, &["dimensions"])?;
            let dimensions = body.get("dimensions").cloned();
            let requests: Vec<Value> = embedding_inputs(&body)?
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
            let body = json!({"requests": requests});
            let base = target.provider.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
            let url = join_url(base, &format!("v1beta/models/{}:batchEmbedContents", target.model));
            let auth: Vec<(&str, String)> = api_key.map(|k| ("x-goog-api-key", k.to_owned())).into_iter().collect();
            json_post(&url, target.provider, &auth, &body)
        })())
    }

    fn operation_response(&self, op: Operation, body: &[u8], ctx: &ResponseContext) -> Option<Result<Value, ApiError>> {
        (op == Operation::Embeddings).then(|| {
            let parsed: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_gateway(format!("the upstream's batchEmbedContents response is malformed: {e}"))
            })?;
            let vectors = parsed
                .get("embeddings")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiError::bad_gateway("the upstream's batchEmbedContents response has no `embeddings`"))?
                .iter()
                .map(|e| e.get("values").cloned().unwrap_or(Value::Array(Vec::new())))
                .collect();
            Ok(embedding_list(&ctx.model, vectors, 0, ctx.base64_embeddings))
        })
    }
}

fn check_model(model: &str) -> Result<(), ApiError> {
    if model.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        Ok(())
    } else {
        Err(ApiError::invalid_request(format!("`{model}` is not a Gemini model id")).with_param("model"))
    }
}

#[cfg(test)]
mod tests;
