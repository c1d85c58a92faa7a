//! The one seam between the core and the world: each edge target implements [`Host`].
//!
//! Everything the pipeline needs from a runtime comes through here, so the pipeline runs
//! unchanged on Workers, on Spin and in-process against [`crate::testing::FakeHost`].

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

use crate::ratelimit::{Admission, LimitStep};

/// A body chunk failed to arrive (connection reset, runtime stream error).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

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

/// An outbound request could not produce a response head.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Connection refused, reset or DNS failure: worth a retry.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The runtime refused the request (bad URL, host not allowed): not worth a retry.
    #[error("request refused by the runtime: {0}")]
    Invalid(String),
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
