/// The exit codes of `wharf` (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The run succeeded; the files are valid.
    Success = 0,
    /// The run failed or was stopped.
    Failure = 1,
    /// An invalid file or a wrong call: nothing ran.
    Usage = 2,
}
