use std::io::IsTerminal;

/// What the terminal can show.
pub(crate) struct Term {
    /// Colour on stderr: only on a terminal, and never with `NO_COLOR` set.
    pub color_stderr: bool,
}

impl Term {
    pub fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color_stderr: !no_color && std::io::stderr().is_terminal(),
        }
    }
}
