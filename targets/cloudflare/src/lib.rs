//! Cloudflare Workers adapter: binds KV (`CONFIG`), secrets, `fetch` and `waitUntil` to the
//! core's [`Host`] and converts requests and responses. Every decision lives in `gateway-core`.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use gateway_core::config::ConfigCache;
use gateway_core::host::{Body, BodyError, ByteStream, Deferred, FetchError, Host, LogLevel, StoreError};
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, console_log, console_warn, event, Context, Env, Fetch, FixedLengthStream, Headers, Method,
    RequestInit,
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
        init.with_method(method).with_headers(headers);
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
        let high = (worker::js_sys::Math::random() * 4_294_967_296.0) as u64;
        let low = (worker::js_sys::Math::random() * 4_294_967_296.0) as u64;
        (high << 32) | low
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
