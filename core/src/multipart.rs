//! Just enough of `multipart/form-data` to pass an upload through: find one field (`model`) in
//! the head of the body as it arrives, and rewrite or add it, without touching the file parts.

use std::ops::Range;

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<&str> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        (name.trim().eq_ignore_ascii_case("boundary") && !value.is_empty() && value.len() <= 70).then_some(value)
    })
}

/// What a scan of the body so far found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// The field's value is at this byte range of the body.
    Found(Range<usize>),
    /// The body's closing delimiter came without the field.
    Absent,
    /// More of the body is needed.
    NeedMore,
    /// Not well-formed multipart (the reason).
    Malformed(&'static str),
}

/// Looks for one form field in a body that grows between calls. Each call resumes where the
/// previous one stopped, so a large part before the field is scanned once.
#[derive(Debug)]
pub struct FieldScanner {
    /// `--boundary`.
    delimiter: Vec<u8>,
    field: String,
    /// Start of the next part's delimiter line.
    part: usize,
    /// Inside a part: where its content starts, and how far it has been searched for its end.
    content: Option<(usize, usize, bool)>,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

impl FieldScanner {
    pub fn new(boundary: &str, field: &str) -> Self {
        let mut delimiter = b"--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        FieldScanner { delimiter, field: field.to_owned(), part: 0, content: None }
    }

    /// Scans `body` (everything received so far).
    pub fn scan(&mut self, body: &[u8]) -> Scan {
        loop {
            let (content_start, searched, wanted) = match self.content {
                Some(state) => state,
                None => {
                    let Some(line_end) = find(body, b"\r\n", self.part) else {
                        return if body.len() > self.part + self.delimiter.len() + 4 + 1024 {
                            Scan::Malformed("a delimiter line is too long")
                        } else {
                            Scan::NeedMore
                        };
                    };
                    let line = body.get(self.part..line_end).unwrap_or_default();
                    let Some(rest) = line.strip_prefix(self.delimiter.as_slice()) else {
                        return Scan::Malformed("the body does not start with its boundary");
                    };
                    if rest.starts_with(b"--") {
                        return Scan::Absent;
                    }
                    let Some(headers_end) = find(body, b"\r\n\r\n", line_end) else {
                        return if body.len() - line_end > 16 * 1024 {
                            Scan::Malformed("part headers are too long")
                        } else {
                            Scan::NeedMore
                        };
                    };
                    let headers = body.get(line_end + 2..headers_end).unwrap_or_default();
                    let wanted = field_name(headers).as_deref() == Some(self.field.as_str());
                    let start = headers_end + 4;
                    self.content = Some((start, start, wanted));
                    (start, start, wanted)
                }
            };
            let mut end_marker = b"\r\n".to_vec();
            end_marker.extend_from_slice(&self.delimiter);
            match find(body, &end_marker, searched) {
                Some(end) => {
                    self.content = None;
                    self.part = end + 2;
                    if wanted {
                        return Scan::Found(content_start..end);
                    }
                }
                None => {
                    // Resume just before the end, in case the marker straddles two chunks.
                    let resume = body.len().saturating_sub(end_marker.len()).max(searched);
                    self.content = Some((content_start, resume, wanted));
                    return Scan::NeedMore;
                }
            }
        }
    }
}

impl FieldScanner {
    /// Forgets what the scan no longer needs: returns how many leading bytes of the body the
    /// caller may drop, and counts the scanner's positions from what remains. A long upload is
    /// watched for another field through a window this keeps small.
    pub fn release(&mut self) -> usize {
        let keep_from = match self.content {
            Some((_, searched, _)) => searched.min(self.part.max(searched)),
            None => self.part,
        };
        self.part = self.part.saturating_sub(keep_from);
        if let Some((start, searched, wanted)) = self.content {
            self.content = Some((start.saturating_sub(keep_from), searched.saturating_sub(keep_from), wanted));
        }
        keep_from
    }
}

/// The `name` of a part, from its `Content-Disposition: form-data; name="..."` header.
fn field_name(headers: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(headers);
    text.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        value.split(';').find_map(|param| {
            let (key, value) = param.split_once('=')?;
            // Parameter names are case-insensitive (RFC 7578 via RFC 2183): `NAME=` names it too.
            key.trim().eq_ignore_ascii_case("name").then(|| value.trim().trim_matches('"').to_owned())
        })
    })
}

/// The body head with the field's value replaced (at `found`), or with the field added as the
/// first part when the body has none.
pub fn with_field(head: &[u8], boundary: &str, field: &str, found: Option<Range<usize>>, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + value.len() + 128);
    match found {
        Some(range) => {
            out.extend_from_slice(head.get(..range.start).unwrap_or_default());
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(head.get(range.end..).unwrap_or_default());
        }
        None => {
            let part = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n");
            out.extend_from_slice(part.as_bytes());
            out.extend_from_slice(head);
        }
    }
    out
}

#[cfg(test)]
mod second_field_tests {
    use super::*;

    fn part(disposition: &str, value: &[u8]) -> Vec<u8> {
        let mut out = format!("--B\r\nContent-Disposition: form-data; {disposition}\r\n\r\n").into_bytes();
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        out
    }

    #[test]
    fn a_second_field_is_found_through_a_small_window_however_large_the_parts_between() {
        let mut body = part("name=\"model\"", b"whisper-1");
        body.extend(part("name=\"file\"; filename=\"a.mp3\"", &vec![b'x'; 300_000]));
        // Parameter names are case-insensitive: a server reads this as `model` too.
        body.extend(part("NAME=model", b"other"));
        body.extend_from_slice(b"--B--\r\n");
        for chunk_size in [1000, 4096, 65_536] {
            let mut scanner = FieldScanner::new("B", "model");
            let mut window = Vec::new();
            let mut found = Vec::new();
            let mut largest = 0;
            for chunk in body.chunks(chunk_size) {
                window.extend_from_slice(chunk);
                largest = largest.max(window.len());
                while let Scan::Found(range) = scanner.scan(&window) {
                    found.push(window[range].to_vec());
                }
                let drop = scanner.release();
                window.drain(..drop);
            }
            assert_eq!(found, vec![b"whisper-1".to_vec(), b"other".to_vec()], "chunks of {chunk_size}");
            assert!(largest <= 2 * chunk_size + 128, "the window stays small: {largest}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\
Content-Type: audio/mpeg\r\n\r\nID3\r\n--X\x00\x01\r\n--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n\
openai/whisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n--XyZ--\r\n";

    #[test]
    fn boundaries_come_from_the_content_type() {
        assert_eq!(boundary("multipart/form-data; boundary=XyZ"), Some("XyZ"));
        assert_eq!(boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\""), Some("a b"));
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn the_field_is_found_whatever_the_chunking_and_after_a_file_part() {
        let whole = {
            let mut s = FieldScanner::new("XyZ", "model");
            s.scan(BODY)
        };
        let Scan::Found(range) = whole.clone() else { panic!("{whole:?}") };
        assert_eq!(&BODY[range], b"openai/whisper-1");
        for step in [1, 2, 3, 7, 50] {
            let mut scanner = FieldScanner::new("XyZ", "model");
            let mut seen = 0;
            let outcome = loop {
                seen = (seen + step).min(BODY.len());
                match scanner.scan(&BODY[..seen]) {
                    Scan::NeedMore if seen < BODY.len() => continue,
                    other => break other,
                }
            };
            assert_eq!(outcome, whole, "step {step}");
        }
    }

    #[test]
    fn a_body_without_the_field_or_with_a_wrong_boundary_says_so() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(FieldScanner::new("b", "model").scan(body), Scan::Absent);
        assert!(matches!(FieldScanner::new("other", "model").scan(body), Scan::Malformed(_)));
    }

    #[test]
    fn the_field_is_replaced_or_added() {
        let Scan::Found(range) = FieldScanner::new("XyZ", "model").scan(BODY) else { panic!() };
        let out = with_field(BODY, "XyZ", "model", Some(range), "whisper-1");
        let Scan::Found(range) = FieldScanner::new("XyZ", "model").scan(&out) else { panic!() };
        assert_eq!(&out[range], b"whisper-1");
        assert_eq!(out.len(), BODY.len() - "openai/".len());
        let added = with_field(
            b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--b--\r\n",
            "b",
            "model",
            None,
            "m",
        );
        let Scan::Found(range) = FieldScanner::new("b", "model").scan(&added) else { panic!() };
        assert_eq!(&added[range], b"m");
    }
}
