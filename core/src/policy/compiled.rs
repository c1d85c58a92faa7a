//! Policies compiled when a configuration is accepted, stored beside it (`config/compiled`) and
//! loaded on the request path instead of parsing Cedar text. In a cold instance, Cedar's parser
//! costs about 40 µs a policy; building the same policy from this form, through Cedar's public
//! policy syntax tree (`pst`), costs a fraction of that.
//!
//! The form is a cache, never the source: each set's entry is keyed by the set's id and text, so an
//! edited set, a document written without its compiled form, or an entry that does
//! not decode is parsed from its text as before. An entry is written only if it decodes back to
//! exactly the policies parsed from the text.
//!
//! `PERFORMANCE.md` beside this file describes the whole policy performance layer (this codec, the
//! vendored lexer, the warmed thread-local caches): why each exists, what it saves, how to remove it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cedar_policy::pst::{
    ActionConstraint, BinaryOp, Clause, Effect, EntityOrSlot, EntityType, EntityUID, Expr, Literal, Name, NonEmpty,
    PatternElem, PrincipalConstraint, ResourceConstraint, SlotId, SmolStr, StaticPolicy, Template, UnaryOp, Var,
};
use cedar_policy::Policy;

use super::reads::Reads;
use crate::config::{Config, PolicyConfig};
use crate::guard::Detectors;

/// The key-value key the compiled policies are stored under, beside the document's `config`.
pub const COMPILED_KV_KEY: &str = "config/compiled";

/// What the stored value starts with: the format's name and version, then [`REVISION`].
const MAGIC: &[u8; 4] = b"GWP1";

/// Bump when the rule naming policies (`parse_set`) or the reading of what a policy reads
/// (`reads`) changes: entries store their results, and entries written by other rules must not be
/// trusted. The context fields and the gateway's version are in the revision too.
const RULES: &str = "ids-1 reads-1";

/// What entries written by this build can be trusted by: the rules, the context fields in order,
/// the detector families in order, and the gateway's version. Worked out when the gateway is built.
const REVISION: [u8; 8] = {
    let mut hash = fnv1a_from(FNV_OFFSET, RULES.as_bytes());
    let mut fields: &[&str] = &super::entities::CONTEXT_FIELDS;
    while let [field, rest @ ..] = fields {
        hash = fnv1a_from(fnv1a_from(hash, b","), field.as_bytes());
        fields = rest;
    }
    hash = fnv1a_from(hash, b"|pii,secrets,injection,tool_args|");
    fnv1a_from(hash, env!("CARGO_PKG_VERSION").as_bytes()).to_le_bytes()
};

/// Where the entries start: after the magic and the revision.
const HEADER_LEN: usize = 12;

/// The stored compiled policies of a configuration: entries of (set id, set text, encoded set,
/// check), the check an FNV-1a hash of the other three (a damaged entry is parsed from its text,
/// never misread). A set is matched by comparing its id and text: no digest of the text is
/// computed on the request path.
#[derive(Debug, Clone)]
pub struct CompiledPolicies(bytes::Bytes);

impl CompiledPolicies {
    /// The stored value, if it is in this format and was written under this build's rules.
    pub fn new(stored: bytes::Bytes) -> Option<CompiledPolicies> {
        let ours = stored.starts_with(MAGIC) && stored.get(MAGIC.len()..HEADER_LEN) == Some(&REVISION[..]);
        ours.then_some(CompiledPolicies(stored))
    }

    /// The policies of `set` with what each reads, when its entry is there and decodes.
    pub(super) fn load(&self, set: &PolicyConfig) -> Option<Vec<(Policy, Reads)>> {
        let mut reader = Reader::new(self.0.get(HEADER_LEN..)?);
        while !reader.done() {
            let start = reader.at;
            let id = reader.str()?;
            let text = reader.str()?;
            let len = usize::try_from(reader.varint()?).ok()?;
            let body = reader.take(len)?;
            let entry = self.0.get(HEADER_LEN + start..HEADER_LEN + reader.at)?;
            let check = reader.take(CHECK_LEN)?;
            if id == set.id && text == set.cedar {
                return (check == fnv1a(entry).to_le_bytes()).then(|| decode_set(body)).flatten();
            }
        }
        None
    }
}

/// Decodes every entry of a stored value whatever its check says, and returns how many policies
/// came back: the decoder as a damaged or hostile store would feed it (for the fuzzer; the request
/// path decodes only entries whose check holds).
#[doc(hidden)]
pub fn decode_unchecked(stored: &[u8]) -> usize {
    let mut reader = Reader::new(stored.get(HEADER_LEN..).unwrap_or_default());
    let mut decoded = 0;
    while !reader.done() {
        let Some(body) = (|| {
            reader.str()?;
            reader.str()?;
            let len = usize::try_from(reader.varint()?).ok()?;
            let body = reader.take(len)?;
            reader.take(CHECK_LEN)?;
            Some(body)
        })() else {
            break;
        };
        decoded += decode_set(body).map_or(0, |set| set.len());
    }
    decoded
}

/// Compiles every policy set of an accepted configuration (route and server sets included). A set
/// that cannot be compiled is left out: the request path parses it.
pub fn compile(config: &Config) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&REVISION);
    let sets = config
        .policies
        .iter()
        .chain(config.routes.values().flat_map(|r| r.policies.iter()))
        .chain(config.mcp_servers.values().flat_map(|s| s.policies.iter()));
    for set in sets {
        let Some(body) = super::parse_with_reads(set).ok().and_then(|policies| encode_set(&policies)) else {
            continue;
        };
        let start = out.len();
        string(&mut out, &set.id);
        string(&mut out, &set.cedar);
        varint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
        let check = out.get(start..).map_or(0, fnv1a);
        out.extend_from_slice(&check.to_le_bytes());
    }
    out
}

/// How many bytes an entry's check takes.
const CHECK_LEN: usize = 8;

/// FNV-1a, 64 bits: catches a damaged entry, cheaply (the entries are not secrets, and whoever can
/// write them can write the document too).
fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(FNV_OFFSET, bytes)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, continuing from `hash`; `const`, so that [`REVISION`] is built in.
const fn fnv1a_from(mut hash: u64, mut bytes: &[u8]) -> u64 {
    while let [byte, rest @ ..] = bytes {
        hash = (hash ^ *byte as u64).wrapping_mul(0x0100_0000_01b3);
        bytes = rest;
    }
    hash
}

/// Encodes a set's policies, or `None` when one is not a plain static policy or does not come
/// back identical.
pub(super) fn encode_set(policies: &[(Policy, Reads)]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    varint(&mut out, policies.len() as u64);
    let mut expected = Vec::with_capacity(policies.len());
    for (policy, reads) in policies {
        let cedar_policy::pst::Policy::Static(pst) = policy.to_pst().ok()? else { return None };
        varint(&mut out, u64::from(reads.fields));
        out.push(families_byte(reads.families));
        encode_template(&mut out, pst.body())?;
        expected.push((pst, *reads));
    }
    let decoded = decode_set(&out)?;
    let same = decoded.len() == expected.len()
        && decoded.iter().zip(&expected).all(|((policy, reads), (pst, expected_reads))| {
            reads == expected_reads
                && matches!(policy.to_pst(), Ok(cedar_policy::pst::Policy::Static(back)) if back == *pst)
        });
    same.then_some(out)
}

fn decode_set(bytes: &[u8]) -> Option<Vec<(Policy, Reads)>> {
    let mut reader = Reader::new(bytes);
    let count = reader.varint()?;
    let mut policies = Vec::new();
    for _ in 0..count {
        let fields = u32::try_from(reader.varint()?).ok()?;
        let families = families_of(reader.byte()?);
        let template = decode_template(&mut reader)?;
        let pst = StaticPolicy::try_from(template).ok()?;
        let policy = Policy::from_pst(cedar_policy::pst::Policy::Static(pst)).ok()?;
        policies.push((policy, Reads { fields, families }));
    }
    reader.done().then_some(policies)
}

fn families_byte(families: Detectors) -> u8 {
    u8::from(families.pii)
        | u8::from(families.secrets) << 1
        | u8::from(families.injection) << 2
        | u8::from(families.tool_args) << 3
}

fn families_of(byte: u8) -> Detectors {
    Detectors { pii: byte & 1 != 0, secrets: byte & 2 != 0, injection: byte & 4 != 0, tool_args: byte & 8 != 0 }
}

// Operators by index. Appending keeps earlier entries' meaning; a new Cedar operator that is not
// listed makes its policy uncompilable (parsed from text), never misread.
const UNARY: [UnaryOp; 18] = [
    UnaryOp::Not,
    UnaryOp::Neg,
    UnaryOp::IsEmpty,
    UnaryOp::Datetime,
    UnaryOp::Decimal,
    UnaryOp::Duration,
    UnaryOp::Ip,
    UnaryOp::IsIPv4,
    UnaryOp::IsIPV6,
    UnaryOp::IsLoopback,
    UnaryOp::IsMulticast,
    UnaryOp::ToDate,
    UnaryOp::ToTime,
    UnaryOp::ToMilliseconds,
    UnaryOp::ToSeconds,
    UnaryOp::ToMinutes,
    UnaryOp::ToHours,
    UnaryOp::ToDays,
];
const BINARY: [BinaryOp; 24] = [
    BinaryOp::Eq,
    BinaryOp::NotEq,
    BinaryOp::Less,
    BinaryOp::LessEq,
    BinaryOp::Greater,
    BinaryOp::GreaterEq,
    BinaryOp::And,
    BinaryOp::Or,
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::In,
    BinaryOp::Contains,
    BinaryOp::ContainsAll,
    BinaryOp::ContainsAny,
    BinaryOp::GetTag,
    BinaryOp::HasTag,
    BinaryOp::IsInRange,
    BinaryOp::Offset,
    BinaryOp::DurationSince,
    BinaryOp::DecimalLessThan,
    BinaryOp::DecimalLessEq,
    BinaryOp::DecimalGreater,
    BinaryOp::DecimalGreaterEq,
];
const VARS: [Var; 4] = [Var::Principal, Var::Action, Var::Resource, Var::Context];
const SLOTS: [SlotId; 2] = [SlotId::Principal, SlotId::Resource];

fn index_of<T: PartialEq>(table: &[T], item: &T) -> Option<u8> {
    table.iter().position(|t| t == item).and_then(|i| u8::try_from(i).ok())
}

fn entry<T: Clone>(table: &[T], index: u8) -> Option<T> {
    table.get(usize::from(index)).cloned()
}

fn encode_template(out: &mut Vec<u8>, template: &Template) -> Option<()> {
    string(out, &template.id.0);
    out.push(match template.effect {
        Effect::Permit => 0,
        Effect::Forbid => 1,
    });
    // The principal and resource constraints have the same five forms under two type names.
    macro_rules! scope {
        ($constraint:ident, $value:expr) => {{
            let (kind, ty, target) = match $value {
                $constraint::Any => (0, None, None),
                $constraint::Eq(e) => (1, None, Some(e)),
                $constraint::In(e) => (2, None, Some(e)),
                $constraint::Is(t) => (3, Some(t), None),
                $constraint::IsIn(t, e) => (4, Some(t), Some(e)),
            };
            scope(out, kind, ty, target)?;
        }};
    }
    scope!(PrincipalConstraint, &template.principal);
    match &template.action {
        ActionConstraint::Any => out.push(0),
        ActionConstraint::Eq(uid) => {
            out.push(1);
            entity_uid(out, uid);
        }
        ActionConstraint::In(uids) => {
            out.push(2);
            varint(out, uids.len() as u64);
            uids.iter().for_each(|uid| entity_uid(out, uid));
        }
    }
    scope!(ResourceConstraint, &template.resource);
    varint(out, template.clauses().len() as u64);
    for clause in template.clauses() {
        let (tag, body) = match clause {
            Clause::When(e) => (0, e),
            Clause::Unless(e) => (1, e),
        };
        out.push(tag);
        expr(out, body)?;
    }
    varint(out, template.annotations.len() as u64);
    for (key, value) in &template.annotations {
        string(out, key);
        string(out, value);
    }
    Some(())
}

/// A principal or resource constraint: its kind, the entity type of `is`, the entity or slot.
fn scope(out: &mut Vec<u8>, kind: u8, ty: Option<&EntityType>, target: Option<&EntityOrSlot>) -> Option<()> {
    out.push(kind);
    if let Some(ty) = ty {
        name(out, &ty.0);
    }
    match target {
        None => {}
        Some(EntityOrSlot::Entity(uid)) => {
            out.push(0);
            entity_uid(out, uid);
        }
        Some(EntityOrSlot::Slot(slot)) => {
            out.push(1 + index_of(&SLOTS, slot)?);
        }
    }
    Some(())
}

fn decode_scope(r: &mut Reader<'_>) -> Option<(u8, Option<EntityType>, Option<EntityOrSlot>)> {
    let kind = r.byte()?;
    let ty = if matches!(kind, 3 | 4) { Some(EntityType::from_name(decode_name(r)?)) } else { None };
    let target = if matches!(kind, 1 | 2 | 4) {
        Some(match r.byte()? {
            0 => EntityOrSlot::Entity(decode_entity_uid(r)?),
            n => EntityOrSlot::Slot(entry(&SLOTS, n - 1)?),
        })
    } else {
        None
    };
    Some((kind, ty, target))
}

fn decode_template(r: &mut Reader<'_>) -> Option<Template> {
    let id = cedar_policy::pst::PolicyID(r.smol()?);
    let effect = match r.byte()? {
        0 => Effect::Permit,
        1 => Effect::Forbid,
        _ => return None,
    };
    // The principal and resource constraints have the same five forms under two type names.
    macro_rules! scope {
        ($constraint:ident) => {
            match decode_scope(r)? {
                (0, None, None) => $constraint::Any,
                (1, None, Some(e)) => $constraint::Eq(e),
                (2, None, Some(e)) => $constraint::In(e),
                (3, Some(t), None) => $constraint::Is(t),
                (4, Some(t), Some(e)) => $constraint::IsIn(t, e),
                _ => return None,
            }
        };
    }
    let principal = scope!(PrincipalConstraint);
    let action = match r.byte()? {
        0 => ActionConstraint::Any,
        1 => ActionConstraint::Eq(decode_entity_uid(r)?),
        2 => {
            let n = r.varint()?;
            ActionConstraint::In((0..n).map(|_| decode_entity_uid(r)).collect::<Option<_>>()?)
        }
        _ => return None,
    };
    let resource = scope!(ResourceConstraint);
    let clauses = (0..r.varint()?)
        .map(|_| {
            let tag = r.byte()?;
            let body = Arc::new(decode_expr(r)?);
            match tag {
                0 => Some(Clause::When(body)),
                1 => Some(Clause::Unless(body)),
                _ => None,
            }
        })
        .collect::<Option<Vec<_>>>()?;
    let annotations =
        (0..r.varint()?).map(|_| Some((r.string()?, r.smol()?))).collect::<Option<BTreeMap<String, SmolStr>>>()?;
    Template::new(id, effect, principal, action, resource)
        .try_with_clauses(clauses)
        .ok()
        .map(|t| t.with_annotations(annotations))
}

fn expr(out: &mut Vec<u8>, e: &Expr) -> Option<()> {
    match e {
        Expr::Literal(Literal::Bool(b)) => out.push(u8::from(*b)),
        Expr::Literal(Literal::Long(n)) => {
            out.push(2);
            varint(out, ((n << 1) ^ (n >> 63)) as u64);
        }
        Expr::Literal(Literal::String(s)) => {
            out.push(3);
            string(out, s);
        }
        Expr::Literal(Literal::EntityUID(uid)) => {
            out.push(4);
            entity_uid(out, uid);
        }
        Expr::Var(v) => out.extend([5, index_of(&VARS, v)?]),
        Expr::Slot(s) => out.extend([6, index_of(&SLOTS, s)?]),
        Expr::UnaryOp { op, expr: inner } => {
            out.extend([7, index_of(&UNARY, op)?]);
            expr(out, inner)?;
        }
        Expr::BinaryOp { op, left, right } => {
            out.extend([8, index_of(&BINARY, op)?]);
            expr(out, left)?;
            expr(out, right)?;
        }
        Expr::GetAttr { expr: inner, attr } => {
            out.push(9);
            expr(out, inner)?;
            string(out, attr);
        }
        Expr::HasAttr { expr: inner, attrs } => {
            out.push(10);
            expr(out, inner)?;
            varint(out, attrs.len() as u64);
            attrs.iter().for_each(|a| string(out, a));
        }
        Expr::Like { expr: inner, pattern } => {
            out.push(11);
            expr(out, inner)?;
            varint(out, pattern.len() as u64);
            for elem in pattern {
                match elem {
                    PatternElem::Wildcard => varint(out, 0),
                    PatternElem::Char(c) => varint(out, u64::from(*c) + 1),
                }
            }
        }
        Expr::Is { expr: inner, entity_type, in_expr } => {
            out.push(12);
            expr(out, inner)?;
            name(out, &entity_type.0);
            match in_expr {
                None => out.push(0),
                Some(in_expr) => {
                    out.push(1);
                    expr(out, in_expr)?;
                }
            }
        }
        Expr::IfThenElse { cond, then_expr, else_expr } => {
            out.push(13);
            expr(out, cond)?;
            expr(out, then_expr)?;
            expr(out, else_expr)?;
        }
        Expr::Set(items) => {
            out.push(14);
            varint(out, items.len() as u64);
            for item in items {
                expr(out, item)?;
            }
        }
        Expr::Record(fields) => {
            out.push(15);
            varint(out, fields.len() as u64);
            for (key, value) in fields {
                string(out, key);
                expr(out, value)?;
            }
        }
        // Unknowns and any construct added to Cedar later: not compiled.
        _ => return None,
    }
    Some(())
}

/// How deep an expression may nest: deeper is not decoded (and so not compiled), never a stack
/// overflow on a crafted entry.
const MAX_DEPTH: u32 = 128;

fn decode_expr(r: &mut Reader<'_>) -> Option<Expr> {
    if r.depth >= MAX_DEPTH {
        return None;
    }
    r.depth += 1;
    let expr = decode_expr_at(r);
    r.depth -= 1;
    expr
}

fn decode_expr_at(r: &mut Reader<'_>) -> Option<Expr> {
    let sub = |r: &mut Reader<'_>| decode_expr(r).map(Arc::new);
    Some(match r.byte()? {
        tag @ (0 | 1) => Expr::Literal(Literal::Bool(tag == 1)),
        2 => {
            let z = r.varint()?;
            Expr::Literal(Literal::Long(((z >> 1) as i64) ^ -((z & 1) as i64)))
        }
        3 => Expr::Literal(Literal::String(r.smol()?)),
        4 => Expr::Literal(Literal::EntityUID(decode_entity_uid(r)?)),
        5 => Expr::Var(entry(&VARS, r.byte()?)?),
        6 => Expr::Slot(entry(&SLOTS, r.byte()?)?),
        7 => {
            let op = entry(&UNARY, r.byte()?)?;
            Expr::UnaryOp { op, expr: sub(r)? }
        }
        8 => {
            let op = entry(&BINARY, r.byte()?)?;
            let left = sub(r)?;
            Expr::BinaryOp { op, left, right: sub(r)? }
        }
        9 => {
            let inner = sub(r)?;
            Expr::GetAttr { expr: inner, attr: r.smol()? }
        }
        10 => {
            let inner = sub(r)?;
            let attrs = (0..r.varint()?).map(|_| r.smol()).collect::<Option<Vec<_>>>()?;
            Expr::HasAttr { expr: inner, attrs: NonEmpty::from_vec(attrs)? }
        }
        11 => {
            let inner = sub(r)?;
            let pattern = (0..r.varint()?)
                .map(|_| match r.varint()? {
                    0 => Some(PatternElem::Wildcard),
                    c => char::from_u32(u32::try_from(c - 1).ok()?).map(PatternElem::Char),
                })
                .collect::<Option<Vec<_>>>()?;
            Expr::Like { expr: inner, pattern }
        }
        12 => {
            let inner = sub(r)?;
            let entity_type = EntityType::from_name(decode_name(r)?);
            let in_expr = match r.byte()? {
                0 => None,
                1 => Some(sub(r)?),
                _ => return None,
            };
            Expr::Is { expr: inner, entity_type, in_expr }
        }
        13 => {
            let cond = sub(r)?;
            let then_expr = sub(r)?;
            Expr::IfThenElse { cond, then_expr, else_expr: sub(r)? }
        }
        14 => Expr::Set((0..r.varint()?).map(|_| sub(r)).collect::<Option<_>>()?),
        15 => Expr::Record((0..r.varint()?).map(|_| Some((r.string()?, sub(r)?))).collect::<Option<_>>()?),
        _ => return None,
    })
}

fn entity_uid(out: &mut Vec<u8>, uid: &EntityUID) {
    name(out, &uid.ty.0);
    string(out, &uid.eid);
}

fn decode_entity_uid(r: &mut Reader<'_>) -> Option<EntityUID> {
    let ty = EntityType::from_name(decode_name(r)?);
    Some(EntityUID { ty, eid: r.smol()? })
}

/// A name as Cedar writes it (`Gateway::Action`).
fn name(out: &mut Vec<u8>, name: &Name) {
    let mut text = String::new();
    for part in name.namespace.iter() {
        text.push_str(part.as_str());
        text.push_str("::");
    }
    text.push_str(name.id.as_str());
    string(out, &text);
}

thread_local! {
    /// Names built so far. Building a name checks each part with Cedar's parser, so each is built
    /// once per instance; the schema's are built by the warm-up, into the Spin snapshot.
    static NAMES: RefCell<HashMap<String, Name>> = RefCell::new(HashMap::new());
}

fn decode_name(r: &mut Reader<'_>) -> Option<Name> {
    let text = r.str()?;
    if let Some(found) = NAMES.with(|names| names.borrow().get(text).cloned()) {
        return Some(found);
    }
    let mut parts: Vec<&str> = text.split("::").collect();
    let id = parts.pop()?;
    let built = if parts.is_empty() { Name::unqualified(id) } else { Name::qualified(parts, id) }.ok()?;
    NAMES.with(|names| names.borrow_mut().insert(text.to_owned(), built.clone()));
    Some(built)
}

/// Builds the names of the gateway's schema, so that a snapshot taken after this holds them.
pub(super) fn warm_up_names() {
    for ty in ["User", "Agent", "ApiKey", "Route", "Model", "McpServer", "Tool", "Action"] {
        let mut encoded = Vec::new();
        string(&mut encoded, &format!("Gateway::{ty}"));
        let _ = decode_name(&mut Reader::new(&encoded));
    }
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Expressions open around the one being read.
    depth: u32,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0, depth: 0 }
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.varint()?).ok()?;
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.str().map(str::to_owned)
    }

    fn smol(&mut self) -> Option<SmolStr> {
        self.str().map(SmolStr::from)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// One `forbid` whose `when` is `!!…!true`, `depth` negations deep.
    fn nested(depth: usize) -> Vec<u8> {
        let mut out = vec![1, 0, 0];
        string(&mut out, "deep");
        out.extend([1, 0, 0, 0, 1, 0]);
        for _ in 0..depth {
            out.extend([7, 0]);
        }
        out.extend([1, 0]);
        out
    }

    #[test]
    fn an_expression_nested_past_the_limit_is_not_decoded_and_does_not_overflow_the_stack() {
        let (policy, _) = decode_set(&nested(20)).unwrap().pop().unwrap();
        assert_eq!(policy.id().to_string(), "deep");
        assert!(decode_set(&nested(MAX_DEPTH as usize + 1)).is_none());
        assert!(decode_set(&nested(200_000)).is_none());
    }

    #[test]
    fn entries_written_under_other_rules_are_not_trusted() {
        let mut stored = MAGIC.to_vec();
        stored.extend_from_slice(&REVISION);
        assert!(CompiledPolicies::new(stored.clone().into()).is_some());
        stored[MAGIC.len()] ^= 1;
        assert!(CompiledPolicies::new(stored.into()).is_none());
        assert!(CompiledPolicies::new(MAGIC.to_vec().into()).is_none());
    }
}
