//! The OpenSSH `allowed_signers` file (ssh-keygen(1), "ALLOWED SIGNERS"):
//! which public keys are trusted to sign, for which principals (here: the
//! backup host's `uname -n`), in which namespaces and during which time.
//!
//! One line per key: `principals [options] keytype base64 [comment]`.
//! Principals are a comma-separated pattern list (`*`, `?`, `!` negation),
//! optionally in double quotes. Options, comma-separated: `namespaces="…"` (a
//! pattern list), `valid-after="…"`, `valid-before="…"` (`YYYYMMDD[HHMM[SS]]`,
//! local time, or UTC with a trailing `Z`), and `cert-authority`, which this
//! tool does not support (certificates are refused with a clear error rather
//! than silently ignored). Empty lines and `#` comments are skipped. A line
//! that does not parse makes the whole file unusable, as for `ssh-keygen -Y
//! verify`: a typo must not silently drop a revocation.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::error::{Error, Result};
use crate::text::Safe;

/// The largest `allowed_signers` file read.
pub const MAX_SIGNERS_FILE: u64 = 4 * 1024 * 1024;

/// One trusted key with its restrictions.
#[derive(Debug, Clone)]
pub struct SignerLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The principal patterns, as written (comma-separated list split).
    pub principals: Vec<String>,
    /// `namespaces="…"` patterns, `None` when absent (any namespace).
    pub namespaces: Option<Vec<String>>,
    pub valid_after: Option<DateTime<Utc>>,
    pub valid_before: Option<DateTime<Utc>>,
    pub key: ssh_key::public::KeyData,
}

/// A parsed `allowed_signers` file.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    pub path: PathBuf,
    pub lines: Vec<SignerLine>,
}

/// Why a line cannot be used for a signature (for the error message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineRefusal {
    Namespace,
    NotYetValid(DateTime<Utc>),
    Expired(DateTime<Utc>),
}

impl AllowedSigners {
    /// Reads and parses `path` (a regular file, at most [`MAX_SIGNERS_FILE`]).
    pub fn load(path: &Path) -> Result<Self> {
        let data = crate::crypto::read_bounded(path, "allowed signers file", MAX_SIGNERS_FILE)?;
        let text = std::str::from_utf8(&data).map_err(|_| {
            Error::usage(format!(
                "allowed signers file {} is not UTF-8 text",
                Safe(path)
            ))
            .hint("give an OpenSSH allowed_signers file (see ssh-keygen(1), ALLOWED SIGNERS)")
        })?;
        Self::parse(text, path)
    }

    /// Parses the text of an `allowed_signers` file; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_start_matches([' ', '\t']);
            let line = line.trim_end_matches(['\r', ' ', '\t']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = parse_line(line, i + 1).map_err(|why| {
                Error::usage(format!(
                    "allowed signers file {}, line {}: {why}",
                    Safe(path),
                    i + 1
                ))
                .hint("fix that line (format: PRINCIPALS [OPTIONS] KEYTYPE BASE64, see ssh-keygen(1), ALLOWED SIGNERS); ssh-keygen -Y verify refuses such a file too")
            })?;
            lines.push(parsed);
        }
        Ok(AllowedSigners {
            path: path.to_owned(),
            lines,
        })
    }

    /// The lines naming `key` (any restriction).
    pub fn for_key<'a>(
        &'a self,
        key: &'a ssh_key::public::KeyData,
    ) -> impl Iterator<Item = &'a SignerLine> + 'a {
        self.lines.iter().filter(move |l| &l.key == key)
    }
}

impl SignerLine {
    /// Whether this line allows a signature in `namespace` checked at `now`.
    pub fn usable(
        &self,
        namespace: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), LineRefusal> {
        if let Some(ns) = &self.namespaces {
            if !match_pattern_list(namespace, ns) {
                return Err(LineRefusal::Namespace);
            }
        }
        if let Some(t) = self.valid_after {
            if now < t {
                return Err(LineRefusal::NotYetValid(t));
            }
        }
        if let Some(t) = self.valid_before {
            if now > t {
                return Err(LineRefusal::Expired(t));
            }
        }
        Ok(())
    }
}

/// OpenSSH `match_pattern`: `*` any sequence, `?` one character; case-sensitive.
pub fn match_pattern(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // iterative wildcard matching with backtracking on the last `*`
    let (mut si, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// OpenSSH `match_pattern_list`: true when some pattern matches and no
/// negated (`!`) pattern does.
pub fn match_pattern_list<S: AsRef<str>>(s: &str, patterns: &[S]) -> bool {
    let mut positive = false;
    for p in patterns {
        let p = p.as_ref();
        if let Some(neg) = p.strip_prefix('!') {
            if match_pattern(s, neg) {
                return false;
            }
        } else if match_pattern(s, p) {
            positive = true;
        }
    }
    positive
}

/// Splits off the first whitespace-delimited field, honouring a leading
/// double quote (the field then runs to the closing quote).
fn first_field(s: &str) -> std::result::Result<(String, &str), String> {
    if let Some(rest) = s.strip_prefix('"') {
        let end = rest
            .find('"')
            .ok_or_else(|| "the quoted principals have no closing quote".to_owned())?;
        let field = rest[..end].to_owned();
        let after = &rest[end + 1..];
        if !after.is_empty() && !after.starts_with([' ', '\t']) {
            return Err("text right after the closing quote of the principals".to_owned());
        }
        Ok((field, after.trim_start_matches([' ', '\t'])))
    } else {
        let end = s.find([' ', '\t']).unwrap_or(s.len());
        Ok((
            s[..end].to_owned(),
            s[end..].trim_start_matches([' ', '\t']),
        ))
    }
}

/// OpenSSH `opt_dequote`: a double-quoted value, `\"` inside for a quote.
fn dequote(s: &str) -> std::result::Result<(String, &str), String> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '"')) => {}
        _ => return Err("an option value must be in double quotes".to_owned()),
    }
    let mut out = String::new();
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or('"');
        if c == '\\' && bytes.get(i + 1) == Some(&b'"') {
            out.push('"');
            i += 2;
            continue;
        }
        if c == '"' {
            return Ok((out, &s[i + 1..]));
        }
        out.push(c);
        i += c.len_utf8();
    }
    Err("an option value has no closing quote".to_owned())
}

/// `YYYYMMDD[HHMM[SS]][Z]`: local time, or UTC with `Z`.
pub fn parse_time(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    let (digits, utc) = match s.strip_suffix(['Z', 'z']) {
        Some(d) => (d, true),
        None => (s, false),
    };
    let bad = || format!("{s:?} is not a time of the form YYYYMMDD[HHMM[SS]][Z]");
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let naive = match digits.len() {
        8 => NaiveDate::parse_from_str(digits, "%Y%m%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
        12 => NaiveDateTime::parse_from_str(&format!("{digits}00"), "%Y%m%d%H%M%S").ok(),
        14 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").ok(),
        _ => None,
    }
    .ok_or_else(bad)?;
    if utc {
        Ok(Utc.from_utc_datetime(&naive))
    } else {
        Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| format!("{s:?} does not exist in the local time zone"))
    }
}

struct Options {
    namespaces: Option<Vec<String>>,
    valid_after: Option<DateTime<Utc>>,
    valid_before: Option<DateTime<Utc>>,
}

/// Parses the options field (up to the first unquoted blank); returns the rest.
fn parse_options(mut s: &str) -> std::result::Result<(Options, &str), String> {
    let mut o = Options {
        namespaces: None,
        valid_after: None,
        valid_before: None,
    };
    let take = |s: &str, name: &str| -> Option<usize> {
        let n = name.len();
        (s.len() >= n && s[..n].eq_ignore_ascii_case(name)).then_some(n)
    };
    loop {
        if let Some(n) = take(s, "cert-authority") {
            let after = &s[n..];
            if after.is_empty() || after.starts_with([',', ' ', '\t']) {
                return Err("cert-authority (signing certificates) is not supported by secureclaw-backup: list the signing keys themselves".to_owned());
            }
        }
        let (name, n) = if let Some(n) = take(s, "namespaces=") {
            ("namespaces", n)
        } else if let Some(n) = take(s, "valid-after=") {
            ("valid-after", n)
        } else if let Some(n) = take(s, "valid-before=") {
            ("valid-before", n)
        } else {
            let end = s.find([',', ' ', '\t', '=']).unwrap_or(s.len());
            return Err(format!(
                "unsupported option {:?} (known: namespaces=\"…\", valid-after=\"…\", valid-before=\"…\")",
                crate::text::cut(&s[..end], 40)
            ));
        };
        let (value, rest) = dequote(&s[n..]).map_err(|e| format!("{name}: {e}"))?;
        match name {
            "namespaces" => {
                if o.namespaces.is_some() {
                    return Err("namespaces given twice".to_owned());
                }
                o.namespaces = Some(value.split(',').map(str::to_owned).collect());
            }
            "valid-after" => {
                if o.valid_after.is_some() {
                    return Err("valid-after given twice".to_owned());
                }
                o.valid_after = Some(parse_time(&value).map_err(|e| format!("valid-after: {e}"))?);
            }
            _ => {
                if o.valid_before.is_some() {
                    return Err("valid-before given twice".to_owned());
                }
                o.valid_before =
                    Some(parse_time(&value).map_err(|e| format!("valid-before: {e}"))?);
            }
        }
        s = rest;
        if s.is_empty() || s.starts_with([' ', '\t']) {
            break;
        }
        s = s
            .strip_prefix(',')
            .ok_or_else(|| "options must be separated by commas".to_owned())?;
    }
    if let (Some(a), Some(b)) = (o.valid_after, o.valid_before) {
        if b <= a {
            return Err("valid-before is not after valid-after".to_owned());
        }
    }
    Ok((o, s.trim_start_matches([' ', '\t'])))
}

fn parse_key(s: &str) -> std::result::Result<ssh_key::public::KeyData, ssh_key::Error> {
    ssh_key::PublicKey::from_openssh(s).map(|k| k.key_data().clone())
}

fn parse_line(line: &str, number: usize) -> std::result::Result<SignerLine, String> {
    let (principals, rest) = first_field(line)?;
    if principals.is_empty() || rest.is_empty() {
        return Err("expected PRINCIPALS [OPTIONS] KEYTYPE BASE64".to_owned());
    }
    let principals: Vec<String> = principals.split(',').map(str::to_owned).collect();
    if principals.iter().any(|p| p.is_empty()) {
        return Err("an empty principal in the list".to_owned());
    }
    // The key directly, or options first (as ssh-keygen tries).
    let first = rest.split([' ', '\t']).next().unwrap_or("");
    let (opts, key_text) = if looks_like_key_type(first) {
        (
            Options {
                namespaces: None,
                valid_after: None,
                valid_before: None,
            },
            rest,
        )
    } else {
        parse_options(rest)?
    };
    let key_type = key_text.split([' ', '\t']).next().unwrap_or("");
    if key_type.ends_with("-cert-v01@openssh.com") {
        return Err("a certificate is not supported here: list the signing key itself".to_owned());
    }
    let key = parse_key(key_text).map_err(|e| {
        format!("not a public key ({e}); expected KEYTYPE BASE64 such as ssh-ed25519 AAAA…")
    })?;
    Ok(SignerLine {
        line: number,
        principals,
        namespaces: opts.namespaces,
        valid_after: opts.valid_after,
        valid_before: opts.valid_before,
        key,
    })
}

fn looks_like_key_type(t: &str) -> bool {
    t.starts_with("ssh-")
        || t.starts_with("ecdsa-sha2-")
        || t.starts_with("sk-ssh-")
        || t.starts_with("sk-ecdsa-")
        || t.starts_with("rsa-sha2-")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    fn parse(text: &str) -> Result<AllowedSigners> {
        AllowedSigners::parse(text, Path::new("allowed_signers"))
    }

    #[test]
    fn patterns_follow_openssh() {
        assert!(match_pattern("web-1", "web-?"));
        assert!(match_pattern("web-1.example", "*.example"));
        assert!(match_pattern("", "*"));
        assert!(!match_pattern("web-10", "web-?"));
        assert!(!match_pattern("Web-1", "web-1"));
        assert!(match_pattern("abcabd", "*abd"));
        assert!(match_pattern_list("web-1", &["db-*", "web-*"]));
        assert!(!match_pattern_list("web-1", &["!web-1", "web-*"]));
        assert!(!match_pattern_list("web-1", &["web-*", "!web-1"]));
        assert!(!match_pattern_list("web-1", &["!db-1"]));
    }

    #[test]
    fn lines_with_options_quotes_and_comments() {
        let text = format!(
            "# trusted backup hosts\n\n  web-1,web-2 {KEY} web@host\n\"db 1,!db-2\" namespaces=\"secureclaw-backup,git\",valid-after=\"20260101\",VALID-BEFORE=\"20270101120000Z\" {KEY}\n"
        );
        let s = parse(&text).unwrap();
        assert_eq!(s.lines.len(), 2);
        assert_eq!(s.lines[0].principals, ["web-1", "web-2"]);
        assert_eq!(s.lines[0].line, 3);
        assert!(s.lines[0].namespaces.is_none());
        let l = &s.lines[1];
        assert_eq!(l.principals, ["db 1", "!db-2"]);
        assert_eq!(
            l.namespaces.as_deref().unwrap(),
            ["secureclaw-backup", "git"]
        );
        assert_eq!(
            l.valid_before.unwrap(),
            Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 0).unwrap()
        );
        assert!(l.valid_after.is_some());
        let t = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        assert_eq!(l.usable("secureclaw-backup", t), Ok(()));
        assert_eq!(l.usable("file", t), Err(LineRefusal::Namespace));
        let late = Utc.with_ymd_and_hms(2027, 1, 1, 12, 0, 1).unwrap();
        assert!(matches!(
            l.usable("git", late),
            Err(LineRefusal::Expired(_))
        ));
        let early = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
        assert!(matches!(
            l.usable("git", early),
            Err(LineRefusal::NotYetValid(_))
        ));
    }

    #[test]
    fn bad_lines_are_errors_naming_the_line() {
        for (text, what) in [
            (format!("web-1 cert-authority {KEY}"), "cert-authority"),
            (
                format!("web-1 namespaces=secureclaw-backup {KEY}"),
                "double quotes",
            ),
            (format!("web-1 namespaces=\"x {KEY}"), "closing quote"),
            (format!("web-1 valid-before=\"2027\" {KEY}"), "YYYYMMDD"),
            (
                format!("web-1 frobnicate=\"1\" {KEY}"),
                "unsupported option",
            ),
            (
                format!("web-1 valid-after=\"20270101\",valid-before=\"20260101\" {KEY}"),
                "not after",
            ),
            (
                "web-1 ssh-ed25519 AAAA-not-base64".to_owned(),
                "not a public key",
            ),
            ("web-1".to_owned(), "expected PRINCIPALS"),
            (format!("\"web-1 {KEY}"), "closing quote"),
            (
                "web-1 ssh-ed25519-cert-v01@openssh.com AAAA".to_owned(),
                "certificate",
            ),
        ] {
            let err = parse(&format!("# c\n{text}\n")).unwrap_err();
            assert_eq!(err.kind.exit_code(), 2, "{text}");
            assert!(err.message.contains("line 2"), "{}", err.message);
            assert!(err.message.contains(what), "{text}: {}", err.message);
        }
    }

    #[test]
    fn times_local_and_utc() {
        assert_eq!(
            parse_time("20261201Z").unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            parse_time("202612011230Z").unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 1, 12, 30, 0).unwrap()
        );
        let local = parse_time("20261201123005").unwrap();
        assert_eq!(
            local
                .with_timezone(&Local)
                .format("%Y%m%d%H%M%S")
                .to_string(),
            "20261201123005"
        );
        for bad in ["2026120", "20261301", "2026-12-01", "20261201Z1", ""] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
