//! Output guardrails on a streamed chat completion, as the chunks pass. Model text is held back
//! by a bounded window so a redaction can still be applied before its bytes leave, and never
//! released in the middle of a finding; a tool call is held until its arguments are complete,
//! decided, and only then delivered whole. A deny ends the stream (the caller sends the error
//! event). Pure: the decision comes in through [`Decide`].

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::guard::{detect, redact, Category, Detectors, Finding, Signals};
use crate::openai::{ChatChunk, ChunkChoice};
use crate::policy::{Action, Verdict};

/// Asks the policies about one lifecycle point (and applies the enforcement mode).
pub trait Decide {
    /// `tool` is the completed call's name and arguments, for [`Action::CallTool`].
    fn decide(&mut self, action: Action, signals: &Signals, tool: Option<(&str, &str)>) -> Verdict;
}

/// The stream must end: a policy denied what was about to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub action: Action,
    pub policy: String,
}

#[derive(Debug, Default)]
struct HeldCall {
    id: Option<Value>,
    name: String,
    arguments: String,
}

/// The text-bearing fields of a chat delta, each held and inspected: a spoken answer's words come
/// as `audio.transcript` (its audio `data` passes as it comes, as in whole answers).
const TEXT_FIELDS: [&str; 4] = ["content", "reasoning_content", "refusal", AUDIO_TRANSCRIPT];

const AUDIO_TRANSCRIPT: &str = "audio.transcript";

/// Takes a text field out of a delta.
fn take_text(delta: &mut Map<String, Value>, field: &'static str) -> Option<String> {
    let value = match field {
        AUDIO_TRANSCRIPT => delta.get_mut("audio").and_then(Value::as_object_mut)?.remove("transcript")?,
        _ => delta.remove(field)?,
    };
    match value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// Puts released text back into a delta, where it came from.
fn put_text(delta: &mut Map<String, Value>, field: &'static str, text: String) {
    match field {
        AUDIO_TRANSCRIPT => {
            let audio = delta.entry("audio").or_insert_with(|| Value::Object(Map::new()));
            if let Some(audio) = audio.as_object_mut() {
                audio.insert("transcript".into(), Value::String(text));
            }
        }
        _ => {
            delta.insert(field.into(), Value::String(text));
        }
    }
}

/// The tool index under which a legacy `function_call` (the functions API) is held: it is decided
/// as a tool call and delivered as the `function_call` it came as.
const LEGACY_CALL: u64 = u64::MAX;

/// Puts decided calls back into a delta: tool calls under `tool_calls`, a legacy call as `function_call`.
fn put_calls(delta: &mut Map<String, Value>, delivered: Vec<Value>) {
    let (legacy, calls): (Vec<Value>, Vec<Value>) =
        delivered.into_iter().partition(|c| c.get("index").and_then(Value::as_u64) == Some(LEGACY_CALL));
    if let Some(function) = legacy.into_iter().last().and_then(|mut c| c.get_mut("function").map(Value::take)) {
        delta.insert("function_call".into(), function);
    }
    if !calls.is_empty() {
        delta.insert("tool_calls".into(), Value::Array(calls));
    }
}

/// Held text never grows past this many bytes: beyond it, text is released (redacting any finding
/// it cuts through) even if a finding has not ended yet.
const MAX_HELD_BYTES: usize = 16 * 1024;

/// The guard over one stream's chunks.
#[derive(Debug)]
pub struct StreamGuard {
    hold_chars: usize,
    detectors: Detectors,
    /// Text not yet released, per choice and field.
    pending: BTreeMap<(u64, &'static str), String>,
    /// Tool calls being assembled, per (choice, tool index).
    calls: BTreeMap<(u64, u64), HeldCall>,
    /// `id`, `object`, `created`, `model` of the stream, for chunks the guard writes itself.
    template: Map<String, Value>,
    /// Findings in text already released (they count for every later decision).
    released: Signals,
    last: Option<(Signals, Verdict)>,
}

/// Byte offset where the last `chars` characters of `text` start (0 when it is shorter).
fn tail_start(text: &str, chars: usize) -> usize {
    if chars == 0 {
        return text.len();
    }
    text.char_indices().rev().nth(chars - 1).map_or(0, |(i, _)| i)
}

/// Characters a secret, key, token, address or number is made of: text is not cut inside a run
/// of them (a token is only recognised once whole).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-' | '.' | ':' | '~' | '@' | '%')
}

/// The longest token run a cut is moved back over (a long JWT); longer runs are cut anyway.
const MAX_TOKEN_BYTES: usize = 4096;

/// Where held text may be cut: `hold_chars` before the end, moved back to the start of the token
/// it falls in and before any finding that straddles it.
fn cut_point(text: &str, hold_chars: usize, findings: &[Finding]) -> usize {
    let mut cut = tail_start(text, hold_chars);
    loop {
        let inside = text.get(cut..).and_then(|t| t.chars().next()).is_some_and(is_token_char)
            && text.get(..cut).and_then(|h| h.chars().next_back()).is_some_and(is_token_char);
        let token_start = match text.get(..cut) {
            Some(head) if inside => {
                head.char_indices().rev().find(|(_, c)| !is_token_char(*c)).map_or(0, |(i, c)| i + c.len_utf8())
            }
            _ => cut,
        };
        let token_start = if cut - token_start > MAX_TOKEN_BYTES { cut } else { token_start };
        let straddling =
            findings.iter().filter(|f| f.start < token_start && f.end > token_start).map(|f| f.start).min();
        let next = straddling.unwrap_or(token_start);
        if next == cut {
            return cut;
        }
        cut = next;
    }
}

impl StreamGuard {
    pub fn new(hold_chars: usize, detectors: Detectors) -> Self {
        StreamGuard {
            hold_chars,
            detectors,
            pending: BTreeMap::new(),
            calls: BTreeMap::new(),
            template: Map::new(),
            released: Signals::default(),
            last: None,
        }
    }

    /// One translated chunk in; what may be delivered of it now out.
    pub fn push(&mut self, mut chunk: ChatChunk, decide: &mut dyn Decide) -> Result<Vec<ChatChunk>, Denial> {
        if chunk.choices.is_empty() {
            return Ok(vec![chunk]);
        }
        let mut kept = Vec::with_capacity(chunk.choices.len());
        for mut choice in std::mem::take(&mut chunk.choices) {
            let index = choice.index;
            let finished = choice.finish_reason.is_some();
            // Token log-probabilities would repeat held or redacted text: not delivered.
            choice.rest.remove("logprobs");
            let delta = &mut choice.delta;
            for field in TEXT_FIELDS {
                if let Some(text) = take_text(delta, field) {
                    self.pending.entry((index, field)).or_default().push_str(&text);
                }
            }
            let mut calls = delta.remove("tool_calls");
            // The legacy functions API: one call per choice, held and decided as a tool call.
            if let Some(function) = delta.remove("function_call") {
                let mut legacy = json!({"index": LEGACY_CALL, "function": function});
                match calls.as_mut().and_then(Value::as_array_mut) {
                    Some(list) => list.push(legacy.take()),
                    None => calls = Some(Value::Array(vec![legacy])),
                }
            }
            let mut complete = Vec::new();
            let mut delivered = Vec::new();
            for call in calls.as_ref().and_then(Value::as_array).into_iter().flatten() {
                let tool_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                // A later call's first delta means the earlier ones are complete.
                complete.extend(self.calls.keys().filter(|(c, t)| *c == index && *t < tool_index).copied());
                let id = call.get("id").filter(|id| !id.is_null());
                let restarted = self
                    .calls
                    .get(&(index, tool_index))
                    .is_some_and(|held| matches!((&held.id, id), (Some(held), Some(new)) if held != new));
                if restarted {
                    // A new id at the same index is a new call: the held one is complete.
                    delivered.extend(self.release_calls(vec![(index, tool_index)], decide)?);
                }
                let held = self.calls.entry((index, tool_index)).or_default();
                if let Some(id) = id {
                    held.id = Some(id.clone());
                }
                if let Some(function) = call.get("function") {
                    // The name comes once; a vendor that repeats it does not make it longer.
                    if let Some(name) = function.get("name").and_then(Value::as_str).filter(|_| held.name.is_empty()) {
                        held.name = name.to_owned();
                    }
                    if let Some(args) = function.get("arguments").and_then(Value::as_str) {
                        held.arguments.push_str(args);
                    }
                }
            }
            if finished {
                complete.extend(self.calls.keys().filter(|(c, _)| *c == index).copied());
            }
            complete.sort_unstable();
            complete.dedup();
            let mut released = Vec::new();
            for field in TEXT_FIELDS {
                released.push((field, self.release_text((index, field), finished, decide)?));
            }
            delivered.extend(self.release_calls(complete, decide)?);
            let delta = &mut choice.delta;
            for (field, text) in released.into_iter().filter(|(_, text)| !text.is_empty()) {
                put_text(delta, field, text);
            }
            put_calls(delta, delivered);
            if !delta.is_empty() || finished {
                kept.push(choice);
            }
        }
        self.template = chunk
            .rest
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "id" | "object" | "created" | "model" | "system_fingerprint"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let has_usage = chunk.usage.as_ref().is_some_and(Value::is_object);
        if kept.is_empty() && !has_usage {
            return Ok(Vec::new());
        }
        chunk.choices = kept;
        Ok(vec![chunk])
    }

    /// The upstream ended: everything still held is decided and released, in one chunk.
    pub fn finish(&mut self, decide: &mut dyn Decide) -> Result<Vec<ChatChunk>, Denial> {
        let mut indices: Vec<u64> =
            self.pending.keys().map(|(c, _)| *c).chain(self.calls.keys().map(|(c, _)| *c)).collect();
        indices.sort_unstable();
        indices.dedup();
        let mut choices = Vec::new();
        for index in indices {
            let mut delta = Map::new();
            for field in TEXT_FIELDS {
                let released = self.release_text((index, field), true, decide)?;
                if !released.is_empty() {
                    put_text(&mut delta, field, released);
                }
            }
            let complete: Vec<_> = self.calls.keys().filter(|(c, _)| *c == index).copied().collect();
            let delivered = self.release_calls(complete, decide)?;
            put_calls(&mut delta, delivered);
            if !delta.is_empty() {
                choices.push(ChunkChoice { index, delta, finish_reason: None, rest: Map::new() });
            }
        }
        if choices.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![ChatChunk { rest: self.template.clone(), choices, usage: None }])
    }

    fn decide_text(&mut self, signals: Signals, decide: &mut dyn Decide) -> Verdict {
        if let Some((seen, verdict)) = &self.last {
            if *seen == signals {
                return verdict.clone();
            }
        }
        let verdict = decide.decide(Action::ProcessResponse, &signals, None);
        self.last = Some((signals, verdict.clone()));
        verdict
    }

    /// Releases held text of one field: all of it at the end, else up to the hold-back window
    /// (or, past [`MAX_HELD_BYTES`], through an unfinished finding, redacting the part released).
    fn release_text(&mut self, key: (u64, &'static str), all: bool, decide: &mut dyn Decide) -> Result<String, Denial> {
        let Some(text) = self.pending.remove(&key).filter(|t| !t.is_empty()) else { return Ok(String::new()) };
        let findings = detect::scan(&text, self.detectors);
        let mut cut = if all { text.len() } else { cut_point(&text, self.hold_chars, &findings) };
        if cut == 0 && text.len() > MAX_HELD_BYTES {
            cut = tail_start(&text, self.hold_chars);
        }
        if !text.is_char_boundary(cut) {
            cut = 0;
        }
        let mut signals = self.released.clone();
        signals.add(&findings);
        let verdict = self.decide_text(signals, decide);
        if let Some(policy) = verdict.denied_by {
            return Err(Denial { action: Action::ProcessResponse, policy });
        }
        if cut == 0 {
            self.pending.insert(key, text);
            return Ok(String::new());
        }
        // Findings in the released part, clipped to it (a forced cut may go through one).
        let out: Vec<Finding> =
            findings.into_iter().filter(|f| f.start < cut).map(|f| Finding { end: f.end.min(cut), ..f }).collect();
        self.released.add(&out);
        let (head, tail) = text.split_at(cut);
        let families = verdict.redacted_families();
        let released = redact::redact(head, &out, &families).unwrap_or_else(|| head.to_owned());
        if !tail.is_empty() {
            self.pending.insert(key, tail.to_owned());
        }
        Ok(released)
    }

    /// Decides completed tool calls and turns them into whole `tool_calls` entries.
    fn release_calls(&mut self, keys: Vec<(u64, u64)>, decide: &mut dyn Decide) -> Result<Vec<Value>, Denial> {
        let mut out = Vec::new();
        for key in keys {
            let Some(call) = self.calls.remove(&key) else { continue };
            let findings = detect::scan(&call.arguments, self.detectors);
            let mut signals = Signals::default();
            signals.add(&findings);
            let verdict = decide.decide(Action::CallTool, &signals, Some((&call.name, &call.arguments)));
            if let Some(policy) = verdict.denied_by {
                return Err(Denial { action: Action::CallTool, policy });
            }
            let families: Vec<Category> = verdict.redacted_families();
            let arguments = redact::redact(&call.arguments, &findings, &families).unwrap_or(call.arguments);
            let mut entry = json!({
                "index": key.1,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments},
            });
            if let (Some(id), Some(obj)) = (call.id, entry.as_object_mut()) {
                obj.insert("id".into(), id);
            }
            out.push(entry);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
