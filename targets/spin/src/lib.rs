//! Fermyon Spin adapter: binds the default key-value store, Spin variables (secrets) and
//! outbound HTTP to the core's [`Host`], and streams the response body chunk by chunk.
//! Spin runs every request in a fresh instance, so nothing here is cached between requests.

// `#[http_component]` expands to the component's exported ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::Either;
use futures::{SinkExt, StreamExt};
use gateway_core::host::{Body, BodyError, ByteStream, Deferred, FetchError, Host, LogLevel, StoreError};
use gateway_core::ratelimit::{self, Admission, LimitState, LimitStep};
use gateway_core::ConfigCache;
use spin_sdk::http::conversions::TryIntoOutgoingRequest;
use spin_sdk::http::{Fields, IncomingRequest, IncomingResponse, OutgoingResponse, ResponseOutparam, SendError};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue as kv;

/// Where response-cache entries live in the default store.
const CACHE_PREFIX: &str = "cache/";
/// Where rate limiter states live in the default store.
const LIMIT_PREFIX: &str = "ratelimit/";
/// Compare-and-swap rounds before a limiter step gives up (and the request is let through);
/// with the pauses between them, about 150 ms.
const CAS_ATTEMPTS: u32 = 16;

fn kv_error(e: kv::store::Error) -> StoreError {
    StoreError(format!("{e:?}"))
}

/// Creates a limiter's state once. Spin's stores swap unconditionally when the key is absent, so a
/// compare-and-swap cannot create it: every instance that read "absent" would win. One instance
/// wins a creation counter (`increment` is atomic) and writes the initial state; the others
/// retry until it is there. Should the winner die in between, every hundredth claimant writes it.
fn create_limiter(bucket: &kv::store::Bucket, key: &str) -> Result<(), StoreError> {
    let claimed = kv::atomics::increment(bucket, &format!("{key}#created"), 1).map_err(kv_error)?;
    if claimed == 1 || claimed % 100 == 0 {
        bucket.set(key, &ratelimit::encode(&LimitState::default())).map_err(kv_error)?;
    }
    Ok(())
}

#[derive(Default)]
struct SpinHost {
    deferred: RefCell<Vec<Deferred>>,
}

impl Host for SpinHost {
    async fn fetch(&self, request: http::Request<Body>) -> Result<http::Response<Body>, FetchError> {
        let (mut parts, body) = request.into_parts();
        let response: IncomingResponse = match body {
            Body::Full(body) => {
                // A buffered body goes out with its length rather than chunked, as most servers prefer.
                parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(body.len()));
                let request = http::Request::from_parts(parts, body.to_vec());
                spin_sdk::http::send(request).await.map_err(send_error)?
            }
            Body::Stream(chunks) => send_streaming(http::Request::from_parts(parts, Vec::new()), chunks).await?,
        };
        let mut out = http::Response::builder().status(response.status());
        for (name, value) in response.headers().entries() {
            out = out.header(name, value);
        }
        let chunks = response.take_body_stream();
        // The body is cancelled if `response` is dropped, so the stream owns it.
        let body = chunks.map(move |chunk| {
            let _keep_alive = &response;
            chunk.map(Bytes::from).map_err(|e| BodyError(e.to_string()))
        });
        out.body(Body::Stream(Box::pin(body))).map_err(|e| FetchError::Connect(format!("malformed response head: {e}")))
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let store = Store::open_default().map_err(|e| StoreError(e.to_string()))?;
        Ok(store.get(key).map_err(|e| StoreError(e.to_string()))?.map(Bytes::from))
    }

    async fn kv_put(&self, key: &str, value: Bytes) -> Result<(), StoreError> {
        let store = Store::open_default().map_err(|e| StoreError(e.to_string()))?;
        store.set(key, &value).map_err(|e| StoreError(e.to_string()))
    }

    async fn kv_delete(&self, key: &str) -> Result<(), StoreError> {
        let store = Store::open_default().map_err(|e| StoreError(e.to_string()))?;
        store.delete(key).map_err(|e| StoreError(e.to_string()))
    }

    async fn cache_get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.kv_get(&format!("{CACHE_PREFIX}{key}")).await
    }

    /// Spin's stores have no expiry: an entry past its time is a miss (the core checks), and the
    /// next answer for the same request overwrites it.
    async fn cache_put(&self, key: &str, value: Bytes, _ttl_seconds: u64) -> Result<(), StoreError> {
        self.kv_put(&format!("{CACHE_PREFIX}{key}"), value).await
    }

    async fn cache_delete(&self, key: &str) -> Result<(), StoreError> {
        self.kv_delete(&format!("{CACHE_PREFIX}{key}")).await
    }

    /// Compare-and-swap on the default store (`wasi:keyvalue/atomics`): read, apply, swap, and
    /// start over (after a short random pause) when another instance swapped first.
    async fn rate_limit(&self, key: &str, step: &LimitStep) -> Result<Admission, StoreError> {
        let bucket = kv::store::open("default").map_err(kv_error)?;
        let key = format!("{LIMIT_PREFIX}{key}");
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                // Contending instances spread out instead of colliding again: 1 to 16 ms.
                Sleep::new(1 + self.random_u64() % (1 << attempt.min(4))).await;
            }
            let cas = kv::atomics::Cas::new(&bucket, &key).map_err(kv_error)?;
            let Some(current) = cas.current().map_err(kv_error)? else {
                create_limiter(&bucket, &key)?;
                continue;
            };
            let (admission, next) = ratelimit::apply(ratelimit::decode(Some(&current)), step);
            match kv::atomics::swap(cas, &ratelimit::encode(&next)) {
                Ok(()) => return Ok(admission),
                Err(kv::atomics::CasError::CasFailed(_)) => continue,
                Err(kv::atomics::CasError::StoreError(e)) => return Err(kv_error(e)),
            }
        }
        Err(StoreError(format!("rate limiter `{key}` stayed contended for {CAS_ATTEMPTS} attempts")))
    }

    fn secret(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok().filter(|v| !v.is_empty())
    }

    fn now_millis(&self) -> u64 {
        let now = wasi::clocks::wall_clock::now();
        now.seconds * 1000 + u64::from(now.nanoseconds / 1_000_000)
    }

    async fn sleep(&self, millis: u64) {
        Sleep::new(millis).await
    }

    fn defer(&self, work: Deferred) {
        self.deferred.borrow_mut().push(work);
    }

    fn random_u64(&self) -> u64 {
        // The secure generator: these values key hash maps and sessions.
        wasi::random::random::get_random_u64()
    }

    fn log(&self, level: LogLevel, line: &str) {
        match level {
            LogLevel::Info => println!("{line}"),
            LogLevel::Warn | LogLevel::Error => eprintln!("{line}"),
        }
    }
}

fn send_error(e: SendError) -> FetchError {
    match e {
        SendError::RequestConversion(e) => FetchError::Invalid(e.to_string()),
        other => FetchError::Connect(other.to_string()),
    }
}

/// Sends a request whose body is written chunk by chunk while the request is in flight (an
/// upload passed through); the response is awaited once the body is finished.
async fn send_streaming(head: http::Request<Vec<u8>>, mut chunks: ByteStream) -> Result<IncomingResponse, FetchError> {
    let (outgoing, _) = head.try_into_outgoing_request().map_err(|e| FetchError::Invalid(e.to_string()))?;
    let mut sink = outgoing.take_body();
    let sending = spin_sdk::http::send::<_, IncomingResponse>(outgoing);
    let writing = async move {
        while let Some(chunk) = chunks.next().await {
            let sent = match chunk {
                Ok(chunk) => sink.send(chunk.to_vec()).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = sent {
                // Never finish a broken body: an unfinished body makes the request fail upstream
                // instead of passing for a complete (truncated) upload.
                std::mem::forget(sink);
                return Err(FetchError::Connect(format!("request body: {e}")));
            }
        }
        // Dropping the sink finishes the body.
        Ok(())
    };
    futures::pin_mut!(sending, writing);
    match futures::future::select(sending, writing).await {
        // The upstream answered before reading it all (an early refusal): that answer stands.
        Either::Left((response, _)) => response.map_err(send_error),
        Either::Right((Ok(()), sending)) => sending.await.map_err(send_error),
        // Dropping the request in flight cancels it.
        Either::Right((Err(e), _)) => Err(e),
    }
}

/// An async sleep on `wasi:clocks`: registers a pollable with Spin's executor instead of blocking,
/// so a timeout can race an upstream read.
struct Sleep {
    deadline: u64,
}

impl Sleep {
    fn new(millis: u64) -> Self {
        let now = wasi::clocks::monotonic_clock::now();
        Sleep { deadline: now.saturating_add(millis.saturating_mul(1_000_000)) }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if wasi::clocks::monotonic_clock::now() >= self.deadline {
            return Poll::Ready(());
        }
        let pollable = wasi::clocks::monotonic_clock::subscribe_instant(self.deadline);
        spin_executor::push_waker(pollable, cx.waker().clone());
        Poll::Pending
    }
}

fn incoming(request: IncomingRequest) -> Result<http::Request<Body>, http::Error> {
    let mut builder = http::Request::builder()
        .method(request.method().to_string().as_str())
        .uri(request.path_with_query().unwrap_or_else(|| "/".into()));
    let headers = request.headers().entries();
    // wasi:http carries the authority apart from the headers: give the core its `Host`.
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        if let Some(authority) = request.authority() {
            builder = builder.header(http::header::HOST, authority);
        }
    }
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let body = request.into_body_stream().map(|chunk| chunk.map(Bytes::from).map_err(|e| BodyError(e.to_string())));
    builder.body(Body::Stream(Box::pin(body)))
}

async fn respond(out: ResponseOutparam, response: http::Response<Body>) {
    let (parts, body) = response.into_parts();
    let headers: Vec<(String, Vec<u8>)> =
        parts.headers.iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec())).collect();
    let Ok(fields) = Fields::from_list(&headers) else {
        eprintln!("{{\"msg\":\"response headers refused by the host\"}}");
        return;
    };
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(parts.status.as_u16()).is_err() {
        eprintln!("{{\"msg\":\"response status refused by the host\"}}");
    }
    let mut sink = outgoing.take_body();
    out.set(outgoing);
    // A drained stream may hold what the response was made from (a guard and its policies):
    // it is dropped after the body has ended, off the client's wait.
    let mut drained = None;
    match body {
        Body::Full(bytes) => {
            if let Err(e) = sink.send(bytes.to_vec()).await {
                eprintln!("{{\"msg\":\"client went away\",\"error\":{:?}}}", e.to_string());
            }
        }
        Body::Stream(mut stream) => {
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { break };
                if let Err(e) = sink.send(chunk.to_vec()).await {
                    eprintln!("{{\"msg\":\"client went away\",\"error\":{:?}}}", e.to_string());
                    break;
                }
            }
            drained = Some(stream);
        }
    }
    // Dropping the sink ends the body; the handler may keep working after this.
    drop(sink);
    drop(drained);
}

// An export for build-time pre-initialization (`wasmtime wizer`, see scripts/build): Cedar's
// parsers are built once into the component's snapshot instead of in every request's instance.
spin_sdk::wit_bindgen::generate!({
    inline: "package edge-gateway:warm-up; world warm-up { export wizer-initialize: func(); }",
    world: "warm-up",
    runtime_path: "spin_sdk::wit_bindgen::rt",
});

struct WarmUp;

impl Guest for WarmUp {
    fn wizer_initialize() {
        gateway_core::policy::warm_up();
    }
}

export!(WarmUp);

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let host = Rc::new(SpinHost::default());
    // Nothing survives a Spin request, so the configuration cache starts empty every time. It
    // outlives the response: freeing the parsed configuration and policies waits until the
    // client has its answer.
    let config = ConfigCache::default();
    let response = match incoming(request) {
        Ok(request) => gateway_core::handle(Rc::clone(&host), &config, request).await,
        Err(e) => gateway_core::error::ApiError::invalid_request(format!("unreadable request: {e}")).into_response(),
    };
    respond(out, response).await;
    let deferred: Vec<Deferred> = host.deferred.borrow_mut().drain(..).collect();
    for work in deferred {
        work.await;
    }
}
