/// The status of a run or a step (SPEC §7 names these words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    NotStarted,
    Running,
    Succeeded,
    Failed,
    Aborted,
    Skipped,
    PartiallySucceeded,
    /// A step waits for a person's approval (`hitl`); the run has stopped there until it
    /// is approved (and taken up again) or rejected.
    Waiting,
    /// A person rejected the step the run waited on.
    Rejected,
    /// The run waits for a place in its queue (`maxActiveRuns`).
    Queued,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Self::NotStarted,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Aborted,
        Self::Skipped,
        Self::PartiallySucceeded,
        Self::Waiting,
        Self::Rejected,
        Self::Queued,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "not_started",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
            Self::Skipped => "skipped",
            Self::PartiallySucceeded => "partially_succeeded",
            Self::Waiting => "waiting",
            Self::Rejected => "rejected",
            Self::Queued => "queued",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the step or run has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::NotStarted | Self::Running | Self::Queued)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
