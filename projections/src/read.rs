//! Queries over the read models. Status that depends on time is decided here against `now`, so
//! a listing is exact even before the timer's event lands.
//!
//! One participants table serves both listings: "recent" reads its partial index of
//! not-started/in-progress rows by start, "all" reads the full index by start descending with a
//! keyset cursor (see `docs/decisions/0002-one-participants-table.md`).

use chrono::{DateTime, Duration, Utc};
use meetline_db::{Database, timestamp, unavailable};
use meetline_domain::ports::{Position, StoreError};
use meetline_domain::types::{ConferenceId, LineId, ProviderKind, Status, TenantId, UserId};
use serde::Serialize;
use sqlx::Row;

use crate::view::ConferenceView;

/// How far ahead "recent" looks (SPEC: about one month).
pub const RECENT_DAYS: i64 = 30;
pub const MAX_PAGE: u32 = 100;

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub statuses: Vec<Status>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub text: Option<String>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

/// A keyset position in "all": the last row's start and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub start: DateTime<Utc>,
    pub id: ConferenceId,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.start.timestamp_micros(), self.id.0.simple())
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('.')?;
        Some(Self {
            start: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: ConferenceId(uuid::Uuid::parse_str(id).ok()?),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<ConferenceView>,
    pub next_cursor: Option<Cursor>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LineRow {
    pub id: String,
    pub name: String,
    pub provider: ProviderKind,
    pub status: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OpsSummary {
    pub by_status: Vec<(String, i64)>,
    /// Per line: booked minutes over the next 7 days / (7 × 24 × 60).
    pub utilisation: Vec<(String, f64)>,
    pub no_free_line_rejections: i64,
    pub rejections_by_hour: Vec<(String, i64)>,
    /// Provider calls that failed after every retry.
    pub provider_failures: i64,
    pub applied_position: Position,
}

#[derive(Debug, Clone)]
pub struct ReadModels {
    db: Database,
}

fn corrupt(error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// "recent": tenant, user, now, now + 30 days. The limit is in the statement, not bound (see
/// `ReadModels::list`).
fn recent_sql(limit: u32) -> String {
    format!(
        r#"SELECT c.data FROM rm_participants p JOIN rm_conferences c ON c.tenant = p.tenant AND c.id = p.conference_id
               WHERE p.tenant = ? AND p.user_id = ? AND p.status IN ('not_started', 'in_progress')
                 AND p."end" > ? AND p.start < ?
               ORDER BY p.start, p.conference_id LIMIT {}"#,
        limit.min(MAX_PAGE)
    )
}

/// SQL that is true when a participants row (`p`) shows `status` at `now` (bound as `?`).
fn status_condition(status: Status) -> &'static str {
    match status {
        Status::NotStarted => "(p.status IN ('not_started','in_progress') AND p.start > ?)",
        Status::InProgress => {
            "(p.status IN ('not_started','in_progress') AND p.start <= ? AND p.\"end\" > ?)"
        }
        Status::Ended => {
            "(p.status = 'ended' OR (p.status IN ('not_started','in_progress') AND p.\"end\" <= ?))"
        }
        Status::ManuallyEnded => "(p.status = 'manually_ended')",
        Status::Cancelled => "(p.status = 'cancelled')",
    }
}

/// How many `now` parameters a status condition binds.
fn status_binds(status: Status) -> usize {
    match status {
        Status::NotStarted | Status::Ended => 1,
        Status::InProgress => 2,
        Status::ManuallyEnded | Status::Cancelled => 0,
    }
}

impl ReadModels {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// # Errors
    /// When the database cannot be read or a row does not decode.
    pub async fn conference(
        &self,
        tenant: &TenantId,
        id: ConferenceId,
    ) -> Result<Option<ConferenceView>, StoreError> {
        let data: Option<String> = sqlx::query_scalar(
            self.db
                .sql("SELECT data FROM rm_conferences WHERE id = ? AND tenant = ?"),
        )
        .bind(id.to_string())
        .bind(tenant.as_str())
        .fetch_optional(&self.db.reader)
        .await
        .map_err(unavailable)?;
        data.map(|data| serde_json::from_str(&data).map_err(corrupt))
            .transpose()
    }

    /// Every conference of a series (cancelled ones too), in no particular order: the
    /// memberships first, then their rows (two reads, so that no query holds the series view
    /// while it waits for the conferences' — the order a rebuild's swap locks them in).
    ///
    /// # Errors
    /// When the database cannot be read or a row does not decode.
    pub async fn series(
        &self,
        tenant: &TenantId,
        series: &str,
    ) -> Result<Vec<ConferenceView>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(self.db.sql(
            "SELECT conference_id FROM rm_series WHERE tenant = ? AND series_id = ? \
             ORDER BY conference_id LIMIT 1000",
        ))
        .bind(tenant.as_str())
        .bind(series)
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let among = self.db.json_texts();
        let rows: Vec<String> = sqlx::query_scalar(self.db.sql(&format!(
            "SELECT data FROM rm_conferences WHERE tenant = ? AND id IN ({among})"
        )))
        .bind(tenant.as_str())
        .bind(serde_json::to_string(&ids).expect("strings serialize"))
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|data| serde_json::from_str(data).map_err(corrupt))
            .collect()
    }

    /// The user's not-started and in-progress conferences starting within 30 days, soonest first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn recent(
        &self,
        tenant: &TenantId,
        user: &UserId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ConferenceView>, StoreError> {
        let rows = sqlx::query(self.db.sql(&recent_sql(limit)))
            .bind(tenant.as_str())
            .bind(user.as_str())
            .bind(timestamp(now))
            .bind(timestamp(now + Duration::days(RECENT_DAYS)))
            .fetch_all(&self.db.reader)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| serde_json::from_str(row.get("data")).map_err(corrupt))
            .collect()
    }

    /// Every conference of the user, newest start first, filtered and keyset-paged.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn list(
        &self,
        tenant: &TenantId,
        user: &UserId,
        filter: &ListFilter,
        now: DateTime<Utc>,
    ) -> Result<Page, StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE);
        let mut sql = String::from(
            r#"SELECT c.data, p.start FROM rm_participants p JOIN rm_conferences c ON c.tenant = p.tenant AND c.id = p.conference_id
               WHERE p.tenant = ? AND p.user_id = ?"#,
        );
        let now_text = timestamp(now);
        let mut binds: Vec<String> = vec![tenant.to_string(), user.to_string()];
        if !filter.statuses.is_empty() {
            let parts: Vec<String> = filter
                .statuses
                .iter()
                .map(|status| status_condition(*status).to_owned())
                .collect();
            sql.push_str(&format!(" AND ({})", parts.join(" OR ")));
            for status in &filter.statuses {
                binds.extend(std::iter::repeat_n(now_text.clone(), status_binds(*status)));
            }
        }
        if let Some(from) = filter.from {
            sql.push_str(r#" AND p."end" > ?"#);
            binds.push(timestamp(from));
        }
        if let Some(to) = filter.to {
            sql.push_str(" AND p.start < ?");
            binds.push(timestamp(to));
        }
        if let Some(text) = filter
            .text
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
        {
            sql.push_str(r" AND (p.subject LIKE ? ESCAPE '\' OR c.number = ?)");
            let escaped = text
                .replace('\\', r"\\")
                .replace('%', r"\%")
                .replace('_', r"\_");
            binds.push(format!("%{escaped}%"));
            binds.push(text.replace([' ', '-'], ""));
        }
        if let Some(cursor) = &filter.cursor {
            sql.push_str(" AND (p.start < ? OR (p.start = ? AND p.conference_id < ?))");
            let start = timestamp(cursor.start);
            binds.push(start.clone());
            binds.push(start);
            binds.push(cursor.id.to_string());
        }
        // The limit is written into the statement, not bound: SQLite re-prepares a statement
        // whose `LIMIT ?` is bound anew (its planner reads the value) — each time, on every
        // listing. It is rounded up to one of a few sizes (the page is cut below), so that a
        // client varying its page size makes a few statements, not a hundred.
        let fetch = [21, 51, MAX_PAGE + 1]
            .into_iter()
            .find(|size| *size > limit)
            .unwrap_or(MAX_PAGE + 1);
        sql.push_str(&format!(
            " ORDER BY p.start DESC, p.conference_id DESC LIMIT {fetch}"
        ));
        let mut query = sqlx::query(self.db.sql(&sql));
        for bind in binds {
            query = query.bind(bind);
        }
        let rows = query
            .fetch_all(&self.db.reader)
            .await
            .map_err(unavailable)?;
        let mut items: Vec<ConferenceView> = rows
            .iter()
            .map(|row| serde_json::from_str(row.get("data")).map_err(corrupt))
            .collect::<Result<_, _>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|last| Cursor {
                start: last.slot.start,
                id: last.id,
            })
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// The tenant's lines in the order they were added (removed ones left out).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn lines(&self, tenant: &TenantId) -> Result<Vec<LineRow>, StoreError> {
        let rows = sqlx::query(
            self.db.sql("SELECT line_id, name, provider, status FROM rm_lines WHERE tenant = ? AND removed = 0 ORDER BY ord"),
        )
        .bind(tenant.as_str())
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(LineRow {
                    id: row.get("line_id"),
                    name: row.get("name"),
                    provider: provider_of(row.get("provider"))?,
                    status: row.get("status"),
                })
            })
            .collect()
    }

    /// Conferences booked on a line that end after `from` and start before `to`, by start.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn line_schedule(
        &self,
        tenant: &TenantId,
        line: &LineId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ConferenceView>, StoreError> {
        let rows = sqlx::query(self.db.sql(
            r#"SELECT data FROM rm_conferences WHERE tenant = ? AND line_id = ?
               AND "end" > ? AND start < ? AND status NOT IN ('cancelled') ORDER BY start"#,
        ))
        .bind(tenant.as_str())
        .bind(line.as_str())
        .bind(timestamp(from))
        .bind(timestamp(to))
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| serde_json::from_str(row.get("data")).map_err(corrupt))
            .collect()
    }

    /// Counts for operators.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn ops_summary(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<OpsSummary, StoreError> {
        let now_text = timestamp(now);
        let by_status = sqlx::query(self.db.sql(
            r#"SELECT CASE
                 WHEN status IN ('not_started','in_progress') AND "end" <= ?1 THEN 'ended'
                 WHEN status IN ('not_started','in_progress') AND start <= ?1 THEN 'in_progress'
                 WHEN status IN ('not_started','in_progress') THEN 'not_started'
                 ELSE status END AS shown, COUNT(*) AS n
               FROM rm_conferences WHERE tenant = ?2 GROUP BY shown ORDER BY shown"#,
        ))
        .bind(&now_text)
        .bind(tenant.as_str())
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| (row.get::<String, _>("shown"), row.get::<i64, _>("n")))
        .collect();
        let week_end = now + Duration::days(7);
        let mut utilisation = Vec::new();
        for line in self.lines(tenant).await? {
            let booked = self
                .line_schedule(
                    tenant,
                    &LineId::parse(&line.id).map_err(|_| StoreError::Corrupt(line.id.clone()))?,
                    now,
                    week_end,
                )
                .await?
                .iter()
                .filter(|view| !matches!(view.status, Status::Cancelled))
                .map(|view| {
                    let end = view
                        .ended_at
                        .filter(|_| view.status == Status::ManuallyEnded)
                        .unwrap_or(view.slot.end);
                    (end.min(week_end) - view.slot.start.max(now))
                        .num_minutes()
                        .max(0)
                })
                .sum::<i64>();
            utilisation.push((line.id, booked as f64 / (7.0 * 24.0 * 60.0)));
        }
        // Refusals for want of a line: the log's (`rm_refusals`) and those counted before they
        // were events (`ops_rejections`, no longer written).
        const REFUSALS: &str = "SELECT hour, count FROM rm_refusals WHERE tenant = ? \
             UNION ALL SELECT hour, count FROM ops_rejections WHERE tenant = ?";
        let rejections_by_hour: Vec<(String, i64)> = sqlx::query(self.db.sql(&format!(
            "SELECT hour, CAST(SUM(count) AS BIGINT) AS count FROM ({REFUSALS}) AS counted \
             GROUP BY hour ORDER BY hour DESC LIMIT 168"
        )))
        .bind(tenant.as_str())
        .bind(tenant.as_str())
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| (row.get::<String, _>("hour"), row.get::<i64, _>("count")))
        .collect();
        let total: i64 = sqlx::query_scalar(self.db.sql(&format!(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM ({REFUSALS}) AS counted"
        )))
        .bind(tenant.as_str())
        .bind(tenant.as_str())
        .fetch_one(&self.db.reader)
        .await
        .map_err(unavailable)?;
        let provider_failures: i64 = sqlx::query_scalar(self.db.sql(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM ops_provider_failures WHERE tenant = ?",
        ))
        .bind(tenant.as_str())
        .fetch_one(&self.db.reader)
        .await
        .map_err(unavailable)?;
        Ok(OpsSummary {
            by_status,
            utilisation,
            no_free_line_rejections: total,
            provider_failures,
            rejections_by_hour,
            applied_position: crate::projector::checkpoint(&self.db).await?,
        })
    }

    /// The position the read models have applied (their checkpoint).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn applied_position(&self) -> Result<Position, StoreError> {
        let position: Option<i64> = sqlx::query_scalar(
            self.db
                .sql("SELECT position FROM rm_checkpoints WHERE name = ?"),
        )
        .bind(crate::projector::READ_MODELS)
        .fetch_optional(&self.db.reader)
        .await
        .map_err(unavailable)?;
        Ok(position.unwrap_or(0) as Position)
    }
}

/// A stored line's provider (`rm_lines.provider`): an unknown one is a corrupt row, not a
/// builtin line.
pub(crate) fn provider_of(text: &str) -> Result<ProviderKind, StoreError> {
    ProviderKind::parse(text)
        .map_err(|_| StoreError::Corrupt(format!("rm_lines: unknown provider {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for "recent": the user's upcoming rows from their own index, in order, and
    /// nothing else of the participants table — not the user's whole history through the "all"
    /// index (the plan before the index held the listing's order), each row read for its status.
    #[tokio::test]
    async fn recent_reads_the_upcoming_index_alone() {
        let db = Database::temporary().await.unwrap();
        crate::schema::migrate(&db).await.unwrap();
        // Its rows' fourth column says what each step reads.
        let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            recent_sql(100)
        )))
        .bind("t")
        .bind("u")
        .bind("2026-01-01T00:00:00.000000Z")
        .bind("2026-02-01T00:00:00.000000Z")
        .fetch_all(&db.reader)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(3))
        .collect();
        let participants = plan
            .iter()
            .find(|step| step.contains("rm_participants"))
            .unwrap_or_else(|| panic!("no step reads the participants: {plan:?}"));
        assert!(
            participants.contains("COVERING INDEX rm_g1_participants_upcoming"),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "no sort: the index gives the order — {plan:?}"
        );
    }
}
