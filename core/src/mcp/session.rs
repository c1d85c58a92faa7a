//! Sessions the gateway issues to legacy clients of a current-era (stateless) server. The
//! session id is sealed (HMAC-SHA-256): it carries what the client said in `initialize`, so any
//! edge instance can verify it and rebuild each request's `_meta` with no shared state.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::hex;

/// What a gateway-issued session remembers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgedSession {
    /// The server's slug and the principal it was issued to: a session is valid for no other.
    pub slug: String,
    pub principal: String,
    /// The protocol version agreed with the client.
    pub version: String,
    pub client_info: Value,
    pub capabilities: Value,
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// HMAC-SHA-256 (RFC 2104).
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    let hashed;
    let key = if key.len() > 64 {
        hashed = Sha256::digest(key);
        hashed.as_slice()
    } else {
        key
    };
    for (slot, byte) in block.iter_mut().zip(key) {
        *slot = *byte;
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// Constant-time comparison, so a forged tag learns nothing from timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl BridgedSession {
    /// The session id: `{hex(json)}.{hex(hmac)}`.
    pub fn seal(&self, key: &[u8]) -> String {
        let body = serde_json::to_vec(self).unwrap_or_default();
        format!("{}.{}", hex(&body), hex(&hmac(key, &body)))
    }

    /// The session behind an id, if the id was issued with this key.
    pub fn open(id: &str, key: &[u8]) -> Option<BridgedSession> {
        let (body, tag) = id.split_once('.')?;
        let body = unhex(body)?;
        if !same(&unhex(tag)?, &hmac(key, &body)) {
            return None;
        }
        serde_json::from_slice(&body).ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let tag = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn a_sealed_session_opens_with_its_key_only_and_resists_tampering() {
        let session = BridgedSession {
            slug: "docs".into(),
            principal: "alice".into(),
            version: "2025-06-18".into(),
            client_info: json!({"name": "c", "version": "1"}),
            capabilities: json!({"sampling": {}}),
        };
        let id = session.seal(b"k1");
        assert_eq!(BridgedSession::open(&id, b"k1"), Some(session));
        assert_eq!(BridgedSession::open(&id, b"k2"), None);
        let mut tampered = id.clone().into_bytes();
        tampered[3] = if tampered[3] == b'0' { b'1' } else { b'0' };
        assert_eq!(BridgedSession::open(&String::from_utf8(tampered).unwrap(), b"k1"), None);
        assert_eq!(BridgedSession::open("nonsense", b"k1"), None);
    }
}
