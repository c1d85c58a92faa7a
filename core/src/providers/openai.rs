//! OpenAI Chat Completions upstream: the hub format, so requests pass through whole.

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::{
    client_status, explain, join_url, json_post, opaque_upstream_error, ChatProvider, ChatStreamTranslator,
    ResponseContext, StreamEvent, Target,
};
use crate::error::ApiError;
use crate::openai::ChatRequest;
use crate::sse::SseParser;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub struct OpenAi;

impl ChatProvider for OpenAi {
    fn chat_request(
        &self,
        target: &Target<'_>,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<http::Request<Bytes>, ApiError> {
        let mut upstream = request.clone();
        upstream.model = target.model.clone();
        let body = serde_json::to_vec(&upstream).map_err(|e| ApiError::invalid_request(e.to_string()))?;
        let base = target.provider.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let auth: Vec<(&str, String)> = api_key.map(|k| ("authorization", format!("Bearer {k}"))).into_iter().collect();
        json_post(&join_url(base, "chat/completions"), target.provider, &auth, body)
    }

    fn chat_response(&self, body: &[u8], _ctx: &ResponseContext) -> Result<Value, ApiError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) if v.get("choices").is_some() => Ok(v),
            _ => Err(ApiError::bad_gateway("the upstream's chat completion is not valid JSON with `choices`")),
        }
    }

    fn chat_stream(&self, _ctx: ResponseContext) -> Box<dyn ChatStreamTranslator> {
        Box::new(OpenAiStream::default())
    }

    fn error(&self, provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
        openai_style_error(provider_name, status, body)
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    param: Option<String>,
    code: Option<Value>,
}

/// Maps `{"error": {...}}` bodies (OpenAI and its compatible dialects) to an [`ApiError`].
pub(crate) fn openai_style_error(provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
    let Ok(ErrorEnvelope { error }) = serde_json::from_slice::<ErrorEnvelope>(body) else {
        return opaque_upstream_error(provider_name, status, body);
    };
    let message = error.message.unwrap_or_else(|| format!("provider `{provider_name}` answered HTTP {status}"));
    let mut err = ApiError::new(
        client_status(status),
        error.kind.unwrap_or_else(|| "upstream_error".into()),
        explain(provider_name, status, &message),
    );
    err.param = error.param;
    err.code = match error.code {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    err
}

/// Passes OpenAI chunks through, checking that the stream really completes.
#[derive(Default)]
struct OpenAiStream {
    parser: SseParser,
    finished: bool,
    ended: bool,
}

impl OpenAiStream {
    fn events(&mut self, events: Vec<crate::sse::SseEvent>) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        for event in events {
            if self.ended {
                break;
            }
            let data = event.data.trim();
            if data == "[DONE]" {
                self.ended = true;
                out.push(if self.finished { StreamEvent::Done } else { truncated() });
                continue;
            }
            match serde_json::from_str::<Value>(data) {
                Ok(chunk) if chunk.get("error").is_some() => {
                    let body = serde_json::to_vec(&chunk).unwrap_or_default();
                    self.ended = true;
                    out.push(StreamEvent::Error(openai_style_error("upstream", StatusCode::BAD_GATEWAY, &body)));
                }
                Ok(chunk) => {
                    let finishes = chunk
                        .get("choices")
                        .and_then(Value::as_array)
                        .is_some_and(|cs| cs.iter().any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null())));
                    self.finished |= finishes;
                    out.push(StreamEvent::Chunk(chunk));
                }
                Err(e) => {
                    self.ended = true;
                    out.push(StreamEvent::Error(ApiError::bad_gateway(format!(
                        "the upstream sent a malformed stream chunk: {e}"
                    ))));
                }
            }
        }
        out
    }
}

fn truncated() -> StreamEvent {
    StreamEvent::Error(
        ApiError::bad_gateway("the upstream stream ended before the completion finished")
            .with_code("stream_interrupted"),
    )
}

impl ChatStreamTranslator for OpenAiStream {
    fn push(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        match self.parser.push(bytes) {
            Ok(events) => self.events(events),
            Err(e) if !self.ended => {
                self.ended = true;
                vec![StreamEvent::Error(ApiError::bad_gateway(e.to_string()))]
            }
            Err(_) => Vec::new(),
        }
    }

    fn finish(mut self: Box<Self>) -> Vec<StreamEvent> {
        let parser = std::mem::take(&mut self.parser);
        let mut out = self.events(parser.finish());
        if !self.ended {
            out.push(truncated());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[&[u8]]) -> Vec<StreamEvent> {
        let mut t: Box<dyn ChatStreamTranslator> =
            OpenAi.chat_stream(ResponseContext { created: 0, include_usage: false });
        let mut out = Vec::new();
        for chunk in input {
            out.extend(t.push(chunk));
        }
        out.extend(t.finish());
        out
    }

    #[test]
    fn complete_stream_passes_chunks_and_done() {
        let out = run(&[
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        ]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2], StreamEvent::Done);
    }

    #[test]
    fn stream_cut_before_done_ends_with_an_error_event() {
        let out =
            run(&[b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n"]);
        assert!(matches!(out.last(), Some(StreamEvent::Error(e)) if e.code.as_deref() == Some("stream_interrupted")));
    }

    #[test]
    fn done_without_a_finish_reason_is_an_error() {
        let out = run(&[b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n"]);
        assert!(matches!(out.last(), Some(StreamEvent::Error(_))));
    }

    #[test]
    fn malformed_chunk_is_an_error_event() {
        let out = run(&[b"data: {not json\n\n"]);
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], StreamEvent::Error(e) if e.status == 502));
    }

    #[test]
    fn upstream_error_body_keeps_message_and_code() {
        let err = OpenAi.error(
            "openai",
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(err.status, 429);
        assert_eq!(err.message, "slow down");
        assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
    }

    #[test]
    fn upstream_auth_failure_is_a_502_naming_the_provider() {
        let err = OpenAi.error("openai", StatusCode::UNAUTHORIZED, br#"{"error":{"message":"bad key"}}"#);
        assert_eq!(err.status, 502);
        assert!(err.message.contains("rejected the gateway's credentials"));
    }
}
