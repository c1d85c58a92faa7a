//! Dangerous tool-call arguments: destructive shell commands, destructive SQL, path traversal and
//! URLs that carry data out.
//!
//! The scanners read the folded JSON text (lowercase, JSON escapes such as `\n` and `\/`
//! decoded), so `"DELETE FROM users\nWHERE id = 1"` and `"..\\..\\"` read as they would run.
//! `rm -rf` is only reported with a root-ish target (`/`, `/*`, `~`, `$HOME`, a top-level system
//! directory) or `--no-preserve-root`: removing a relative build directory is routine.

use super::fold::{Escapes, Folded};
use super::pii::ipv4_at;
use super::{at, before, contains, find, is_word, starts_at, Category, Finding};

const SHELL: &str = "destructive_shell";
const SQL: &str = "destructive_sql";
const TRAVERSAL: &str = "path_traversal";
const EXFILTRATION: &str = "exfiltration_url";

const SHELL_SCORE: u8 = 90;
const PIPE_TO_SHELL_SCORE: u8 = 85;
const SQL_SCORE: u8 = 85;
const SQL_NO_WHERE_SCORE: u8 = 75;
const TRAVERSAL_SCORE: u8 = 80;

/// Top-level directories whose removal breaks a system.
const SYSTEM_DIRS: &[&[u8]] = &[
    b"bin", b"boot", b"dev", b"etc", b"home", b"lib", b"lib64", b"opt", b"proc", b"root", b"sbin", b"srv", b"sys",
    b"usr", b"var", b"mnt", b"media",
];

/// Devices that are harmless to write to.
const HARMLESS_DEVICES: &[&[u8]] =
    &[b"null", b"zero", b"stdout", b"stderr", b"random", b"urandom", b"tty", b"full", b"fd/1", b"fd/2"];

/// Block-device name prefixes under `/dev/`.
const DISKS: &[&[u8]] = &[b"sd", b"hd", b"nvme", b"xvd", b"vd", b"mmcblk", b"disk"];

const SHELLS: &[&[u8]] = &[b"sh", b"bash", b"zsh", b"dash", b"ksh", b"fish"];

/// Files whose reading is an attack whatever path leads to them. Entries starting with a letter
/// must start a path segment (`id_rsa`, not `valid_rsa`).
const SENSITIVE_PATHS: &[&[u8]] = &[
    b"/etc/passwd",
    b"/etc/shadow",
    b"/etc/sudoers",
    b"/.ssh/",
    b"~/.ssh",
    b"id_rsa",
    b"id_dsa",
    b"id_ecdsa",
    b"id_ed25519",
    b".aws/credentials",
    b"/proc/self/environ",
    b".git-credentials",
    b".netrc",
    b".kube/config",
];

/// Hosts that collect requests or pastes for anyone: where exfiltrated data is sent.
const COLLECTOR_HOSTS: &[&[u8]] = &[
    b"pastebin.com",
    b"paste.ee",
    b"hastebin.com",
    b"webhook.site",
    b"ngrok.io",
    b"ngrok-free.app",
    b"ngrok.app",
    b"ngrok.dev",
    b"pipedream.net",
    b"transfer.sh",
    b"interact.sh",
    b"oast.pro",
    b"oast.live",
    b"oast.site",
    b"oast.online",
    b"oast.fun",
    b"oast.me",
    b"burpcollaborator.net",
    b"oastify.com",
    b"hookbin.com",
    b"requestcatcher.com",
    b"beeceptor.com",
];

/// A finding in folded coordinates, mapped back to the original at the end.
type Raw = (&'static str, u8, usize, usize);

pub(super) fn scan(text: &str, out: &mut Vec<Finding>) {
    let folded = Folded::new(text, Escapes::Json);
    let bytes = folded.bytes();
    let mut raw = Vec::new();
    shell(bytes, &mut raw);
    sql(bytes, &mut raw);
    traversal(bytes, &mut raw);
    urls(bytes, &mut raw);
    out.extend(raw.into_iter().filter_map(|(kind, score, start, end)| {
        let (start, end) = folded.span(start, end)?;
        Some(Finding { category: Category::ToolArgs, kind, score, start, end })
    }));
}

// --- Shell ---

/// Whether `name` is a command word at `i`: not inside a longer word or path component.
fn command_at(bytes: &[u8], i: usize, name: &[u8]) -> bool {
    starts_at(bytes, i, name)
        && !before(bytes, i).is_some_and(|b| is_word(b) || b == b'-' || b == b'.')
        && !at(bytes, i + name.len()).is_some_and(|b| is_word(b) || b == b'-')
}

/// Bytes that end a shell command (or the JSON value holding it).
fn ends_command(b: u8) -> bool {
    matches!(b, b';' | b'&' | b'|' | b',' | b'}' | b']' | b')' | b'`' | b'<' | b'>')
}

/// The arguments of a command, at most 16, up to the end of the command.
struct Args<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Args<'a> {
    fn new(bytes: &'a [u8], pos: usize) -> Self {
        Args { bytes, pos, left: 16 }
    }
}

impl<'a> Iterator for Args<'a> {
    type Item = (usize, usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        while at(self.bytes, self.pos).is_some_and(|b| matches!(b, b' ' | b'"' | b'\'')) {
            self.pos += 1;
        }
        let start = self.pos;
        while at(self.bytes, self.pos).is_some_and(|b| !matches!(b, b' ' | b'"' | b'\'') && !ends_command(b)) {
            self.pos += 1;
        }
        let arg = self.bytes.get(start..self.pos).filter(|arg| !arg.is_empty())?;
        Some((start, self.pos, arg))
    }
}

/// `/`, `/*`, `~`, `$home`, or a top-level system directory (folded, so lowercase).
fn root_ish(arg: &[u8]) -> bool {
    let mut target = arg.strip_suffix(b"*").unwrap_or(arg);
    while target.len() > 1 {
        match target.strip_suffix(b"/") {
            Some(shorter) => target = shorter,
            None => break,
        }
    }
    matches!(target, b"/" | b"~" | b"$home" | b"${home}")
        || target.strip_prefix(b"/").is_some_and(|dir| SYSTEM_DIRS.contains(&dir))
}

fn shell(bytes: &[u8], raw: &mut Vec<Raw>) {
    let mut i = 0;
    while i < bytes.len() {
        let hit = match at(bytes, i) {
            Some(b'r') => rm(bytes, i).map(|end| (SHELL_SCORE, end)),
            Some(b'c') => chmod(bytes, i)
                .map(|end| (SHELL_SCORE, end))
                .or_else(|| pipe_to_shell(bytes, i, b"curl").map(|end| (PIPE_TO_SHELL_SCORE, end))),
            Some(b'w') => pipe_to_shell(bytes, i, b"wget").map(|end| (PIPE_TO_SHELL_SCORE, end)),
            Some(b'd') => dd(bytes, i).map(|end| (SHELL_SCORE, end)),
            Some(b'm') => mkfs(bytes, i).map(|end| (SHELL_SCORE, end)),
            Some(b's') => shutdown(bytes, i).map(|end| (SHELL_SCORE, end)),
            Some(b':') => fork_bomb(bytes, i).map(|end| (SHELL_SCORE, end)),
            Some(b'>') => disk_redirect(bytes, i).map(|end| (SHELL_SCORE, end)),
            _ => None,
        };
        match hit {
            Some((score, end)) => {
                raw.push((SHELL, score, i, end));
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
}

/// When the command `name` stands at `i`: each of its arguments shown to `read`, and where the
/// last one ends.
fn read_args(bytes: &[u8], i: usize, name: &[u8], mut read: impl FnMut(&[u8])) -> Option<usize> {
    if !command_at(bytes, i, name) {
        return None;
    }
    let mut end = i + name.len();
    for (_, arg_end, arg) in Args::new(bytes, end) {
        end = arg_end;
        read(arg);
    }
    Some(end)
}

/// `rm` with a recursive flag and a root-ish target (or `--no-preserve-root`).
fn rm(bytes: &[u8], i: usize) -> Option<usize> {
    let (mut recursive, mut root) = (false, false);
    let end = read_args(bytes, i, b"rm", |arg| {
        if let Some(long) = arg.strip_prefix(b"--") {
            recursive |= long == b"recursive";
            root |= long == b"no-preserve-root";
        } else if let Some(short) = arg.strip_prefix(b"-") {
            recursive |= short.contains(&b'r');
        } else {
            root |= root_ish(arg);
        }
    })?;
    (recursive && root).then_some(end)
}

/// `chmod 777` (or `a+rwx`) on a root-ish target.
fn chmod(bytes: &[u8], i: usize) -> Option<usize> {
    let (mut open, mut root) = (false, false);
    let end = read_args(bytes, i, b"chmod", |arg| {
        open |= matches!(arg, b"777" | b"0777" | b"a+rwx" | b"ugo+rwx" | b"a=rwx");
        root |= root_ish(arg);
    })?;
    (open && root).then_some(end)
}

/// `dd … of=/dev/<device>` for a device that is not a sink like `/dev/null`.
fn dd(bytes: &[u8], i: usize) -> Option<usize> {
    let mut disk = false;
    let end = read_args(bytes, i, b"dd", |arg| {
        disk |= arg
            .strip_prefix(b"of=/dev/")
            .is_some_and(|device| !device.is_empty() && !HARMLESS_DEVICES.contains(&device));
    })?;
    disk.then_some(end)
}

/// `mkfs` (or `mkfs.ext4`, …) on a device.
fn mkfs(bytes: &[u8], i: usize) -> Option<usize> {
    if !starts_at(bytes, i, b"mkfs") || before(bytes, i).is_some_and(|b| is_word(b) || b == b'-' || b == b'.') {
        return None;
    }
    let mut name_end = i + 4;
    while at(bytes, name_end).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.') {
        name_end += 1;
    }
    let (mut device, mut end) = (false, name_end);
    for (_, arg_end, arg) in Args::new(bytes, name_end) {
        end = arg_end;
        device |= arg.starts_with(b"/dev/");
    }
    device.then_some(end)
}

/// `shutdown` with an argument that makes it happen (`now`, `-h`, `+5`, `/s`).
fn shutdown(bytes: &[u8], i: usize) -> Option<usize> {
    if !command_at(bytes, i, b"shutdown") {
        return None;
    }
    let (_, end, arg) = Args::new(bytes, i + 8).next()?;
    let effective =
        matches!(arg, b"now" | b"-h" | b"-r" | b"-p" | b"--halt" | b"--poweroff" | b"--reboot" | b"/s" | b"/r" | b"/p")
            || (arg.first() == Some(&b'+') && arg.get(1).is_some_and(u8::is_ascii_digit));
    effective.then_some(end)
}

/// `:(){ :|:& };:`, spaces anywhere.
fn fork_bomb(bytes: &[u8], i: usize) -> Option<usize> {
    let mut pos = i;
    for &expected in b":(){:|:&};:" {
        while at(bytes, pos) == Some(b' ') {
            pos += 1;
        }
        if at(bytes, pos) != Some(expected) {
            return None;
        }
        pos += 1;
    }
    Some(pos)
}

/// `> /dev/sda` and the like: a redirect onto a block device.
fn disk_redirect(bytes: &[u8], i: usize) -> Option<usize> {
    if before(bytes, i) == Some(b'>') {
        return None;
    }
    let mut pos = i;
    while matches!(at(bytes, pos), Some(b'>' | b' ')) {
        pos += 1;
    }
    let device = pos + b"/dev/".len();
    if !starts_at(bytes, pos, b"/dev/") || !DISKS.iter().any(|disk| starts_at(bytes, device, disk)) {
        return None;
    }
    let mut end = device;
    while at(bytes, end).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'/') {
        end += 1;
    }
    Some(end)
}

/// `curl … | sh` (or `wget`, `| sudo bash`, `| /bin/bash`): a download run unseen.
fn pipe_to_shell(bytes: &[u8], i: usize, fetcher: &[u8]) -> Option<usize> {
    if !command_at(bytes, i, fetcher) {
        return None;
    }
    let from = i + fetcher.len();
    let window = bytes.get(from..bytes.len().min(from + 256))?;
    let pipe = from + window.iter().position(|&b| matches!(b, b'|' | b';' | b'&'))?;
    if at(bytes, pipe) != Some(b'|') || at(bytes, pipe + 1) == Some(b'|') {
        return None;
    }
    let mut args = Args::new(bytes, pipe + 1);
    let (_, mut end, mut program) = args.next()?;
    if program == b"sudo" {
        let mut rest = args.skip_while(|(_, _, arg)| arg.starts_with(b"-"));
        (_, end, program) = rest.next()?;
    }
    let name = program.rsplit(|&b| b == b'/').next()?;
    SHELLS.contains(&name).then_some(end)
}

// --- SQL ---

fn sql(bytes: &[u8], raw: &mut Vec<Raw>) {
    let mut i = 0;
    while i < bytes.len() {
        let starts = at(bytes, i).is_some_and(|b| matches!(b, b'd' | b't' | b'a' | b'u'))
            && !before(bytes, i).is_some_and(|b| is_word(b) || b == b'$');
        let hit = if starts {
            drop_or_truncate(bytes, i)
                .map(|end| (SQL_SCORE, end))
                .or_else(|| alter_drop(bytes, i).map(|end| (SQL_SCORE, end)))
                .or_else(|| delete_without_where(bytes, i).map(|end| (SQL_NO_WHERE_SCORE, end)))
                .or_else(|| update_without_where(bytes, i).map(|end| (SQL_NO_WHERE_SCORE, end)))
        } else {
            None
        };
        match hit {
            Some((score, end)) => {
                raw.push((SQL, score, i, end));
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
}

/// `keyword` as a whole word at `i`, then the position after the following spaces.
fn keyword(bytes: &[u8], i: usize, keyword: &[u8]) -> Option<usize> {
    let end = i + keyword.len();
    if !starts_at(bytes, i, keyword) || at(bytes, end).is_some_and(is_word) {
        return None;
    }
    Some(skip_spaces(bytes, end))
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while at(bytes, i) == Some(b' ') {
        i += 1;
    }
    i
}

/// A table name at `i`, plain or quoted, possibly schema-qualified; where it ends.
fn identifier(bytes: &[u8], i: usize) -> Option<usize> {
    let mut end = i;
    loop {
        let close = match at(bytes, end)? {
            b'"' => Some(b'"'),
            b'`' => Some(b'`'),
            b'[' => Some(b']'),
            _ => None,
        };
        let part_start = end;
        match close {
            Some(close) => {
                let inner = bytes.get(end + 1..)?.iter().take(128).position(|&b| b == close)?;
                end += inner + 2;
            }
            None => {
                while at(bytes, end).is_some_and(|b| is_word(b) || b == b'$') {
                    end += 1;
                }
            }
        }
        if end == part_start {
            return None;
        }
        if at(bytes, end) != Some(b'.') {
            return Some(end);
        }
        end += 1;
    }
}

/// Where the SQL statement starting at `i` ends: `;`, the end of the JSON string, or 2 KiB on.
fn statement_end(bytes: &[u8], i: usize) -> usize {
    let limit = bytes.len().min(i.saturating_add(2048));
    bytes.get(i..limit).and_then(|s| s.iter().position(|&b| matches!(b, b';' | b'"' | b'}'))).map_or(limit, |p| i + p)
}

/// Whether `word` occurs as a whole word in `bytes[start..end]`.
fn has_word(bytes: &[u8], start: usize, end: usize, word: &[u8]) -> bool {
    let Some(region) = bytes.get(start..end) else { return false };
    let mut from = 0;
    while let Some(p) = find(region, from, word) {
        if !before(region, p).is_some_and(is_word) && !at(region, p + word.len()).is_some_and(is_word) {
            return true;
        }
        from = p + 1;
    }
    false
}

/// `DROP TABLE|DATABASE|SCHEMA name`, `TRUNCATE TABLE name`.
fn drop_or_truncate(bytes: &[u8], i: usize) -> Option<usize> {
    let object = match keyword(bytes, i, b"drop") {
        Some(next) => [&b"table"[..], b"database", b"schema"].iter().find_map(|object| keyword(bytes, next, object))?,
        None => keyword(bytes, keyword(bytes, i, b"truncate")?, b"table")?,
    };
    let name = keyword(bytes, object, b"if").and_then(|p| keyword(bytes, p, b"exists")).unwrap_or(object);
    Some(identifier(bytes, name).unwrap_or(object))
}

/// `ALTER TABLE name … DROP …` within one statement.
fn alter_drop(bytes: &[u8], i: usize) -> Option<usize> {
    let name = keyword(bytes, keyword(bytes, i, b"alter")?, b"table")?;
    let after_name = identifier(bytes, name)?;
    let end = statement_end(bytes, after_name);
    let region = bytes.get(after_name..end)?;
    let mut from = 0;
    while let Some(p) = find(region, from, b"drop") {
        if !before(region, p).is_some_and(is_word) && !at(region, p + 4).is_some_and(is_word) {
            return Some(after_name + p + 4);
        }
        from = p + 1;
    }
    None
}

/// `DELETE FROM name` with no `WHERE` in the statement.
fn delete_without_where(bytes: &[u8], i: usize) -> Option<usize> {
    let name = keyword(bytes, keyword(bytes, i, b"delete")?, b"from")?;
    let after_name = identifier(bytes, name)?;
    let next = skip_spaces(bytes, after_name);
    let sql_follows = match at(bytes, next) {
        None | Some(b';' | b'"' | b'\'' | b')' | b',' | b'}') => true,
        Some(_) => [&b"returning"[..], b"using", b"limit", b"order", b"as", b"where"]
            .iter()
            .any(|word| keyword(bytes, next, word).is_some()),
    };
    let end = statement_end(bytes, after_name);
    (sql_follows && !has_word(bytes, after_name, end, b"where")).then(|| trim_end(bytes, i, end))
}

/// `UPDATE name SET column = …` with no `WHERE` in the statement.
fn update_without_where(bytes: &[u8], i: usize) -> Option<usize> {
    let name = keyword(bytes, i, b"update")?;
    let set = skip_spaces(bytes, identifier(bytes, name)?);
    let column = keyword(bytes, set, b"set")?;
    let assigns = skip_spaces(bytes, identifier(bytes, column)?);
    if at(bytes, assigns) != Some(b'=') {
        return None;
    }
    let end = statement_end(bytes, assigns);
    (!has_word(bytes, assigns, end, b"where")).then(|| trim_end(bytes, i, end))
}

/// `end` moved back over trailing spaces, never before `start`.
fn trim_end(bytes: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && before(bytes, end) == Some(b' ') {
        end -= 1;
    }
    end
}

// --- Path traversal ---

fn ends_token(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'"' | b'\''
                | b'`'
                | b','
                | b';'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'<'
                | b'>'
                | b'|'
                | b'='
                | b'&'
                | b'?'
                | b'#'
        )
}

fn traversal(bytes: &[u8], raw: &mut Vec<Raw>) {
    let mut i = 0;
    while i < bytes.len() {
        if at(bytes, i).is_some_and(ends_token) {
            i += 1;
            continue;
        }
        let start = i;
        while at(bytes, i).is_some_and(|b| !ends_token(b)) {
            i += 1;
        }
        let mut end = i;
        while end > start && before(bytes, end) == Some(b'.') && before(bytes, end - 1) != Some(b'.') {
            end -= 1;
        }
        if bytes.get(start..end).is_some_and(traverses) {
            raw.push((TRAVERSAL, TRAVERSAL_SCORE, start, end));
        }
    }
}

/// A path token that climbs out: URL-encoded `../`, two or more `../`, or one that reaches (or
/// any path naming) a sensitive file.
fn traverses(token: &[u8]) -> bool {
    let (mut plain, mut encoded) = (0usize, false);
    let mut i = 0;
    while i < token.len() {
        let segment_start =
            i == 0 || matches!(before(token, i), Some(b'/' | b'\\')) || ends_with_encoded_slash(token, i);
        if segment_start {
            if let Some((next, was_encoded)) = dot_dot_slash(token, i) {
                encoded |= was_encoded;
                plain += usize::from(!was_encoded);
                i = next;
                continue;
            }
        }
        i += 1;
    }
    encoded || plain >= 2 || sensitive(token)
}

const DOTS: &[&[u8]] = &[b".", b"%2e", b"%252e", b"%c0%ae"];
const SLASHES: &[&[u8]] = &[b"/", b"\\", b"%2f", b"%5c", b"%252f", b"%255c", b"%c0%af"];

/// `../` (or `..\`, or any URL-encoded spelling) at `i`: where it ends, and whether encoded.
fn dot_dot_slash(token: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut pos = i;
    let mut encoded = false;
    for set in [DOTS, DOTS, SLASHES] {
        let unit = set.iter().find(|unit| starts_at(token, pos, unit))?;
        encoded |= unit.len() > 1;
        pos += unit.len();
    }
    Some((pos, encoded))
}

fn ends_with_encoded_slash(token: &[u8], i: usize) -> bool {
    token.get(..i).is_some_and(|head| SLASHES.iter().any(|slash| slash.len() > 1 && head.ends_with(slash)))
}

fn sensitive(token: &[u8]) -> bool {
    SENSITIVE_PATHS.iter().any(|path| {
        let needs_boundary = path.first().is_some_and(u8::is_ascii_alphanumeric);
        let mut from = 0;
        while let Some(p) = find(token, from, path) {
            if !needs_boundary || !before(token, p).is_some_and(|b| b.is_ascii_alphanumeric()) {
                return true;
            }
            from = p + 1;
        }
        false
    })
}

// --- Exfiltration URLs ---

fn in_url(b: u8) -> bool {
    !b.is_ascii_whitespace()
        && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'`' | b'{' | b'}' | b'|' | b'\\' | b'^' | b')' | b']')
}

fn urls(bytes: &[u8], raw: &mut Vec<Raw>) {
    let mut from = 0;
    while let Some(p) = find(bytes, from, b"http") {
        let host_start = if starts_at(bytes, p, b"https://") {
            p + 8
        } else if starts_at(bytes, p, b"http://") {
            p + 7
        } else {
            from = p + 4;
            continue;
        };
        let mut end = host_start;
        while at(bytes, end).is_some_and(in_url) {
            end += 1;
        }
        let scanned = end;
        while end > host_start && matches!(before(bytes, end), Some(b'.' | b',' | b':' | b';')) {
            end -= 1;
        }
        let bounded = !before(bytes, p).is_some_and(|b| b.is_ascii_alphanumeric());
        if let Some(score) = bytes.get(host_start..end).filter(|_| bounded).and_then(url_risk) {
            raw.push((EXFILTRATION, score, p, end));
        }
        from = scanned.max(p + 4);
    }
}

/// How risky a URL (after its scheme) is: a collector host, a raw IP host with data, or a
/// query value or path segment carrying a long encoded payload.
fn url_risk(url: &[u8]) -> Option<u8> {
    let authority_end = url.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(url.len());
    let authority = url.get(..authority_end)?;
    let host_port = authority.rsplit(|&b| b == b'@').next()?;
    let host = host_port.split(|&b| b == b':').next()?;
    let rest = url.get(authority_end..)?;
    let rest = rest.split(|&b| b == b'#').next()?;
    let (path, query) = match rest.iter().position(|&b| b == b'?') {
        Some(q) => (rest.get(..q)?, rest.get(q + 1..)?),
        None => (rest, &[][..]),
    };
    let values = || {
        query
            .split(|&b| b == b'&' || b == b';')
            .map(|pair| pair.iter().position(|&b| b == b'=').and_then(|eq| pair.get(eq + 1..)).unwrap_or(pair))
    };
    let collector = contains(host, b"requestbin")
        || COLLECTOR_HOSTS
            .iter()
            .any(|known| host == *known || host.strip_suffix(*known).is_some_and(|sub| sub.last() == Some(&b'.')));
    let raw_ip = ipv4_at(host, 0) == Some(host.len());
    let payload = values().any(is_payload) || path.split(|&b| b == b'/').any(is_payload);
    let data = values().any(|value| value.len() >= 16);
    match (collector, raw_ip, payload) {
        (true, _, true) | (_, true, true) => Some(85),
        (true, _, false) => Some(80),
        (false, true, false) if data => Some(75),
        (false, false, true) => Some(70),
        _ => None,
    }
}

/// 64 or more base64, hex or percent-encoded characters, with a digit among them.
fn is_payload(value: &[u8]) -> bool {
    value.len() >= 64
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-' | b'%' | b'.'))
        && value.iter().any(u8::is_ascii_digit)
}
