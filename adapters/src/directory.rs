//! The directory: facts the OA suite owns and meetline only looks up — users, meetings with their
//! roles, chats with their members. Written through the admin `PUT /api/v1/directory/...`
//! endpoints, kept in plain tables (not events: meetline is not their source of truth).

use async_trait::async_trait;
use meetline_domain::command::MeetingFacts;
use meetline_domain::ports::StoreError;
use meetline_domain::types::{ChatId, MeetingId, TenantId, UserId};
use serde::Serialize;
use sqlx::Row;

use crate::db::{Database, unavailable};

pub use meetline_domain::ports::directory::{ChatKind, Directory, DirectoryChat, DirectoryUser};

/// The same tables on both engines (text only).
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS directory_users (
    tenant TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS directory_meetings (
    tenant TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS directory_chats (
    tenant TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tenant, id)
);
"#;

/// The directory in the relational database (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlDirectory {
    db: Database,
}

impl SqlDirectory {
    /// # Errors
    /// When the tables cannot be created.
    pub async fn new(db: Database) -> Result<Self, StoreError> {
        sqlx::raw_sql(SCHEMA)
            .execute(&db.writer)
            .await
            .map_err(unavailable)?;
        Ok(Self { db })
    }

    /// Every tenant with an entry in the directory, in order.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT tenant FROM directory_users UNION SELECT tenant FROM directory_meetings \
             UNION SELECT tenant FROM directory_chats",
        )
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        let mut tenants = rows
            .iter()
            .map(|tenant| {
                TenantId::parse(tenant)
                    .map_err(|error| StoreError::Corrupt(format!("tenant {tenant:?}: {error}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        tenants.sort();
        Ok(tenants)
    }

    async fn put(
        &self,
        table: &str,
        tenant: &TenantId,
        id: &str,
        data: String,
    ) -> Result<(), StoreError> {
        sqlx::query(self.db.sql(&format!(
            "INSERT INTO {table} (tenant, id, data) VALUES (?, ?, ?) \
             ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data"
        )))
        .bind(tenant.as_str())
        .bind(id)
        .bind(data)
        .execute(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        let data: Option<String> = sqlx::query_scalar(self.db.sql(&format!(
            "SELECT data FROM {table} WHERE tenant = ? AND id = ?"
        )))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.db.reader)
        .await
        .map_err(unavailable)?;
        data.map(|data: String| decode(&data)).transpose()
    }

    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        tenant: &TenantId,
    ) -> Result<Vec<T>, StoreError> {
        let rows = sqlx::query(self.db.sql(&format!(
            "SELECT data FROM {table} WHERE tenant = ? ORDER BY id"
        )))
        .bind(tenant.as_str())
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        rows.iter().map(|row| decode(row.get("data"))).collect()
    }
}

fn decode<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, StoreError> {
    serde_json::from_str(data).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("directory entries serialize")
}

#[async_trait]
impl Directory for SqlDirectory {
    async fn put_user(&self, tenant: &TenantId, user: &DirectoryUser) -> Result<(), StoreError> {
        self.put("directory_users", tenant, user.id.as_str(), encode(user))
            .await
    }

    async fn user(
        &self,
        tenant: &TenantId,
        id: &UserId,
    ) -> Result<Option<DirectoryUser>, StoreError> {
        self.get("directory_users", tenant, id.as_str()).await
    }

    async fn users(&self, tenant: &TenantId) -> Result<Vec<DirectoryUser>, StoreError> {
        self.all("directory_users", tenant).await
    }

    async fn unknown_users(
        &self,
        tenant: &TenantId,
        ids: &[UserId],
    ) -> Result<Vec<UserId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // One query for the whole list (callers cap lists at 1,000 ids).
        let placeholders = vec!["?"; ids.len()].join(", ");
        let sql =
            format!("SELECT id FROM directory_users WHERE tenant = ? AND id IN ({placeholders})");
        let mut query = sqlx::query_scalar::<_, String>(self.db.sql(&sql)).bind(tenant.as_str());
        for id in ids {
            query = query.bind(id.as_str());
        }
        let known: Vec<String> = query
            .fetch_all(&self.db.reader)
            .await
            .map_err(unavailable)?;
        let mut unknown: Vec<UserId> = Vec::new();
        for id in ids {
            if !known.iter().any(|found| found == id.as_str()) && !unknown.contains(id) {
                unknown.push(id.clone());
            }
        }
        Ok(unknown)
    }

    async fn put_meeting(
        &self,
        tenant: &TenantId,
        meeting: &MeetingFacts,
    ) -> Result<(), StoreError> {
        self.put(
            "directory_meetings",
            tenant,
            meeting.id.as_str(),
            encode(meeting),
        )
        .await
    }

    async fn meeting(
        &self,
        tenant: &TenantId,
        id: &MeetingId,
    ) -> Result<Option<MeetingFacts>, StoreError> {
        self.get("directory_meetings", tenant, id.as_str()).await
    }

    async fn meetings(&self, tenant: &TenantId) -> Result<Vec<MeetingFacts>, StoreError> {
        self.all("directory_meetings", tenant).await
    }

    async fn put_chat(&self, tenant: &TenantId, chat: &DirectoryChat) -> Result<(), StoreError> {
        self.put(
            "directory_chats",
            tenant,
            chat.facts.id.as_str(),
            encode(chat),
        )
        .await
    }

    async fn chat(
        &self,
        tenant: &TenantId,
        id: &ChatId,
    ) -> Result<Option<DirectoryChat>, StoreError> {
        self.get("directory_chats", tenant, id.as_str()).await
    }

    async fn chats(&self, tenant: &TenantId) -> Result<Vec<DirectoryChat>, StoreError> {
        self.all("directory_chats", tenant).await
    }
}
