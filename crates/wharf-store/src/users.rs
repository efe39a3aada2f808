//! Built-in users and API keys (`auth.mode: builtin`), and the server's own secrets.
//! A password is kept as its bcrypt hash (made and checked by the server); an API key,
//! 32 random bytes, as its SHA-256 and its first characters, to tell keys apart.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store, now_ms};

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    /// `admin`, `manager`, `operator` or `viewer`.
    pub role: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A key a program calls the API with, in the place of a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub description: String,
    pub role: String,
    /// The key's SHA-256, in hex.
    pub key_sha256: String,
    /// The key's first characters.
    pub key_prefix: String,
    /// The user who made it.
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
}

const USER_COLUMNS: &str = "id, username, password_hash, role, disabled, created_at, updated_at";
const KEY_COLUMNS: &str = "id, name, description, role, key_sha256, key_prefix, created_by, \
                           created_at, updated_at, last_used_at";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        role: r.get(3)?,
        disabled: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        role: r.get(3)?,
        key_sha256: r.get(4)?,
        key_prefix: r.get(5)?,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        last_used_at: r.get(9)?,
    })
}

/// The rows a statement changed, or None when it failed on a `UNIQUE` constraint (a name
/// or id taken).
fn unless_taken(changed: rusqlite::Result<usize>) -> Result<Option<usize>> {
    match changed {
        Ok(rows) => Ok(Some(rows)),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// What an update of one row by id came to: None when there is no such row, Some(false)
/// when the new name is taken.
fn updated(changed: rusqlite::Result<usize>) -> Result<Option<bool>> {
    Ok(match unless_taken(changed)? {
        Some(0) => None,
        Some(_) => Some(true),
        None => Some(false),
    })
}

impl Store {
    /// How many users there are.
    pub fn user_count(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        ))?;
        let rows = stmt.query_map([], user_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The user with the id `id`.
    pub fn user(&self, id: &str) -> Result<Option<User>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                params![id],
                user_row,
            )
            .optional()?)
    }

    /// The user named `username`.
    pub fn user_named(&self, username: &str) -> Result<Option<User>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
                params![username],
                user_row,
            )
            .optional()?)
    }

    /// Adds `user` (its times as given: a user carried over keeps them); false when its
    /// name or id is taken.
    pub fn add_user(&self, user: &User) -> Result<bool> {
        Ok(unless_taken(self.conn.execute(
            &format!("INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                user.id,
                user.username,
                user.password_hash,
                user.role,
                user.disabled,
                user.created_at,
                user.updated_at
            ],
        ))?
        .is_some())
    }

    /// Changes what is given of the user `id`: Ok(None) when there is no such user,
    /// Ok(Some(false)) when the new name is taken.
    pub fn update_user(
        &self,
        id: &str,
        username: Option<&str>,
        role: Option<&str>,
        password_hash: Option<&str>,
        disabled: Option<bool>,
    ) -> Result<Option<bool>> {
        let changed = self.conn.execute(
            "UPDATE users SET username = coalesce(?2, username), role = coalesce(?3, role), \
             password_hash = coalesce(?4, password_hash), disabled = coalesce(?5, disabled), \
             updated_at = ?6 WHERE id = ?1",
            params![id, username, role, password_hash, disabled, now_ms()],
        );
        updated(changed)
    }

    /// Removes the user `id`; false when there was none.
    pub fn delete_user(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM users WHERE id = ?1", params![id])?
            > 0)
    }

    /// Every API key, by name.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY name"))?;
        let rows = stmt.query_map([], key_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The API key with the id `id`.
    pub fn api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
                params![id],
                key_row,
            )
            .optional()?)
    }

    /// The API key whose SHA-256 is `digest`.
    pub fn api_key_by_digest(&self, digest: &str) -> Result<Option<ApiKey>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_sha256 = ?1"),
                params![digest],
                key_row,
            )
            .optional()?)
    }

    /// Adds `key`; false when its name is taken.
    pub fn add_api_key(&self, key: &ApiKey) -> Result<bool> {
        Ok(unless_taken(self.conn.execute(
            &format!(
                "INSERT INTO api_keys ({KEY_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ),
            params![
                key.id,
                key.name,
                key.description,
                key.role,
                key.key_sha256,
                key.key_prefix,
                key.created_by,
                key.created_at,
                key.updated_at,
                key.last_used_at
            ],
        ))?
        .is_some())
    }

    /// Changes what is given of the API key `id`: Ok(None) when there is no such key,
    /// Ok(Some(false)) when the new name is taken.
    pub fn update_api_key(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        role: Option<&str>,
    ) -> Result<Option<bool>> {
        let changed = self.conn.execute(
            "UPDATE api_keys SET name = coalesce(?2, name), \
             description = coalesce(?3, description), role = coalesce(?4, role), \
             updated_at = ?5 WHERE id = ?1",
            params![id, name, description, role, now_ms()],
        );
        updated(changed)
    }

    /// Notes that the API key `id` was used now.
    pub fn api_key_used(&self, id: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
            params![id, now_ms()],
        )?;
        Ok(())
    }

    /// Removes the API key `id` (it stops working at once); false when there was none.
    pub fn delete_api_key(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM api_keys WHERE id = ?1", params![id])?
            > 0)
    }

    /// The secret named `name`, made by `make` and kept the first time it is asked for
    /// (every process that asks later gets the same one).
    pub fn secret(&self, name: &str, make: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>> {
        let made = make();
        self.conn.execute(
            "INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)",
            params![name, made],
        )?;
        Ok(self.conn.query_row(
            "SELECT value FROM secrets WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?)
    }
}
