//! Read-model lookups for the background processes and the webhooks (not for listings): the
//! timer's due list, and provider meeting ids back to their conferences.

use chrono::{DateTime, Utc};
use meetline_db::{Database, timestamp, unavailable};
use meetline_domain::ports::StoreError;
use meetline_domain::types::{ConferenceId, LineId, TenantId};
use sqlx::Row;

/// A row's `tenant` column, which must be a valid tenant id.
fn tenant_of(row: &sqlx::any::AnyRow) -> Result<TenantId, StoreError> {
    TenantId::parse(row.get("tenant")).map_err(|_| StoreError::Corrupt("tenant".to_owned()))
}

/// The conferences whose start or end the timer has still to record.
#[derive(Debug, Clone)]
pub struct Timetable {
    db: Database,
}

impl Timetable {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Conferences whose start or end has passed but whose `ConferenceStarted` / `ConferenceEnded`
    /// is not recorded yet (as far as the read models know), oldest first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn due_conferences(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(TenantId, ConferenceId)>, StoreError> {
        let now = timestamp(now);
        // The limit in the statement, not bound (see `ReadModels::list`).
        let rows = sqlx::query(self.db.sql(&format!(
            r#"SELECT tenant, id FROM rm_conferences
               WHERE (status = 'not_started' AND start <= ?)
                  OR (status IN ('not_started', 'in_progress') AND "end" <= ?)
               ORDER BY start LIMIT {limit}"#,
        )))
        .bind(&now)
        .bind(&now)
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let id = ConferenceId::parse(row.get("id"))
                    .map_err(|_| StoreError::Corrupt("conference id".to_owned()))?;
                Ok((tenant_of(row)?, id))
            })
            .collect()
    }
}

/// Provider meeting ids, per tenant and line, back to their conferences (for webhooks).
#[derive(Debug, Clone)]
pub struct ProviderMeetings {
    db: Database,
}

impl ProviderMeetings {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The conference the meeting `meeting_id` of line `line` of `tenant` belongs to.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn conference_for_meeting(
        &self,
        tenant: &TenantId,
        line: &LineId,
        meeting_id: &str,
    ) -> Result<Option<ConferenceId>, StoreError> {
        let row: Option<String> = sqlx::query_scalar(self.db.sql(
            "SELECT conference_id FROM rm_provider_meetings_by_line \
             WHERE tenant = ? AND line_id = ? AND meeting_id = ?",
        ))
        .bind(tenant.as_str())
        .bind(line.as_str())
        .bind(meeting_id)
        .fetch_optional(&self.db.reader)
        .await
        .map_err(unavailable)?;
        row.map(|id| {
            ConferenceId::parse(&id).map_err(|_| StoreError::Corrupt("conference id".to_owned()))
        })
        .transpose()
    }

    /// Every line (of any tenant) that has a meeting with this provider id: the candidates whose
    /// webhook secret may have signed a notification about it.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn lines_with_meeting(
        &self,
        meeting_id: &str,
    ) -> Result<Vec<(TenantId, LineId)>, StoreError> {
        let rows = sqlx::query(self.db.sql(
            "SELECT tenant, line_id FROM rm_provider_meetings_by_line WHERE meeting_id = ? \
             ORDER BY tenant, line_id LIMIT 256",
        ))
        .bind(meeting_id)
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let line = LineId::parse(row.get("line_id"))
                    .map_err(|_| StoreError::Corrupt("line id".to_owned()))?;
                Ok((tenant_of(row)?, line))
            })
            .collect()
    }
}
