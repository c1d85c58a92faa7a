//! Tool arguments as an audit record may keep them: secrets replaced, size capped.

use serde_json::Value;

/// Longest arguments text kept in an audit record.
pub const MAX_ARGUMENTS: usize = 2048;

const REDACTED: &str = "[redacted]";

/// Field names whose values are secrets whatever they look like.
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace(['-', '_'], "");
    ["password", "passwd", "secret", "token", "apikey", "authorization", "credential", "privatekey", "cookie"]
        .iter()
        .any(|k| key.contains(k))
}

/// Values that look like credentials: API keys by their well-known prefixes, bearer tokens, JWTs.
fn secret_value(text: &str) -> bool {
    let prefixes =
        ["sk-", "sk_", "pk_live_", "rk_live_", "ghp_", "gho_", "github_pat_", "xox", "AKIA", "AIza", "glpat-"];
    let jwt = text.split('.').count() == 3 && text.starts_with("eyJ");
    text.trim_start().to_ascii_lowercase().starts_with("bearer ") || prefixes.iter().any(|p| text.starts_with(p)) || jwt
}

fn scrub(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if secret_key(key) {
                    *item = Value::from(REDACTED);
                } else {
                    scrub(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::String(text) if secret_value(text) => *value = Value::from(REDACTED),
        _ => {}
    }
}

/// Longest tool name or resource URI kept in a span name, an attribute or an audit record.
pub const MAX_NAME: usize = 128;

/// A tool name or resource URI as traces and audit records keep it: a secret-looking value
/// (a URI carrying a token, say) redacted, query strings dropped, at most [`MAX_NAME`] characters.
pub fn audit_name(name: &str) -> String {
    if secret_value(name) {
        return REDACTED.to_owned();
    }
    // A URI's query and fragment are where tokens travel.
    let name = name.split(['?', '#']).next().unwrap_or_default();
    let mut out: String = name.chars().filter(|c| !c.is_control()).take(MAX_NAME).collect();
    if name.chars().count() > MAX_NAME {
        out.push('…');
    }
    out
}

/// The arguments as JSON text for an audit record: secrets redacted, at most
/// [`MAX_ARGUMENTS`] bytes (cut on a character boundary, marked with `…`).
pub fn audit_arguments(arguments: &Value) -> String {
    let mut arguments = arguments.clone();
    scrub(&mut arguments);
    let mut text = arguments.to_string();
    if text.len() > MAX_ARGUMENTS {
        let mut cut = MAX_ARGUMENTS;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn names_and_uris_are_capped_and_stripped_of_what_carries_secrets() {
        assert_eq!(audit_name("search"), "search");
        assert_eq!(audit_name("https://files.example/a.txt?token=sk-live-1#x"), "https://files.example/a.txt");
        assert_eq!(audit_name("sk-proj-abcdef"), "[redacted]");
        assert_eq!(audit_name("a\nb\u{7}c"), "abc");
        let long = "x".repeat(1000);
        assert_eq!(audit_name(&long).chars().count(), MAX_NAME + 1);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_redacted_by_name_and_by_shape() {
        let args = json!({"query": "weather", "api_key": "abc", "nested": {"Auth-Token": 5, "note": "sk-live-123"},
                          "list": ["Bearer xyz", "plain", "eyJhbGciOi.eyJzdWIi.c2ln"]});
        let text = audit_arguments(&args);
        assert!(text.contains("weather") && text.contains("plain"));
        for secret in ["abc", "sk-live-123", "Bearer xyz", "eyJhbGciOi"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn long_arguments_are_capped() {
        let text = audit_arguments(&json!({"blob": "é".repeat(5000)}));
        assert!(text.len() <= MAX_ARGUMENTS + '…'.len_utf8() && text.ends_with('…'));
    }
}
