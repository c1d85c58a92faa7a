//! In-process guardrail detectors: personal data, secrets, prompt injection and dangerous tool
//! arguments, found by hand-written scanners.
//!
//! Every request may start in a fresh WebAssembly instance, so nothing is compiled or built at
//! start-up: each detector is a pass over the bytes of the text, its data `const` tables. No input
//! makes a scanner panic, and the cost grows linearly with the text.

mod fold;
mod injection;
mod phrases;
mod pii;
mod secrets;
mod tool_args;

#[cfg(test)]
mod tests;

/// Which family a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Personal data: emails, phone numbers, payment cards, SSNs, IBANs, IP addresses.
    Pii,
    /// Credentials: API keys, tokens, private keys.
    Secret,
    /// Prompt injection and jailbreak attempts.
    Injection,
    /// Dangerous arguments of a tool call: destructive commands, path traversal, exfiltration.
    ToolArgs,
}

impl Category {
    /// The name used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pii => "pii",
            Category::Secret => "secret",
            Category::Injection => "injection",
            Category::ToolArgs => "tool_args",
        }
    }
}

/// One match: what, how sure (0 to 100), where (byte offsets into the scanned text, on char
/// boundaries, end exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub category: Category,
    pub kind: &'static str,
    pub score: u8,
    pub start: usize,
    pub end: usize,
}

/// Which detector families to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detectors {
    pub pii: bool,
    pub secrets: bool,
    pub injection: bool,
    pub tool_args: bool,
}

impl Detectors {
    /// Every family.
    pub const ALL: Detectors = Detectors { pii: true, secrets: true, injection: true, tool_args: true };
    /// No family.
    pub const NONE: Detectors = Detectors { pii: false, secrets: false, injection: false, tool_args: false };

    /// The families in either.
    #[must_use]
    pub const fn or(self, other: Detectors) -> Detectors {
        Detectors {
            pii: self.pii || other.pii,
            secrets: self.secrets || other.secrets,
            injection: self.injection || other.injection,
            tool_args: self.tool_args || other.tool_args,
        }
    }

    /// The families in both.
    #[must_use]
    pub const fn and(self, other: Detectors) -> Detectors {
        Detectors {
            pii: self.pii && other.pii,
            secrets: self.secrets && other.secrets,
            injection: self.injection && other.injection,
            tool_args: self.tool_args && other.tool_args,
        }
    }

    /// The family of `category` alone.
    #[must_use]
    pub const fn of(category: Category) -> Detectors {
        Detectors {
            pii: matches!(category, Category::Pii),
            secrets: matches!(category, Category::Secret),
            injection: matches!(category, Category::Injection),
            tool_args: matches!(category, Category::ToolArgs),
        }
    }
}

/// Runs the chosen detectors over `text`; findings sorted by start offset.
#[must_use]
pub fn scan(text: &str, which: Detectors) -> Vec<Finding> {
    let mut out = Vec::new();
    if which.pii {
        pii::scan(text, &mut out);
    }
    if which.secrets {
        secrets::scan(text, &mut out);
    }
    if which.injection {
        injection::scan(text, &mut out);
    }
    if which.tool_args {
        tool_args::scan(text, &mut out);
    }
    out.sort_by(|a, b| (a.start, a.end, a.category, a.kind).cmp(&(b.start, b.end, b.category, b.kind)));
    out
}

/// Whether `b` continues a word: an ASCII letter, digit or underscore.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The byte at `i`, if there is one.
fn at(bytes: &[u8], i: usize) -> Option<u8> {
    bytes.get(i).copied()
}

/// The byte just before `i`, if there is one.
fn before(bytes: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).and_then(|j| bytes.get(j).copied())
}

/// Whether `bytes[i..]` starts with `needle`.
fn starts_at(bytes: &[u8], i: usize, needle: &[u8]) -> bool {
    // Most candidates differ in their first byte: compared inline, before a call to memcmp.
    match (bytes.get(i), needle.first()) {
        (_, None) => i <= bytes.len(),
        (Some(b), Some(n)) if b == n => bytes.get(i..).is_some_and(|rest| rest.starts_with(needle)),
        _ => false,
    }
}

/// The first index at or after `from` where `needle` occurs.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(from);
    }
    let first = *needle.first()?;
    let mut i = from;
    while i < bytes.len() {
        let rest = bytes.get(i..)?;
        let hit = rest.iter().position(|&b| b == first)?;
        let candidate = i.checked_add(hit)?;
        if starts_at(bytes, candidate, needle) {
            return Some(candidate);
        }
        i = candidate.checked_add(1)?;
    }
    None
}

/// Whether `needle` occurs anywhere in `bytes`.
fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    find(bytes, 0, needle).is_some()
}

/// Whether `[start, end)` overlaps one of `sorted` (sorted by start, none overlapping another).
fn overlaps(sorted: &[Finding], start: usize, end: usize) -> bool {
    let after = sorted.partition_point(|f| f.start < end);
    after.checked_sub(1).and_then(|i| sorted.get(i)).is_some_and(|f| f.end > start)
}

/// Adds to `claimed` the findings of `fresh` that overlap none already claimed: a stronger
/// detector of the same family keeps its span from a weaker one.
fn claim(claimed: &mut Vec<Finding>, fresh: Vec<Finding>) {
    let kept: Vec<Finding> = fresh.into_iter().filter(|f| !overlaps(claimed, f.start, f.end)).collect();
    claimed.extend(kept);
    claimed.sort_by_key(|f| f.start);
}
