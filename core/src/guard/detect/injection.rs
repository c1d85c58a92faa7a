//! Prompt injection and jailbreak attempts: override phrases, role-play jailbreaks, requests for
//! the system prompt, instructions hidden from the user (HTML comments, pseudo-system tags),
//! instructions smuggled in base64 or escapes, and invisible Unicode.
//!
//! Phrases (see [`super::phrases`]) are matched on the folded text: lowercase, one space per
//! whitespace run, invisible characters dropped, so spacing and zero-width tricks do not hide them.

use super::fold::{is_invisible, is_tag, Escapes, Folded, OTHER};
use super::phrases::{has_phrase, is_alnum, match_any, word_at, word_start, HIDDEN};
use super::{at, before, find, starts_at, Category, Finding};

const ENCODED: &str = "encoded_instruction";
const INVISIBLE: &str = "invisible_unicode";

/// Pseudo-system markup: tags a model may take as coming from its operator.
const SYSTEM_TAGS: &[&[u8]] = &[
    b"<important>",
    b"<system>",
    b"<system_prompt>",
    b"<system-prompt>",
    b"<instructions>",
    b"<admin>",
    b"<|im_start|>",
    b"<|system|>",
    b"<<sys>>",
    b"[system]",
    b"[system message]",
    b"[inst]",
];

/// In an HTML comment, words addressed to a model, and words that order it about: one of each
/// makes the comment an instruction hidden from the reader.
const ADDRESSEES: &[&[u8]] =
    &[b"assistant", b"ai", b"llm", b"model", b"chatbot", b"agent", b"claude", b"chatgpt", b"gpt", b"you", b"the user"];
const IMPERATIVES: &[&[u8]] =
    &[b"ignore", b"instead", b"must", b"disregard", b"override", b"do not", b"don't", b"never", b"always", b"should"];

const PHRASE_IN_COMMENT_SCORE: u8 = 85;
const ORDERS_IN_COMMENT_SCORE: u8 = 75;
const TAG_SCORE: u8 = 80;
const ENCODED_SCORE: u8 = 80;
const INVISIBLE_SCORE: u8 = 60;
const INVISIBLE_SMUGGLING_SCORE: u8 = 90;

/// Shortest base64 run worth decoding.
const MIN_BASE64: usize = 24;
/// Fewest consecutive `\uXXXX` / `\xXX` escapes that count as an encoded run.
const MIN_ESCAPES: usize = 8;

pub(super) fn scan(text: &str, out: &mut Vec<Finding>) {
    let folded = Folded::new(text, Escapes::Keep);
    attack_phrases(&folded, out);
    comments(&folded, out);
    system_tags(&folded, out);
    base64_runs(text.as_bytes(), out);
    escape_runs(text.as_bytes(), out);
    invisible_runs(text, out);
}

fn finding(kind: &'static str, score: u8, (start, end): (usize, usize)) -> Finding {
    Finding { category: Category::Injection, kind, score, start, end }
}

fn attack_phrases(folded: &Folded, out: &mut Vec<Finding>) {
    let bytes = folded.bytes();
    let mut i = 0;
    while i < bytes.len() {
        if word_start(bytes, i) {
            if let Some((phrase, end)) = match_any(bytes, i) {
                if let Some(span) = folded.span(i, end) {
                    out.push(finding(phrase.kind, phrase.score, span));
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
}

/// HTML comments that carry an attack phrase, or words addressed to a model ordering it about.
fn comments(folded: &Folded, out: &mut Vec<Finding>) {
    let bytes = folded.bytes();
    let mut from = 0;
    while let Some(open) = find(bytes, from, b"<!--") {
        let body_start = open + 4;
        let (body_end, end) = match find(bytes, body_start, b"-->") {
            Some(close) => (close, close + 3),
            None => (bytes.len(), bytes.len()),
        };
        let body = bytes.get(body_start..body_end).unwrap_or_default();
        let score = if has_phrase(body) {
            Some(PHRASE_IN_COMMENT_SCORE)
        } else if has_word(body, ADDRESSEES) && has_word(body, IMPERATIVES) {
            Some(ORDERS_IN_COMMENT_SCORE)
        } else {
            None
        };
        if let Some((score, span)) = score.zip(folded.span(open, end)) {
            out.push(finding(HIDDEN, score, span));
        }
        from = end.max(open + 1);
    }
}

/// Whether one of `words` occurs in `bytes` as a whole word.
fn has_word(bytes: &[u8], words: &[&[u8]]) -> bool {
    words.iter().any(|word| {
        let mut from = 0;
        while let Some(p) = find(bytes, from, word) {
            if !before(bytes, p).is_some_and(is_alnum) && word_at(bytes, p, word).is_some() {
                return true;
            }
            from = p + 1;
        }
        false
    })
}

fn system_tags(folded: &Folded, out: &mut Vec<Finding>) {
    let bytes = folded.bytes();
    let mut i = 0;
    while i < bytes.len() {
        if matches!(at(bytes, i), Some(b'<' | b'[')) {
            if let Some(tag) = SYSTEM_TAGS.iter().find(|tag| starts_at(bytes, i, tag)) {
                let end = i + tag.len();
                if let Some(span) = folded.span(i, end) {
                    out.push(finding(HIDDEN, TAG_SCORE, span));
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
}

fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Decodes standard or URL-safe base64 without padding, stopping at the first other byte.
fn decode_base64(run: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(run.len() / 4 * 3 + 2);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for value in run.iter().map_while(|&b| base64_value(b)) {
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.extend(u8::try_from((acc >> bits) & 0xFF).ok());
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Lowercase, one space per whitespace run, anything else non-ASCII as [`OTHER`].
fn fold_ascii(decoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(decoded.len());
    for &b in decoded {
        if b.is_ascii_whitespace() {
            if out.last() != Some(&b' ') {
                out.push(b' ');
            }
        } else {
            out.push(if b.is_ascii() { b.to_ascii_lowercase() } else { OTHER });
        }
    }
    out
}

/// Base64 runs of 24 or more characters that decode to mostly printable text carrying a phrase.
fn base64_runs(bytes: &[u8], out: &mut Vec<Finding>) {
    let mut i = 0;
    while i < bytes.len() {
        if base64_value(at(bytes, i).unwrap_or(b' ')).is_none() {
            i += 1;
            continue;
        }
        let start = i;
        while at(bytes, i).and_then(base64_value).is_some() {
            i += 1;
        }
        let mut end = i;
        while at(bytes, end) == Some(b'=') && end - i < 2 {
            end += 1;
        }
        if let Some(run) = bytes.get(start..i) {
            if run.len() >= MIN_BASE64 && decodes_to_instruction(run) {
                out.push(finding(ENCODED, ENCODED_SCORE, (start, end)));
            }
        }
        i = end.max(i);
    }
}

/// Whether `run`, decoded from any of its first four offsets, reads as an attack phrase.
fn decodes_to_instruction(run: &[u8]) -> bool {
    (0..4).any(|offset| {
        let Some(part) = run.get(offset..).filter(|p| p.len() >= MIN_BASE64) else { return false };
        let decoded = decode_base64(part);
        let printable =
            decoded.iter().filter(|&&b| (0x20..0x7F).contains(&b) || matches!(b, b'\n' | b'\r' | b'\t')).count();
        printable * 10 >= decoded.len() * 9 && has_phrase(&fold_ascii(&decoded))
    })
}

/// One `\uXXXX` or `\xXX` escape at `i`: where it ends and the code point it names.
fn escape_at(bytes: &[u8], i: usize) -> Option<(usize, u32)> {
    if at(bytes, i) != Some(b'\\') {
        return None;
    }
    let digits = match at(bytes, i + 1)? {
        b'u' => 4,
        b'x' => 2,
        _ => return None,
    };
    let from = i + 2;
    let value = (from..from + digits)
        .try_fold(0u32, |v, k| at(bytes, k).and_then(|b| char::from(b).to_digit(16)).map(|d| v * 16 + d))?;
    Some((from + digits, value))
}

/// Long runs of escapes spelling out ASCII or invisible characters: text that could have been
/// written plainly, escaped to slip past a reader.
fn escape_runs(bytes: &[u8], out: &mut Vec<Finding>) {
    let mut from = 0;
    while let Some(start) = find(bytes, from, b"\\") {
        let mut end = start;
        let mut count = 0usize;
        let mut suspicious = 0usize;
        while let Some((next, code)) = escape_at(bytes, end) {
            count += 1;
            let plain = char::from_u32(code).is_some_and(|c| c.is_ascii_graphic() || c == ' ' || is_invisible(c));
            suspicious += usize::from(plain);
            end = next;
        }
        if count >= MIN_ESCAPES && suspicious * 4 >= count * 3 {
            out.push(finding(ENCODED, ENCODED_SCORE, (start, end)));
        }
        from = end.max(start + 1);
    }
}

/// One finding per run of invisible characters (a byte order mark opening the text excepted).
fn invisible_runs(text: &str, out: &mut Vec<Finding>) {
    struct Run {
        start: usize,
        end: usize,
        chars: usize,
        tags: bool,
    }
    let flush = |run: Run, out: &mut Vec<Finding>| {
        let score = if run.tags || run.chars > 3 { INVISIBLE_SMUGGLING_SCORE } else { INVISIBLE_SCORE };
        out.push(finding(INVISIBLE, score, (run.start, run.end)));
    };
    let mut current: Option<Run> = None;
    for (i, c) in text.char_indices() {
        if is_invisible(c) && !(i == 0 && c == '\u{FEFF}') {
            let end = i + c.len_utf8();
            match current.as_mut() {
                Some(run) => {
                    run.end = end;
                    run.chars += 1;
                    run.tags |= is_tag(c);
                }
                None => current = Some(Run { start: i, end, chars: 1, tags: is_tag(c) }),
            }
        } else if let Some(run) = current.take() {
            flush(run, out);
        }
    }
    if let Some(run) = current {
        flush(run, out);
    }
}
