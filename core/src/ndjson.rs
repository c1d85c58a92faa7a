//! Newline-delimited JSON: push bytes in as they arrive, get whole lines out.

/// Cap on one unterminated line, so a hostile upstream cannot grow the buffer without bound.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// An NDJSON line grew past [`MAX_LINE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NDJSON line exceeds {MAX_LINE} bytes")]
pub struct LineTooLong;

#[derive(Debug, Default)]
pub struct NdjsonParser {
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no newline.
    scanned: usize,
}

impl NdjsonParser {
    /// Feeds bytes; returns the non-empty lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, LineTooLong> {
        self.buffer.extend_from_slice(bytes);
        let mut lines = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(pos) = self.buffer.get(from..).and_then(|b| b.iter().position(|&c| c == b'\n')) {
            let line = String::from_utf8_lossy(self.buffer.get(start..from + pos).unwrap_or_default());
            let line = line.trim();
            if !line.is_empty() {
                lines.push(line.to_owned());
            }
            start = from + pos + 1;
            from = start;
        }
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(lines)
    }

    /// A last line without its newline still counts.
    pub fn finish(self) -> Option<String> {
        let line = String::from_utf8_lossy(&self.buffer).trim().to_owned();
        (!line.is_empty()).then_some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_pushes_are_reassembled() {
        let mut p = NdjsonParser::default();
        assert!(p.push(b"{\"a\":").unwrap().is_empty());
        assert_eq!(p.push(b"1}\n\r\n{\"b\"").unwrap(), vec!["{\"a\":1}"]);
        assert_eq!(p.finish().as_deref(), Some("{\"b\""));
    }
}
