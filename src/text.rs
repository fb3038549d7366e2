//! Text a peer chose (a registry's error message, an annotation, a token service's answer),
//! made safe to print.
//!
//! Printed raw, a newline in such text starts a line of the peer's own: on a terminal it can
//! pass for wharf's output, and in GitHub Actions a line starting with `::` is a workflow
//! command (`::add-mask::`, `::stop-commands::`, `::set-output::`). Everything wharf prints
//! that a peer could have written goes through [`one_line`].

/// `text` on one line: control characters (newlines, carriage returns, escape sequences) and
/// the Unicode line and paragraph separators are written as `\n`, `\r`, `\u{1b}`, ...
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// [`one_line`] of at most `max` characters of `text` (trimmed), with `…` where it was cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let text = text.trim();
    let mut cut: String = text.chars().take(max).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    one_line(&cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_escapes_cannot_start_a_line() {
        let hostile = "denied\n::add-mask::x\r\n::stop-commands::t\u{1b}[2J\u{85}\u{2028}end";
        let shown = one_line(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(
            shown,
            "denied\\n::add-mask::x\\r\\n::stop-commands::t\\u{1b}[2J\\u{85}\\u{2028}end"
        );
        assert_eq!(one_line("plain text: ünïcode"), "plain text: ünïcode");
    }

    #[test]
    fn excerpts_are_cut_and_escaped() {
        assert_eq!(excerpt("  abc\ndef  ", 100), "abc\\ndef");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
