use std::io::IsTerminal;

/// What the terminal can show.
pub(crate) struct Term {
    /// Colour on stderr: only on a terminal, and never with `NO_COLOR` set.
    pub color_stderr: bool,
    /// stderr is a terminal: progress may redraw lines.
    pub live_stderr: bool,
}

impl Term {
    pub fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let tty =
            std::io::stderr().is_terminal() && std::env::var("TERM").is_ok_and(|t| t != "dumb");
        Self {
            color_stderr: !no_color && tty,
            live_stderr: tty,
        }
    }
}
