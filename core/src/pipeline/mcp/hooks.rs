//! Where guardrails and Cedar policies plug into MCP traffic: one named hook per method, for the
//! input phase (the client's request, which may wait on the remote guard service) and the output
//! phase (each server message as it is relayed, SSE events included).

use std::rc::Rc;

use futures::future::LocalBoxFuture;
use serde_json::{Map, Value};

use super::super::guard::{string_leaves_mut, Guard, Point};
use crate::error::ApiError;
use crate::host::Host;
use crate::mcp::{code, Kind, Message, RpcError};
use crate::policy::{Action, Facts, Resource};

/// The lifecycle point a message belongs to (the Cedar action it will be decided as).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    ConnectServer,
    List,
    CallTool,
    GetPrompt,
    ReadResource,
    /// A request the server sends the client (sampling, elicitation, roots).
    ServerRequest,
    /// Everything else (ping, logging, completion, notifications).
    Other,
}

impl Hook {
    pub fn of(method: &str) -> Hook {
        match method {
            "initialize" | "server/discover" => Hook::ConnectServer,
            "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => Hook::List,
            "tools/call" => Hook::CallTool,
            "prompts/get" => Hook::GetPrompt,
            "resources/read" | "resources/subscribe" => Hook::ReadResource,
            "sampling/createMessage" | "elicitation/create" | "roots/list" => Hook::ServerRequest,
            _ => Hook::Other,
        }
    }

    /// The hook a result belongs to, from its shape.
    fn of_result(message: &Message) -> Option<Hook> {
        let result = message.result()?.as_object()?;
        let has = |key: &str| result.contains_key(key);
        if has("tools") || has("prompts") || has("resources") || has("resourceTemplates") {
            Some(Hook::List)
        } else if has("content") || has("structuredContent") {
            Some(Hook::CallTool)
        } else if has("contents") {
            Some(Hook::ReadResource)
        } else if has("messages") {
            Some(Hook::GetPrompt)
        } else {
            None
        }
    }

    /// The Cedar action of a client request at this hook.
    fn input_action(self) -> Option<Action> {
        match self {
            Hook::ConnectServer => Some(Action::ConnectServer),
            Hook::List => Some(Action::List),
            Hook::CallTool => Some(Action::CallTool),
            Hook::GetPrompt => Some(Action::GetPrompt),
            Hook::ReadResource => Some(Action::ReadResource),
            Hook::ServerRequest | Hook::Other => None,
        }
    }
}

/// A guard refusal as the JSON-RPC error the client gets (its HTTP status rides along).
pub(crate) fn rpc_error(error: &ApiError) -> RpcError {
    let reason = error.code.clone().unwrap_or_else(|| error.kind.to_string());
    RpcError::new(code::SERVER_ERROR, error.message.clone()).with_data(serde_json::json!({"reason": reason}))
}

fn param_str<'m>(message: &'m Message, key: &str) -> &'m str {
    message.params().and_then(|p| p.get(key)).and_then(Value::as_str).unwrap_or_default()
}

/// The input phase for a client message: `Err` refuses it before it is forwarded (with the
/// status to answer); redactions are written into the message.
pub(crate) async fn input<H: Host + 'static>(
    guard: Option<&Guard<H>>,
    slug: &str,
    message: &mut Message,
) -> Result<(), ApiError> {
    let Some(guard) = guard else { return Ok(()) };
    let method = message.method().unwrap_or_default().to_owned();
    let hook = Hook::of(&method);
    let Some(action) = hook.input_action().filter(|a| guard.wants(*a)) else { return Ok(()) };
    let name = match hook {
        Hook::ReadResource => param_str(message, "uri").to_owned(),
        _ => param_str(message, "name").to_owned(),
    };
    let arguments = message
        .params()
        .and_then(|p| p.get("arguments"))
        .map(|a| serde_json::to_string(a).unwrap_or_default())
        .unwrap_or_default();
    let resource = match hook {
        Hook::CallTool => Resource::Tool { name: &name, server: Some(slug) },
        _ => Resource::Server { slug },
    };
    let facts = Facts {
        server: slug,
        tool: if hook == Hook::CallTool { &name } else { "" },
        name: &name,
        arguments: &arguments,
        method: &method,
        phase: "input",
        ..Facts::default()
    };
    let point = Point { action, resource, facts };
    let mut slots: Vec<&mut String> = Vec::new();
    if let Some(params) = message.params_mut() {
        for (key, value) in params.iter_mut() {
            match (key.as_str(), value) {
                ("arguments", value) => string_leaves_mut(value, &mut slots),
                ("uri", Value::String(uri)) if hook == Hook::ReadResource => slots.push(uri),
                _ => {}
            }
        }
    }
    guard.check_slots(point, slots).await
}

/// The output phase of one MCP server, as relayed messages see it (not generic over the host).
pub(crate) trait ServerGuard {
    /// Checks one server message bound for the client, redacting in place; `Err` replaces it.
    /// `tool` is the called tool, for a `tools/call` result.
    fn output<'a>(
        &'a self,
        hook: Hook,
        tool: Option<&'a str>,
        message: &'a mut Message,
    ) -> LocalBoxFuture<'a, Result<(), RpcError>>;
}

/// A request's guard, for one server.
pub(crate) struct McpGuard<H: Host + 'static> {
    pub guard: Rc<Guard<H>>,
    pub slug: String,
}

/// The text slots of a result (or a server request's params) under `keys`.
fn slots_under<'m>(map: &'m mut Map<String, Value>, keys: &[&str]) -> Vec<&'m mut String> {
    let mut slots = Vec::new();
    for (key, value) in map.iter_mut() {
        if keys.contains(&key.as_str()) {
            string_leaves_mut(value, &mut slots);
        }
    }
    slots
}

impl<H: Host + 'static> McpGuard<H> {
    fn check_slots(&self, point: Point<'_>, slots: Vec<&mut String>) -> Result<(), ApiError> {
        self.guard.check_slots_now(point, slots)
    }

    /// Checks the texts under `keys` of a result (or a server request's params), the remote
    /// guard service asked once about all of them.
    async fn check_payload(
        &self,
        point: Point<'_>,
        payload: &mut Map<String, Value>,
        keys: &[&str],
    ) -> Result<(), ApiError> {
        let copies: Vec<String> = slots_under(payload, keys).iter().map(|s| s.to_string()).collect();
        let texts: Vec<&str> = copies.iter().map(String::as_str).collect();
        let answer = self.guard.remote_answer(&point, &texts).await?;
        self.guard.check_slots_with(point, slots_under(payload, keys), answer.as_ref())
    }

    /// A list result: each tool, prompt or resource is decided on its own (its description may
    /// carry instructions: tool poisoning); a denied entry is left out.
    fn check_list(&self, result: &mut Map<String, Value>) -> Result<(), ApiError> {
        let slug = self.slug.as_str();
        for key in ["tools", "prompts", "resources", "resourceTemplates"] {
            let Some(Value::Array(items)) = result.get_mut(key) else { continue };
            let mut kept = Vec::with_capacity(items.len());
            for mut item in std::mem::take(items) {
                let name = item.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                let facts =
                    Facts { server: slug, tool: &name, name: &name, method: key, phase: "output", ..Facts::default() };
                let point = Point { action: Action::List, resource: Resource::Server { slug }, facts };
                let slots = match item.as_object_mut() {
                    Some(map) => slots_under(map, &["description", "title", "inputSchema", "annotations"]),
                    None => Vec::new(),
                };
                match self.check_slots(point, slots) {
                    Ok(()) => kept.push(item),
                    Err(error) if error.status == http::StatusCode::FORBIDDEN => {}
                    Err(error) => return Err(error),
                }
            }
            *items = kept;
        }
        Ok(())
    }
}

impl<H: Host + 'static> ServerGuard for McpGuard<H> {
    fn output<'a>(
        &'a self,
        hook: Hook,
        tool: Option<&'a str>,
        message: &'a mut Message,
    ) -> LocalBoxFuture<'a, Result<(), RpcError>> {
        Box::pin(self.output_now(hook, tool, message))
    }
}

impl<H: Host + 'static> McpGuard<H> {
    async fn output_now(&self, hook: Hook, tool: Option<&str>, message: &mut Message) -> Result<(), RpcError> {
        let slug = self.slug.as_str();
        // A response whose request is not at hand (a replayed or GET stream), or a discovery
        // result that lists tools, is inspected by what it carries.
        let hook = match (message.kind(), hook) {
            (Some(Kind::Response), Hook::Other | Hook::ConnectServer) => Hook::of_result(message).unwrap_or(hook),
            _ => hook,
        };
        let outcome = match (message.kind(), hook) {
            (Some(Kind::Response), Hook::List) => match message.result_mut() {
                Some(result) if self.guard.wants(Action::List) => self.check_list(result),
                _ => Ok(()),
            },
            (Some(Kind::Response), Hook::CallTool | Hook::GetPrompt | Hook::ReadResource) => {
                let name = tool.unwrap_or_default();
                let (action, resource) = match hook {
                    Hook::CallTool => (Action::ProcessToolResponse, Resource::Tool { name, server: Some(slug) }),
                    Hook::GetPrompt => (Action::GetPrompt, Resource::Server { slug }),
                    _ => (Action::ReadResource, Resource::Server { slug }),
                };
                let facts = Facts { server: slug, tool: name, phase: "output", ..Facts::default() };
                match message.result_mut() {
                    Some(result) => {
                        let keys = ["content", "structuredContent", "messages", "contents", "description"];
                        self.check_payload(Point { action, resource, facts }, result, &keys).await
                    }
                    None => Ok(()),
                }
            }
            (Some(Kind::Request), Hook::ServerRequest) => {
                let method = message.method().unwrap_or_default().to_owned();
                let facts = Facts { server: slug, tool: &method, method: &method, phase: "output", ..Facts::default() };
                let resource = Resource::Tool { name: &method, server: Some(slug) };
                let point = Point { action: Action::ProcessToolResponse, resource, facts };
                match message.params_mut() {
                    Some(params) => self.check_payload(point, params, &["messages", "message", "systemPrompt"]).await,
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        };
        outcome.map_err(|e| rpc_error(&e))
    }
}
