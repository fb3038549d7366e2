//! A small YAML writer for the documents wharf generates (admission policies).
//!
//! Values are built as a tree and written in block style. Every string is written either as a
//! double-quoted scalar (YAML 1.2 §7.3.1) with every character that could end it or change its
//! meaning escaped — `\`, `"`, control characters, and the characters YAML 1.1 parsers read as
//! line breaks (NEL, U+2028, U+2029) — or, for multi-line text a literal block reproduces
//! exactly (PEM keys), as a literal block scalar. So no value, a regular expression full of
//! backslashes included, can change the structure of the document.
//!
//! Written here rather than taken from a crate: the lock file has no YAML crate, `serde_yaml`
//! is deprecated and unmaintained, and the documents need comments (minimum controller
//! versions, what a controller cannot enforce), which serializers do not write.

use std::fmt::Write;

/// A YAML value. Mappings keep their keys in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Str(String),
    Bool(bool),
    Int(i64),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    pub fn str(s: impl Into<String>) -> Yaml {
        Yaml::Str(s.into())
    }

    /// A mapping from `(key, value)` pairs, in that order.
    pub fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Yaml)>) -> Yaml {
        Yaml::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// A sequence of strings.
    pub fn strs<S: AsRef<str>>(items: &[S]) -> Yaml {
        Yaml::Seq(items.iter().map(|s| Yaml::str(s.as_ref())).collect())
    }
}

/// One document per `(comments, value)`, separated by `---`. Each comment line is written as a
/// `# ` line above its document's value.
pub fn documents(docs: &[(Vec<String>, Yaml)]) -> String {
    let mut out = String::new();
    for (i, (comments, value)) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        for line in comments.iter().flat_map(|c| c.lines()) {
            let _ = writeln!(out, "# {line}");
        }
        match value {
            Yaml::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0, false),
            Yaml::Seq(items) if !items.is_empty() => write_seq(&mut out, items, 0),
            scalar => {
                write_scalar(&mut out, scalar, 0);
            }
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes `entries` at `level`; with `inline_first`, the first key goes where the cursor is
/// (after a sequence's `- `).
fn write_map(out: &mut String, entries: &[(String, Yaml)], level: usize, inline_first: bool) {
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 || !inline_first {
            indent(out, level);
        }
        out.push_str(&mapping_key(key));
        out.push(':');
        match value {
            Yaml::Map(inner) if !inner.is_empty() => {
                out.push('\n');
                write_map(out, inner, level + 2, false);
            }
            // A sequence may stand at its key's own indentation (as kubectl writes them).
            Yaml::Seq(items) if !items.is_empty() => {
                out.push('\n');
                write_seq(out, items, level);
            }
            scalar => {
                out.push(' ');
                write_scalar(out, scalar, level + 2);
            }
        }
    }
}

fn write_seq(out: &mut String, items: &[Yaml], level: usize) {
    for item in items {
        indent(out, level);
        out.push('-');
        match item {
            Yaml::Map(inner) if !inner.is_empty() => {
                out.push(' ');
                write_map(out, inner, level + 2, true);
            }
            Yaml::Seq(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, level + 2);
            }
            scalar => {
                out.push(' ');
                write_scalar(out, scalar, level + 2);
            }
        }
    }
}

/// Writes a scalar (or an empty collection) and its line end; a literal block's lines are
/// indented by `block_level`.
fn write_scalar(out: &mut String, value: &Yaml, block_level: usize) {
    match value {
        Yaml::Str(s) => match literal_block_header(s) {
            Some(header) => {
                out.push_str(header);
                out.push('\n');
                for line in s.lines() {
                    indent(out, block_level);
                    out.push_str(line);
                    out.push('\n');
                }
                return;
            }
            None => out.push_str(&double_quoted(s)),
        },
        Yaml::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Yaml::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Yaml::Seq(_) => out.push_str("[]"),
        Yaml::Map(_) => out.push_str("{}"),
    }
    out.push('\n');
}

/// `|` (one final line break kept) or `|-` (none) when a literal block reproduces `s` exactly:
/// several non-empty lines of printable ASCII, none starting or ending with a space (so
/// indentation and trailing-space handling cannot alter them), at most one final line break.
fn literal_block_header(s: &str) -> Option<&'static str> {
    let (body, header) = match s.strip_suffix('\n') {
        Some(body) => (body, "|"),
        None => (s, "|-"),
    };
    let lines_ok = body.contains('\n')
        && body.split('\n').all(|line| {
            !line.is_empty()
                && !line.starts_with(' ')
                && !line.ends_with(' ')
                && line.bytes().all(|b| (b' '..=b'~').contains(&b))
        });
    lines_ok.then_some(header)
}

/// Keys wharf writes are identifiers (`apiVersion`, `policies.kyverno.io/minversion`); any
/// other key, or one a YAML 1.1 reader would take for a boolean or null, is quoted.
fn mapping_key(key: &str) -> String {
    const RESERVED: &[&str] = &[
        "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~",
    ];
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !RESERVED.contains(&key.to_ascii_lowercase().as_str());
    if plain {
        key.to_string()
    } else {
        double_quoted(key)
    }
}

/// A double-quoted scalar holding exactly `s`.
pub fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if printable(c) => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Characters written as themselves: YAML's printable set (c-printable) minus the ones YAML
/// 1.1 readers treat as line breaks (NEL, LS, PS) and the byte order mark.
fn printable(c: char) -> bool {
    matches!(c,
        ' '..='~'
        | '\u{a0}'..='\u{2027}'
        | '\u{202a}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fefe}'
        | '\u{ff00}'..='\u{fffd}'
        | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_would_end_or_bend_a_double_quoted_scalar() {
        assert_eq!(
            double_quoted(r#"^https://github\.com/a "b"$"#),
            r#""^https://github\\.com/a \"b\"$""#
        );
        assert_eq!(double_quoted("a\nb\tc\r\0"), r#""a\nb\tc\r\0""#);
        assert_eq!(double_quoted("\u{7f}\u{85}\u{1b}"), r#""\x7F\x85\x1B""#);
        assert_eq!(
            double_quoted("\u{2028}\u{2029}\u{feff}"),
            r#""\u2028\u2029\uFEFF""#
        );
        assert_eq!(double_quoted("é ü 😀"), "\"é ü 😀\"");
        assert_eq!(double_quoted("\u{ffff}"), r#""\uFFFF""#);
        assert_eq!(double_quoted("# not: a comment"), "\"# not: a comment\"");
    }

    #[test]
    fn writes_block_style_with_sequences_at_their_keys_indentation() {
        let doc = Yaml::map([
            ("apiVersion", Yaml::str("v1")),
            (
                "spec",
                Yaml::map([
                    (
                        "images",
                        Yaml::Seq(vec![
                            Yaml::map([("glob", Yaml::str("a:*"))]),
                            Yaml::map([("glob", Yaml::str("a@*")), ("count", Yaml::Int(2))]),
                        ]),
                    ),
                    ("required", Yaml::Bool(true)),
                    ("none", Yaml::Seq(vec![])),
                    ("kinds", Yaml::strs(&["Pod"])),
                ]),
            ),
        ]);
        assert_eq!(
            documents(&[(vec!["made by wharf".into()], doc)]),
            "# made by wharf\napiVersion: \"v1\"\nspec:\n  images:\n  - glob: \"a:*\"\n  - glob: \"a@*\"\n    count: 2\n  required: true\n  none: []\n  kinds:\n  - \"Pod\"\n"
        );
    }

    #[test]
    fn multi_line_text_is_a_literal_block_only_when_that_is_exact() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
        let doc = Yaml::map([("data", Yaml::str(pem))]);
        assert_eq!(
            documents(&[(vec![], doc)]),
            "data: |\n  -----BEGIN PUBLIC KEY-----\n  MFkw\n  -----END PUBLIC KEY-----\n"
        );
        let in_seq = Yaml::Seq(vec![Yaml::str("a\nb")]);
        assert_eq!(documents(&[(vec![], in_seq)]), "- |-\n  a\n  b\n");
        for not_literal in [
            "a\n\nb", " a\nb", "a \nb", "a\nb\n\n", "a\n\tb", "é\nb", "one",
        ] {
            assert!(
                literal_block_header(not_literal).is_none(),
                "{not_literal:?}"
            );
        }
    }

    #[test]
    fn keys_that_are_not_identifiers_are_quoted() {
        assert_eq!(
            mapping_key("policies.kyverno.io/minversion"),
            "policies.kyverno.io/minversion"
        );
        assert_eq!(mapping_key("on"), "\"on\"");
        assert_eq!(mapping_key("a: b"), "\"a: b\"");
        assert_eq!(mapping_key(""), "\"\"");
    }

    #[test]
    fn documents_are_separated() {
        let a = Yaml::map([("a", Yaml::Int(1))]);
        let b = Yaml::map([("b", Yaml::Map(vec![]))]);
        assert_eq!(
            documents(&[(vec![], a), (vec!["two\nlines".into()], b)]),
            "a: 1\n---\n# two\n# lines\nb: {}\n"
        );
    }
}
