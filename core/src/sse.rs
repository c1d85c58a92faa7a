//! Server-sent events: an incremental parser that reads a stream exactly as the WHATWG
//! specification has a browser read it (lines end at CRLF, LF or a lone CR; one leading BOM is
//! ignored; an `id` holding NUL is ignored; `retry` is digits only), and the encoder for what the
//! gateway emits. What the gateway inspects is what any conformant client would see: a relay
//! re-serializes each parsed event ([`SseEvent::encode`]) and never passes on raw bytes.

use bytes::Bytes;

/// One parsed event: its `event:` name (empty when absent), its joined `data:` lines, and its
/// `id:` and `retry:` (for resumable streams), if it had them. Values never hold CR or LF: the
/// parser ends lines at either.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

impl SseEvent {
    /// The event as the gateway relays it: `id`, `retry`, `event`, then one `data:` line per
    /// line of `data`, then the blank line. Every value is written from what was parsed, and a
    /// CR or LF that a caller put in `id` or `event` ends the field there (it cannot start a
    /// field or an event of its own).
    pub fn encode(&self, data: &str) -> Bytes {
        fn single_line(value: &str) -> &str {
            value.split(['\r', '\n']).next().unwrap_or_default()
        }
        let mut out = String::with_capacity(data.len() + 32);
        if let Some(id) = &self.id {
            out.push_str("id: ");
            out.push_str(single_line(id));
            out.push('\n');
        }
        if let Some(retry) = self.retry {
            out.push_str(&format!("retry: {retry}\n"));
        }
        if !self.event.is_empty() {
            out.push_str("event: ");
            out.push_str(single_line(&self.event));
            out.push('\n');
        }
        // One `data:` line per line (any of the three line ends), so a multi-line payload
        // stays one event and a CR cannot end it early.
        let mut rest = data;
        loop {
            let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
            out.push_str("data: ");
            out.push_str(rest.get(..end).unwrap_or_default());
            out.push('\n');
            let Some(after) = rest.get(end..).filter(|r| !r.is_empty()) else { break };
            let skip = if after.starts_with("\r\n") { 2 } else { 1 };
            rest = after.get(skip..).unwrap_or_default();
        }
        out.push('\n');
        Bytes::from(out)
    }
}

/// Push bytes in as they arrive, get whole events out. Never panics on any input.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no line end (so it is not scanned again).
    scanned: usize,
    /// The last byte seen was a CR that ended a line: an LF first in the next push belongs to it.
    after_cr: bool,
    /// The stream's first bytes have been seen (a BOM is only skipped there).
    started: bool,
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

/// The UTF-8 byte order mark, ignored once at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

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
        let mut bytes = bytes;
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        self.buffer.extend_from_slice(bytes);
        if !self.started {
            // Wait for three bytes (or a byte that rules the BOM out) before deciding.
            let seen = self.buffer.len().min(BOM.len());
            if self.buffer.get(..seen) == BOM.get(..seen) && seen < BOM.len() {
                return Ok(Vec::new());
            }
            self.started = true;
            if self.buffer.starts_with(BOM) {
                self.buffer.drain(..BOM.len());
            }
        }
        let mut events = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(pos) = self.buffer.get(from..).and_then(|b| b.iter().position(|&c| c == b'\n' || c == b'\r')) {
            let end = from + pos;
            let line = String::from_utf8_lossy(self.buffer.get(start..end).unwrap_or_default()).into_owned();
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
            start = end + 1;
            if self.buffer.get(end) == Some(&b'\r') {
                match self.buffer.get(start) {
                    Some(b'\n') => start += 1,
                    // The LF of a CRLF may be the next push's first byte.
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            from = start;
        }
        self.buffer.drain(..start.min(self.buffer.len()));
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_EVENT || self.data_len > MAX_EVENT {
            return Err(LineTooLong);
        }
        Ok(events)
    }

    /// Ends the stream: a final event not followed by a blank line still counts.
    pub fn finish(mut self) -> Vec<SseEvent> {
        let mut rest = std::mem::take(&mut self.buffer);
        if !self.started && rest.starts_with(BOM) {
            rest.drain(..BOM.len());
        }
        let mut events = Vec::new();
        if !rest.is_empty() {
            let line = String::from_utf8_lossy(&rest).into_owned();
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
            // The specification ignores an id holding NUL (a client would keep the previous one).
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
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
pub fn encode_data(json: &impl serde::Serialize) -> Bytes {
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

#[cfg(test)]
mod whatwg_tests {
    use super::*;

    fn parse_in_slices(bytes: &[u8], slice: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for chunk in bytes.chunks(slice.max(1)) {
            events.extend(p.push(chunk).unwrap());
        }
        events.extend(p.finish());
        events
    }

    fn data(event: &SseEvent) -> &str {
        &event.data
    }

    #[test]
    fn a_lone_cr_ends_a_line_as_a_browser_reads_it() {
        // The hostile framing: fields and the blank line written with bare CRs.
        let stream = b"id: x\r\rdata: {\"secret\":1}\r\r\r\ndata: {\"progress\":1}\n\n";
        for slice in [1, 2, 3, 7, stream.len()] {
            let events = parse_in_slices(stream, slice);
            assert_eq!(events.len(), 2, "slice {slice}: {events:?}");
            assert_eq!(events[0].id, None, "the id event had no data: it is not an event of its own");
            assert_eq!(data(&events[0]), "{\"secret\":1}");
            assert_eq!(data(&events[1]), "{\"progress\":1}");
        }
    }

    #[test]
    fn crlf_split_between_two_pushes_is_one_line_end() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: a\r").unwrap().is_empty());
        assert!(p.push(b"\ndata: b\r").unwrap().is_empty());
        let events = p.push(b"\n\r\n").unwrap();
        assert_eq!(events, vec![SseEvent { data: "a\nb".into(), ..SseEvent::default() }]);
    }

    #[test]
    fn a_leading_byte_order_mark_is_ignored_once() {
        for slice in [1, 2, 100] {
            let events = parse_in_slices(b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n", slice);
            // A second BOM is part of a field name there, which no field matches.
            assert_eq!(events.len(), 1);
            assert_eq!(data(&events[0]), "a");
        }
    }

    #[test]
    fn an_id_holding_nul_and_a_retry_that_is_not_digits_are_ignored() {
        let events = parse_in_slices(b"id: a\0b\nretry: 1e3\ndata: x\n\nid: ok\nretry: 250\ndata: y\n\n", 4);
        assert_eq!(events[0].id, None);
        assert_eq!(events[0].retry, None);
        assert_eq!(events[1].id.as_deref(), Some("ok"));
        assert_eq!(events[1].retry, Some(250));
    }

    #[test]
    fn a_field_without_colon_has_an_empty_value() {
        let events = parse_in_slices(b"data\ndata\n\n", 1);
        assert_eq!(events, vec![SseEvent { data: "\n".into(), ..SseEvent::default() }]);
    }

    #[test]
    fn encoding_writes_only_what_was_parsed_and_reads_back_the_same() {
        let event =
            SseEvent { event: "message".into(), data: "a\r\nb\rc".into(), id: Some("7".into()), retry: Some(5) };
        let bytes = event.encode(&event.data);
        assert_eq!(&bytes[..], b"id: 7\nretry: 5\nevent: message\ndata: a\ndata: b\ndata: c\n\n");
        let back = parse_in_slices(&bytes, 3);
        assert_eq!(back, vec![SseEvent { data: "a\nb\nc".into(), ..event }]);
    }

    #[test]
    fn a_line_break_put_in_an_id_or_name_cannot_start_a_field() {
        let event =
            SseEvent { event: "m\rdata: evil".into(), data: "{}".into(), id: Some("1\n\ndata: x".into()), retry: None };
        let back = parse_in_slices(&event.encode("{}"), 1);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].data, "{}");
        assert_eq!(back[0].id.as_deref(), Some("1"));
        assert_eq!(back[0].event, "m");
    }
}
