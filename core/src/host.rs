//! The one seam between the core and the world: each edge target implements [`Host`].
//!
//! Everything the pipeline needs from a runtime comes through here, so the pipeline runs
//! unchanged on Workers, on Spin and in-process against [`crate::testing::FakeHost`].

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

use crate::ratelimit::{Admission, LimitStep};

/// A body chunk failed to arrive (connection reset, runtime stream error). It displays as its
/// [`NetFault`]: the runtime's own text (which may hold a host backtrace) is [`BodyError::detail`],
/// for the trace only.
#[derive(Debug, Clone)]
pub struct BodyError(pub String);

impl std::fmt::Display for BodyError {
    /// A body that breaks off mid-way was cut: every runtime's failure but a timeout reads as a reset.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match NetFault::of(&self.0) {
            NetFault::Timeout => NetFault::Timeout.message(),
            _ => NetFault::Reset.message(),
        })
    }
}

impl std::error::Error for BodyError {}

impl BodyError {
    /// The runtime's own words, capped: for traces, never for clients.
    pub fn detail(&self) -> String {
        cap_detail(&self.0)
    }
}

/// What went wrong on the network, in the few words every target says the same way. Runtimes
/// word their failures differently (workerd: `Network connection lost.`; wasmtime:
/// `ErrorCode::ConnectionRefused`, or a hyper error with a backtrace), and none of it is for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFault {
    Refused,
    Reset,
    Timeout,
    Tls,
    Dns,
    Other,
}

impl NetFault {
    /// The class of a runtime's error text.
    pub fn of(detail: &str) -> NetFault {
        let text: String = detail.chars().take(4096).filter(|c| c.is_alphanumeric() || *c == ' ').collect();
        let text = text.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
        if has(&["refused"]) {
            NetFault::Refused
        } else if has(&["dns", "lookup", "resolve", "nodename", "name not known"]) {
            NetFault::Dns
        } else if has(&["tls", "certificate", "ssl", "handshake"]) {
            NetFault::Tls
        } else if has(&["timeout", "timed out"]) {
            NetFault::Timeout
        } else if has(&["reset", "lost", "closed", "terminated", "broken pipe", "eof", "abort", "incomplete"]) {
            NetFault::Reset
        } else {
            NetFault::Other
        }
    }

    /// What a client is told when no response came: refused and reset are one (workerd says
    /// `Network connection lost.` for both), so both targets say the same.
    pub fn before_response(self) -> &'static str {
        match self {
            NetFault::Refused | NetFault::Reset | NetFault::Other => "connection failed",
            fault => fault.message(),
        }
    }

    /// What a client is told.
    pub fn message(self) -> &'static str {
        match self {
            NetFault::Refused => "connection refused",
            NetFault::Reset => "connection reset",
            NetFault::Timeout => "connection timed out",
            NetFault::Tls => "TLS handshake failed",
            NetFault::Dns => "DNS lookup failed",
            NetFault::Other => "connection failed",
        }
    }
}

/// A runtime's error text as a trace keeps it: its first line, 256 characters at most.
pub fn cap_detail(detail: &str) -> String {
    detail.lines().next().unwrap_or_default().chars().take(256).collect()
}

/// A stream of body chunks. Wasm on the edge is single-threaded, so nothing here is `Send`.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>>>>;

/// A future run after the response is sent (`ctx.waitUntil` on Workers).
pub type Deferred = Pin<Box<dyn Future<Output = ()>>>;

/// A request or response body: whole, or streamed chunk by chunk.
pub enum Body {
    Full(Bytes),
    Stream(ByteStream),
}

impl Body {
    pub fn empty() -> Self {
        Body::Full(Bytes::new())
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(b) => write!(f, "Body::Full({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

/// An outbound request could not produce a response head. It displays as a fixed text (a
/// [`NetFault`]); the runtime's own is [`FetchError::detail`], for the trace only.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Connection refused, reset or DNS failure: worth a retry.
    #[error("{}", NetFault::of(.0).before_response())]
    Connect(String),
    /// The runtime refused the request (bad URL, host not allowed): not worth a retry.
    #[error("the runtime refused the request")]
    Invalid(String),
}

impl FetchError {
    /// The runtime's own words, capped: for traces, never for clients.
    pub fn detail(&self) -> String {
        match self {
            FetchError::Connect(detail) | FetchError::Invalid(detail) => cap_detail(detail),
        }
    }
}

/// A key-value or secret store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Severity of a runtime log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

/// What a runtime provides to the gateway. Implemented by each edge adapter.
#[allow(async_fn_in_trait)] // single-threaded Wasm: the futures need not be `Send`
pub trait Host {
    /// Sends a request; either body may stream. A streamed request body (an upload passed
    /// through) goes with its `content-length` when the request has one, else chunked.
    async fn fetch(&self, request: http::Request<Body>) -> Result<http::Response<Body>, FetchError>;
    /// Reads a key from the platform's key-value store.
    async fn kv_get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;
    /// Writes a key to the platform's key-value store.
    async fn kv_put(&self, key: &str, value: Bytes) -> Result<(), StoreError>;
    /// Removes a key from the platform's key-value store (absent keys are not an error).
    async fn kv_delete(&self, key: &str) -> Result<(), StoreError>;
    /// Reads a response-cache entry (Workers: the `CACHE` namespace; Spin: the default store,
    /// under `cache/`).
    async fn cache_get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;
    /// Writes a response-cache entry, which the store may drop once `ttl_seconds` have passed
    /// (the core checks each entry's own expiry, so a store without expiry is correct too).
    async fn cache_put(&self, key: &str, value: Bytes, ttl_seconds: u64) -> Result<(), StoreError>;
    /// Removes a response-cache entry (one found expired, where the store keeps it).
    async fn cache_delete(&self, key: &str) -> Result<(), StoreError>;
    /// Applies one step to the rate limiter `key` with [`crate::ratelimit::apply`], atomically
    /// with every other instance's steps on that key (Workers: a Durable Object per key; Spin:
    /// compare-and-swap on the key-value store).
    async fn rate_limit(&self, key: &str, step: &LimitStep) -> Result<Admission, StoreError>;
    /// A secret by name (Workers secret, Spin variable); `None` when it is not set.
    fn secret(&self, name: &str) -> Option<String>;
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
    /// Resolves after `millis` without blocking other work of this request.
    async fn sleep(&self, millis: u64);
    /// Runs `work` after the response has been handed to the client.
    fn defer(&self, work: Deferred);
    /// A random number (jitter, ids); need not be cryptographic.
    fn random_u64(&self) -> u64;
    /// Writes one line to the runtime's log.
    fn log(&self, level: LogLevel, line: &str);
}

#[cfg(test)]
mod fault_tests {
    use super::*;

    #[test]
    fn each_runtimes_wording_maps_to_one_fixed_message() {
        for (detail, fault) in [
            ("Network connection lost.", NetFault::Reset),
            ("ErrorCode::ConnectionRefused", NetFault::Refused),
            ("error sending request: Connection refused (os error 111)", NetFault::Refused),
            ("StreamError::Closed", NetFault::Reset),
            ("hyper error: connection closed before message completed\n\nStack backtrace:\n 0: wasmtime_internal_core::err", NetFault::Reset),
            ("ErrorCode::ConnectionTimeout", NetFault::Timeout),
            ("ErrorCode::DnsError(DnsErrorPayload { rcode: None })", NetFault::Dns),
            ("ErrorCode::TlsCertificateError", NetFault::Tls),
            ("something else entirely", NetFault::Other),
        ] {
            assert_eq!(NetFault::of(detail), fault, "{detail}");
            let shown = BodyError(detail.to_owned()).to_string();
            assert!(!shown.contains("wasmtime") && !shown.contains("ErrorCode") && !shown.contains("Network"), "{shown}");
        }
        // workerd cannot tell a refused connection from a lost one: neither target does, then.
        assert_eq!(FetchError::Connect("ErrorCode::ConnectionRefused".into()).to_string(), "connection failed");
        assert_eq!(FetchError::Connect("Error: Network connection lost.".into()).to_string(), "connection failed");
        assert_eq!(FetchError::Connect("ErrorCode::DnsTimeout".into()).to_string(), "DNS lookup failed");
        assert_eq!(BodyError("error reading a body from connection".into()).to_string(), "connection reset");
        assert_eq!(BodyError("ErrorCode::ConnectionReadTimeout".into()).to_string(), "connection timed out");
        assert_eq!(FetchError::Invalid("host not allowed: evil".into()).to_string(), "the runtime refused the request");
        assert_eq!(cap_detail("first line\nStack backtrace: 0: x"), "first line");
    }
}
