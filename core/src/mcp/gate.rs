//! What a server's registry entry lets through: enabled tools, and the 2026-07-28 routing
//! headers checked against the body.

use serde_json::Value;

use super::message::{code, Message, RpcError};

/// The tools a server exposes through the gateway: none unless enabled, `*` for all.
#[derive(Debug, Clone, Copy)]
pub struct ToolGate<'c> {
    pub enabled: &'c [String],
}

impl ToolGate<'_> {
    pub fn allows(&self, tool: &str) -> bool {
        self.enabled.iter().any(|t| t == "*" || t == tool)
    }

    /// Removes the tools that are not enabled from a `tools/list` result (its cursor stays, so
    /// pagination goes on as the server paged).
    pub fn filter_list(&self, result: &mut serde_json::Map<String, Value>) {
        if let Some(Value::Array(tools)) = result.get_mut("tools") {
            tools.retain(|t| t.get("name").and_then(Value::as_str).is_some_and(|n| self.allows(n)));
        }
    }
}

/// Decodes a header value: plain, or `=?base64?…?=` for values not safe in a header.
pub fn decode_header(value: &str) -> Option<String> {
    match value.strip_prefix("=?base64?").and_then(|v| v.strip_suffix("?=")) {
        Some(encoded) => String::from_utf8(base64_decode(encoded)?).ok(),
        None => Some(value.to_owned()),
    }
}

/// A value for a routing header: as it is when header-safe, else `=?base64?…?=`.
pub fn encode_header(value: &str) -> String {
    let safe = value.bytes().all(|b| (0x20..0x7f).contains(&b)) && value.trim() == value && !value.starts_with("=?");
    if safe {
        return value.to_owned();
    }
    format!("=?base64?{}?=", crate::providers::base64(value.as_bytes()))
}

pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The 2026-07-28 routing headers of a request, as the client sent them.
#[derive(Debug, Default, Clone)]
pub struct RoutingHeaders {
    pub method: Option<String>,
    pub name: Option<String>,
    /// A routing header was sent twice, or could not be decoded.
    pub malformed: bool,
}

impl RoutingHeaders {
    pub fn from(headers: &http::HeaderMap) -> Self {
        let mut malformed = false;
        let mut get = |name: &str| {
            let mut values = headers.get_all(name).iter();
            let first = values.next()?;
            let decoded = first.to_str().ok().and_then(decode_header);
            malformed |= decoded.is_none() || values.next().is_some();
            decoded
        };
        let method = get("mcp-method");
        let name = get("mcp-name");
        RoutingHeaders { method, name, malformed }
    }

    /// Confirms the headers against the body: a header that disagrees is refused (`-32020`).
    pub fn check(&self, message: &Message) -> Result<(), RpcError> {
        if self.malformed {
            return Err(RpcError::new(
                code::HEADER_MISMATCH,
                "Header mismatch: a routing header is repeated or not decodable",
            ));
        }
        let mismatch = |header: &str, sent: &str, body: &str| {
            RpcError::new(
                code::HEADER_MISMATCH,
                format!("Header mismatch: {header} header value '{sent}' does not match body value '{body}'"),
            )
        };
        if let (Some(sent), Some(method)) = (&self.method, message.method()) {
            if sent != method {
                return Err(mismatch("Mcp-Method", sent, method));
            }
        }
        match (&self.name, message.name()) {
            (Some(sent), Some(name)) if sent != name => Err(mismatch("Mcp-Name", sent, name)),
            (Some(sent), None) if message.method().is_some() => Err(mismatch("Mcp-Name", sent, "")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tools_are_off_until_enabled_and_lists_are_filtered() {
        let enabled = vec!["add".to_owned()];
        let gate = ToolGate { enabled: &enabled };
        assert!(gate.allows("add") && !gate.allows("rm"));
        let all = vec!["*".to_owned()];
        assert!(ToolGate { enabled: &all }.allows("rm"));
        assert!(!ToolGate { enabled: &[] }.allows("add"));
        let mut result = json!({"tools": [{"name": "add"}, {"name": "rm"}], "nextCursor": "c2"});
        gate.filter_list(result.as_object_mut().unwrap());
        assert_eq!(result, json!({"tools": [{"name": "add"}], "nextCursor": "c2"}));
    }

    #[test]
    fn routing_headers_must_agree_with_the_body() {
        let call = Message::from_value(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                              "params": {"name": "add"}}))
        .unwrap();
        let headers = |m: &str, n: Option<&str>| RoutingHeaders {
            method: Some(m.into()),
            name: n.map(Into::into),
            malformed: false,
        };
        assert!(headers("tools/call", Some("add")).check(&call).is_ok());
        assert_eq!(headers("tools/call", Some("rm")).check(&call).unwrap_err().code, code::HEADER_MISMATCH);
        assert_eq!(headers("tools/list", None).check(&call).unwrap_err().code, code::HEADER_MISMATCH);
        assert_eq!(decode_header("=?base64?aMOpbGxv?=").as_deref(), Some("héllo"));
        assert_eq!(decode_header("plain").as_deref(), Some("plain"));
        for value in ["héllo", "plain", " padded", "=?base64?x?="] {
            assert_eq!(decode_header(&encode_header(value)).as_deref(), Some(value));
        }
    }
}
