#![doc(hidden)]
//! The built-in lalrpop lexer
//!
//! This is the code for the built in lexer, and is linked by lalrpop generated parsers to provide
//! lexer support when you don't write a custom lexer.
//!
//! Typically you don't want to use APIs from this module directly, they are public to be accessed
//! by the generated parser.
use alloc::{fmt, vec::Vec};
use core::marker::PhantomData;
use std::sync::Mutex;

use crate::ParseError;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::{BuildError, LazyStateID};
use regex_automata::nfa::thompson::Config as NfaConfig;
use regex_automata::util::syntax::Config as SyntaxConfig;
use regex_automata::{Anchored, Input, MatchKind};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Token<'input>(pub usize, pub &'input str);
impl fmt::Display for Token<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        fmt::Display::fmt(self.1, formatter)
    }
}

pub struct MatcherBuilder {
    dfa: DFA,
    skip_vec: Vec<bool>,
    /// The lazy DFA's cache of the last matcher that finished, for the next one: the states it
    /// built are kept instead of being determinized again for every text lexed.
    spare: Mutex<Option<Cache>>,
}

impl MatcherBuilder {
    #[allow(clippy::result_large_err)]
    pub fn new<S>(exprs: impl IntoIterator<Item = (S, bool)>) -> Result<MatcherBuilder, BuildError>
    where
        S: AsRef<str>,
    {
        let exprs = exprs.into_iter();
        let mut regex_vec = Vec::with_capacity(exprs.size_hint().0);
        let mut skip_vec = Vec::with_capacity(exprs.size_hint().0);
        for (regex, skip) in exprs {
            regex_vec.push(regex);
            skip_vec.push(skip);
        }

        let enable_unicode = cfg!(feature = "unicode");
        let dfa = DFA::builder()
            .configure(DFA::config().match_kind(MatchKind::All))
            .syntax(
                SyntaxConfig::new()
                    .unicode(enable_unicode)
                    .utf8(enable_unicode),
            )
            .thompson(NfaConfig::new().utf8(enable_unicode).shrink(true))
            .build_many(&regex_vec)?;

        Ok(MatcherBuilder {
            dfa,
            skip_vec,
            spare: Mutex::new(None),
        })
    }

    pub fn matcher<'input, 'builder, E>(
        &'builder self,
        text: &'input str,
    ) -> Matcher<'input, 'builder, E> {
        let input = Input::new(text).anchored(Anchored::Yes);
        let spare = self.spare.try_lock().ok().and_then(|mut spare| spare.take());
        let mut cache = spare.unwrap_or_else(|| self.dfa.create_cache());
        let start = self.dfa.start_state_forward(&mut cache, &input).unwrap();
        Matcher {
            text,
            consumed: 0,
            start_clears: cache.clear_count(),
            cache: Some(cache),
            start,
            home: &self.spare,
            dfa: &self.dfa,
            skip_vec: &self.skip_vec,
            _marker: PhantomData,
        }
    }
}

pub struct Matcher<'input, 'builder, E> {
    text: &'input str,
    consumed: usize,
    /// Always `Some` until the matcher is dropped and gives it back to `home`.
    cache: Option<Cache>,
    start: LazyStateID,
    /// The cache's clear count when `start` was computed.
    start_clears: usize,
    home: &'builder Mutex<Option<Cache>>,
    dfa: &'builder DFA,
    skip_vec: &'builder [bool],
    _marker: PhantomData<fn() -> E>,
}

impl<'input, E> Iterator for Matcher<'input, '_, E> {
    type Item = Result<(usize, Token<'input>, usize), ParseError<usize, Token<'input>, E>>;

    fn next(&mut self) -> Option<Self::Item> {
        let cache = self.cache.as_mut()?;
        loop {
            let text = self.text;
            let start_offset = self.consumed;
            if text.is_empty() {
                self.consumed = start_offset;
                return None;
            }

            let mut match_ = None;
            'search: {
                if cache.clear_count() != self.start_clears {
                    // A full cache was cleared (more likely now that it lives on): the start
                    // state's id went with it.
                    let input = Input::new(text).anchored(Anchored::Yes);
                    self.start = self.dfa.start_state_forward(cache, &input).unwrap();
                    self.start_clears = cache.clear_count();
                }
                let mut state = self.start;
                for (i, byte) in text.bytes().enumerate() {
                    state = self.dfa.next_state(cache, state, byte).unwrap();
                    if state.is_match() {
                        // The pattern is read now: a later step may clear the cache, and a
                        // cleared cache invalidates the ids of every state but the current one.
                        match_ = Some((pattern_of(self.dfa, cache, state), i));
                    } else if state.is_dead() {
                        break 'search;
                    }
                }
                state = self.dfa.next_eoi_state(cache, state).unwrap();
                if state.is_match() {
                    match_ = Some((pattern_of(self.dfa, cache, state), text.len()));
                }
            }

            let (index, longest_match) = match match_ {
                Some(match_) => match_,
                None => {
                    return Some(Err(ParseError::InvalidToken {
                        location: start_offset,
                    }))
                }
            };

            let result = &text[..longest_match];
            let remaining = &text[longest_match..];
            let end_offset = start_offset + longest_match;
            self.text = remaining;
            self.consumed = end_offset;

            if self.skip_vec[index] {
                if longest_match == 0 {
                    return Some(Err(ParseError::InvalidToken {
                        location: start_offset,
                    }));
                }
                continue;
            }

            return Some(Ok((start_offset, Token(index, result), end_offset)));
        }
    }
}

/// The highest pattern a match state matches (the token kind the grammar prefers).
fn pattern_of(dfa: &DFA, cache: &Cache, state: LazyStateID) -> usize {
    (0..dfa.match_len(cache, state))
        .map(|n| dfa.match_pattern(cache, state, n).as_usize())
        .max()
        .unwrap()
}

impl<E> Drop for Matcher<'_, '_, E> {
    fn drop(&mut self) {
        if let (Some(cache), Ok(mut spare)) = (self.cache.take(), self.home.try_lock()) {
            *spare = Some(cache);
        }
    }
}
