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
            // A quoted scalar is underlined to its closing quote (the parser's span of one
            // can run further), and nothing past the end of the line.
            let width = quoted_width(&text, span.start.col).unwrap_or(width);
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

/// Edit distance where swapping two neighbours counts as one edit (`nmae` → `name`).
fn levenshtein(a: &str, b: &str) -> usize {
    strsim::damerau_levenshtein(a, b)
}

/// The width of a quoted scalar starting at `col` (1-based) of `line`, quotes included.
fn quoted_width(line: &str, col: usize) -> Option<usize> {
    let chars: Vec<char> = line.chars().skip(col.saturating_sub(1)).collect();
    let quote = *chars.first().filter(|c| **c == '"' || **c == '\'')?;
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote == '"' => i += 2,
            c if c == quote && quote == '\'' && chars.get(i + 1) == Some(&'\'') => i += 2,
            c if c == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
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
    fn a_quoted_value_is_underlined_to_its_closing_quote() {
        let d = Diagnostic::error(
            Span {
                start: Pos { line: 1, col: 4 },
                end: Pos { line: 1, col: 30 },
            },
            "bad",
        );
        let out = d.render("x.yaml", "a: \"b\\\"c\"  # note", false);
        assert!(out.ends_with("  |    ^^^^^^\n"), "{out}");
    }

    #[test]
    fn suggests_close_words_only() {
        let keys = ["workingDir", "steps", "container"];
        assert_eq!(did_you_mean("workdir", keys), Some("workingDir"));
        assert_eq!(did_you_mean("step", keys), Some("steps"));
        assert_eq!(did_you_mean("contaner", keys), Some("container"));
        assert_eq!(did_you_mean("zzz", keys), None);
        assert_eq!(did_you_mean("nmae", ["name", "image"]), Some("name"));
    }
}
