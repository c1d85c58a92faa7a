//! Personal data: emails, phone numbers, payment cards, US SSNs, IBANs and IP addresses.
//!
//! Where a check digit exists it must pass (Luhn for cards, ISO 7064 mod 97 for IBANs), and the
//! boundaries are strict elsewhere, so dates, versions and plain long numbers are not reported.
//! Passes run strongest first; a weaker one (phone) never reports a span a stronger one took.

use super::{at, before, claim, is_word, Category, Finding};

const CARD_SCORE: u8 = 95;
const IBAN_SCORE: u8 = 95;
const EMAIL_SCORE: u8 = 90;
const SSN_SCORE: u8 = 85;
const PHONE_SCORE: u8 = 70;
const IP_SCORE: u8 = 60;

pub(super) fn scan(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let mut claimed = Vec::new();
    claim(&mut claimed, emails(bytes));
    claim(&mut claimed, ibans(bytes));
    claim(&mut claimed, cards(bytes));
    claim(&mut claimed, ssns(bytes));
    claim(&mut claimed, ipv6s(bytes));
    claim(&mut claimed, ipv4s(bytes));
    claim(&mut claimed, phones(bytes));
    out.extend(claimed);
}

fn finding(kind: &'static str, score: u8, start: usize, end: usize) -> Finding {
    Finding { category: Category::Pii, kind, score, start, end }
}

fn is_digit_at(bytes: &[u8], i: usize) -> bool {
    at(bytes, i).is_some_and(|b| b.is_ascii_digit())
}

/// Whether a number ending at `end` actually goes on: a word character, or punctuation that
/// joins it to more digits (`1.2.3.4.5`, `2024-01-15`).
fn continues(bytes: &[u8], end: usize) -> bool {
    match at(bytes, end) {
        Some(b) if is_word(b) => true,
        Some(b'.' | b'-' | b'/' | b':' | b',') => is_digit_at(bytes, end.saturating_add(1)),
        _ => false,
    }
}

// --- Email ---

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

fn emails(bytes: &[u8]) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut floor = 0;
    let mut i = 0;
    while let Some(sign) = bytes.get(i..).and_then(|rest| rest.iter().position(|&b| b == b'@')).map(|p| p + i) {
        i = sign + 1;
        let mut start = sign;
        while start > floor && before(bytes, start).is_some_and(is_local) && sign - start <= 64 {
            start -= 1;
        }
        while start < sign && at(bytes, start) == Some(b'.') {
            start += 1;
        }
        if start == sign || sign - start > 64 || before(bytes, sign) == Some(b'.') {
            continue;
        }
        let mut end = i;
        while at(bytes, end).is_some_and(is_domain) && end - i <= 253 {
            end += 1;
        }
        if end - i > 253 {
            continue;
        }
        while end > i && before(bytes, end).is_some_and(|b| b == b'.' || b == b'-') {
            end -= 1;
        }
        if bytes.get(i..end).is_some_and(valid_domain) {
            found.push(finding("email", EMAIL_SCORE, start, end));
            floor = end;
            i = end;
        }
    }
    found
}

/// At least two labels, none empty or hyphen-edged, and an alphabetic top-level label.
fn valid_domain(domain: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty() || label.len() > 63 || label.first() == Some(&b'-') || label.last() == Some(&b'-') {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}

// --- IBAN ---

/// Countries that issue IBANs, with the IBAN length in each.
const IBAN_LENGTHS: &[([u8; 2], usize)] = &[
    (*b"AD", 24),
    (*b"AE", 23),
    (*b"AL", 28),
    (*b"AT", 20),
    (*b"AZ", 28),
    (*b"BA", 20),
    (*b"BE", 16),
    (*b"BG", 22),
    (*b"BH", 22),
    (*b"BI", 27),
    (*b"BR", 29),
    (*b"BY", 28),
    (*b"CH", 21),
    (*b"CR", 22),
    (*b"CY", 28),
    (*b"CZ", 24),
    (*b"DE", 22),
    (*b"DJ", 27),
    (*b"DK", 18),
    (*b"DO", 28),
    (*b"EE", 20),
    (*b"EG", 29),
    (*b"ES", 24),
    (*b"FI", 18),
    (*b"FK", 18),
    (*b"FO", 18),
    (*b"FR", 27),
    (*b"GB", 22),
    (*b"GE", 22),
    (*b"GI", 23),
    (*b"GL", 18),
    (*b"GR", 27),
    (*b"GT", 28),
    (*b"HN", 28),
    (*b"HR", 21),
    (*b"HU", 28),
    (*b"IE", 22),
    (*b"IL", 23),
    (*b"IQ", 23),
    (*b"IS", 26),
    (*b"IT", 27),
    (*b"JO", 30),
    (*b"KW", 30),
    (*b"KZ", 20),
    (*b"LB", 28),
    (*b"LC", 32),
    (*b"LI", 21),
    (*b"LT", 20),
    (*b"LU", 20),
    (*b"LV", 21),
    (*b"LY", 25),
    (*b"MC", 27),
    (*b"MD", 24),
    (*b"ME", 22),
    (*b"MK", 19),
    (*b"MN", 20),
    (*b"MR", 27),
    (*b"MT", 31),
    (*b"MU", 30),
    (*b"NI", 28),
    (*b"NL", 18),
    (*b"NO", 15),
    (*b"OM", 23),
    (*b"PK", 24),
    (*b"PL", 28),
    (*b"PS", 29),
    (*b"PT", 25),
    (*b"QA", 29),
    (*b"RO", 24),
    (*b"RS", 22),
    (*b"RU", 33),
    (*b"SA", 24),
    (*b"SC", 31),
    (*b"SD", 18),
    (*b"SE", 24),
    (*b"SI", 19),
    (*b"SK", 24),
    (*b"SM", 27),
    (*b"SO", 23),
    (*b"ST", 25),
    (*b"SV", 28),
    (*b"TL", 23),
    (*b"TN", 24),
    (*b"TR", 26),
    (*b"UA", 29),
    (*b"VA", 22),
    (*b"VG", 24),
    (*b"XK", 20),
    (*b"YE", 30),
];

/// The findings of one kind, scanning left to right: `ends(i)` says where a match starting at
/// `i` ends, and the scan resumes there.
fn scan_with(bytes: &[u8], kind: &'static str, score: u8, ends: impl Fn(usize) -> Option<usize>) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match ends(i) {
            Some(end) => {
                found.push(finding(kind, score, i, end));
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
    found
}

fn ibans(bytes: &[u8]) -> Vec<Finding> {
    scan_with(bytes, "iban", IBAN_SCORE, |i| iban_at(bytes, i))
}

/// An IBAN starting at `start`, either unbroken or printed in groups of four, that passes mod 97.
fn iban_at(bytes: &[u8], start: usize) -> Option<usize> {
    if before(bytes, start).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let country = [at(bytes, start)?.to_ascii_uppercase(), at(bytes, start + 1)?.to_ascii_uppercase()];
    if !is_digit_at(bytes, start + 2) || !is_digit_at(bytes, start + 3) {
        return None;
    }
    let len = IBAN_LENGTHS.iter().find(|(code, _)| *code == country)?.1;
    let mut chars = [0u8; 34];
    let mut spaced = false;
    let mut i = start;
    for n in 0..len {
        if n > 0 && n.is_multiple_of(4) {
            if n == 4 {
                spaced = at(bytes, i) == Some(b' ');
            }
            if spaced {
                if at(bytes, i) != Some(b' ') {
                    return None;
                }
                i += 1;
            }
        }
        let b = at(bytes, i).filter(u8::is_ascii_alphanumeric)?;
        *chars.get_mut(n)? = b.to_ascii_uppercase();
        i += 1;
    }
    if at(bytes, i).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let iban = chars.get(..len)?;
    let rearranged = iban.get(4..)?.iter().chain(iban.get(..4)?);
    let remainder = rearranged.fold(0u32, |r, &c| {
        if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        }
    });
    (remainder == 1).then_some(i)
}

// --- Payment card ---

/// Card issuer ranges: the first `digits` digits lie in `low..=high`, for numbers of
/// `min..=max` digits.
struct Issuer {
    digits: usize,
    low: u32,
    high: u32,
    min: usize,
    max: usize,
}

const ISSUERS: &[Issuer] = &[
    Issuer { digits: 1, low: 4, high: 4, min: 13, max: 19 },   // Visa
    Issuer { digits: 2, low: 51, high: 55, min: 16, max: 16 }, // Mastercard
    Issuer { digits: 4, low: 2221, high: 2720, min: 16, max: 16 }, // Mastercard 2-series
    Issuer { digits: 2, low: 34, high: 34, min: 15, max: 15 }, // American Express
    Issuer { digits: 2, low: 37, high: 37, min: 15, max: 15 }, // American Express
    Issuer { digits: 3, low: 300, high: 305, min: 14, max: 19 }, // Diners Club
    Issuer { digits: 2, low: 36, high: 36, min: 14, max: 19 }, // Diners Club
    Issuer { digits: 2, low: 38, high: 39, min: 14, max: 19 }, // Diners Club
    Issuer { digits: 4, low: 6011, high: 6011, min: 16, max: 19 }, // Discover
    Issuer { digits: 3, low: 644, high: 649, min: 16, max: 19 }, // Discover
    Issuer { digits: 2, low: 65, high: 65, min: 16, max: 19 }, // Discover
    Issuer { digits: 4, low: 3528, high: 3589, min: 16, max: 19 }, // JCB
    Issuer { digits: 2, low: 62, high: 62, min: 16, max: 19 }, // UnionPay
    Issuer { digits: 2, low: 50, high: 50, min: 13, max: 19 }, // Maestro
    Issuer { digits: 2, low: 56, high: 58, min: 13, max: 19 }, // Maestro
    Issuer { digits: 2, low: 63, high: 63, min: 13, max: 19 }, // Maestro
    Issuer { digits: 2, low: 67, high: 67, min: 13, max: 19 }, // Maestro
];

fn cards(bytes: &[u8]) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_digit_at(bytes, i) {
            i += 1;
            continue;
        }
        let (end, valid) = card_at(bytes, i);
        if valid {
            found.push(finding("card", CARD_SCORE, i, end));
        }
        i = end.max(i + 1);
    }
    found
}

/// Reads the digit run at `start` (groups of 3 to 6 digits joined by single spaces or single
/// dashes, one kind only) and says where it ends and whether it is a card number.
fn card_at(bytes: &[u8], start: usize) -> (usize, bool) {
    let mut digits = [0u8; 19];
    let mut count = 0usize;
    let mut separator: Option<u8> = None;
    let mut group = 0usize;
    let mut groups_ok = true;
    let mut i = start;
    loop {
        match at(bytes, i) {
            Some(b) if b.is_ascii_digit() => {
                if let Some(slot) = digits.get_mut(count) {
                    *slot = b - b'0';
                }
                count = count.saturating_add(1);
                group += 1;
                i += 1;
            }
            Some(s @ (b' ' | b'-')) if separator.is_none_or(|x| x == s) && is_digit_at(bytes, i + 1) => {
                groups_ok &= (3..=6).contains(&group);
                separator = Some(s);
                group = 0;
                i += 1;
            }
            _ => break,
        }
    }
    if separator.is_some() {
        groups_ok &= (3..=6).contains(&group);
    }
    let bounded = !before(bytes, start).is_some_and(|b| is_word(b) || matches!(b, b'.' | b'+' | b'-' | b'/'))
        && !continues(bytes, i);
    let valid = bounded
        && groups_ok
        && (13..=19).contains(&count)
        && digits.get(..count).is_some_and(|d| luhn(d) && issuer_known(d));
    (i, valid)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 {
                    twice - 9
                } else {
                    twice
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn issuer_known(digits: &[u8]) -> bool {
    ISSUERS.iter().any(|issuer| {
        (issuer.min..=issuer.max).contains(&digits.len())
            && digits.get(..issuer.digits).is_some_and(|prefix| {
                let value = prefix.iter().fold(0u32, |v, &d| v * 10 + u32::from(d));
                (issuer.low..=issuer.high).contains(&value)
            })
    })
}

// --- US Social Security number ---

fn ssns(bytes: &[u8]) -> Vec<Finding> {
    scan_with(bytes, "ssn", SSN_SCORE, |i| {
        let bounded = !before(bytes, i).is_some_and(|b| is_word(b) || matches!(b, b'-' | b'.' | b'/'));
        bounded.then(|| ssn_at(bytes, i)).flatten()
    })
}

/// `ddd-dd-dddd` at `start`, outside the ranges never issued (area 000, 666, 900 and up; group
/// 00; serial 0000).
fn ssn_at(bytes: &[u8], start: usize) -> Option<usize> {
    let number = |from: usize, len: usize| -> Option<u32> {
        (from..from + len)
            .try_fold(0u32, |v, i| at(bytes, i).filter(u8::is_ascii_digit).map(|b| v * 10 + u32::from(b - b'0')))
    };
    let area = number(start, 3)?;
    let group = number(start + 4, 2)?;
    let serial = number(start + 7, 4)?;
    let end = start + 11;
    let shaped = at(bytes, start + 3) == Some(b'-') && at(bytes, start + 6) == Some(b'-');
    let issued = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    (shaped && issued && !continues(bytes, end)).then_some(end)
}

// --- IP addresses ---

fn ipv4s(bytes: &[u8]) -> Vec<Finding> {
    scan_with(bytes, "ip", IP_SCORE, |i| {
        let starts = is_digit_at(bytes, i) && !before(bytes, i).is_some_and(|b| is_word(b) || b == b'.');
        starts.then(|| ipv4_at(bytes, i)).flatten()
    })
}

/// A dotted quad at `start` (each octet 0 to 255) that is not part of a longer dotted run.
pub(super) fn ipv4_at(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    for part in 0..4 {
        if part > 0 {
            if at(bytes, i) != Some(b'.') {
                return None;
            }
            i += 1;
        }
        let from = i;
        let mut value = 0u32;
        while let Some(b) = at(bytes, i).filter(u8::is_ascii_digit) {
            value = value * 10 + u32::from(b - b'0');
            i += 1;
            if i - from > 3 {
                return None;
            }
        }
        if i == from || value > 255 {
            return None;
        }
    }
    let dotted_on = at(bytes, i) == Some(b'.') && at(bytes, i + 1).is_some_and(is_word);
    (!at(bytes, i).is_some_and(is_word) && !dotted_on).then_some(i)
}

fn ipv6s(bytes: &[u8]) -> Vec<Finding> {
    let mut found = Vec::new();
    let is_run = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let mut i = 0;
    while i < bytes.len() {
        let starts = at(bytes, i).is_some_and(|b| b.is_ascii_hexdigit() || b == b':')
            && !before(bytes, i).is_some_and(|b| is_word(b) || b == b':' || b == b'.');
        if !starts {
            i += 1;
            continue;
        }
        let mut run_end = i;
        while at(bytes, run_end).is_some_and(is_run) {
            run_end += 1;
        }
        let mut end = run_end;
        while end > i && before(bytes, end) == Some(b'.') {
            end -= 1;
        }
        if end > i + 1 && before(bytes, end) == Some(b':') && before(bytes, end - 1) != Some(b':') {
            end -= 1;
        }
        if !at(bytes, run_end).is_some_and(is_word) && bytes.get(i..end).is_some_and(is_ipv6) {
            found.push(finding("ip", IP_SCORE, i, end));
        }
        i = run_end.max(i + 1);
    }
    found
}

/// Eight groups of one to four hex digits, or fewer with one `::`, optionally ending in a dotted
/// quad; at least one decimal digit so that words like `dead::beef` are left alone.
fn is_ipv6(s: &[u8]) -> bool {
    if s.len() < 3 || s.len() > 45 || !s.iter().any(u8::is_ascii_digit) {
        return false;
    }
    if s.iter().filter(|&&b| b == b':').count() < 2 {
        return false;
    }
    let groups = match super::find(s, 0, b"::") {
        Some(p) => {
            let (Some(head), Some(tail)) = (s.get(..p), s.get(p + 2..)) else { return false };
            if super::contains(tail, b"::") {
                return false;
            }
            match (ipv6_groups(head, false), ipv6_groups(tail, true)) {
                (Some(h), Some(t)) if h + t <= 7 => h + t,
                _ => return false,
            }
        }
        None => match ipv6_groups(s, true) {
            Some(8) => 8,
            _ => return false,
        },
    };
    groups > 0
}

/// How many 16-bit groups `side` holds (a trailing dotted quad counts two), if it is well formed.
fn ipv6_groups(side: &[u8], ends_address: bool) -> Option<usize> {
    if side.is_empty() {
        return Some(0);
    }
    let mut count = 0;
    let mut parts = side.split(|&b| b == b':').peekable();
    while let Some(group) = parts.next() {
        let last = parts.peek().is_none();
        if last && ends_address && group.contains(&b'.') {
            if ipv4_at(group, 0) != Some(group.len()) {
                return None;
            }
            count += 2;
        } else if (1..=4).contains(&group.len()) && group.iter().all(u8::is_ascii_hexdigit) {
            count += 1;
        } else {
            return None;
        }
    }
    Some(count)
}

// --- Phone ---

fn phones(bytes: &[u8]) -> Vec<Finding> {
    scan_with(bytes, "phone", PHONE_SCORE, |i| {
        let opens = at(bytes, i).is_some_and(|b| b.is_ascii_digit() || b == b'+' || b == b'(');
        let bounded = match before(bytes, i) {
            None => true,
            Some(b) if is_word(b) || b == b'+' => false,
            Some(b'.' | b'-' | b'/' | b':' | b',') => !i.checked_sub(2).is_some_and(|j| is_digit_at(bytes, j)),
            Some(_) => true,
        };
        (opens && bounded).then(|| phone_at(bytes, i)).flatten()
    })
}

/// One group of a phone number: its end, how many digits, whether it sat in parentheses.
struct Group {
    end: usize,
    len: usize,
    paren: bool,
}

fn group_at(bytes: &[u8], start: usize) -> Option<Group> {
    let paren = at(bytes, start) == Some(b'(');
    let from = if paren { start + 1 } else { start };
    let mut i = from;
    while is_digit_at(bytes, i) && i - from <= 15 {
        i += 1;
    }
    let len = i - from;
    if len == 0 || len > 15 || (paren && len > 5) {
        return None;
    }
    if paren {
        if at(bytes, i) != Some(b')') {
            return None;
        }
        i += 1;
    }
    Some(Group { end: i, len, paren })
}

/// A phone number at `start`: international (`+` and 10 to 15 digits), North American
/// (`(555) 123-4567`, `555-123-4567`, optionally after `1`), or a national number with a leading
/// trunk zero (`020 7946 0958`, `06 12 34 56 78`) with one kind of separator.
fn phone_at(bytes: &[u8], start: usize) -> Option<usize> {
    const MAX_GROUPS: usize = 8;
    let plus = at(bytes, start) == Some(b'+');
    let first = group_at(bytes, if plus { start + 1 } else { start })?;
    let mut lens = [0usize; MAX_GROUPS];
    let mut parens = [false; MAX_GROUPS];
    let mut seps = [0u8; MAX_GROUPS];
    lens[0] = first.len;
    parens[0] = first.paren;
    let mut n = 1;
    let mut digits = first.len;
    let mut end = first.end;
    loop {
        let (sep, next) = match at(bytes, end) {
            Some(s @ (b' ' | b'-' | b'.')) => (s, end + 1),
            _ if parens.get(n - 1) == Some(&true) => (0, end),
            _ => break,
        };
        let Some(group) = group_at(bytes, next) else { break };
        if group.paren && n >= 2 {
            break;
        }
        if n >= MAX_GROUPS {
            return None;
        }
        *lens.get_mut(n)? = group.len;
        *parens.get_mut(n)? = group.paren;
        *seps.get_mut(n)? = sep;
        n += 1;
        digits += group.len;
        end = group.end;
        if digits > 15 {
            return None;
        }
    }
    if continues(bytes, end) {
        return None;
    }
    let (lens, parens, seps) = (lens.get(..n)?, parens.get(..n)?, seps.get(..n)?);
    let number_start = if plus { start + 1 } else { start };
    let first_digit = at(bytes, number_start + usize::from(first.paren))?;
    let valid = if plus {
        (10..=15).contains(&digits) && (n == 1 || first.len <= 3)
    } else {
        north_american(lens, parens, seps, first_digit) || trunk_prefixed(lens, parens, seps, first_digit, digits)
    };
    valid.then_some(end)
}

/// `[1] ddd ddd dddd` with the area code optionally in parentheses.
fn north_american(lens: &[usize], parens: &[bool], seps: &[u8], first_digit: u8) -> bool {
    let skip = usize::from(
        lens.len() == 4 && lens.first() == Some(&1) && first_digit == b'1' && parens.first() == Some(&false),
    );
    let (Some(lens), Some(parens), Some(seps)) = (lens.get(skip..), parens.get(skip..), seps.get(skip..)) else {
        return false;
    };
    lens == [3, 3, 4]
        && parens.get(1..) == Some(&[false, false][..])
        && seps.get(2).is_some_and(|&s| s != 0)
        && (parens.first() == Some(&true) || seps.get(1).is_some_and(|&s| s != 0))
}

/// A national number with a leading zero: groups of 2 to 5 digits, one kind of separator (none
/// only right after a parenthesised area code), 10 or 11 digits in all.
fn trunk_prefixed(lens: &[usize], parens: &[bool], seps: &[u8], first_digit: u8, digits: usize) -> bool {
    let area_in_parens = parens.first() == Some(&true);
    let separator = seps.iter().skip(1).copied().find(|&s| s != 0);
    let same_separator =
        seps.iter().enumerate().skip(1).all(|(k, &s)| Some(s) == separator || (s == 0 && k == 1 && area_in_parens));
    first_digit == b'0'
        && lens.len() >= 2
        && (10..=11).contains(&digits)
        && lens.iter().all(|l| (2..=5).contains(l))
        && parens.iter().skip(1).all(|p| !p)
        && same_separator
}
