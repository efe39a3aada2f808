//! Webhooks: one per DAG file, each with a token that starts a run of it. The token
//! itself is never kept: only its SHA-256 (a token is 32 random bytes, so a fast hash
//! is enough) and its first characters, to tell tokens apart.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store, now_ms};

/// A DAG's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The DAG file's name (without `.yaml`).
    pub dag: String,
    pub id: String,
    /// The token's SHA-256, in hex.
    pub token_sha256: String,
    /// The token's first characters.
    pub token_prefix: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str =
    "dag, id, token_sha256, token_prefix, enabled, created_at, updated_at, last_used_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        dag: r.get(0)?,
        id: r.get(1)?,
        token_sha256: r.get(2)?,
        token_prefix: r.get(3)?,
        enabled: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        last_used_at: r.get(7)?,
    })
}

impl Store {
    /// The webhook of the DAG file `dag`.
    pub fn webhook(&self, dag: &str) -> Result<Option<Webhook>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM webhooks WHERE dag = ?1"),
                params![dag],
                row,
            )
            .optional()?)
    }

    /// Every webhook, by DAG file name.
    pub fn webhooks(&self) -> Result<Vec<Webhook>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM webhooks ORDER BY dag"))?;
        let rows = stmt.query_map([], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Creates the webhook of `dag`, enabled; None when the DAG has one already.
    pub fn create_webhook(
        &self,
        dag: &str,
        id: &str,
        token_sha256: &str,
        token_prefix: &str,
    ) -> Result<Option<Webhook>> {
        let now = now_ms();
        let added = self.conn.execute(
            "INSERT OR IGNORE INTO webhooks \
             (dag, id, token_sha256, token_prefix, enabled, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)",
            params![dag, id, token_sha256, token_prefix, now],
        )?;
        if added == 0 {
            return Ok(None);
        }
        self.webhook(dag)
    }

    /// Gives the webhook of `dag` a new token (the old one stops working at once); None
    /// when the DAG has no webhook.
    pub fn set_webhook_token(
        &self,
        dag: &str,
        token_sha256: &str,
        token_prefix: &str,
    ) -> Result<Option<Webhook>> {
        self.conn.execute(
            "UPDATE webhooks SET token_sha256 = ?2, token_prefix = ?3, updated_at = ?4 \
             WHERE dag = ?1",
            params![dag, token_sha256, token_prefix, now_ms()],
        )?;
        self.webhook(dag)
    }

    /// Enables or disables the webhook of `dag`; None when the DAG has no webhook.
    pub fn set_webhook_enabled(&self, dag: &str, enabled: bool) -> Result<Option<Webhook>> {
        self.conn.execute(
            "UPDATE webhooks SET enabled = ?2, updated_at = ?3 WHERE dag = ?1",
            params![dag, enabled, now_ms()],
        )?;
        self.webhook(dag)
    }

    /// Notes that the webhook of `dag` started a run now.
    pub fn webhook_used(&self, dag: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE webhooks SET last_used_at = ?2 WHERE dag = ?1",
            params![dag, now_ms()],
        )?;
        Ok(())
    }

    /// Removes the webhook of `dag`; false when it had none.
    pub fn delete_webhook(&self, dag: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM webhooks WHERE dag = ?1", params![dag])?
            > 0)
    }

    /// Moves the webhook of `old` to the DAG file `new` (a renamed file keeps it).
    pub fn rename_webhook(&self, old: &str, new: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE webhooks SET dag = ?2, updated_at = ?3 WHERE dag = ?1",
            params![old, new, now_ms()],
        )?;
        Ok(())
    }
}
