//! `/v1/audio/transcriptions` and `/v1/audio/translations`: `multipart/form-data` uploads passed
//! through. The gateway reads the form only up to its `model` field (to route, and to put the
//! provider's model id in its place); the rest streams to the provider as it arrives. An upload
//! that ends within the first [`REPLAY_BYTES`] is held whole, so it can be retried and fall back
//! like any request; a larger one goes to one target, once.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use futures::StreamExt;
use http::HeaderValue;

use super::attempts::{operation_target, target_span, Delivery, Upstream};
use super::body::{with_timeout, UpstreamError};
use super::chat_guard::check_upload;
use super::context::RequestContext;
use super::guard::Guard;
use super::limits;
use super::phases::{self, Prepared, TargetPlan};
use super::recorder::Recorder;
use super::stream::{pump, Outlet, Pull};
use crate::config::Config;
use crate::error::{ApiError, ErrorClass, PhaseError};
use crate::host::{Body, BodyError, ByteStream, Host};
use crate::multipart::{self, FieldScanner, Scan};
use crate::providers::{Operation, Target};
use crate::trace::SpanRef;

/// An upload that ends within this many bytes is held whole (retries and fallbacks work).
pub const REPLAY_BYTES: usize = 1024 * 1024;

/// Why an upload is refused or cut: the client's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UploadError {
    #[error("`{0}` takes a multipart/form-data upload")]
    NotMultipart(String),
    #[error("`{path}` needs a well-formed multipart/form-data body: {why}")]
    Malformed { path: String, why: String },
    #[error("`model` is required")]
    NoModel,
    /// Two `model` fields: the gateway would route on one and a server might read the other.
    #[error("`{0}` takes one `model` field; this form has two")]
    TwoModels(String),
    #[error("the upload exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the upload stalled for more than {0} ms")]
    Stalled(u64),
    #[error("the upload could not be read: {0}")]
    Unreadable(String),
}

impl PhaseError for UploadError {
    fn class(&self) -> ErrorClass {
        match self {
            UploadError::TooLarge(_) => ErrorClass::TOO_LARGE,
            UploadError::Stalled(_) => ErrorClass::STALLED,
            _ => ErrorClass::INVALID_REQUEST,
        }
    }
    fn param(&self) -> Option<String> {
        matches!(self, UploadError::NoModel | UploadError::TwoModels(_)).then(|| "model".to_owned())
    }
}

fn too_large(limit: usize) -> ApiError {
    UploadError::TooLarge(limit).into()
}

fn stalled(idle_ms: u64) -> ApiError {
    UploadError::Stalled(idle_ms).into()
}

/// The form read up to its `model` field (or whole, when it is small).
struct FormHead {
    bytes: Vec<u8>,
    /// Where the `model` value is in `bytes`, if the form has one.
    model: Option<std::ops::Range<usize>>,
    /// The rest of the upload, when it did not end within the head (taken by the first target).
    rest: Option<ByteStream>,
    /// Whether the upload goes on past the head: it can then be sent once only.
    streamed: bool,
    /// For that rest: the scan for another `model` field, and the window of the head it needs.
    watch: Option<SecondField>,
}

fn two_models(path: &str) -> ApiError {
    UploadError::TwoModels(path.to_owned()).into()
}

async fn read_head<H: Host>(
    host: &H,
    config: &Config,
    boundary: &str,
    body: Body,
    path: &str,
) -> Result<FormHead, ApiError> {
    let limit = config.limits.max_upload_bytes;
    let idle_ms = config.timeouts.idle_ms;
    let (mut bytes, mut rest) = match body {
        Body::Full(bytes) => (bytes.to_vec(), None),
        Body::Stream(stream) => (Vec::new(), Some(stream)),
    };
    if bytes.len() > limit {
        return Err(too_large(limit));
    }
    let mut scanner = FieldScanner::new(boundary, "model");
    let mut scan = scanner.scan(&bytes);
    loop {
        if let Scan::Malformed(why) = scan {
            return Err(UploadError::Malformed { path: path.to_owned(), why: why.to_string() }.into());
        }
        let settled = scan != Scan::NeedMore;
        let Some(stream) = rest.as_mut() else {
            if !settled {
                let why = "it ends before its closing boundary".to_owned();
                return Err(UploadError::Malformed { path: path.to_owned(), why }.into());
            }
            break;
        };
        if settled && bytes.len() >= REPLAY_BYTES {
            break;
        }
        match with_timeout(host, idle_ms, stream.next()).await {
            None => return Err(stalled(idle_ms)),
            Some(None) => rest = None,
            Some(Some(Err(e))) => {
                return Err(UploadError::Unreadable(e.to_string()).into());
            }
            Some(Some(Ok(chunk))) => {
                if bytes.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                bytes.extend_from_slice(&chunk);
                if !settled {
                    scan = scanner.scan(&bytes);
                }
            }
        }
    }
    let model = match scan {
        Scan::Found(range) => Some(range),
        _ => None,
    };
    let mut watch = None;
    if model.is_some() {
        // The scan goes on past the field: a second one in the head is refused now, one in a
        // streamed rest as it passes.
        if matches!(scanner.scan(&bytes), Scan::Found(_)) {
            return Err(two_models(path));
        }
        if rest.is_some() {
            let drop = scanner.release();
            watch = Some(SecondField { scanner, window: bytes.get(drop..).unwrap_or_default().to_vec() });
        }
    }
    Ok(FormHead { bytes, model, streamed: rest.is_some(), rest, watch })
}

/// Watches a streamed form for another `model` field, through a small window.
struct SecondField {
    scanner: FieldScanner,
    window: Vec<u8>,
}

impl SecondField {
    /// Whether `chunk` completes another `model` field.
    fn found_in(&mut self, chunk: &[u8]) -> bool {
        self.window.extend_from_slice(chunk);
        if matches!(self.scanner.scan(&self.window), Scan::Found(_)) {
            return true;
        }
        let drop = self.scanner.release().min(self.window.len());
        self.window.drain(..drop);
        false
    }
}

/// The rest of an upload, bounded in size and in the silence between chunks, and refused if it
/// holds another `model` field; a cut records why and errors the stream (which aborts the
/// upstream request instead of ending it early).
fn bounded_rest<H: Host + 'static>(
    host: Rc<H>,
    (head, rest, watch): (Vec<u8>, ByteStream, Option<SecondField>),
    (sent_before, limit, idle_ms): (usize, usize, u64),
    path: String,
    cut: Rc<RefCell<Option<ApiError>>>,
) -> ByteStream {
    let out = Outlet { queue: VecDeque::from([Bytes::from(head)]), done: false };
    pump(UploadRest { host, rest, watch, sent: sent_before, limit, idle_ms, path, cut, out, reason: None })
}

/// The streamed rest of an upload, as [`bounded_rest`] passes it on.
struct UploadRest<H: Host + 'static> {
    host: Rc<H>,
    rest: ByteStream,
    watch: Option<SecondField>,
    /// Bytes sent so far, against `limit`.
    sent: usize,
    limit: usize,
    idle_ms: u64,
    path: String,
    /// Why the upload was cut, for the client's error.
    cut: Rc<RefCell<Option<ApiError>>>,
    out: Outlet,
    /// The same, for the runtime: the body is errored rather than ended.
    reason: Option<BodyError>,
}

impl<H: Host + 'static> Pull for UploadRest<H> {
    fn outlet(&mut self) -> &mut Outlet {
        &mut self.out
    }

    async fn pull(&mut self) {
        let (limit, idle_ms) = (self.limit, self.idle_ms);
        let failure = match with_timeout(&*self.host, idle_ms, self.rest.next()).await {
            None => stalled(idle_ms),
            Some(None) => {
                self.out.done = true;
                return;
            }
            Some(Some(Err(e))) => UploadError::Unreadable(e.to_string()).into(),
            Some(Some(Ok(chunk))) if self.watch.as_mut().is_some_and(|w| w.found_in(&chunk)) => two_models(&self.path),
            Some(Some(Ok(chunk))) if self.sent + chunk.len() <= limit => {
                self.sent += chunk.len();
                self.out.queue.push_back(chunk);
                return;
            }
            Some(Some(Ok(_))) => too_large(limit),
        };
        self.reason = Some(BodyError(failure.message.clone()));
        *self.cut.borrow_mut() = Some(failure);
        self.out.done = true;
    }

    fn cut(&mut self) -> Option<BodyError> {
        self.reason.take()
    }
}

pub(crate) async fn upload<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    body: Body,
    (route, op): (Option<&str>, Operation),
) -> Result<http::Response<Body>, ApiError> {
    let path = format!("/v1/{}", op.path());
    let headers = &cx.parts.headers;
    let content_type = headers.get(http::header::CONTENT_TYPE).cloned();
    let boundary = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(multipart::boundary)
        .map(str::to_owned)
        .ok_or_else(|| UploadError::NotMultipart(path.clone()))?;
    let limit = cx.config.limits.max_upload_bytes;
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let head = read_head(&**cx.host, cx.config, &boundary, body, &path).await?;
    let model = match &head.model {
        Some(range) => String::from_utf8_lossy(head.bytes.get(range.clone()).unwrap_or_default()).trim().to_owned(),
        None if route.is_some() => String::new(),
        None => return Err(UploadError::NoModel.into()),
    };
    let resolved = phases::resolve(cx, route, &model)?;
    // Audio has no text to estimate from: the request counts, its tokens are charged when settled.
    let admitted = phases::rate_limit(cx, Some(&resolved), Some(limits::TokenEstimate::input_only(0))).await?;
    let guard = phases::input(cx, &resolved).await?;
    let mut plan = UploadPlan { cx, op, path, boundary, content_type, declared, head, cut: Rc::default() };
    let mut response = phases::upstream(cx, &resolved, guard.as_ref(), &mut plan).await?;
    admitted.mark(&mut response);
    Ok(response)
}

/// How an upload is tried on one target: the form with the target's model id in its `model`
/// field, held whole when small, else streamed to one target once.
struct UploadPlan<'a, H: Host + 'static> {
    cx: &'a RequestContext<'a, H>,
    op: Operation,
    path: String,
    boundary: String,
    content_type: Option<HeaderValue>,
    /// The upload's declared length, if any.
    declared: Option<usize>,
    head: FormHead,
    /// Why the rest of a streamed upload was cut on the client's side (too large, stalled).
    cut: Rc<RefCell<Option<ApiError>>>,
}

impl<H: Host + 'static> TargetPlan<H> for UploadPlan<'_, H> {
    fn span(&self, recorder: &Recorder<H>, target: &Target<'_>, fallback: bool) -> SpanRef {
        target_span(recorder, target, self.op.otel_name(), fallback)
    }

    /// The audio is not inspected, but the policies still decide who may send it to which model.
    async fn check(&mut self, guard: &Guard<H>, target: &Target<'_>) -> Result<(), ApiError> {
        check_upload(guard, target).await
    }

    async fn prepare(&mut self, target: &Target<'_>, _span: SpanRef) -> Prepared {
        let (host, op, head) = (self.cx.host, self.op, &mut self.head);
        let prepared = operation_target(&**host, target, op, |provider, key| {
            provider.upload_request(op, target, key).map(|r| r.map_err(ApiError::from))
        });
        let (provider, (request, model_id)) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return Prepared::Skip(error),
        };
        let form = multipart::with_field(&head.bytes, &self.boundary, "model", head.model.clone(), &model_id);
        let (mut request, ()) = request.into_parts();
        if let Some(content_type) = &self.content_type {
            request.headers.insert(http::header::CONTENT_TYPE, content_type.clone());
        }
        if !head.streamed {
            return Prepared::Send(
                provider,
                Upstream::Replayable(http::Request::from_parts(request, Bytes::from(form))),
            );
        }
        let Some(remaining) = head.rest.take() else {
            return Prepared::Spent(UpstreamError::UploadStreamedEarlier.into());
        };
        if let Some(length) = self.declared.and_then(|d| d.checked_sub(head.bytes.len())).map(|r| r + form.len()) {
            request.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        let sent_before = form.len();
        let body = bounded_rest(
            Rc::clone(host),
            (form, remaining, head.watch.take()),
            (sent_before, self.cx.config.limits.max_upload_bytes, self.cx.config.timeouts.idle_ms),
            self.path.clone(),
            Rc::clone(&self.cut),
        );
        let request = http::Request::from_parts(request, Body::Stream(body));
        Prepared::Send(provider, Upstream::Once(RefCell::new(Some(request))))
    }

    fn delivery(&self) -> Delivery<'_> {
        Delivery::Operation { op: self.op, base64_embeddings: false }
    }

    /// A cut on the client's side (too large, stalled) is the client's error, whatever the
    /// upstream made of the aborted request.
    fn interrupted(&self) -> Option<ApiError> {
        self.cut.borrow_mut().take()
    }
}
