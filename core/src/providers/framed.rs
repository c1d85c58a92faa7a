//! What the native stream translators share: their upstream's bytes cut into frames (SSE events,
//! NDJSON lines), each frame translated in order until one ends the stream, a framing fault
//! turned into a 502 error event, and the ending checked. Each translator says only what a frame
//! means and what its ending means ([`FrameTranslator`]); [`ChatStreamTranslator`] follows.

use std::fmt::Display;

use super::{ChatStreamTranslator, StreamEvent};
use crate::ndjson::NdjsonParser;
use crate::providers::TranslateError;
use crate::sse::{SseEvent, SseParser};

/// A wire format's framing: bytes in as they arrive, whole frames out.
pub trait Framing: Default {
    type Frame;
    type Fault: Display;
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<Self::Frame>, Self::Fault>;
    /// The body ended: a last frame without its terminator still counts.
    fn finish(self) -> Vec<Self::Frame>;
}

impl Framing for SseParser {
    type Frame = SseEvent;
    type Fault = crate::sse::LineTooLong;
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, Self::Fault> {
        SseParser::push(self, bytes)
    }
    fn finish(self) -> Vec<SseEvent> {
        SseParser::finish(self)
    }
}

impl Framing for NdjsonParser {
    type Frame = String;
    type Fault = crate::ndjson::LineTooLong;
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, Self::Fault> {
        NdjsonParser::push(self, bytes)
    }
    fn finish(self) -> Vec<String> {
        NdjsonParser::finish(self).into_iter().collect()
    }
}

/// A native stream translator, frame by frame.
pub trait FrameTranslator {
    type Framing: Framing;
    /// What one frame says.
    fn frame(&mut self, frame: <Self::Framing as Framing>::Frame) -> Vec<StreamEvent>;
    /// The body ended after its last frame: nothing when the stream had ended, else what the
    /// ending means (an interrupted answer is an error event).
    fn close(&mut self) -> Vec<StreamEvent>;
    /// The stream has ended (finished or failed): later frames do not count.
    fn ended(&self) -> bool;
}

/// A [`FrameTranslator`] with its framing: a [`ChatStreamTranslator`].
pub struct Framed<T: FrameTranslator> {
    framing: T::Framing,
    translator: T,
    /// The framing failed: the stream ended with its error.
    broke: bool,
}

impl<T: FrameTranslator + 'static> Framed<T> {
    pub fn boxed(translator: T) -> Box<dyn ChatStreamTranslator> {
        Box::new(Framed { framing: T::Framing::default(), translator, broke: false })
    }

    fn frames(&mut self, frames: Vec<<T::Framing as Framing>::Frame>) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        for frame in frames {
            if self.broke || self.translator.ended() {
                break;
            }
            out.extend(self.translator.frame(frame));
        }
        out
    }
}

impl<T: FrameTranslator + 'static> ChatStreamTranslator for Framed<T> {
    fn push(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        match self.framing.push(bytes) {
            Ok(found) => self.frames(found),
            Err(_) if self.broke || self.translator.ended() => Vec::new(),
            Err(e) => {
                self.broke = true;
                vec![StreamEvent::error(TranslateError::malformed(e.to_string()))]
            }
        }
    }

    fn finish(mut self: Box<Self>) -> Vec<StreamEvent> {
        if self.broke {
            return Vec::new();
        }
        let framing = std::mem::take(&mut self.framing);
        let mut out = self.frames(framing.finish());
        out.extend(self.translator.close());
        out
    }
}
