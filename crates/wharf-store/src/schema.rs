//! The schema.

/// One numbered migration per schema change; `PRAGMA user_version` is the last applied.
pub(crate) const MIGRATIONS: &[&str] = &[
    r"
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        dag TEXT NOT NULL,
        run_id TEXT NOT NULL,
        file TEXT NOT NULL,
        status TEXT NOT NULL,
        params TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        pid INTEGER,
        pid_start INTEGER,
        host TEXT,
        error TEXT,
        log_dir TEXT NOT NULL,
        UNIQUE (dag, run_id)
    );
    CREATE INDEX runs_by_dag ON runs (dag, created_at);
    CREATE INDEX runs_by_status ON runs (status);
    CREATE TABLE steps (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        handler TEXT,
        position INTEGER NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        PRIMARY KEY (run, name)
    );
    CREATE TABLE attempts (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        exit_code INTEGER,
        stdout TEXT NOT NULL,
        stderr TEXT NOT NULL,
        pgid INTEGER,
        PRIMARY KEY (run, step, attempt)
    );
    CREATE TABLE outputs (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step TEXT NOT NULL,
        name TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        omit INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run, name)
    );
",
    // Sub-DAG runs: the run whose step started them, that run's step, and the run at the
    // top of the tree.
    r"
    ALTER TABLE runs ADD COLUMN parent INTEGER REFERENCES runs (id) ON DELETE CASCADE;
    ALTER TABLE runs ADD COLUMN parent_step TEXT;
    ALTER TABLE runs ADD COLUMN root INTEGER;
    CREATE INDEX runs_by_parent ON runs (parent);
",
    // Decisions on steps that wait for a person (`hitl`).
    r"
    CREATE TABLE approvals (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step TEXT NOT NULL,
        approved INTEGER NOT NULL,
        inputs TEXT NOT NULL,
        reason TEXT,
        at INTEGER NOT NULL,
        PRIMARY KEY (run, step)
    );
",
    // Queues: the queue a run waits in for a place (`maxActiveRuns`, `queue`).
    r"
    ALTER TABLE runs ADD COLUMN queue TEXT;
    CREATE INDEX runs_by_queue ON runs (queue, status);
",
    // DAGs whose scheduled slots are skipped (suspended).
    r"
    CREATE TABLE suspended (
        dag TEXT PRIMARY KEY,
        at INTEGER NOT NULL
    );
",
    // The scheduler: the slots it acted on (one scheduler per slot, however many run),
    // and the last minute it looked at (to know the slots it missed while down).
    r"
    CREATE TABLE slots (
        dag TEXT NOT NULL,
        slot INTEGER NOT NULL,
        action TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (dag, slot, action)
    );
    CREATE TABLE scheduler (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_slot INTEGER NOT NULL
    );
",
    // What started a run: `cli`, `api`, `ui`, `schedule`, `queue`, `retry`.
    r"
    ALTER TABLE runs ADD COLUMN trigger TEXT;
    CREATE INDEX runs_by_created ON runs (created_at);
",
    // Where a step ran when not on this machine (a Swarm job's node and task).
    r"
    ALTER TABLE steps ADD COLUMN ran_on TEXT;
",
    // Webhooks: one per DAG file; the token is kept only as its SHA-256.
    r"
    CREATE TABLE webhooks (
        dag TEXT PRIMARY KEY,
        id TEXT NOT NULL,
        token_sha256 TEXT NOT NULL,
        token_prefix TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_used_at INTEGER
    );
",
    // The DAG a run ran, as its file was when the run started (each text kept once):
    // a retry runs it again as it was.
    r"
    CREATE TABLE specs (
        id INTEGER PRIMARY KEY,
        text TEXT NOT NULL UNIQUE
    );
    ALTER TABLE runs ADD COLUMN spec INTEGER;
",
    // Built-in users and API keys (`auth.mode: builtin`): passwords as bcrypt hashes,
    // keys as their SHA-256; and the server's own secrets (the key that signs sessions).
    r"
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL,
        role TEXT NOT NULL,
        key_sha256 TEXT NOT NULL UNIQUE,
        key_prefix TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_used_at INTEGER
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
",
    // The long-running processes of an installation (schedulers), as they last said they
    // were there.
    r"
    CREATE TABLE services (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_start INTEGER,
        started_at INTEGER NOT NULL,
        seen_at INTEGER NOT NULL
    );
",
    // The retries the scheduler made of a failed run (a DAG's own `retry_policy`), so
    // that a manual retry does not use them up and two schedulers make each once.
    r"
    CREATE TABLE auto_retries (
        run INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
        count INTEGER NOT NULL,
        at INTEGER NOT NULL
    );
",
    // Slots missed while no scheduler ran that a DAG's `catchup_window` catches up, one a
    // tick, oldest first.
    r"
    CREATE TABLE catchup (
        dag TEXT NOT NULL,
        slot INTEGER NOT NULL,
        PRIMARY KEY (dag, slot)
    );
",
    // Whether the completion of a human task took its run up again (so that a repeat of
    // it, or a second completion at the same time, does not do it twice).
    r"
    ALTER TABLE approvals ADD COLUMN resumed INTEGER NOT NULL DEFAULT 0;
",
    // State kept across runs (Dagu 2.x `state.*`): a JSON value per scope, namespace and
    // key, versioned and hashed, with the run and step that last wrote it.
    r"
    CREATE TABLE dag_state (
        scope TEXT NOT NULL,
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        version INTEGER NOT NULL,
        hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        updated_by TEXT,
        PRIMARY KEY (scope, namespace, key)
    ) WITHOUT ROWID;
",
];
