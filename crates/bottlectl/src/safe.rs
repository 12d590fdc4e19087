//! Text made safe for a terminal. The bottle's user controls key comments,
//! file names and whatever its processes print, and any of it can carry an
//! OSC 52 clipboard write, a screen clear or a cursor move. Control
//! characters (C0, DEL, C1) and the invisible bidi and line-separator
//! characters are shown escaped (`\x1b`, `\u{9b}`); printable Unicode is kept.
//!
//! The CLI escapes at its output sinks ([`crate::output`]'s `human`, `step`,
//! errors), not in bottle-ssh's `Display`: every human line passes there,
//! whichever error or report carries the container's text, while the
//! library's errors and `--json` keep the real bytes.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters a terminal acts on or that reorder or hide text.
fn unsafe_char(c: char) -> bool {
    // C0, DEL, C1; ALM, LRM, RLM; line and paragraph separators; bidi
    // embeddings and overrides; bidi isolates.
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

fn escape(s: &str, keep: fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| unsafe_char(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            c if !unsafe_char(c) || keep(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// `value` as one line of JSON with every character [`unsafe_char`] names
/// that serde_json keeps raw (DEL, C1, bidi and line separators) written
/// as `\uXXXX`: the same JSON once parsed, nothing a terminal acts on.
pub fn json(value: &serde_json::Value) -> String {
    let raw = value.to_string();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        // Outside strings JSON has only ASCII punctuation: any such
        // character is inside a string, where the escape is valid.
        if unsafe_char(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// One value from the container (a comment, a path, a check's detail):
/// line breaks are escaped too, so a value cannot forge lines of output.
pub fn field(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

/// Whole lines of output: their own line breaks and tabs are kept.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n' || c == '\t')
}

#[cfg(test)]
mod tests {
    use super::{field, json, text};

    #[test]
    fn json_escapes_c1_and_bidi_and_parses_back() {
        let v = serde_json::json!({ "c": "a\u{9b}31m\u{202e}b\u{2066}\u{7f}\u{85}é" });
        let line = json(&v);
        assert_eq!(line, r#"{"c":"a\u009b31m\u202eb\u2066\u007f\u0085é"}"#);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap(), v);
    }

    #[test]
    fn terminal_sequences_are_shown_escaped() {
        // OSC 52: set the clipboard (BEL- and ST-terminated).
        assert_eq!(
            field("a\x1b]52;c;ZWNobyBwd25lZA==\x07b"),
            "a\\x1b]52;c;ZWNobyBwd25lZA==\\x07b"
        );
        assert_eq!(field("\x1b]52;c;eA==\x1b\\"), "\\x1b]52;c;eA==\\x1b\\");
        assert_eq!(field("\x1b[2J\x1b[1A"), "\\x1b[2J\\x1b[1A");
        assert_eq!(field("ok\rFAIL"), "ok\\rFAIL");
        assert_eq!(field("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(field("\u{7f}\0"), "\\x7f\\x00");
        assert_eq!(
            field("key\u{202e}txt.exe\u{2066}"),
            "key\\u{202e}txt.exe\\u{2066}"
        );
        assert_eq!(field("two\nlines\tx"), "two\\nlines\\tx");
    }

    #[test]
    fn printable_text_is_kept_as_it_is() {
        for s in [
            "",
            "é 日本 ✓ 🔑",
            "C:\\path with spaces",
            "user@host (ED25519)",
        ] {
            assert!(matches!(field(s), std::borrow::Cow::Borrowed(_)), "{s}");
            assert_eq!(field(s), s);
        }
    }

    #[test]
    fn text_keeps_line_breaks_and_tabs_only() {
        assert_eq!(text("a\tb\nc\n"), "a\tb\nc\n");
        assert_eq!(text("a\r\n\x1b[1A\u{85}"), "a\\r\n\\x1b[1A\\u{85}");
    }
}
