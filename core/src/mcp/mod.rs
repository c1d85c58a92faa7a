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
pub use session::BridgedSession;
