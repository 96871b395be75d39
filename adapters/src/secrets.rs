//! Generated secrets shared by every node of a PostgreSQL deployment (the token and Jitsi
//! signing keys when they are not configured), so a token minted for one node is valid on all.
//! The embedded deployment keeps them as files in its data folder instead ([`crate::auth`]).

use meetline_domain::ports::StoreError;
use rand::RngCore;

use crate::db::{Database, unavailable};

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS meetline_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);";

/// The secret called `name`: generated (32 random bytes, hex) by whichever node asks first.
///
/// # Errors
/// When the database cannot be read or written.
pub async fn load_or_create(db: &Database, name: &str) -> Result<String, StoreError> {
    db.migrate(SCHEMA, SCHEMA).await.map_err(unavailable)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let candidate = meetline_domain::types::hex(&bytes);
    sqlx::query(db.sql(
        "INSERT INTO meetline_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
    ))
    .bind(name)
    .bind(candidate)
    .execute(&db.writer)
    .await
    .map_err(unavailable)?;
    sqlx::query_scalar(db.sql("SELECT value FROM meetline_secrets WHERE name = ?"))
        .bind(name)
        .fetch_one(&db.writer)
        .await
        .map_err(unavailable)
}

/// The secret called `name` if a node generated it, without generating one.
///
/// # Errors
/// When the database cannot be read.
pub async fn load(db: &Database, name: &str) -> Result<Option<String>, StoreError> {
    db.migrate(SCHEMA, SCHEMA).await.map_err(unavailable)?;
    sqlx::query_scalar(db.sql("SELECT value FROM meetline_secrets WHERE name = ?"))
        .bind(name)
        .fetch_optional(&db.writer)
        .await
        .map_err(unavailable)
}
