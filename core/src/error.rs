//! Errors as clients of LLM endpoints expect them: `{"error": {"message", "type", "param", "code"}}`.

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

use crate::host::Body;

/// Who a failure is down to; recorded on the trace (`gateway.error.blame`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Client,
    Upstream,
    Gateway,
}

impl Blame {
    pub fn as_str(self) -> &'static str {
        match self {
            Blame::Client => "client",
            Blame::Upstream => "upstream",
            Blame::Gateway => "gateway",
        }
    }
}

/// What a phase of the pipeline failed with, in its own terms (`auth::AuthError`,
/// `pipeline::resolve::ResolveError`, ...): each knows its status and who is to blame. Its shape
/// on the wire is made in one place, the conversion into [`ApiError`] below; the MCP proxy's
/// JSON-RPC shape is made from that (`pipeline::mcp::api_error`).
pub trait PhaseError: std::fmt::Display {
    fn class(&self) -> ErrorClass;
    /// The request field it is about, if any.
    fn param(&self) -> Option<String> {
        None
    }
    /// Headers the client gets with it (`retry-after`, `x-ratelimit-*`).
    fn headers(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// A failure's class: its status, who is to blame, and OpenAI's `type` and `code` for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorClass {
    pub status: StatusCode,
    pub blame: Blame,
    pub kind: &'static str,
    pub code: Option<&'static str>,
}

impl ErrorClass {
    /// The client's to mend.
    pub const fn client(status: StatusCode, kind: &'static str, code: Option<&'static str>) -> Self {
        ErrorClass { status, blame: Blame::Client, kind, code }
    }

    /// A malformed or unacceptable request: 400 `invalid_request_error`.
    pub const INVALID_REQUEST: ErrorClass = ErrorClass::client(StatusCode::BAD_REQUEST, "invalid_request_error", None);

    /// A body larger than allowed: 413 `request_too_large`.
    pub const TOO_LARGE: ErrorClass =
        ErrorClass::client(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", Some("request_too_large"));

    /// A body that stalled on the client's side: 408 `request_timeout`.
    pub const STALLED: ErrorClass =
        ErrorClass::client(StatusCode::REQUEST_TIMEOUT, "invalid_request_error", Some("request_timeout"));

    /// The upstream's: `upstream_error`.
    pub const fn upstream(status: StatusCode, code: &'static str) -> Self {
        ErrorClass { status, blame: Blame::Upstream, kind: "upstream_error", code: Some(code) }
    }

    /// The gateway's own: 503 `gateway_error`.
    pub const fn gateway(code: &'static str) -> Self {
        ErrorClass {
            status: StatusCode::SERVICE_UNAVAILABLE,
            blame: Blame::Gateway,
            kind: "gateway_error",
            code: Some(code),
        }
    }
}

impl<E: PhaseError> From<E> for ApiError {
    fn from(error: E) -> Self {
        let ErrorClass { status, blame, kind, code } = error.class();
        ApiError {
            status,
            message: error.to_string(),
            kind: Cow::Borrowed(kind),
            param: error.param(),
            code: code.map(str::to_owned),
            headers: error.headers().into_boxed_slice(),
            blame,
        }
    }
}

/// An error answered in the OpenAI error shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`, e.g. `invalid_request_error`.
    pub kind: Cow<'static, str>,
    pub param: Option<String>,
    pub code: Option<String>,
    /// Headers sent with the error (`retry-after` and `x-ratelimit-*` on a 429).
    pub headers: Box<[(&'static str, String)]>,
    /// Who it is down to: said by the phase that failed, or by the constructor used.
    pub blame: Blame,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        let kind = kind.into();
        let blame = match &*kind {
            "upstream_error" => Blame::Upstream,
            "gateway_error" => Blame::Gateway,
            _ if status.is_server_error() => Blame::Upstream,
            _ => Blame::Client,
        };
        ApiError { status, message: message.into(), kind, param: None, code: None, headers: Box::default(), blame }
    }

    /// The same error, put down to `blame`.
    #[must_use]
    pub fn blamed(mut self, blame: Blame) -> Self {
        self.blame = blame;
        self
    }

    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Adds (or replaces) a header sent with the error.
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        let mut headers: Vec<_> = std::mem::take(&mut self.headers).into_vec();
        headers.retain(|(n, _)| *n != name);
        headers.push((name, value));
        self.headers = headers.into_boxed_slice();
        self
    }

    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    #[must_use]
    pub fn with_headers(mut self, headers: Vec<(&'static str, String)>) -> Self {
        self.headers = headers.into_boxed_slice();
        self
    }

    /// A malformed or unacceptable request (400).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// No or wrong gateway key (401).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message).with_code("invalid_api_key")
    }

    /// Unknown path (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message).with_code("not_found")
    }

    /// The gateway itself cannot serve (missing configuration or secret): 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "gateway_error", message).with_code("gateway_unavailable")
    }

    /// The upstream could not be reached or answered nonsense (502).
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message).with_code("upstream_error")
    }

    pub fn blame(&self) -> Blame {
        self.blame
    }

    /// The JSON body `{"error": {...}}`.
    pub fn to_json(&self) -> Bytes {
        let body = ErrorBody {
            error: ErrorFields {
                message: &self.message,
                kind: &self.kind,
                param: self.param.as_deref(),
                code: self.code.as_deref(),
            },
        };
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The complete HTTP response.
    pub fn into_response(self) -> http::Response<Body> {
        let mut response = http::Response::new(Body::Full(self.to_json()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        insert_headers(response.headers_mut(), &self.headers);
        response
    }
}

/// Sets each `(name, value)` on a header map (a value that is not a valid header is left out).
pub fn insert_headers(headers: &mut http::HeaderMap, pairs: &[(&'static str, String)]) {
    for (name, value) in pairs {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_serializes_in_the_openai_shape() {
        let err = ApiError::invalid_request("bad").with_param("messages");
        let v: serde_json::Value = serde_json::from_slice(&err.to_json()).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "bad", "type": "invalid_request_error", "param": "messages", "code": null}})
        );
    }
}
