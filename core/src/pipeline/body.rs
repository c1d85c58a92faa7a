//! Reading and writing bodies, shared by every endpoint: a bounded wait, a body read whole within
//! a size and an idle limit (the client's, with its 413 and 408), a JSON response.

use std::future::Future;

use bytes::Bytes;
use futures::future::{select, Either};
use http::{HeaderValue, StatusCode};

use crate::config::Config;
use crate::error::{ApiError, ErrorClass, PhaseError};
use crate::host::{Body, Host};

/// Resolves `fut`, or `None` once `millis` have passed.
pub(crate) async fn with_timeout<H: Host, F: Future>(host: &H, millis: u64, fut: F) -> Option<F::Output> {
    let sleep = host.sleep(millis);
    futures::pin_mut!(fut, sleep);
    match select(fut, sleep).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(_) => None,
    }
}

/// Why a body could not be read whole.
pub(crate) enum ReadError {
    /// Larger than allowed.
    TooLarge,
    /// The body broke off.
    Broken(String),
    /// No chunk arrived within the idle timeout.
    Stalled,
}

/// Reads a whole body, bounded in size and in the silence allowed between two chunks.
pub(crate) async fn read_whole<H: Host>(host: &H, body: Body, limit: usize, idle_ms: u64) -> Result<Bytes, ReadError> {
    use futures::StreamExt;
    let mut stream = match body {
        Body::Full(bytes) if bytes.len() > limit => return Err(ReadError::TooLarge),
        Body::Full(bytes) => return Ok(bytes),
        Body::Stream(stream) => stream,
    };
    let mut buf = Vec::new();
    loop {
        match with_timeout(host, idle_ms, stream.next()).await {
            None => return Err(ReadError::Stalled),
            Some(None) => return Ok(Bytes::from(buf)),
            Some(Some(Err(e))) => return Err(ReadError::Broken(e.to_string())),
            Some(Some(Ok(chunk))) => {
                if buf.len() + chunk.len() > limit {
                    return Err(ReadError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> http::Response<Body> {
    let mut response = http::Response::new(Body::Full(Bytes::from(serde_json::to_vec(body).unwrap_or_default())));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Why a client's request body could not be read: the client's to mend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestBodyError {
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the request body could not be read: {0}")]
    Broken(String),
    #[error("the request body stalled for more than {0} ms")]
    Stalled(u64),
}

impl PhaseError for RequestBodyError {
    fn class(&self) -> ErrorClass {
        match self {
            RequestBodyError::TooLarge(_) => ErrorClass::TOO_LARGE,
            RequestBodyError::Broken(_) => ErrorClass::INVALID_REQUEST,
            RequestBodyError::Stalled(_) => ErrorClass::STALLED,
        }
    }
}

/// Why a request body, read, is not a request the endpoint takes: the client's, a 400 naming the
/// field where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("request body is not a valid chat completion request: {0}")]
    NotAChatRequest(String),
    #[error("invalid `{path}`: {why}")]
    InvalidField { path: String, why: String },
    #[error("request body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("`{0}` is required")]
    Required(&'static str),
    #[error("`{0}` must be a string")]
    NotAString(&'static str),
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
}

impl PhaseError for RequestError {
    fn class(&self) -> ErrorClass {
        ErrorClass::INVALID_REQUEST
    }
    fn param(&self) -> Option<String> {
        match self {
            RequestError::InvalidField { path, .. } => Some(path.clone()),
            RequestError::Required(field) | RequestError::NotAString(field) | RequestError::Empty(field) => {
                Some((*field).to_owned())
            }
            _ => None,
        }
    }
}

/// Reads a request body, refusing more than `limits.max_request_bytes` (413) before reading it all.
pub(crate) async fn read_body<H: Host>(
    host: &H,
    config: &Config,
    parts: &http::request::Parts,
    body: Body,
) -> Result<Bytes, ApiError> {
    let limit = config.limits.max_request_bytes;
    let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(RequestBodyError::TooLarge(limit).into());
    }
    let read = read_whole(host, body, limit, config.timeouts.idle_ms).await.map_err(|e| match e {
        ReadError::TooLarge => RequestBodyError::TooLarge(limit),
        ReadError::Broken(e) => RequestBodyError::Broken(e.to_string()),
        ReadError::Stalled => RequestBodyError::Stalled(config.timeouts.idle_ms),
    });
    Ok(read?)
}

/// How an upstream body was being read when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Passed to the client as it came: the failure ends the client's stream.
    Stream,
    /// Read whole before anything reached the client: the failure may be retried.
    Whole,
}

/// Why an upstream gave no usable answer: the upstream's fault, but for the runtime refusing
/// to send (the gateway's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("provider `{provider}` sent no response within {ms} ms")]
    NoResponse { provider: String, ms: u64 },
    #[error("cannot reach provider `{provider}`: {detail}")]
    Unreachable { provider: String, detail: String },
    #[error("the runtime refused the request to provider `{0}`")]
    RuntimeRefused(String),
    #[error("the upstream response exceeds {0} bytes")]
    TooLarge(usize),
    #[error("a streamed upload cannot be sent twice")]
    UploadSpent,
    #[error("the upload streamed to an earlier target; it cannot be sent again")]
    UploadStreamedEarlier,
    /// The body broke off: `detail` is the runtime's fixed words for it.
    #[error("the upstream {} broke off: {detail}", reading_name(*.reading))]
    BrokeOff { reading: Reading, detail: String },
    #[error("the upstream {} stalled for more than {ms} ms", stalled_name(*.reading))]
    Stalled { reading: Reading, ms: u64 },
}

fn reading_name(reading: Reading) -> &'static str {
    match reading {
        Reading::Stream => "stream",
        Reading::Whole => "response",
    }
}

fn stalled_name(reading: Reading) -> &'static str {
    match reading {
        Reading::Stream => "stream",
        Reading::Whole => "response body",
    }
}

impl PhaseError for UpstreamError {
    fn class(&self) -> ErrorClass {
        match self {
            UpstreamError::RuntimeRefused(_) => ErrorClass::gateway("gateway_unavailable"),
            UpstreamError::NoResponse { .. } | UpstreamError::Stalled { reading: Reading::Whole, .. } => {
                ErrorClass::upstream(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
            }
            UpstreamError::Stalled { reading: Reading::Stream, .. } => {
                ErrorClass::upstream(StatusCode::GATEWAY_TIMEOUT, "stream_timeout")
            }
            UpstreamError::BrokeOff { reading: Reading::Stream, .. } => {
                ErrorClass::upstream(StatusCode::BAD_GATEWAY, "stream_interrupted")
            }
            _ => ErrorClass::upstream(StatusCode::BAD_GATEWAY, "upstream_error"),
        }
    }
}

/// The one mapping from an upstream body's fault to the client's error: `broken` is the
/// runtime's fixed words for a break (`None`: nothing arrived within `idle_ms`).
pub(crate) fn upstream_fault(reading: Reading, broken: Option<&dyn std::fmt::Display>, idle_ms: u64) -> ApiError {
    match broken {
        Some(e) => UpstreamError::BrokeOff { reading, detail: e.to_string() }.into(),
        None => UpstreamError::Stalled { reading, ms: idle_ms }.into(),
    }
}
