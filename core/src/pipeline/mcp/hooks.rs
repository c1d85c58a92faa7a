//! Where guardrails and Cedar policies plug into MCP traffic: one named hook per method, for the
//! input phase (the client's request) and the output phase (the server's result). Until the
//! guardrail issue lands every hook allows.

use crate::mcp::{Message, RpcError};

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
}

/// The input phase for a client message: `Err` refuses it before it is forwarded.
pub fn input(message: &Message) -> Result<(), RpcError> {
    let _hook = Hook::of(message.method().unwrap_or_default());
    Ok(())
}

/// The output phase for a server message (a result, a notification or a server request).
pub fn output(_hook: Hook, _message: &Message) -> Result<(), RpcError> {
    Ok(())
}
