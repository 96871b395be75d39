//! The state of the background processes: their checkpoints, provisioning attempts, and the
//! hourly counters of the ops dashboard. Not read models — no event rebuilds them, and a rebuild
//! of the read models does not touch them (decision 0018).

use chrono::{DateTime, Utc};
use meetline_db::{Database, unavailable};
use meetline_domain::ports::{Position, StoreError};
use meetline_domain::types::{ConferenceId, TenantId};

/// The prefix of the checkpoint rows that mark a tenant's imported history.
const IMPORTED: &str = "imported@";

#[derive(Debug, Clone)]
pub struct ProcessState {
    db: Database,
}

impl ProcessState {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// A background process's checkpoint (created at 0 if new).
    ///
    /// # Errors
    /// When the database cannot be read or written.
    pub async fn checkpoint(&self, name: &str) -> Result<Position, StoreError> {
        sqlx::query(self.db.sql("INSERT INTO rm_checkpoints (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING"))
            .bind(name)
            .execute(&self.db.writer)
            .await
            .map_err(unavailable)?;
        let position: i64 = sqlx::query_scalar(
            self.db
                .sql("SELECT position FROM rm_checkpoints WHERE name = ?"),
        )
        .bind(name)
        .fetch_one(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(position as Position)
    }

    /// Moves a background process's checkpoint forward (never back).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), StoreError> {
        sqlx::query(
            self.db
                .sql("UPDATE rm_checkpoints SET position = ? WHERE name = ? AND position < ?"),
        )
        .bind(position as i64)
        .bind(name)
        .bind(position as i64)
        .execute(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// Marks `tenant`'s events up to `position` as **imported history** (`meetline import
    /// --tenant`): they were provisioned, if at all, where they were first recorded, and the
    /// provisioning process skips them rather than calling providers for a past it did not see.
    /// (`Position::MAX` while an import is writing.)
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn set_imported_through(
        &self,
        tenant: &TenantId,
        position: Position,
    ) -> Result<(), StoreError> {
        sqlx::query(self.db.sql(
            "INSERT INTO rm_checkpoints (name, position) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        ))
        .bind(format!("{IMPORTED}{tenant}"))
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// Per tenant, the position through which its events are imported history.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn imported_through(
        &self,
    ) -> Result<std::collections::HashMap<TenantId, Position>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            self.db
                .sql("SELECT name, position FROM rm_checkpoints WHERE name LIKE ?"),
        )
        .bind(format!("{IMPORTED}%"))
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, position)| {
                let tenant = TenantId::parse(name.strip_prefix(IMPORTED)?).ok()?;
                Some((tenant, Position::try_from(position).unwrap_or(0)))
            })
            .collect())
    }

    /// Notes a provider create attempt for the conference at the event `position`; `true` when one
    /// was noted before (an earlier attempt may have succeeded).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn note_provisioning_attempt(
        &self,
        tenant: &TenantId,
        conference: ConferenceId,
        position: Position,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(self.db.sql(
            "INSERT INTO provisioning_attempts (tenant, conference, position) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        ))
        .bind(tenant.as_str())
        .bind(conference.to_string())
        .bind(position as i64)
        .execute(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(inserted.rows_affected() == 0)
    }

    /// Counts one provider call that failed after every retry, in its hour (UTC).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn record_provider_failure(
        &self,
        tenant: &TenantId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.count_in_hour("ops_provider_failures", tenant, at)
            .await
    }

    /// Adds one to an hourly ops counter (`ops_provider_failures`).
    async fn count_in_hour(
        &self,
        table: &'static str,
        tenant: &TenantId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(self.db.sql(&format!(
            "INSERT INTO {table} (tenant, hour, count) VALUES (?, ?, 1) \
             ON CONFLICT (tenant, hour) DO UPDATE SET count = {table}.count + 1"
        )))
        .bind(tenant.as_str())
        .bind(hour_of(at))
        .execute(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}

/// The hour an ops counter counts `at` in (UTC), as its `hour` column holds it.
pub(crate) fn hour_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:00Z").to_string()
}
