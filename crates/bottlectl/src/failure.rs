//! Errors as the user sees them: one sentence, the cause chain, an exit code.

use crate::output::Out;
use bottle::config::ManifestError;
use bottle::SelectError;
use serde::Serialize;
use std::borrow::Cow;

#[derive(Debug, Serialize)]
pub struct Failure {
    #[serde(rename = "exit_code")]
    pub code: u8,
    pub message: String,
    pub causes: Vec<String>,
    /// Extra text for humans (a manifest snippet, fixes), already safe for
    /// the terminal (it may hold our colours); not in JSON.
    #[serde(skip)]
    pub detail: Option<String>,
}

/// `e`'s sources, as [`bottle::runtime::error_texts`] shows them.
fn chain(e: &dyn std::error::Error) -> Vec<String> {
    bottle::runtime::error_texts(e).split_off(1)
}

impl Failure {
    /// `context` is what we were doing; `e` is why it failed.
    pub fn new(code: u8, context: &str, e: &dyn std::error::Error) -> Failure {
        Failure {
            code,
            message: context.to_string(),
            causes: bottle::runtime::error_texts(e),
            detail: None,
        }
    }

    /// A failure whose message is `e` itself.
    pub fn direct(code: u8, e: &dyn std::error::Error) -> Failure {
        Failure {
            code,
            message: e.to_string(),
            causes: chain(e),
            detail: None,
        }
    }

    pub fn plain(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            causes: Vec::new(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Failure {
        self.detail = Some(crate::safe::text(&detail.into()).into_owned());
        self
    }

    pub fn manifest(e: ManifestError) -> Failure {
        let mut f = Failure::direct(2, &e);
        if let ManifestError::Invalid { src, .. } = &e {
            let mut rendered = String::new();
            // A snippet of a file holding control characters is rendered
            // plain and escaped, so only miette's own colours stay raw.
            let clean = matches!(crate::safe::text(src.inner()), Cow::Borrowed(_));
            let theme = if clean && crate::output::stderr_color() {
                miette::GraphicalTheme::unicode()
            } else {
                miette::GraphicalTheme::unicode_nocolor()
            };
            let handler = miette::GraphicalReportHandler::new_themed(theme);
            if handler.render_report(&mut rendered, &e).is_ok() {
                // The first lines repeat the message: keep the source snippet.
                let snippet: Vec<&str> = rendered
                    .lines()
                    .skip_while(|l| !strip_ansi(l).contains("╭─["))
                    .collect();
                let snippet = snippet.join("\n");
                f.detail = Some(if clean {
                    snippet
                } else {
                    crate::safe::text(&snippet).into_owned()
                });
            }
        }
        f
    }

    pub fn select(e: SelectError) -> Failure {
        let code = crate::exit::for_select(&e);
        let mut f = Failure::direct(code, &e);
        if e.is_usage_error() {
            // A refused setting: starting an engine would not fix it.
            return f;
        }
        let fixes: Vec<String> = e
            .tried()
            .iter()
            .filter(|p| !p.answered())
            .filter_map(bottle::Probe::fix)
            .collect();
        if !fixes.is_empty() {
            let fixes = fixes
                .iter()
                .map(|x| format!("  fix: {}", crate::safe::field(x)))
                .collect::<Vec<_>>()
                .join("\n");
            f.detail = Some(fixes);
        }
        f
    }

    pub fn report(&self, out: &Out) {
        use crate::output::{eprint_line, eprint_raw};
        use crate::safe::text;
        // Messages and causes carry container text (script stderr, paths).
        eprint_raw(&format!(
            "{} {}",
            out.paint_error("error:"),
            text(&self.message)
        ));
        for c in &self.causes {
            eprint_line(&format!("  caused by: {c}"));
        }
        if let Some(d) = &self.detail {
            eprint_raw(d.trim_end());
        }
        if out.json {
            out.json_value(&serde_json::json!({ "ok": false, "error": self }));
        }
    }
}

/// `line` without ANSI CSI sequences (for matching rendered, coloured text).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ params final-byte
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strip_ansi_removes_csi_sequences_only() {
        assert_eq!(super::strip_ansi("\x1b[1;31m╭─[\x1b[0m x"), "╭─[ x");
        assert_eq!(super::strip_ansi("plain ╭─["), "plain ╭─[");
    }
}
