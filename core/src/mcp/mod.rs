//! MCP (Model Context Protocol) over Streamable HTTP, as the proxy at `/mcp/{slug}/` needs it:
//! JSON-RPC messages, the protocol eras and the bridge between them, the registry's tool gate
//! and routing-header checks, and sealed sessions. Pure functions; the pipeline does the I/O.

pub mod era;
pub mod gate;
pub mod message;
pub mod redact;
pub mod session;

pub use era::{Era, MODERN};
pub use gate::{RoutingHeaders, ToolGate};
pub use message::{code, Kind, Message, RpcError};
pub use session::{jwt_subject, GatewaySession, Refused as SessionRefused, SessionKeys, SessionKind};

/// A short, stable digest for KV keys: SHA-256 over the parts (each followed by a zero byte),
/// the first 12 bytes in hex. Keys never hold a principal's id, token or arguments in clear.
pub fn key_hash(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update([0]);
    }
    hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}
