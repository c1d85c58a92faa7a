//! Credentials: provider keys recognised by their prefix, private key blocks, JWTs, and
//! high-entropy values right after a key-like name (`api_key=`, `"password": "`, `Bearer `).
//!
//! Two passes: the first finds the shapes that are certain on their own; the second reads
//! `name <separator> value` pairs and reports values the first pass did not already cover.
//! A finding's span is exactly the secret value, never the name in front of it.

use super::{at, before, contains, find, overlaps, starts_at, Category, Finding};

const CERTAIN_SCORE: u8 = 95;
const JWT_SCORE: u8 = 85;
const GENERIC_SCORE: u8 = 70;
const GENERIC_HIGH_ENTROPY_SCORE: u8 = 80;

/// Which bytes may make up the body of a prefixed key.
#[derive(Debug, Clone, Copy)]
enum Charset {
    /// `A-Z 0-9`
    UpperAlnum,
    /// `A-Z a-z 0-9`
    Alnum,
    /// `A-Z a-z 0-9 _`
    Word,
    /// `A-Z a-z 0-9 _ -`
    UrlSafe,
    /// `A-Z a-z 0-9 -`
    AlnumDash,
    /// `A-Z a-z 0-9 _ - /`
    Path,
}

impl Charset {
    fn contains(self, b: u8) -> bool {
        match self {
            Charset::UpperAlnum => b.is_ascii_uppercase() || b.is_ascii_digit(),
            Charset::Alnum => b.is_ascii_alphanumeric(),
            Charset::Word => b.is_ascii_alphanumeric() || b == b'_',
            Charset::UrlSafe => b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
            Charset::AlnumDash => b.is_ascii_alphanumeric() || b == b'-',
            Charset::Path => b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/'),
        }
    }
}

/// A key recognised by its prefix: the body after it is `min..=max` bytes of `body`, and holds
/// both a letter and a digit (so `sk-learn-is-a-python-library` is not a key).
struct KeyPrefix {
    prefix: &'static [u8],
    kind: &'static str,
    body: Charset,
    min: usize,
    max: usize,
}

const fn key(prefix: &'static [u8], kind: &'static str, body: Charset, min: usize, max: usize) -> KeyPrefix {
    KeyPrefix { prefix, kind, body, min, max }
}

/// Tried in order; the first prefix that matches decides, so `sk-ant-` is never read as `sk-`.
const PREFIXES: &[KeyPrefix] = &[
    key(b"AKIA", "aws_access_key", Charset::UpperAlnum, 16, 16),
    key(b"ASIA", "aws_access_key", Charset::UpperAlnum, 16, 16),
    key(b"ABIA", "aws_access_key", Charset::UpperAlnum, 16, 16),
    key(b"ACCA", "aws_access_key", Charset::UpperAlnum, 16, 16),
    key(b"AIza", "gcp_api_key", Charset::UrlSafe, 35, 35),
    key(b"sk-ant-", "anthropic_key", Charset::UrlSafe, 20, 512),
    key(b"sk-", "openai_key", Charset::UrlSafe, 20, 512),
    key(b"ghp_", "github_token", Charset::Alnum, 36, 255),
    key(b"gho_", "github_token", Charset::Alnum, 36, 255),
    key(b"ghu_", "github_token", Charset::Alnum, 36, 255),
    key(b"ghs_", "github_token", Charset::Alnum, 36, 255),
    key(b"ghr_", "github_token", Charset::Alnum, 36, 255),
    key(b"github_pat_", "github_token", Charset::Word, 22, 255),
    key(b"xoxb-", "slack_token", Charset::AlnumDash, 10, 255),
    key(b"xoxp-", "slack_token", Charset::AlnumDash, 10, 255),
    key(b"xoxa-", "slack_token", Charset::AlnumDash, 10, 255),
    key(b"xoxr-", "slack_token", Charset::AlnumDash, 10, 255),
    key(b"xoxs-", "slack_token", Charset::AlnumDash, 10, 255),
    key(b"https://hooks.slack.com/services/", "slack_token", Charset::Path, 20, 255),
    key(b"sk_live_", "stripe_key", Charset::Alnum, 16, 255),
    key(b"sk_test_", "stripe_key", Charset::Alnum, 16, 255),
    key(b"rk_live_", "stripe_key", Charset::Alnum, 16, 255),
    key(b"rk_test_", "stripe_key", Charset::Alnum, 16, 255),
    key(b"pk_live_", "stripe_key", Charset::Alnum, 16, 255),
];

/// Names after which a 40-character value is an AWS secret access key.
const AWS_SECRET_NAMES: &[&[u8]] =
    &[b"aws_secret_access_key", b"secret_access_key", b"secretaccesskey", b"aws_secret_key", b"aws_secret"];

/// Names after which a high-entropy value is a secret. A name matches at the end of an
/// identifier, after `_` or `-` or a lower-to-upper case change (`OPENAI_API_KEY`, `authToken`).
const SECRET_NAMES: &[&[u8]] = &[
    b"api_key",
    b"api-key",
    b"apikey",
    b"secret",
    b"secret_key",
    b"secret-key",
    b"token",
    b"password",
    b"passwd",
    b"auth",
    b"authorization",
    b"bearer",
    b"access_key",
    b"access-key",
    b"accesskey",
];

pub(super) fn scan(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let certain = certain_shapes(bytes);
    let named = named_values(bytes, &certain);
    out.extend(certain);
    out.extend(named);
}

fn finding(kind: &'static str, score: u8, start: usize, end: usize) -> Finding {
    Finding { category: Category::Secret, kind, score, start, end }
}

/// Whether a token may start at `i`: not inside a longer word (`xsk-`, `mask-`).
fn token_start(bytes: &[u8], i: usize) -> bool {
    !before(bytes, i).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Private key blocks, JWTs and prefixed keys, left to right, each jumping past its match.
fn certain_shapes(bytes: &[u8]) -> Vec<Finding> {
    let service_account = contains(bytes, b"\"service_account\"") || contains(bytes, b"\\\"service_account\\\"");
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if at(bytes, i) == Some(b'-') && starts_at(bytes, i, b"-----BEGIN ") {
            if let Some(end) = private_key_block(bytes, i) {
                let kind = if service_account { "gcp_service_account" } else { "private_key" };
                found.push(finding(kind, CERTAIN_SCORE, i, end));
                i = end;
                continue;
            }
        }
        if token_start(bytes, i) {
            let matched = jwt(bytes, i)
                .map(|end| ("jwt", JWT_SCORE, end))
                .or_else(|| prefixed_key(bytes, i).map(|(kind, end)| (kind, CERTAIN_SCORE, end)));
            if let Some((kind, score, end)) = matched {
                found.push(finding(kind, score, i, end));
                i = end;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// `-----BEGIN <label> PRIVATE KEY-----` through the matching END line, or to the end of the
/// text when there is none (a truncated key is still a leaked key).
fn private_key_block(bytes: &[u8], start: usize) -> Option<usize> {
    let label_start = start + b"-----BEGIN ".len();
    let rest = bytes.get(label_start..)?;
    let label_len = rest.iter().take(64).position(|&b| b == b'-')?;
    let label = rest.get(..label_len)?;
    let well_formed = label.iter().all(|&b| b.is_ascii_uppercase() || b == b' ');
    if !well_formed || !contains(label, b"PRIVATE KEY") || !starts_at(rest, label_len, b"-----") {
        return None;
    }
    let mut from = label_start + label_len + 5;
    while let Some(end_line) = find(bytes, from, b"-----END ") {
        let label_at = end_line + b"-----END ".len();
        if starts_at(bytes, label_at, label) && starts_at(bytes, label_at + label.len(), b"-----") {
            return Some(label_at + label.len() + 5);
        }
        from = end_line + 1;
    }
    Some(bytes.len())
}

/// `eyJ…` header, payload and a non-empty signature, base64url, separated by dots.
fn jwt(bytes: &[u8], start: usize) -> Option<usize> {
    if !starts_at(bytes, start, b"eyJ") {
        return None;
    }
    let segment = |from: usize| {
        let mut i = from;
        while at(bytes, i).is_some_and(|b| Charset::UrlSafe.contains(b)) {
            i += 1;
        }
        i
    };
    let header_end = segment(start);
    if header_end - start < 10 || at(bytes, header_end) != Some(b'.') {
        return None;
    }
    let payload_end = segment(header_end + 1);
    if payload_end - header_end - 1 < 10 || at(bytes, payload_end) != Some(b'.') {
        return None;
    }
    let signature_end = segment(payload_end + 1);
    (signature_end > payload_end + 1).then_some(signature_end)
}

/// A key from [`PREFIXES`] at `start`: its kind and end.
fn prefixed_key(bytes: &[u8], start: usize) -> Option<(&'static str, usize)> {
    let rule = PREFIXES.iter().find(|rule| starts_at(bytes, start, rule.prefix))?;
    let body_start = start + rule.prefix.len();
    let mut end = body_start;
    while at(bytes, end).is_some_and(|b| rule.body.contains(b)) && end - body_start <= rule.max {
        end += 1;
    }
    let body = bytes.get(body_start..end)?;
    let mixed = body.iter().any(u8::is_ascii_digit) && body.iter().any(u8::is_ascii_alphabetic);
    let bounded = !at(bytes, end).is_some_and(|b| Charset::UrlSafe.contains(b));
    ((rule.min..=rule.max).contains(&body.len()) && mixed && bounded).then_some((rule.kind, end))
}

/// What a key-like name says about the value after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    AwsSecret,
    Secret,
}

fn is_identifier(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'=' | b'-')
}

/// Values after key-like names, skipping any that a certain shape already covers.
fn named_values(bytes: &[u8], certain: &[Finding]) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !at(bytes, i).is_some_and(is_identifier) {
            i += 1;
            continue;
        }
        let name_start = i;
        while at(bytes, i).is_some_and(is_identifier) {
            i += 1;
        }
        let Some(kind) = bytes.get(name_start..i).and_then(name_kind) else { continue };
        if let Some(value) = value_after(bytes, i, kind) {
            if !overlaps(certain, value.start, value.end) {
                found.push(value);
            }
        }
    }
    found
}

/// Whether the identifier `name` ends in a key-like name, and which.
fn name_kind(name: &[u8]) -> Option<NameKind> {
    if AWS_SECRET_NAMES.iter().any(|n| ends_with_name(name, n)) {
        return Some(NameKind::AwsSecret);
    }
    SECRET_NAMES.iter().any(|n| ends_with_name(name, n)).then_some(NameKind::Secret)
}

fn ends_with_name(identifier: &[u8], name: &[u8]) -> bool {
    let Some(split) = identifier.len().checked_sub(name.len()) else { return false };
    let Some(tail) = identifier.get(split..) else { return false };
    if !tail.eq_ignore_ascii_case(name) {
        return false;
    }
    match before(identifier, split) {
        None | Some(b'_' | b'-') => true,
        Some(prev) => prev.is_ascii_lowercase() && tail.first().is_some_and(u8::is_ascii_uppercase),
    }
}

/// The secret value after a name ending at `name_end`: one to six separator bytes (spaces, `=`,
/// `:`, quotes, JSON's backslashes), then the token.
fn value_after(bytes: &[u8], name_end: usize, kind: NameKind) -> Option<Finding> {
    let mut start = name_end;
    while at(bytes, start).is_some_and(|b| matches!(b, b' ' | b'\t' | b'"' | b'\'' | b'=' | b':' | b'\\'))
        && start - name_end < 6
    {
        start += 1;
    }
    if start == name_end {
        return None;
    }
    if kind == NameKind::AwsSecret {
        let mut end = start;
        while at(bytes, end).is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'=')) {
            end += 1;
        }
        let value = bytes.get(start..end)?;
        let mixed = value.iter().any(u8::is_ascii_digit) && value.iter().any(u8::is_ascii_alphabetic);
        if value.len() == 40 && mixed && !at(bytes, end).is_some_and(is_token) {
            return Some(finding("aws_secret_key", CERTAIN_SCORE, start, end));
        }
    }
    let mut end = start;
    while at(bytes, end).is_some_and(is_token) && end - start <= 512 {
        end += 1;
    }
    let value = bytes.get(start..end)?;
    if !(16..=512).contains(&value.len()) || classes(value) < 2 {
        return None;
    }
    let bits = entropy(value);
    if bits < 3.5 {
        return None;
    }
    let score = if bits >= 4.5 { GENERIC_HIGH_ENTROPY_SCORE } else { GENERIC_SCORE };
    Some(finding("generic_secret", score, start, end))
}

/// How many of lowercase letters, uppercase letters and digits appear in `value`.
fn classes(value: &[u8]) -> usize {
    [u8::is_ascii_lowercase, u8::is_ascii_uppercase, u8::is_ascii_digit]
        .iter()
        .filter(|&&class| value.iter().any(class))
        .count()
}

/// Shannon entropy of `value`, in bits per byte.
fn entropy(value: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in value {
        if let Some(count) = counts.get_mut(usize::from(b)) {
            *count += 1;
        }
    }
    let len = value.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}
