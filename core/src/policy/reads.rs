//! What a policy can read of a request, worked out from its text when its scope is loaded: the
//! context fields it names (the Cedar context holds only those) and the detector families whose
//! signals those fields carry (the others need not run). One pass over the words of the text: in a
//! cold instance, a substring search per field name cost more than evaluating the policy.
//! Compiled entries store these results: a change to the rules here bumps `compiled::RULES`.

use super::entities::CONTEXT_FIELDS;
use super::Outcome;
use crate::guard::{Category, Detectors};

/// The context fields (one bit per [`CONTEXT_FIELDS`] entry) and detector families a policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reads {
    pub fields: u32,
    pub families: Detectors,
}

impl Reads {
    const EVERYTHING: Reads = Reads { fields: u32::MAX, families: Detectors::ALL };
}

/// What `text` reads. A field is read only through its name (`context.model`, `context["model"]`,
/// `context has model`), so every word of the text that is a field's name counts: one in a comment
/// or a string only adds a field. It errs towards reading more:
/// - a backslash anywhere means everything (a string may spell a name with escapes,
///   `scores["inj\x65ction"]`);
/// - `context` used whole (compared, not indexed) means every field and family;
/// - `scores` used whole, `max_score` and `signals` mean every family.
///
/// A redacting policy also needs the families it redacts.
pub(super) fn reads(text: &str, outcome: &Outcome) -> Reads {
    if text.contains('\\') {
        return Reads::EVERYTHING;
    }
    let mut reads = Reads { fields: 0, families: Detectors::NONE };
    let mut rest = text;
    while let Some(start) = rest.find(is_word_char) {
        let tail = rest.get(start..).unwrap_or_default();
        let (word, after) = tail.split_at(tail.find(|c| !is_word_char(c)).unwrap_or(tail.len()));
        rest = after;
        let member = is_member_access(after);
        match word {
            "context" if !member && !starts_word(after.trim_start(), "has") => return Reads::EVERYTHING,
            "scores" if !member => reads.families = Detectors::ALL,
            "max_score" | "signals" => reads.families = Detectors::ALL,
            _ => reads.families = reads.families.or(family_named(word)),
        }
        if let Some(index) = CONTEXT_FIELDS.iter().position(|field| *field == word) {
            reads.fields |= 1 << index;
        }
    }
    if let Outcome::Redact(families) = outcome {
        reads.families = families.iter().fold(reads.families, |all, family| all.or(Detectors::of(*family)));
    }
    reads
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether what follows a name indexes into it (`.field`, `["field"]`).
fn is_member_access(rest: &str) -> bool {
    matches!(rest.trim_start().as_bytes().first(), Some(b'.' | b'['))
}

fn starts_word(rest: &str, word: &str) -> bool {
    rest.strip_prefix(word).is_some_and(|after| !after.starts_with(is_word_char))
}

/// The family whose signals a context field or score name carries.
fn family_named(word: &str) -> Detectors {
    match word {
        "pii" | "pii_kinds" | "pii_count" => Detectors::of(Category::Pii),
        "secret" | "secret_kinds" | "secret_count" => Detectors::of(Category::Secret),
        "injection" => Detectors::of(Category::Injection),
        "tool_args" => Detectors::of(Category::ToolArgs),
        _ => Detectors::NONE,
    }
}
