//! An in-process [`Host`] for tests: scripted upstream answers, virtual time, recorded requests.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::host::{Body, BodyError, Deferred, FetchError, Host, LogLevel, StoreError};
use crate::ratelimit::{self, Admission, LimitState, LimitStep};

/// One scripted upstream answer, consumed in order by [`FakeHost::fetch`].
pub enum FakeAnswer {
    /// A whole response.
    Full { status: u16, headers: Vec<(&'static str, String)>, body: Bytes },
    /// A 200 whose body arrives in these chunks, then optionally breaks.
    Stream { chunks: Vec<Bytes>, then_error: bool },
    /// The same, as `text/event-stream`.
    EventStream { chunks: Vec<Bytes>, then_error: bool },
    /// The connection fails.
    ConnectError,
    /// No response head ever arrives.
    Hang,
}

impl FakeAnswer {
    pub fn json(status: u16, body: &str) -> Self {
        FakeAnswer::Full {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: Bytes::from(body.to_owned()),
        }
    }
}

/// A 200 whose body arrives in `chunks`, then breaks when `then_error`.
fn streamed(chunks: Vec<Bytes>, then_error: bool, content_type: Option<&'static str>) -> http::Response<Body> {
    let mut items: Vec<Result<Bytes, BodyError>> = chunks.into_iter().map(Ok).collect();
    if then_error {
        items.push(Err(BodyError("connection reset".into())));
    }
    let mut response = http::Response::new(Body::Stream(Box::pin(futures::stream::iter(items))));
    if let Some(kind) = content_type {
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(kind));
    }
    response
}

#[derive(Default)]
pub struct FakeHost {
    pub answers: RefCell<VecDeque<FakeAnswer>>,
    pub requests: RefCell<Vec<http::Request<Bytes>>>,
    pub kv: RefCell<BTreeMap<String, Bytes>>,
    pub secrets: BTreeMap<String, String>,
    pub now: Cell<u64>,
    pub slept: RefCell<Vec<u64>>,
    pub deferred: RefCell<Vec<Deferred>>,
    pub logs: RefCell<Vec<String>>,
    pub random: Cell<u64>,
    /// How many requests went out with a streamed body.
    pub streamed_uploads: Cell<u32>,
    /// Response-cache entries, by key.
    pub cache: RefCell<BTreeMap<String, Bytes>>,
    /// Rate limiter states, by key.
    pub limiters: RefCell<BTreeMap<String, LimitState>>,
    /// Every rate-limit step applied, in order.
    pub limit_steps: RefCell<Vec<(String, LimitStep)>>,
    /// Makes the limiter store fail, as an unreachable Durable Object would.
    pub limiter_down: Cell<bool>,
    /// Makes the response-cache store fail, as an unreachable KV namespace would.
    pub cache_down: Cell<bool>,
}

impl FakeHost {
    pub fn with_config(config: &str) -> Self {
        let host = FakeHost { now: Cell::new(1_700_000_000_000), ..FakeHost::default() };
        host.kv.borrow_mut().insert(crate::config::CONFIG_KV_KEY.into(), Bytes::from(config.to_owned()));
        host
    }

    pub fn answer(&self, answer: FakeAnswer) -> &Self {
        self.answers.borrow_mut().push_back(answer);
        self
    }

    /// Fails while [`FakeHost::cache_down`] is set.
    fn cache_reachable(&self) -> Result<(), StoreError> {
        match self.cache_down.get() {
            true => Err(StoreError("cache store unreachable".into())),
            false => Ok(()),
        }
    }

    /// The work deferred past the response, to be run as `waitUntil` would.
    pub fn take_deferred(&self) -> Vec<Deferred> {
        self.deferred.borrow_mut().drain(..).collect()
    }
}

impl Host for FakeHost {
    async fn fetch(&self, request: http::Request<Body>) -> Result<http::Response<Body>, FetchError> {
        // A streamed request body is drained and recorded whole; a broken one fails the request.
        let (parts, body) = request.into_parts();
        let body = match body {
            Body::Full(bytes) => bytes,
            Body::Stream(mut stream) => {
                use futures::StreamExt;
                let mut all = Vec::new();
                while let Some(chunk) = stream.next().await {
                    all.extend_from_slice(&chunk.map_err(|e| FetchError::Connect(format!("request body: {e}")))?);
                }
                self.streamed_uploads.set(self.streamed_uploads.get() + 1);
                Bytes::from(all)
            }
        };
        self.requests.borrow_mut().push(http::Request::from_parts(parts, body));
        let answer = self.answers.borrow_mut().pop_front();
        match answer {
            Some(FakeAnswer::Full { status, headers, body }) => {
                let mut response = http::Response::new(Body::Full(body));
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                for (name, value) in headers {
                    if let Ok(v) = http::HeaderValue::from_str(&value) {
                        response.headers_mut().insert(name, v);
                    }
                }
                Ok(response)
            }
            Some(FakeAnswer::Stream { chunks, then_error }) => Ok(streamed(chunks, then_error, None)),
            Some(FakeAnswer::EventStream { chunks, then_error }) => {
                Ok(streamed(chunks, then_error, Some("text/event-stream")))
            }
            Some(FakeAnswer::ConnectError) | None => Err(FetchError::Connect("connection refused".into())),
            Some(FakeAnswer::Hang) => futures::future::pending().await,
        }
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.kv.borrow().get(key).cloned())
    }

    async fn kv_put(&self, key: &str, value: Bytes) -> Result<(), StoreError> {
        self.kv.borrow_mut().insert(key.to_owned(), value);
        Ok(())
    }

    async fn kv_delete(&self, key: &str) -> Result<(), StoreError> {
        self.kv.borrow_mut().remove(key);
        Ok(())
    }

    async fn cache_get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.cache_reachable()?;
        Ok(self.cache.borrow().get(key).cloned())
    }

    async fn cache_put(&self, key: &str, value: Bytes, _ttl_seconds: u64) -> Result<(), StoreError> {
        self.cache_reachable()?;
        self.cache.borrow_mut().insert(key.to_owned(), value);
        Ok(())
    }

    async fn cache_delete(&self, key: &str) -> Result<(), StoreError> {
        self.cache_reachable()?;
        self.cache.borrow_mut().remove(key);
        Ok(())
    }

    async fn rate_limit(&self, key: &str, step: &LimitStep) -> Result<Admission, StoreError> {
        if self.limiter_down.get() {
            return Err(StoreError("limiter unreachable".into()));
        }
        self.limit_steps.borrow_mut().push((key.to_owned(), *step));
        let mut limiters = self.limiters.borrow_mut();
        let state = limiters.get(key).copied().unwrap_or_default();
        let (admission, next) = ratelimit::apply(state, step);
        limiters.insert(key.to_owned(), next);
        Ok(admission)
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }

    fn now_millis(&self) -> u64 {
        self.now.get()
    }

    /// Virtual time: advances the clock and resolves at once.
    async fn sleep(&self, millis: u64) {
        self.slept.borrow_mut().push(millis);
        self.now.set(self.now.get() + millis);
    }

    fn defer(&self, work: Deferred) {
        self.deferred.borrow_mut().push(work);
    }

    fn random_u64(&self) -> u64 {
        let next = self.random.get().wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.random.set(next);
        next
    }

    fn log(&self, _level: LogLevel, line: &str) {
        self.logs.borrow_mut().push(line.to_owned());
    }
}
