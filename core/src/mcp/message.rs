//! JSON-RPC 2.0 messages as MCP carries them, and the errors the proxy answers with.

use serde_json::{json, Map, Value};

/// Standard and MCP error codes the proxy uses.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined server error (the gateway's refusals).
    pub const SERVER_ERROR: i64 = -32000;
    /// 2026-07-28: a routing header disagrees with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// 2026-07-28: the protocol version is not supported.
    pub const UNSUPPORTED_VERSION: i64 = -32022;
}

/// What a JSON-RPC message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// One JSON-RPC message, kept whole (unknown fields survive) with its parts at hand.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub body: Map<String, Value>,
}

impl Message {
    /// Parses one message. Batches (2025-03-26 only) are refused: no current SDK sends them.
    pub fn parse(bytes: &[u8]) -> Result<Message, RpcError> {
        match crate::json::from_slice_unique_keys(bytes) {
            Ok(Value::Object(body)) if body.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => {
                let message = Message { body };
                let shaped = match message.kind() {
                    Some(Kind::Request | Kind::Notification) => message.method().is_some(),
                    Some(Kind::Response) => true,
                    None => false,
                };
                if shaped {
                    Ok(message)
                } else {
                    Err(RpcError::new(code::INVALID_REQUEST, "not a JSON-RPC request, notification or response"))
                }
            }
            Ok(Value::Array(_)) => Err(RpcError::new(code::INVALID_REQUEST, "JSON-RPC batches are not supported")),
            Ok(_) => Err(RpcError::new(code::INVALID_REQUEST, "not a JSON-RPC 2.0 message")),
            Err(e) => Err(RpcError::new(code::PARSE_ERROR, format!("not JSON: {e}"))),
        }
    }

    pub fn from_value(value: Value) -> Option<Message> {
        match value {
            Value::Object(body) => Some(Message { body }),
            _ => None,
        }
    }

    pub fn kind(&self) -> Option<Kind> {
        let has = |k: &str| self.body.contains_key(k);
        match (has("method"), has("id"), has("result") || has("error")) {
            (true, true, false) => Some(Kind::Request),
            (true, false, false) => Some(Kind::Notification),
            (false, true, true) => Some(Kind::Response),
            _ => None,
        }
    }

    pub fn id(&self) -> Option<&Value> {
        self.body.get("id")
    }

    pub fn method(&self) -> Option<&str> {
        self.body.get("method").and_then(Value::as_str)
    }

    pub fn params(&self) -> Option<&Map<String, Value>> {
        self.body.get("params").and_then(Value::as_object)
    }

    /// `params`, created when absent; `None` when the message has non-object params.
    pub fn params_mut(&mut self) -> Option<&mut Map<String, Value>> {
        self.body.entry("params").or_insert_with(|| Value::Object(Map::new())).as_object_mut()
    }

    /// `params._meta`, if any.
    pub fn meta(&self) -> Option<&Map<String, Value>> {
        self.params()?.get("_meta")?.as_object()
    }

    pub fn result(&self) -> Option<&Value> {
        self.body.get("result")
    }

    pub fn result_mut(&mut self) -> Option<&mut Map<String, Value>> {
        self.body.get_mut("result")?.as_object_mut()
    }

    /// The name a request acts on: the tool or prompt name, or the resource URI (what the
    /// 2026-07-28 `Mcp-Name` header mirrors).
    pub fn name(&self) -> Option<&str> {
        let key = match self.method()? {
            "tools/call" | "prompts/get" => "name",
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
            _ => return None,
        };
        self.params()?.get(key)?.as_str()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

/// A JSON-RPC error the proxy answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    #[must_use]
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The error response to a request `id` (`null` when the request had none or was unreadable).
    pub fn response(&self, id: Option<&Value>) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(data), Some(map)) = (&self.data, error.as_object_mut()) {
            map.insert("data".into(), data.clone());
        }
        json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_classified_and_their_names_found() {
        let call =
            Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}}"#).unwrap();
        assert_eq!((call.kind(), call.name()), (Some(Kind::Request), Some("add")));
        let read = Message::parse(br#"{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":"x://a"}}"#);
        assert_eq!(read.unwrap().name(), Some("x://a"));
        let note = Message::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(note.kind(), Some(Kind::Notification));
        let response = Message::parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap();
        assert_eq!(response.kind(), Some(Kind::Response));
    }

    #[test]
    fn malformed_messages_are_json_rpc_errors() {
        assert_eq!(Message::parse(b"{").unwrap_err().code, code::PARSE_ERROR);
        assert_eq!(Message::parse(b"[]").unwrap_err().code, code::INVALID_REQUEST);
        assert_eq!(
            Message::parse(br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).unwrap_err().code,
            code::INVALID_REQUEST
        );
        assert_eq!(Message::parse(br#"{"jsonrpc":"2.0","id":1}"#).unwrap_err().code, code::INVALID_REQUEST);
        assert_eq!(Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":5}"#).unwrap_err().code, code::INVALID_REQUEST);
    }
}
