//! Attack phrases and their matcher. A phrase is a sequence of slots, each one of a few words
//! (or short word sequences), some optional; it matches on folded text at a word start, with
//! light punctuation allowed between words (`ignore **all** previous instructions`). The slots
//! need the attack's shape (a verb, then "previous", then "instructions"), so that ordinary
//! sentences mentioning instructions are left alone.

use super::{at, before, starts_at};

/// One position in a phrase: any of `words` (each a word or a few), possibly left out.
struct Slot {
    words: &'static [&'static str],
    optional: bool,
}

const fn one(words: &'static [&'static str]) -> Slot {
    Slot { words, optional: false }
}

const fn opt(words: &'static [&'static str]) -> Slot {
    Slot { words, optional: true }
}

/// A phrase that signals an attack: its slots, what it is, how sure, and (computed) which bytes
/// it can start with, so most word starts are rejected with one test.
pub(super) struct Phrase {
    pub(super) kind: &'static str,
    pub(super) score: u8,
    slots: &'static [Slot],
    first: u128,
}

impl Phrase {
    const fn new(kind: &'static str, score: u8, slots: &'static [Slot]) -> Phrase {
        Phrase { kind, score, slots, first: first_bytes(slots) }
    }
}

/// The ASCII bytes a match of `slots` can begin with, as a bit set.
const fn first_bytes(slots: &[Slot]) -> u128 {
    let mut mask = 0u128;
    let mut rest = slots;
    while let [slot, tail @ ..] = rest {
        let mut words = slot.words;
        while let [word, others @ ..] = words {
            if let [b, ..] = word.as_bytes() {
                if *b < 128 {
                    mask |= 1u128 << *b;
                }
            }
            words = others;
        }
        if !slot.optional {
            break;
        }
        rest = tail;
    }
    mask
}

const OVERRIDE: &str = "instruction_override";
const ROLE_PLAY: &str = "role_play";
const LEAK: &str = "system_prompt_leak";
pub(super) const HIDDEN: &str = "hidden_instruction";

const IGNORE: &[&str] =
    &["ignore", "disregard", "forget", "skip", "bypass", "override", "discard", "overlook", "neglect"];
const ALL: &[&str] = &["all", "any", "every", "each"];
const THE: &[&str] = &["the", "your", "my", "these", "those", "its", "our"];
const EARLIER: &[&str] = &[
    "previous",
    "prior",
    "above",
    "earlier",
    "preceding",
    "foregoing",
    "former",
    "original",
    "initial",
    "old",
    "existing",
    "given",
    "above-mentioned",
    "aforementioned",
    "system",
];
const RULES: &[&str] = &[
    "instructions",
    "instruction",
    "prompts",
    "prompt",
    "rules",
    "guidelines",
    "directions",
    "directives",
    "commands",
    "guidance",
    "constraints",
    "programming",
    "restrictions",
    "orders",
];
const NO_LIMITS: &[&str] = &[
    "restrictions",
    "rules",
    "guidelines",
    "limits",
    "limitations",
    "filters",
    "filtering",
    "boundaries",
    "morals",
    "ethics",
    "policies",
    "constraints",
    "censorship",
    "guardrails",
];
const QUALITY: &[&str] = &["ethical", "moral", "content", "safety"];
const UNBOUND: &[&str] = &[
    "unrestricted",
    "unfiltered",
    "uncensored",
    "unlimited",
    "amoral",
    "unaligned",
    "unethical",
    "jailbroken",
    "rogue",
    "lawless",
    "unbound",
    "unchained",
    "liberated",
];
const MODES: &[&str] = &["developer mode", "dev mode", "god mode", "dan mode", "jailbreak mode", "unrestricted mode"];
const USER: &[&str] = &["user", "users", "human"];

/// Tried in order at each word start; the first match wins and the scan moves past it.
const PHRASES: &[Phrase] = &[
    Phrase::new(
        OVERRIDE,
        90,
        &[one(IGNORE), opt(ALL), opt(&["of"]), opt(THE), one(EARLIER), opt(&["system"]), one(RULES)],
    ),
    Phrase::new(OVERRIDE, 85, &[one(IGNORE), opt(ALL), opt(&["of"]), one(&["your", "my"]), one(RULES)]),
    Phrase::new(
        OVERRIDE,
        85,
        &[
            one(IGNORE),
            one(&[
                "everything above",
                "everything before this",
                "everything prior",
                "everything said before",
                "everything you were told",
                "everything you've been told",
                "everything you have been told",
                "everything you were given",
                "everything up to this point",
                "all you were told",
                "what you were told",
                "all of the above",
                "all the above",
            ]),
        ],
    ),
    Phrase::new(
        OVERRIDE,
        85,
        &[
            one(IGNORE),
            one(&["the above", "the text above", "the above text", "the previous text"]),
            one(&["and", "instead"]),
        ],
    ),
    Phrase::new(
        OVERRIDE,
        85,
        &[
            one(&["new", "updated", "revised", "real", "actual", "true", "different"]),
            opt(&["system"]),
            one(&["instructions:", "instructions :", "instruction:", "prompt:", "rules:", "directives:"]),
        ],
    ),
    Phrase::new(
        OVERRIDE,
        85,
        &[
            one(&["override", "bypass", "disable", "circumvent", "deactivate", "turn off", "switch off"]),
            opt(&["all of", "all", "any", "every"]),
            opt(&["your", "the", "its", "my"]),
            one(&[
                "system prompt",
                "system instructions",
                "system message",
                "safety guidelines",
                "safety filters",
                "safety filter",
                "safety rules",
                "safety measures",
                "safety protocols",
                "safety features",
                "content policy",
                "content filters",
                "content filter",
                "content moderation",
                "guardrails",
                "ethical guidelines",
                "instructions",
                "programming",
            ]),
        ],
    ),
    Phrase::new(
        OVERRIDE,
        85,
        &[
            one(&["do not", "don't", "dont", "never", "stop", "no longer"]),
            one(&[
                "follow",
                "following",
                "obey",
                "obeying",
                "adhere to",
                "adhering to",
                "comply with",
                "complying with",
            ]),
            one(&["your", "the", "any", "these", "those", "all", "all of your", "all the"]),
            opt(EARLIER),
            one(&["instructions", "instruction", "guidelines", "system prompt", "programming"]),
        ],
    ),
    Phrase::new(
        LEAK,
        70,
        &[
            one(&[
                "reveal",
                "print",
                "show",
                "repeat",
                "output",
                "display",
                "disclose",
                "leak",
                "dump",
                "tell me",
                "give me",
                "show me",
                "write out",
                "print out",
                "spell out",
                "recite",
                "share",
                "what is",
                "what are",
                "what's",
                "return",
                "echo",
            ]),
            opt(&["me"]),
            opt(&["your", "the", "all of your", "all your", "all the"]),
            opt(&[
                "full", "entire", "complete", "exact", "original", "verbatim", "whole", "initial", "hidden", "secret",
            ]),
            one(&[
                "system prompt",
                "system message",
                "system instructions",
                "initial instructions",
                "hidden instructions",
                "original instructions",
                "secret instructions",
                "initial prompt",
                "hidden prompt",
                "original prompt",
                "developer message",
                "developer instructions",
                "pre-prompt",
                "preprompt",
                "instructions you were given",
                "prompt above",
                "instructions above",
            ]),
        ],
    ),
    Phrase::new(
        LEAK,
        70,
        &[
            one(&["repeat", "print", "output", "copy", "echo", "recite"]),
            one(&[
                "everything above",
                "the text above",
                "the words above",
                "all text above",
                "all the text above",
                "all of the text above",
                "the above text",
                "everything before this",
                "your instructions",
                "your rules",
                "your prompt",
            ]),
        ],
    ),
    Phrase::new(
        HIDDEN,
        85,
        &[
            one(&["do not", "don't", "dont", "never", "without"]),
            one(&[
                "tell",
                "telling",
                "mention",
                "mentioning",
                "inform",
                "informing",
                "reveal",
                "revealing",
                "disclose",
            ]),
            opt(&["this", "it", "that", "anything", "any of this", "this step", "this action"]),
            opt(&["to"]),
            opt(&["the"]),
            one(USER),
        ],
    ),
    Phrase::new(
        HIDDEN,
        85,
        &[
            one(&["do not let", "don't let", "never let"]),
            opt(&["the"]),
            one(&["user know", "user see", "user find out"]),
        ],
    ),
    Phrase::new(
        HIDDEN,
        85,
        &[
            one(&[
                "hide this from",
                "hide it from",
                "keep this hidden from",
                "keep this secret from",
                "keep it secret from",
                "conceal this from",
            ]),
            opt(&["the"]),
            one(USER),
        ],
    ),
    Phrase::new(HIDDEN, 75, &[one(&["secretly"])]),
    Phrase::new(
        ROLE_PLAY,
        80,
        &[
            one(&["you are now", "you're now", "you are", "you're", "you will now be", "you'll now be"]),
            opt(&["a", "an"]),
            one(&[
                "dan",
                "jailbroken",
                "unrestricted",
                "unfiltered",
                "uncensored",
                "unchained",
                "liberated",
                "no longer bound",
            ]),
        ],
    ),
    Phrase::new(ROLE_PLAY, 75, &[one(&["do anything now"])]),
    Phrase::new(
        ROLE_PLAY,
        75,
        &[one(MODES), opt(&["is", "has been", "now"]), one(&["enabled", "activated", "on", "unlocked", "engaged"])],
    ),
    Phrase::new(
        ROLE_PLAY,
        75,
        &[one(&["enable", "activate", "enter", "switch to", "turn on", "unlock"]), opt(&["the"]), one(MODES)],
    ),
    Phrase::new(
        ROLE_PLAY,
        80,
        &[
            one(&[
                "act as",
                "acting as",
                "behave as",
                "behave like",
                "become",
                "roleplay as",
                "role-play as",
                "role play as",
                "pretend to be",
                "you will be",
                "simulate",
                "respond as",
                "answer as",
            ]),
            opt(&["a", "an"]),
            one(UNBOUND),
        ],
    ),
    Phrase::new(
        ROLE_PLAY,
        75,
        &[
            one(&["pretend", "imagine", "assume", "act like", "act as if", "act as though", "suppose", "believe"]),
            opt(&["that"]),
            one(&[
                "you have no",
                "you've no",
                "you had no",
                "you have zero",
                "you are without",
                "you're without",
                "you are free of",
                "you're free of",
                "you are free from",
                "you're free from",
                "you are not bound by",
                "you're not bound by",
                "there are no",
            ]),
            opt(&["any", "your"]),
            opt(QUALITY),
            one(NO_LIMITS),
        ],
    ),
    Phrase::new(ROLE_PLAY, 60, &[one(&["without any"]), opt(&["kind of", "form of"]), opt(QUALITY), one(NO_LIMITS)]),
    Phrase::new(
        ROLE_PLAY,
        65,
        &[
            one(&[
                "from now on",
                "from this point on",
                "from this point forward",
                "from this moment on",
                "from here on",
            ]),
            one(&["you will", "you are", "you're", "you must", "you shall", "you'll", "you can"]),
        ],
    ),
    Phrase::new(
        ROLE_PLAY,
        75,
        &[
            one(&["you are no longer", "you're no longer"]),
            one(&["bound by", "restricted by", "constrained by", "required to follow", "subject to", "limited by"]),
        ],
    ),
    Phrase::new(ROLE_PLAY, 60, &[one(&["jailbreak", "jailbroken", "jailbreaking", "jail break", "jail-break"])]),
];

pub(super) fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

pub(super) fn word_start(bytes: &[u8], i: usize) -> bool {
    at(bytes, i).is_some_and(is_alnum) && !before(bytes, i).is_some_and(is_alnum)
}

/// `word` at `pos`, ending at a word boundary (`user` does not match `users` or `user's`).
pub(super) fn word_at(bytes: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
    if !starts_at(bytes, pos, word) {
        return None;
    }
    let end = pos + word.len();
    if word.last().is_some_and(|&b| is_alnum(b)) {
        let joined = at(bytes, end).is_some_and(is_alnum)
            || (at(bytes, end) == Some(b'\'') && at(bytes, end + 1).is_some_and(is_alnum));
        if joined {
            return None;
        }
    }
    Some(end)
}

/// Past the space and light punctuation between two words (`ignore **all** previous`).
fn skip_gap(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i - from < 6 && at(bytes, i).is_some_and(|b| matches!(b, b' ' | b',' | b'*' | b'_' | b'"' | b'\'' | b'`')) {
        i += 1;
    }
    i
}

/// Where `slots` end if they match from `pos`; `end` is where the last matched word ended.
fn match_slots(bytes: &[u8], pos: usize, end: usize, slots: &[Slot]) -> Option<usize> {
    let Some((slot, rest)) = slots.split_first() else { return Some(end) };
    for word in slot.words {
        if let Some(word_end) = word_at(bytes, pos, word.as_bytes()) {
            if let Some(done) = match_slots(bytes, skip_gap(bytes, word_end), word_end, rest) {
                return Some(done);
            }
        }
    }
    if slot.optional {
        match_slots(bytes, pos, end, rest)
    } else {
        None
    }
}

/// The first phrase matching at `pos` (a word start) and where it ends.
pub(super) fn match_any(bytes: &[u8], pos: usize) -> Option<(&'static Phrase, usize)> {
    let bit = 1u128.checked_shl(u32::from(at(bytes, pos)?))?;
    PHRASES
        .iter()
        .filter(|phrase| phrase.first & bit != 0)
        .find_map(|phrase| match_slots(bytes, pos, pos, phrase.slots).filter(|&end| end > pos).map(|end| (phrase, end)))
}

/// Whether any phrase occurs in `bytes` (folded).
pub(super) fn has_phrase(bytes: &[u8]) -> bool {
    (0..bytes.len()).any(|i| word_start(bytes, i) && match_any(bytes, i).is_some())
}
