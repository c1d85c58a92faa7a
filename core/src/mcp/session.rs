//! Session ids the gateway issues to MCP clients. Every session a client holds is the gateway's
//! own: a legacy server's `Mcp-Session-Id` never reaches the client as it is, and a client's never
//! reaches the server as it is. The id seals (XChaCha20-Poly1305) who opened the session, for
//! which server, until when, and either the server's own session id (a session relayed as it is)
//! or what the client said in `initialize` (a session the gateway bridges to a stateless server).
//! Any edge instance opens it with the key alone, with no shared state; only an ended session
//! (`DELETE`) leaves a revocation entry in the store for the rest of its lifetime.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::hex;

/// How long a session id is valid from its issue (a client then starts a new session, as the
/// protocol has it after a `404`).
pub const SESSION_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;

/// The version prefix of the ids this code issues.
const PREFIX: &str = "gw2.";
/// Bound into every sealed id (as associated data), so nothing else sealed with the key opens as a session.
const CONTEXT: &[u8] = b"edge-gateway mcp session v2";
const NONCE_LEN: usize = 24;
/// Longest id accepted (a server's own id and a client's `initialize` fit well within).
const MAX_ID_LEN: usize = 16 * 1024;

/// What the session stands for at the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionKind {
    /// A legacy server's own session, relayed: its id, sent in the gateway's place.
    Relayed { upstream: String },
    /// A session the gateway keeps for a legacy client of a stateless (2026-07-28) server.
    Bridged { version: String, client_info: Value, capabilities: Value },
}

/// What a gateway-issued session id carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewaySession {
    /// A random id of the session itself, under which it is revoked.
    pub sid: String,
    /// The server's slug and the owner it was issued to: a session is valid for no other.
    pub slug: String,
    pub owner: String,
    /// Milliseconds since the epoch after which the id is refused.
    pub expires_ms: u64,
    #[serde(flatten)]
    pub kind: SessionKind,
}

/// Why a presented session id is refused (the client is told only `Session not found`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not an id this gateway issued with this key (forged, damaged, or of an older format).
    Unreadable,
    Expired,
    /// Issued for another server or another owner.
    Foreign,
}

/// The keys sessions are sealed with, derived from one secret.
pub struct SessionKeys {
    cipher: XChaCha20Poly1305,
    nonce_key: [u8; 32],
}

impl SessionKeys {
    pub fn new(secret: &[u8]) -> SessionKeys {
        let cipher_key = hmac(secret, b"edge-gateway mcp session v2: encryption");
        let nonce_key = hmac(secret, b"edge-gateway mcp session v2: nonce");
        SessionKeys { cipher: XChaCha20Poly1305::new(&cipher_key.into()), nonce_key }
    }
}

impl GatewaySession {
    /// The session id: `gw2.` and the hex of nonce and ciphertext. The nonce is a MAC of the
    /// plaintext (synthetic, as in SIV): no two different sessions share one, with no need for a
    /// cryptographic random source in the runtime.
    pub fn seal(&self, keys: &SessionKeys) -> String {
        let plaintext = serde_json::to_vec(self).unwrap_or_default();
        let tag = hmac(&keys.nonce_key, &plaintext);
        let nonce = XNonce::from_slice(tag.get(..NONCE_LEN).unwrap_or(&[0; NONCE_LEN]));
        let sealed = keys.cipher.encrypt(nonce, Payload { msg: &plaintext, aad: CONTEXT }).unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", hex(&bytes))
    }

    /// The session behind an id, if this gateway issued it with these keys for this server and
    /// owner, and it has not expired.
    pub fn open(id: &str, keys: &SessionKeys, slug: &str, owner: &str, now_ms: u64) -> Result<GatewaySession, Refused> {
        if id.len() > MAX_ID_LEN {
            return Err(Refused::Unreadable);
        }
        let bytes = id.strip_prefix(PREFIX).and_then(unhex).ok_or(Refused::Unreadable)?;
        if bytes.len() < NONCE_LEN {
            return Err(Refused::Unreadable);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plaintext = keys
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: CONTEXT })
            .map_err(|_| Refused::Unreadable)?;
        let session: GatewaySession = serde_json::from_slice(&plaintext).map_err(|_| Refused::Unreadable)?;
        if session.slug != slug || session.owner != owner {
            return Err(Refused::Foreign);
        }
        if session.expires_ms <= now_ms {
            return Err(Refused::Expired);
        }
        Ok(session)
    }
}

/// The issuer and subject of a JWT (`iss`, `sub`), read without verifying it; `None` for a
/// token that is not a JWT with a subject.
pub fn jwt_subject(token: &str) -> Option<(String, String)> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 8 * 1024 {
        return None;
    }
    let claims: Value = serde_json::from_slice(&super::gate::base64_decode(payload)?).ok()?;
    let subject = claims.get("sub")?.as_str()?.to_owned();
    let issuer = claims.get("iss").and_then(Value::as_str).unwrap_or_default().to_owned();
    Some((issuer, subject))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// HMAC-SHA-256 (RFC 2104).
pub(crate) fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn session(kind: SessionKind) -> GatewaySession {
        GatewaySession { sid: "s1".into(), slug: "docs".into(), owner: "user:alice".into(), expires_ms: 1_000, kind }
    }

    fn bridged() -> GatewaySession {
        session(SessionKind::Bridged {
            version: "2025-06-18".into(),
            client_info: json!({"name": "c", "version": "1"}),
            capabilities: json!({"sampling": {}}),
        })
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let tag = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn a_sealed_session_opens_with_its_key_for_its_server_and_owner_only() {
        let keys = SessionKeys::new(b"k1");
        for original in [bridged(), session(SessionKind::Relayed { upstream: "abc-123".into() })] {
            let id = original.seal(&keys);
            assert_eq!(GatewaySession::open(&id, &keys, "docs", "user:alice", 999), Ok(original.clone()));
            assert_eq!(
                GatewaySession::open(&id, &SessionKeys::new(b"k2"), "docs", "user:alice", 999),
                Err(Refused::Unreadable)
            );
            assert_eq!(GatewaySession::open(&id, &keys, "docs", "user:bob", 999), Err(Refused::Foreign));
            assert_eq!(GatewaySession::open(&id, &keys, "other", "user:alice", 999), Err(Refused::Foreign));
            assert_eq!(GatewaySession::open(&id, &keys, "docs", "user:alice", 1_000), Err(Refused::Expired));
        }
    }

    #[test]
    fn nothing_of_the_session_is_readable_in_its_id() {
        let keys = SessionKeys::new(b"k1");
        let id = session(SessionKind::Relayed { upstream: "upstream-session-42".into() }).seal(&keys);
        for secret in ["alice", "docs", "upstream-session-42"] {
            assert!(!id.contains(secret) && !id.contains(&hex(secret.as_bytes())), "{secret} shows in {id}");
        }
    }

    #[test]
    fn every_damaged_byte_and_the_old_format_are_refused() {
        let keys = SessionKeys::new(b"k1");
        let id = bridged().seal(&keys);
        let bytes = id.as_bytes();
        for at in PREFIX.len()..bytes.len() {
            let mut damaged = bytes.to_vec();
            damaged[at] = if damaged[at] == b'0' { b'1' } else { b'0' };
            let damaged = String::from_utf8(damaged).unwrap();
            assert_eq!(GatewaySession::open(&damaged, &keys, "docs", "user:alice", 0), Err(Refused::Unreadable));
        }
        assert_eq!(GatewaySession::open(&id[..id.len() - 2], &keys, "docs", "user:alice", 0), Err(Refused::Unreadable));
        assert_eq!(GatewaySession::open("7b7d.00", &keys, "docs", "user:alice", 0), Err(Refused::Unreadable));
        assert_eq!(GatewaySession::open("gw2.zz", &keys, "docs", "user:alice", 0), Err(Refused::Unreadable));
        assert_eq!(GatewaySession::open("", &keys, "docs", "user:alice", 0), Err(Refused::Unreadable));
    }

    #[test]
    fn a_jwt_subject_is_read_and_other_tokens_are_not_jwts() {
        // {"alg":"none"} . {"iss":"https://as.example","sub":"alice"} . (no signature)
        let token = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2FzLmV4YW1wbGUiLCJzdWIiOiJhbGljZSJ9.";
        assert_eq!(jwt_subject(token), Some(("https://as.example".into(), "alice".into())));
        assert_eq!(jwt_subject("opaque-token"), None);
        assert_eq!(jwt_subject("a.b.c.d"), None);
        assert_eq!(jwt_subject("eyJhbGciOiJub25lIn0.e30."), None, "no subject");
        assert_eq!(jwt_subject("x.!!!.y"), None);
    }

    #[test]
    fn two_sessions_differing_only_in_their_sid_share_no_nonce() {
        let keys = SessionKeys::new(b"k1");
        let a = bridged().seal(&keys);
        let b = GatewaySession { sid: "s2".into(), ..bridged() }.seal(&keys);
        let nonce = |id: &str| id[PREFIX.len()..PREFIX.len() + 2 * NONCE_LEN].to_owned();
        assert_ne!(nonce(&a), nonce(&b));
    }
}
