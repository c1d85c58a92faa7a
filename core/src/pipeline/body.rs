//! Reading and writing bodies, shared by every endpoint: a bounded wait, a body read whole within
//! a size and an idle limit (the client's, with its 413 and 408), a JSON response.

use std::future::Future;

use bytes::Bytes;
use futures::future::{select, Either};
use http::{HeaderValue, StatusCode};

use crate::config::Config;
use crate::error::ApiError;
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

/// Reads a request body, refusing more than `limits.max_request_bytes` (413) before reading it all.
pub(crate) async fn read_body<H: Host>(
    host: &H,
    config: &Config,
    parts: &http::request::Parts,
    body: Body,
) -> Result<Bytes, ApiError> {
    let limit = config.limits.max_request_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("request body exceeds {limit} bytes"),
        )
        .with_code("request_too_large")
    };
    let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    read_whole(host, body, limit, config.timeouts.idle_ms).await.map_err(|e| match e {
        ReadError::TooLarge => too_large(),
        ReadError::Broken(e) => ApiError::invalid_request(format!("the request body could not be read: {e}")),
        ReadError::Stalled => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!("the request body stalled for more than {} ms", config.timeouts.idle_ms),
        )
        .with_code("request_timeout"),
    })
}

/// How an upstream body was being read when it failed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reading {
    /// Passed to the client as it came: the failure ends the client's stream.
    Stream,
    /// Read whole before anything reached the client: the failure may be retried.
    Whole,
}

/// The one mapping from an upstream body's fault to the client's error: `broken` is the
/// runtime's fixed words for a break (`None`: nothing arrived within `idle_ms`).
pub(crate) fn upstream_fault(reading: Reading, broken: Option<&dyn std::fmt::Display>, idle_ms: u64) -> ApiError {
    match (broken, reading) {
        (Some(e), Reading::Stream) => {
            ApiError::bad_gateway(format!("the upstream stream broke off: {e}")).with_code("stream_interrupted")
        }
        (Some(e), Reading::Whole) => ApiError::bad_gateway(format!("the upstream response broke off: {e}")),
        (None, _) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            match reading {
                Reading::Stream => format!("the upstream stream stalled for more than {idle_ms} ms"),
                Reading::Whole => format!("the upstream response body stalled for more than {idle_ms} ms"),
            },
        )
        .with_code(match reading {
            Reading::Stream => "stream_timeout",
            Reading::Whole => "upstream_timeout",
        }),
    }
}
