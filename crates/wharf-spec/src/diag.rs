//! Diagnostics: what is wrong with a file, where, and how to say it to a person.

use std::fmt::Write as _;

/// A position in a file: line and column, both counted from 1 (columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// None for problems of the file as a whole; `Pos { line: 0 }` is never used.
    pub span: Option<Span>,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            span: Some(span),
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            span: Some(span),
            message: message.into(),
            help: None,
        }
    }

    /// An error of the whole file, e.g. an unexpected end; rendered at the last line.
    pub fn error_at_end(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            span: None,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic as `FILE:LINE:COL: error: MESSAGE`, followed by the source
    /// line with a caret under the offending text and an optional `= help:` line.
    pub fn render(&self, file: &str, source: &str, color: bool) -> String {
        let (label, paint) = match self.severity {
            Severity::Error => ("error", "\x1b[1;31m"),
            Severity::Warning => ("warning", "\x1b[1;33m"),
        };
        let (bold, blue, reset) = if color {
            ("\x1b[1m", "\x1b[1;34m", "\x1b[0m")
        } else {
            ("", "", "")
        };
        let paint = if color { paint } else { "" };
        let lines: Vec<&str> = source.lines().collect();
        let span = self.span.unwrap_or_else(|| {
            let line = lines.len().max(1);
            let col = lines.last().map_or(0, |l| l.chars().count()) + 1;
            let at = Pos { line, col };
            Span { start: at, end: at }
        });
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{bold}{file}:{}:{}:{reset} {paint}{label}:{reset} {bold}{}{reset}",
            span.start.line, span.start.col, self.message
        );
        if let Some(text) = lines.get(span.start.line.wrapping_sub(1)) {
            let number = span.start.line.to_string();
            let pad = " ".repeat(number.len());
            let text = text.replace('\t', " ");
            let width = if span.end.line == span.start.line && span.end.col > span.start.col {
                span.end.col - span.start.col
            } else {
                1
            };
            // Never underline past the end of the line (a block scalar's span ends later).
            let line_len = text.chars().count();
            let width = width.min(line_len.saturating_sub(span.start.col - 1).max(1));
            let _ = writeln!(out, "{blue}{pad} |{reset}");
            let _ = writeln!(out, "{blue}{number} |{reset} {text}");
            let _ = writeln!(
                out,
                "{blue}{pad} |{reset} {}{paint}{}{reset}",
                " ".repeat(span.start.col.saturating_sub(1)),
                "^".repeat(width)
            );
            if let Some(help) = &self.help {
                let _ = writeln!(out, "{blue}{pad} ={reset} {bold}help:{reset} {help}");
            }
        } else if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

/// The closest of `candidates` to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let d = if c.to_lowercase() == lower {
                0
            } else {
                levenshtein(&lower, &c.to_lowercase())
            };
            (d, c)
        })
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_position_source_and_caret() {
        let d = Diagnostic::error(
            Span {
                start: Pos { line: 2, col: 5 },
                end: Pos { line: 2, col: 8 },
            },
            "bad thing",
        )
        .with_help("try `foo`");
        let out = d.render("x.yaml", "a: 1\nb:  zzz\n", false);
        assert_eq!(
            out,
            "x.yaml:2:5: error: bad thing\n  |\n2 | b:  zzz\n  |     ^^^\n  = help: try `foo`\n"
        );
    }

    #[test]
    fn suggests_close_words_only() {
        let keys = ["workingDir", "steps", "container"];
        assert_eq!(did_you_mean("workdir", keys), Some("workingDir"));
        assert_eq!(did_you_mean("step", keys), Some("steps"));
        assert_eq!(did_you_mean("contaner", keys), Some("container"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }
}
