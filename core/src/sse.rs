//! Server-sent events: an incremental parser and the encoder for what the gateway emits.

use bytes::Bytes;

/// One parsed event: its `event:` name (empty when absent), its joined `data:` lines, and its
/// `id:` and `retry:` (for resumable streams), if it had them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

/// Push bytes in as they arrive, get whole events out. Never panics on any input.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no newline (so it is not scanned again).
    scanned: usize,
    event: String,
    id: Option<String>,
    retry: Option<u64>,
    data: Vec<String>,
    data_len: usize,
    has_data: bool,
}

/// Cap on one event (its unterminated line or its joined data lines), so a hostile upstream
/// cannot grow the buffers without bound.
const MAX_EVENT: usize = 16 * 1024 * 1024;

/// The event stream grew an event past [`MAX_EVENT`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event stream event exceeds {MAX_EVENT} bytes")]
pub struct LineTooLong;

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(pos) = self.buffer.get(from..).and_then(|b| b.iter().position(|&c| c == b'\n')) {
            let end = from + pos;
            let mut line = self.buffer.get(start..end).unwrap_or_default();
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let line = String::from_utf8_lossy(line).into_owned();
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
            start = end + 1;
            from = start;
        }
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_EVENT || self.data_len > MAX_EVENT {
            return Err(LineTooLong);
        }
        Ok(events)
    }

    /// Ends the stream: a final event not followed by a blank line still counts.
    pub fn finish(mut self) -> Vec<SseEvent> {
        let rest = std::mem::take(&mut self.buffer);
        let mut events = Vec::new();
        if !rest.is_empty() {
            let line = String::from_utf8_lossy(&rest).trim_end_matches('\r').to_owned();
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        events.extend(self.dispatch());
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "id" => self.id = Some(value.to_owned()),
            "retry" => self.retry = value.parse().ok(),
            "data" => {
                self.data_len += value.len() + 1;
                self.data.push(value.to_owned());
                self.has_data = true;
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let id = self.id.take();
        let retry = self.retry.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        self.data_len = 0;
        let data = std::mem::take(&mut self.data).join("\n");
        Some(SseEvent { event, data, id, retry })
    }
}

/// `data: {json}\n\n`.
pub fn encode_data(json: &serde_json::Value) -> Bytes {
    let mut out = b"data: ".to_vec();
    out.extend(serde_json::to_vec(json).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The OpenAI end-of-stream marker.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_pushes_are_reassembled() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: message_start\nda").unwrap().is_empty());
        let events = p.push(b"ta: {\"a\":1}\r\n\r\ndata: x\n").unwrap();
        assert_eq!(
            events,
            vec![SseEvent { event: "message_start".into(), data: "{\"a\":1}".into(), id: None, retry: None }]
        );
        assert_eq!(p.finish(), vec![SseEvent { event: String::new(), data: "x".into(), id: None, retry: None }]);
    }

    #[test]
    fn multi_line_data_and_comments() {
        let mut p = SseParser::new();
        let events = p.push(b": ping\ndata: a\ndata: b\n\n").unwrap();
        assert_eq!(events, vec![SseEvent { event: String::new(), data: "a\nb".into(), id: None, retry: None }]);
    }

    #[test]
    fn a_line_fed_byte_by_byte_is_found_once_complete() {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for b in b"data: abc\n\n" {
            events.extend(p.push(&[*b]).unwrap());
        }
        assert_eq!(events, vec![SseEvent { event: String::new(), data: "abc".into(), id: None, retry: None }]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut p = SseParser::new();
        for chunk in [&b"\xff\xfe:\n\n"[..], b"data", b"\r\r\n", b"event:\n\ndata:\n\n"] {
            let _ = p.push(chunk);
        }
        let _ = p.finish();
    }
}
