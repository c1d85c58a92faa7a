//! A folded view of a text for phrase matching: ASCII lowercase, each whitespace run one space,
//! invisible format characters dropped (so `ig\u{200b}nore` still reads `ignore`), curly quotes
//! straight, and every folded byte mapped back to where it came from in the original.

/// Stands, in the folded bytes, for any non-ASCII character without an ASCII reading.
pub(super) const OTHER: u8 = 0x80;

/// Whether backslash escapes are read as JSON's (tool-call arguments) or kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Escapes {
    Keep,
    Json,
}

/// The folded bytes of a text and, for each, the offset of the original character it came from.
pub(super) struct Folded<'a> {
    text: &'a str,
    escapes: Escapes,
    bytes: Vec<u8>,
    origin: Vec<usize>,
}

impl<'a> Folded<'a> {
    pub(super) fn new(text: &'a str, escapes: Escapes) -> Self {
        let mut bytes = Vec::with_capacity(text.len());
        let mut origin = Vec::with_capacity(text.len());
        let mut in_space = false;
        let mut chars = text.char_indices().peekable();
        while let Some((offset, c)) = chars.next() {
            let mut folded = fold_char(c);
            if escapes == Escapes::Json && c == '\\' {
                if let Some(decoded) = chars.peek().and_then(|&(_, next)| json_escape(next)) {
                    chars.next();
                    folded = Some(decoded);
                }
            }
            match folded {
                None => {}
                Some(b' ') if in_space => {}
                Some(b) => {
                    bytes.push(b);
                    origin.push(offset);
                    in_space = b == b' ';
                }
            }
        }
        Folded { text, escapes, bytes, origin }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The original byte span of folded bytes `[start, end)`.
    pub(super) fn span(&self, start: usize, end: usize) -> Option<(usize, usize)> {
        let from = *self.origin.get(start)?;
        let last = *self.origin.get(end.checked_sub(1)?)?;
        let to = last.checked_add(self.unit_len(last))?;
        (from < to && to <= self.text.len()).then_some((from, to))
    }

    /// How many original bytes the unit at `offset` spans: a char, or a JSON escape pair.
    fn unit_len(&self, offset: usize) -> usize {
        let mut chars = self.text.get(offset..).unwrap_or("").chars();
        match chars.next() {
            Some('\\') if self.escapes == Escapes::Json && chars.next().and_then(json_escape).is_some() => 2,
            Some(c) => c.len_utf8(),
            None => 0,
        }
    }
}

/// The folded byte for the JSON escape `\c`, for the escapes that matter to matching.
fn json_escape(c: char) -> Option<u8> {
    match c {
        'n' | 't' | 'r' => Some(b' '),
        '/' => Some(b'/'),
        '\\' => Some(b'\\'),
        '"' => Some(b'"'),
        _ => None,
    }
}

/// The folded byte for `c`: `None` for invisible characters, a space for any whitespace.
fn fold_char(c: char) -> Option<u8> {
    if let Ok(b) = u8::try_from(c) {
        if b.is_ascii() {
            return Some(if b.is_ascii_whitespace() { b' ' } else { b.to_ascii_lowercase() });
        }
    }
    if is_invisible(c) || c == '\u{00AD}' {
        return None;
    }
    if c.is_whitespace() {
        return Some(b' ');
    }
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{02BC}' | '\u{2032}' => b'\'',
        '\u{201C}' | '\u{201D}' => b'"',
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' => b'-',
        _ => OTHER,
    })
}

/// Zero-width characters, bidirectional controls and Unicode tag characters: invisible when
/// rendered, so text can hide in them or be reordered by them.
pub(super) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
        | '\u{E0000}'..='\u{E007F}')
}

/// Whether `c` is a Unicode tag character, which can spell out ASCII invisibly.
pub(super) fn is_tag(c: char) -> bool {
    matches!(c, '\u{E0000}'..='\u{E007F}')
}
