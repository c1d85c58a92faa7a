//! Requests to an MCP server and the relay of its answers: a JSON body, or an event stream whose
//! messages are each inspected, converted and forwarded as they arrive.

use std::rc::Rc;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use super::super::body::{read_whole, with_timeout};
use super::super::stream::{pump, Outlet, Pull};
use super::hooks::{Hook, ServerGuard};
use crate::config::{Config, McpServerConfig};
use crate::host::{Body, ByteStream, Host};
use crate::mcp::{era, Kind, Message, RpcError, ToolGate};
use crate::sse::{SseEvent, SseParser};

/// Client headers an MCP server may need, forwarded as they are.
/// (`Mcp-Method` and `Mcp-Name` are not among them: they are written from the body.)
const FORWARDED: &[&str] = &["accept", "content-type", "mcp-protocol-version", "mcp-session-id", "last-event-id"];

/// Server headers the client may need, relayed as they are.
const RELAYED: &[&str] =
    &["content-type", "mcp-session-id", "allow", "retry-after", "cache-control", "www-authenticate"];

/// An MCP error response: the JSON-RPC error in the body, with an HTTP status.
pub(crate) fn rpc_response(status: StatusCode, error: &RpcError, id: Option<&Value>) -> http::Response<Body> {
    let body = serde_json::to_vec(&error.response(id)).unwrap_or_default();
    let mut response = http::Response::new(Body::Full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON-RPC result (or any JSON-RPC message) as a `200 application/json` response.
pub(crate) fn message_response(message: &Value, session: Option<&str>) -> http::Response<Body> {
    let mut response = http::Response::new(Body::Full(Bytes::from(serde_json::to_vec(message).unwrap_or_default())));
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(value) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        response.headers_mut().insert("mcp-session-id", value);
    }
    response
}

/// `202 Accepted`, no body: what a server answers to a notification or a response.
pub(crate) fn accepted() -> http::Response<Body> {
    let mut response = http::Response::new(Body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

/// The request to the server: the client's MCP headers (or the bridge's), the server's
/// credential (`Authorization`, resolved per credential mode), never the client's `Host` (the
/// runtime sets the server's) nor its gateway key.
pub(crate) fn upstream_request(
    server: &McpServerConfig,
    method: http::Method,
    client: &HeaderMap,
    overrides: &[(&'static str, Option<String>)],
    authorization: Option<&str>,
    body: Bytes,
) -> Result<http::Request<Body>, RpcError> {
    let mut headers = HeaderMap::new();
    for (name, value) in client {
        let name_str = name.as_str();
        if FORWARDED.contains(&name_str) || name_str.starts_with("mcp-param-") {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in overrides {
        headers.remove(*name);
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(*name, value);
        }
    }
    if method == http::Method::POST {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(http::header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
    }
    if let Some(value) = authorization {
        let value = HeaderValue::from_str(value).map_err(|_| {
            RpcError::new(crate::mcp::code::INTERNAL_ERROR, "the server's credential is not a valid header")
        })?;
        headers.insert(http::header::AUTHORIZATION, value);
    }
    let mut request = http::Request::new(Body::Full(body));
    *request.method_mut() = method;
    *request.uri_mut() = server
        .url
        .parse()
        .map_err(|_| RpcError::new(crate::mcp::code::INTERNAL_ERROR, "the server's URL is not valid"))?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// How messages from the server are changed on their way to this client.
#[derive(Clone, Default)]
pub(crate) enum Conversion {
    /// Same era on both sides.
    #[default]
    None,
    /// A current-era server, a legacy client.
    ToLegacy,
    /// A legacy server, a current-era client: results gain the current revision's fields.
    ToModern { server_info: Option<Value> },
}

/// Keeps a server message as a payload snapshot on the exchange's span.
pub(crate) type Snapshot = Rc<dyn Fn(&Message)>;

/// What the relay does to each message the server sends for one client request.
#[derive(Clone)]
pub(crate) struct Outbound {
    /// The client request's method, which decides what its result needs.
    pub method: Option<String>,
    /// The called tool, for a `tools/call`.
    pub tool: Option<String>,
    pub enabled_tools: Vec<String>,
    pub conversion: Conversion,
    /// The output phase of guardrails, when policies are in scope.
    pub guard: Option<Rc<dyn ServerGuard>>,
    /// Keeps the response as a payload snapshot (when snapshots are on).
    pub snapshot: Option<Snapshot>,
}

/// What becomes of one server message.
pub(crate) enum Verdict {
    Forward(Message),
    /// Not for this client (a server request a current-era client cannot answer): the server
    /// gets this response instead.
    AnswerServer(Value),
}

impl Outbound {
    pub async fn apply(&self, mut message: Message) -> Verdict {
        let hook = match message.kind() {
            Some(Kind::Response) => Hook::of(self.method.as_deref().unwrap_or_default()),
            _ => Hook::of(message.method().unwrap_or_default()),
        };
        if let Some(guard) = &self.guard {
            if let Err(error) = guard.output(hook, self.tool.as_deref(), &mut message).await {
                return match message.kind() {
                    Some(Kind::Request) => Verdict::AnswerServer(error.response(message.id())),
                    _ => Verdict::Forward(Message::from_value(error.response(message.id())).unwrap_or(message)),
                };
            }
        }
        if let (Some(snapshot), Some(Kind::Response)) = (&self.snapshot, message.kind()) {
            snapshot(&message);
        }
        match message.kind() {
            Some(Kind::Response) => {
                let method = self.method.as_deref().unwrap_or_default();
                if let Some(result) = message.result_mut() {
                    let gate = ToolGate { enabled: &self.enabled_tools };
                    // Whatever the request (a replayed stream has none at hand): no tool list
                    // passes unfiltered.
                    if matches!(method, "tools/list" | "server/discover") || result.contains_key("tools") {
                        gate.filter_list(result);
                    }
                    match &self.conversion {
                        Conversion::None => {}
                        Conversion::ToLegacy if result.get("resultType").is_some_and(|t| t == "input_required") => {
                            let error = RpcError::new(
                                crate::mcp::code::INTERNAL_ERROR,
                                "the server asked the user for input (2026-07-28 multi-round-trip), which the \
                                 gateway cannot relay to a session of an earlier protocol version",
                            );
                            return Verdict::Forward(
                                Message::from_value(error.response(message.id())).unwrap_or(message),
                            );
                        }
                        Conversion::ToLegacy => era::to_legacy_result(result),
                        Conversion::ToModern { server_info } => {
                            era::to_modern_result(method, result, server_info.as_ref());
                        }
                    }
                }
                Verdict::Forward(message)
            }
            Some(Kind::Request) if matches!(self.conversion, Conversion::ToModern { .. }) => {
                let error = RpcError::new(
                    crate::mcp::code::METHOD_NOT_FOUND,
                    "the client (2026-07-28, through the gateway) cannot answer server requests",
                );
                Verdict::AnswerServer(error.response(message.id()))
            }
            _ => Verdict::Forward(message),
        }
    }
}

/// Where to POST an answer to a server request the client cannot take.
#[derive(Clone)]
pub(crate) struct Responder {
    pub request: http::Request<Bytes>,
}

/// How much of a body of another content type is read to see whether it is empty.
const OTHER_BODY_LIMIT: usize = 64 * 1024;

/// A server answer the gateway will not relay as it is: the client learns the server's status
/// (its headers, such as a `WWW-Authenticate` challenge, kept) with a JSON-RPC error in place of
/// the body; a success status becomes `502`, since no usable answer came.
fn not_relayed(status: StatusCode, mut headers: HeaderMap, what: &str) -> http::Response<Body> {
    let (status, message) = if status.is_success() {
        (StatusCode::BAD_GATEWAY, format!("the MCP server's answer {what}; the gateway relays only what it inspects"))
    } else {
        (status, format!("the MCP server answered HTTP {}", status.as_u16()))
    };
    let mut response = rpc_response(status, &RpcError::new(crate::mcp::code::INTERNAL_ERROR, message), None);
    headers.remove(http::header::CONTENT_TYPE);
    headers.remove(http::header::CONTENT_LENGTH);
    for (name, value) in &headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// The server's response, relayed: status and MCP headers as they are; a JSON-RPC body through
/// `outbound`, whole or message by message in an event stream.
pub(crate) async fn relay<H: Host + 'static>(
    host: &Rc<H>,
    config: &Config,
    response: http::Response<Body>,
    outbound: Outbound,
    responder: Option<Responder>,
) -> http::Response<Body> {
    let (parts, body) = response.into_parts();
    let mut headers = HeaderMap::new();
    for name in RELAYED {
        // Across a bridge the session on each side is the gateway's own business.
        let bridged = !matches!(outbound.conversion, Conversion::None);
        if bridged && *name == "mcp-session-id" {
            continue;
        }
        if let Some(value) = parts.headers.get(*name) {
            headers.insert(*name, value.clone());
        }
    }
    let kind = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = if kind.starts_with("application/json") {
        let limit = config.limits.max_response_bytes;
        match read_whole(&**host, body, limit, config.timeouts.idle_ms).await {
            Ok(bytes) if bytes.is_empty() => Body::empty(),
            Ok(bytes) => match Message::parse(&bytes) {
                Ok(message) => match outbound.apply(message).await {
                    Verdict::Forward(message) => Body::Full(Bytes::from(message.to_bytes())),
                    // Refused by guardrails, or a server request this client cannot take: the
                    // client gets the refusal, never the original.
                    Verdict::AnswerServer(answer) => {
                        Body::Full(Bytes::from(serde_json::to_vec(&answer).unwrap_or_default()))
                    }
                },
                // A body that is not one JSON-RPC message (a batch, duplicate keys, not JSON)
                // is never relayed: what the gateway cannot inspect does not pass.
                Err(_) => return not_relayed(parts.status, headers, "is not a JSON-RPC message"),
            },
            Err(_) => {
                let error = RpcError::new(crate::mcp::code::INTERNAL_ERROR, "the server's response could not be read");
                return rpc_response(StatusCode::BAD_GATEWAY, &error, None);
            }
        }
    } else if kind.starts_with("text/event-stream") {
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        let stream = match body {
            Body::Stream(stream) => stream,
            Body::Full(bytes) => Box::pin(futures::stream::iter([Ok(bytes)])),
        };
        Body::Stream(relay_events(Rc::clone(host), stream, outbound, responder, config.timeouts.idle_ms))
    } else {
        // Any other content type: only an empty body passes (`202 Accepted`, a `DELETE`).
        match read_whole(&**host, body, OTHER_BODY_LIMIT, config.timeouts.idle_ms).await {
            Ok(bytes) if bytes.is_empty() => Body::empty(),
            _ => return not_relayed(parts.status, headers, "is neither JSON nor an event stream"),
        }
    };
    let mut out = http::Response::new(body);
    *out.status_mut() = parts.status;
    *out.headers_mut() = headers;
    out
}

struct EventRelay<H: Host + 'static> {
    host: Rc<H>,
    upstream: ByteStream,
    parser: SseParser,
    outbound: Outbound,
    responder: Option<Responder>,
    out: Outlet,
    idle_ms: u64,
}

impl<H: Host + 'static> EventRelay<H> {
    async fn events(&mut self, events: Vec<SseEvent>) {
        for event in events {
            // A priming event (an id to resume from, no message) carries nothing to inspect.
            if event.data.trim().is_empty() {
                self.out.queue.push_back(event.encode(""));
                continue;
            }
            // Anything else must be one JSON-RPC message: other data is never relayed.
            let Ok(message) = Message::parse(event.data.as_bytes()) else { continue };
            match self.outbound.apply(message).await {
                Verdict::Forward(message) => {
                    let json = String::from_utf8(message.to_bytes()).unwrap_or_default();
                    self.out.queue.push_back(event.encode(&json));
                }
                Verdict::AnswerServer(answer) => {
                    if let Some(responder) = &self.responder {
                        let mut request = responder.request.clone();
                        *request.body_mut() = Bytes::from(serde_json::to_vec(&answer).unwrap_or_default());
                        let sent = with_timeout(&*self.host, self.idle_ms, self.host.fetch(request.map(Body::Full)));
                        let _ = sent.await;
                    }
                }
            }
        }
    }

    async fn pull_upstream(&mut self) {
        match with_timeout(&*self.host, self.idle_ms, self.upstream.next()).await {
            Some(Some(Ok(bytes))) => match self.parser.push(&bytes) {
                Ok(events) => self.events(events).await,
                Err(_) => self.out.done = true,
            },
            Some(None) => {
                let rest = std::mem::take(&mut self.parser).finish();
                self.events(rest).await;
                self.out.done = true;
            }
            // A broken or stalled server stream ends the client's; the client re-sends or
            // resumes (legacy) as the protocol has it.
            Some(Some(Err(_))) | None => self.out.done = true,
        }
    }
}

fn relay_events<H: Host + 'static>(
    host: Rc<H>,
    upstream: ByteStream,
    outbound: Outbound,
    responder: Option<Responder>,
    idle_ms: u64,
) -> ByteStream {
    let state =
        EventRelay { host, upstream, parser: SseParser::new(), outbound, responder, out: Outlet::default(), idle_ms };
    pump(state)
}

impl<H: Host + 'static> Pull for EventRelay<H> {
    fn outlet(&mut self) -> &mut Outlet {
        &mut self.out
    }

    async fn pull(&mut self) {
        self.pull_upstream().await;
    }
}

/// The first JSON-RPC response in a server's answer (JSON, or an event stream read until it),
/// within the first-byte timeout as a whole: keep-alives alone never hold the gateway's own
/// handshake forever.
pub(crate) async fn first_response<H: Host>(
    host: &H,
    config: &Config,
    response: http::Response<Body>,
) -> Option<Message> {
    with_timeout(host, config.timeouts.first_byte_ms, read_first_response(host, config, response)).await.flatten()
}

async fn read_first_response<H: Host>(host: &H, config: &Config, response: http::Response<Body>) -> Option<Message> {
    let is_stream = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = response.into_body();
    if !is_stream {
        let bytes = read_whole(host, body, config.limits.max_response_bytes, config.timeouts.idle_ms).await.ok()?;
        return Message::parse(&bytes).ok();
    }
    let mut stream = match body {
        Body::Stream(stream) => stream,
        Body::Full(bytes) => Box::pin(futures::stream::iter([Ok(bytes)])),
    };
    let mut parser = SseParser::new();
    while let Some(Some(Ok(bytes))) = with_timeout(host, config.timeouts.idle_ms, stream.next()).await {
        for event in parser.push(&bytes).ok()? {
            if let Ok(message) = Message::parse(event.data.as_bytes()) {
                if message.kind() == Some(Kind::Response) {
                    return Some(message);
                }
            }
        }
    }
    None
}
