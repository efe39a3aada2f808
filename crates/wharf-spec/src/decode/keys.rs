//! The keys of each mapping of a DAG file: known (camelCase), Dagu keys wharf ignores
//! (a warning) or rejects (an error, with a hint).

/// A key of a mapping and how wharf treats it.
pub(crate) struct Keys {
    pub known: &'static [&'static str],
    /// Dagu keys that wharf ignores with a warning (ignoring them cannot change what runs).
    pub ignored: &'static [&'static str],
    /// Dagu keys that wharf rejects (the step could not run as written), with a hint.
    pub unsupported: &'static [(&'static str, &'static str)],
}

pub(crate) const ROOT_KEYS: Keys = Keys {
    known: &[
        "name",
        "maxActiveRuns",
        "queue",
        "restartWaitSec",
        "runConfig",
        "description",
        "type",
        "workingDir",
        "env",
        "dotenv",
        "params",
        "steps",
        "handlerOn",
        "container",
        "registryAuths",
        "precondition",
        "preconditions",
        "timeoutSec",
        "delaySec",
        "maxActiveSteps",
        "maxCleanUpTimeSec",
        "histRetentionDays",
        "histRetentionRuns",
        "retryPolicy",
        "redis",
        "s3",
        "catchupWindow",
        "overlapPolicy",
        "maxOutputSize",
        "schedule",
        "tags",
        "group",
        "logDir",
        "shell",
        "logOutput",
        "skipIfSuccessful",
        "secrets",
        "smtp",
        "mailOn",
        "errorMail",
        "infoMail",
        "waitMail",
        "ssh",
        "backend",
        "otel",
        "workerSelector",
    ],
    ignored: &[],
    unsupported: &[("llm", "wharf runs commands and containers, not LLM agents")],
};

pub(crate) const OTEL_KEYS: Keys = Keys {
    known: &[
        "enabled", "endpoint", "headers", "insecure", "timeout", "resource",
    ],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const SECRET_KEYS: Keys = Keys {
    known: &["name", "provider", "key"],
    ignored: &[],
    unsupported: &[("options", "the `env` and `file` providers take no options")],
};

pub(crate) const RUN_CONFIG_KEYS: Keys = Keys {
    known: &["disableParamEdit", "disableRunIdEdit"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const PARALLEL_KEYS: Keys = Keys {
    known: &["items", "maxConcurrent"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const PARAMS_SCHEMA_KEYS: Keys = Keys {
    known: &["schema", "values"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const STEP_KEYS: Keys = Keys {
    known: &[
        "approval",
        "name",
        "id",
        "description",
        "dir",
        "workingDir",
        "executor",
        "type",
        "config",
        "command",
        "args",
        "script",
        "shell",
        "env",
        "depends",
        "output",
        "stdout",
        "stderr",
        "continueOn",
        "retryPolicy",
        "repeatPolicy",
        "precondition",
        "preconditions",
        "signalOnStop",
        "timeoutSec",
        "logOutput",
        "container",
        "shellPackages",
        "call",
        "run",
        "params",
        "parallel",
        "mailOnError",
        "outputs",
        "stdoutOutputs",
        "foreach",
        "workerSelector",
    ],
    ignored: &[],
    unsupported: &[
        ("llm", "wharf runs commands and containers, not LLM agents"),
        (
            "foreach",
            "`foreach` is Dagu 2.x: write the file in 2.x, or use `parallel` with a sub-DAG (`call`)",
        ),
        (
            "messages",
            "wharf runs commands and containers, not LLM agents",
        ),
    ],
};

pub(crate) const DOCKER_KEYS: Keys = Keys {
    known: &[
        "image",
        "containerName",
        "pull",
        "autoRemove",
        "platform",
        "workingDir",
        "volumes",
        "container",
        "host",
        "network",
        "exec",
        "backend",
        "placement",
        "resources",
    ],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const EXEC_KEYS: Keys = Keys {
    known: &["user", "workingDir", "env", "privileged"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const CONTAINER_KEYS: Keys = Keys {
    known: &[
        "exec",
        "name",
        "image",
        "pullPolicy",
        "env",
        "volumes",
        "user",
        "workingDir",
        "workDir",
        "platform",
        "ports",
        "network",
        "startup",
        "command",
        "waitFor",
        "logPattern",
        "restartPolicy",
        "keepContainer",
        "backend",
        "placement",
        "resources",
        "shell",
        "healthcheck",
    ],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const HEALTHCHECK_KEYS: Keys = Keys {
    known: &["test", "interval", "timeout", "startPeriod", "retries"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const HANDLER_KEYS: Keys = Keys {
    known: &[
        "init", "success", "failure", "abort", "cancel", "exit", "wait",
    ],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const APPROVAL_KEYS: Keys = Keys {
    known: &["prompt", "input", "required"],
    ignored: &[],
    unsupported: &[(
        "rewindTo",
        "wharf does not push a waiting step back: a person approves or rejects it (remove `rewind_to`)",
    )],
};

pub(crate) const EXECUTOR_KEYS: Keys = Keys {
    known: &["type", "config"],
    ignored: &[],
    unsupported: &[],
};

/// The Dagu executor types wharf does not run.
pub(crate) const FOREIGN_EXECUTORS: &[&str] = &[
    "gha",
    "github_action",
    "github-action",
    "dag",
    "subworkflow",
    "parallel",
    "chat",
];

/// Whether `key` (camelCase) is a key of the mappings whose spelling tells the dialect: the
/// DAG's, a step's, a container's, a docker `config`'s, and their policies'.
pub(crate) fn is_dialect_key(key: &str) -> bool {
    const NESTED: &[&str] = &[
        "intervalSec",
        "maxIntervalSec",
        "exitCode",
        "markSuccess",
        "disableParamEdit",
        "disableRunIdEdit",
    ];
    [&ROOT_KEYS, &STEP_KEYS, &CONTAINER_KEYS, &DOCKER_KEYS]
        .iter()
        .any(|k| k.known.contains(&key) || k.unsupported.iter().any(|(u, _)| *u == key))
        || NESTED.contains(&key)
}
