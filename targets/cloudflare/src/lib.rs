//! Cloudflare Workers adapter: binds KV (`CONFIG`), secrets, `fetch` and `waitUntil` to the
//! core's [`Host`] and converts requests and responses. Every decision lives in `gateway-core`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use gateway_core::host::{Body, BodyError, ByteStream, Deferred, FetchError, Host, LogLevel, StoreError};
use gateway_core::ratelimit::{self, Admission, LimitState, LimitStep};
use gateway_core::ConfigCache;
use worker::wasm_bindgen::JsValue;

#[worker::wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `crypto.getRandomValues`, filling the slice.
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn fill_random(bytes: &mut [u8]);
}
use worker::{
    console_error, console_log, console_warn, durable_object, event, Context, DurableObject, Env, Fetch,
    FixedLengthStream, Headers, Method, RequestInit, RequestRedirect, State,
};

/// A streamed request body as a JS `ReadableStream`: with its length (a `FixedLengthStream`, so
/// the upstream gets `content-length`) when known, else sent chunked. A chunk that fails errors
/// the stream, which aborts the request rather than ending the upload early.
fn upload_stream(chunks: ByteStream, length: Option<u64>) -> JsValue {
    let chunks = chunks.map_ok(|b| b.to_vec()).map_err(|e| worker::Error::RustError(e.to_string()));
    match length {
        Some(length) => {
            let fixed: worker::worker_sys::FixedLengthStream = FixedLengthStream::wrap(chunks, length).into();
            fixed.readable().into()
        }
        None => {
            let chunks = chunks
                .map_ok(|chunk| JsValue::from(worker::js_sys::Uint8Array::from(&chunk[..])))
                .map_err(|e| JsValue::from(e.to_string()));
            wasm_streams::ReadableStream::from_stream(chunks).into_raw().into()
        }
    }
}

/// The KV namespace binding that holds the configuration document.
const CONFIG_BINDING: &str = "CONFIG";
/// The KV namespace binding that holds response-cache entries.
const CACHE_BINDING: &str = "CACHE";
/// The Durable Object namespace binding of the rate limiters.
const LIMITER_BINDING: &str = "RATE_LIMITER";
/// Workers KV's shortest expiry.
const KV_MIN_TTL_SECONDS: u64 = 60;

fn serde_json_string<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(e.to_string()))
}

/// One rate limiter (a Durable Object per limiter key). Its state is kept in memory and written
/// through to the object's storage; a step is read, applied and written with no await between
/// the read of the in-memory state and its update, so steps never interleave.
#[durable_object]
pub struct RateLimiter {
    state: State,
    current: RefCell<Option<LimitState>>,
}

/// The storage key of a limiter's state.
const LIMITER_STATE_KEY: &str = "state";

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        RateLimiter { state, current: RefCell::new(None) }
    }

    async fn fetch(&self, mut request: worker::Request) -> worker::Result<worker::Response> {
        let mut step: LimitStep = match request.json().await {
            Ok(step) => step,
            Err(e) => return worker::Response::error(format!("not a limiter step: {e}"), 400),
        };
        // One clock per limiter: the object's, whichever location the step came from.
        step.now_ms = worker::Date::now().as_millis();
        if self.current.borrow().is_none() {
            // Storage reads hold other events back (input gate), so the first load is not raced.
            let stored: Option<LimitState> = match self.state.storage().get(LIMITER_STATE_KEY).await {
                Ok(stored) => stored,
                // Never start over from a fresh state the next write would store over the real one.
                Err(e) => return worker::Response::error(format!("limiter state unreadable: {e}"), 500),
            };
            self.current.borrow_mut().get_or_insert(stored.unwrap_or_default());
        }
        let (admission, next) = {
            let mut current = self.current.borrow_mut();
            let (admission, next) = ratelimit::apply(current.unwrap_or_default(), &step);
            *current = Some(next);
            (admission, next)
        };
        // Written through; the output gate holds the answer until the write is durable.
        self.state.storage().put(LIMITER_STATE_KEY, next).await?;
        worker::Response::from_json(&admission)
    }
}

struct WorkerHost {
    env: Env,
    ctx: Context,
}

impl Host for WorkerHost {
    async fn fetch(&self, request: http::Request<Body>) -> Result<http::Response<Body>, FetchError> {
        let (parts, body) = request.into_parts();
        let length = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let headers = Headers::new();
        for (name, value) in &parts.headers {
            if name == http::header::CONTENT_LENGTH {
                continue; // the body's own length (or `FixedLengthStream`) sets it
            }
            let value = value.to_str().map_err(|e| FetchError::Invalid(e.to_string()))?;
            headers.append(name.as_str(), value).map_err(|e| FetchError::Invalid(e.to_string()))?;
        }
        let method = Method::from(parts.method.as_str().to_owned());
        let mut init = RequestInit::new();
        // A redirect is never followed: it would carry the provider's key to another origin.
        init.with_method(method).with_headers(headers).with_redirect(RequestRedirect::Manual);
        match body {
            Body::Full(body) if body.is_empty() => {}
            Body::Full(body) => {
                init.with_body(Some(worker::js_sys::Uint8Array::from(&body[..]).into()));
            }
            Body::Stream(chunks) => {
                init.with_body(Some(upload_stream(chunks, length)));
            }
        }
        let outbound = worker::Request::new_with_init(&parts.uri.to_string(), &init)
            .map_err(|e| FetchError::Invalid(e.to_string()))?;
        let mut response = Fetch::Request(outbound).send().await.map_err(|e| FetchError::Connect(e.to_string()))?;
        let mut out = http::Response::builder().status(response.status_code());
        for (name, value) in response.headers().entries() {
            out = out.header(name, value);
        }
        let body = match response.stream() {
            Ok(stream) => Body::Stream(Box::pin(stream.map_ok(Bytes::from).map_err(|e| BodyError(e.to_string())))),
            Err(_) => Body::empty(),
        };
        out.body(body).map_err(|e| FetchError::Connect(format!("malformed upstream response head: {e}")))
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let kv = self.env.kv(CONFIG_BINDING).map_err(|e| StoreError(e.to_string()))?;
        let value = kv.get(key).bytes().await.map_err(|e| StoreError(e.to_string()))?;
        Ok(value.map(Bytes::from))
    }

    async fn kv_put(&self, key: &str, value: Bytes) -> Result<(), StoreError> {
        let kv = self.env.kv(CONFIG_BINDING).map_err(|e| StoreError(e.to_string()))?;
        kv.put_bytes(key, &value)
            .map_err(|e| StoreError(e.to_string()))?
            .execute()
            .await
            .map_err(|e| StoreError(e.to_string()))
    }

    async fn kv_delete(&self, key: &str) -> Result<(), StoreError> {
        let kv = self.env.kv(CONFIG_BINDING).map_err(|e| StoreError(e.to_string()))?;
        kv.delete(key).await.map_err(|e| StoreError(e.to_string()))
    }

    async fn cache_get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let kv = self.env.kv(CACHE_BINDING).map_err(|e| StoreError(e.to_string()))?;
        let value = kv.get(key).bytes().await.map_err(|e| StoreError(e.to_string()))?;
        Ok(value.map(Bytes::from))
    }

    async fn cache_put(&self, key: &str, value: Bytes, ttl_seconds: u64) -> Result<(), StoreError> {
        let kv = self.env.kv(CACHE_BINDING).map_err(|e| StoreError(e.to_string()))?;
        kv.put_bytes(key, &value)
            .map_err(|e| StoreError(e.to_string()))?
            // Workers KV expires nothing sooner than a minute; the core checks the entry's own expiry.
            .expiration_ttl(ttl_seconds.max(KV_MIN_TTL_SECONDS))
            .execute()
            .await
            .map_err(|e| StoreError(e.to_string()))
    }

    async fn cache_delete(&self, key: &str) -> Result<(), StoreError> {
        let kv = self.env.kv(CACHE_BINDING).map_err(|e| StoreError(e.to_string()))?;
        kv.delete(key).await.map_err(|e| StoreError(e.to_string()))
    }

    /// The Durable Object named after the limiter key applies the step: one object per key, so
    /// every step on a key, from any location, is applied in one order.
    async fn rate_limit(&self, key: &str, step: &LimitStep) -> Result<Admission, StoreError> {
        let store_error = |e: worker::Error| StoreError(e.to_string());
        let stub = self.env.durable_object(LIMITER_BINDING).and_then(|ns| ns.get_by_name(key)).map_err(store_error)?;
        let mut init = RequestInit::new();
        let body = serde_json_string(step)?;
        init.with_method(Method::Post).with_body(Some(JsValue::from_str(&body)));
        let request = worker::Request::new_with_init("https://rate-limiter/step", &init).map_err(store_error)?;
        let mut response = stub.fetch_with_request(request).await.map_err(store_error)?;
        if response.status_code() != 200 {
            let text = response.text().await.unwrap_or_default();
            return Err(StoreError(format!("rate limiter answered {}: {text}", response.status_code())));
        }
        response.json::<Admission>().await.map_err(store_error)
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.env.secret(name).ok().map(|s| s.to_string())
    }

    fn now_millis(&self) -> u64 {
        worker::Date::now().as_millis()
    }

    async fn sleep(&self, millis: u64) {
        worker::Delay::from(Duration::from_millis(millis)).await;
    }

    fn defer(&self, work: Deferred) {
        self.ctx.wait_until(work);
    }

    fn random_u64(&self) -> u64 {
        // The Web Crypto generator: Math.random's state can be recovered from a few of its
        // outputs (request ids show them), and these values key hash maps and sessions.
        let mut bytes = [0_u8; 8];
        fill_random(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn log(&self, level: LogLevel, line: &str) {
        match level {
            LogLevel::Info => console_log!("{line}"),
            LogLevel::Warn => console_warn!("{line}"),
            LogLevel::Error => console_error!("{line}"),
        }
    }
}

/// The incoming request as `http` types; the body stays a stream so size limits hold while reading.
fn incoming(mut request: worker::Request) -> worker::Result<http::Request<Body>> {
    let url = request.url()?;
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut builder = http::Request::builder().method(request.method().as_ref()).uri(path_and_query);
    for (name, value) in request.headers().entries() {
        builder = builder.header(name, value);
    }
    let body = match request.stream() {
        Ok(stream) => Body::Stream(Box::pin(stream.map(|chunk| match chunk {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(e) => Err(BodyError(e.to_string())),
        }))),
        Err(_) => Body::empty(),
    };
    builder.body(body).map_err(|e| worker::Error::RustError(e.to_string()))
}

fn outgoing(response: http::Response<Body>) -> worker::Result<worker::Response> {
    let (parts, body) = response.into_parts();
    let headers = Headers::new();
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            headers.append(name.as_str(), value)?;
        }
    }
    let response = match body {
        Body::Full(bytes) => worker::Response::from_bytes(bytes.to_vec())?,
        Body::Stream(stream) => worker::Response::from_stream(
            stream.map_ok(|b| b.to_vec()).map_err(|e| worker::Error::RustError(e.to_string())),
        )?,
    };
    Ok(response.with_status(parts.status.as_u16()).with_headers(headers))
}

thread_local! {
    /// Lives as long as the isolate: warm requests skip the KV read and the parse.
    static CONFIG_CACHE: Rc<ConfigCache> = Rc::new(ConfigCache::default());
}

#[event(fetch)]
async fn fetch(request: worker::Request, env: Env, ctx: Context) -> worker::Result<worker::Response> {
    let host = Rc::new(WorkerHost { env, ctx });
    let request = match incoming(request) {
        Ok(request) => request,
        Err(e) => {
            let error = gateway_core::error::ApiError::invalid_request(format!("unreadable request: {e}"));
            return outgoing(error.into_response());
        }
    };
    let cache = CONFIG_CACHE.with(Rc::clone);
    outgoing(gateway_core::handle(host, &cache, request).await)
}
