//! The directory: facts the OA suite owns and meetline only looks up — users, meetings with their
//! roles, chats with their members. Written through the admin `PUT /api/v1/directory/...`
//! endpoints, kept in plain tables (not events: meetline is not their source of truth).

use async_trait::async_trait;
use meetline_domain::command::MeetingFacts;
use meetline_domain::ports::StoreError;
use meetline_domain::types::{ChatId, MeetingId, TenantId, UserId};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;

use crate::db::{Database, unavailable};
use crate::directory_search::{Cached, SearchCache, SearchRow};

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
CREATE TABLE IF NOT EXISTS directory_user_search (
    tenant TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, search TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE IF NOT EXISTS directory_stamps (
    tenant TEXT PRIMARY KEY, stamp BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS directory_search_version (
    one INTEGER PRIMARY KEY, version BIGINT NOT NULL
);
"#;

/// A tenant with more users than this is searched in the database, not in memory (with the
/// byte bounds of [`SearchCache`]).
const CACHED_USERS: i64 = 200_000;

/// The version of [`search_key`]: search rows written by an older one are written again at start.
/// 2: a surname's other readings (单: dan, shan).
const SEARCH_KEY_VERSION: i64 = 2;

/// What a user is found by, in lower case, the parts apart (`\u{1f}`): the id, the name, the
/// name's pinyin in full (张伟 → `zhangwei`; other characters as they are) and its initials
/// (`zw`; a word in Latin letters gives its first). A character with several readings gives its
/// most common one — except the first, a surname, whose other readings give the full pinyin and
/// initials once more each (单芳: `danfang`/`df`, and `shanfang`/`sf`).
pub fn search_key(id: &UserId, name: &str) -> String {
    use pinyin::{ToPinyin, ToPinyinMulti};
    let name = name.to_lowercase();
    let (mut full, mut initials) = (String::new(), String::new());
    let mut word_start = true;
    // The surname's other readings, and where its own ends in `full` and `initials`.
    let mut surname: Option<(Vec<pinyin::Pinyin>, usize, usize)> = None;
    for (index, (character, reading)) in name.chars().zip(name.as_str().to_pinyin()).enumerate() {
        match reading {
            Some(reading) => {
                full.push_str(reading.plain());
                initials.push_str(reading.first_letter());
                if index == 0
                    && let Some(readings) = character.to_pinyin_multi()
                {
                    let others: Vec<pinyin::Pinyin> = readings
                        .into_iter()
                        .filter(|other| other.plain() != reading.plain())
                        .collect();
                    surname = Some((others, full.len(), initials.len()));
                }
                word_start = true;
            }
            None if character.is_alphanumeric() => {
                full.push(character);
                if word_start {
                    initials.push(character);
                }
                word_start = false;
            }
            None => word_start = true,
        }
    }
    let mut key = format!(
        "{}\u{1f}{name}\u{1f}{full}\u{1f}{initials}",
        id.as_str().to_lowercase()
    );
    if let Some((others, full_from, initials_from)) = surname {
        let mut seen: Vec<&str> = Vec::new();
        for other in others {
            if seen.contains(&other.plain()) {
                continue;
            }
            seen.push(other.plain());
            key.push_str(&format!(
                "\u{1f}{}{}\u{1f}{}{}",
                other.plain(),
                &full[full_from..],
                other.first_letter(),
                &initials[initials_from..]
            ));
        }
    }
    key
}

/// Moves the tenant's directory stamp (inside the caller's write): nodes that keep its search
/// rows in memory read them again.
async fn move_stamp(
    db: &Database,
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
) -> Result<(), StoreError> {
    sqlx::query(db.sql(
        "INSERT INTO directory_stamps (tenant, stamp) VALUES (?, 1) \
         ON CONFLICT (tenant) DO UPDATE SET stamp = directory_stamps.stamp + 1",
    ))
    .bind(tenant)
    .execute(&mut **transaction)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// The directory in the relational database (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlDirectory {
    db: Database,
    searches: std::sync::Arc<SearchCache>,
    /// Whether searches may be served from memory (off: always the database; tests compare).
    in_memory: bool,
}

impl SqlDirectory {
    /// # Errors
    /// When the tables cannot be created.
    pub async fn new(db: Database) -> Result<Self, StoreError> {
        sqlx::raw_sql(SCHEMA)
            .execute(&db.writer)
            .await
            .map_err(unavailable)?;
        let directory = Self {
            db,
            searches: std::sync::Arc::default(),
            in_memory: true,
        };
        directory.index_unsearchable().await?;
        Ok(directory)
    }

    /// The same directory, searched in the database only (tests compare the two paths).
    pub fn without_memory(mut self) -> Self {
        self.in_memory = false;
        self
    }

    /// Users stored before they could be searched (by an older version) get their search row;
    /// and when the rows were written by an older [`search_key`], each gets its key again.
    async fn index_unsearchable(&self) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT u.tenant, u.data FROM directory_users u LEFT JOIN directory_user_search s \
             ON s.tenant = u.tenant AND s.id = u.id WHERE s.id IS NULL",
        )
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        let mut by_tenant: std::collections::BTreeMap<String, Vec<DirectoryUser>> =
            std::collections::BTreeMap::new();
        for row in &rows {
            by_tenant
                .entry(row.get("tenant"))
                .or_default()
                .push(decode(row.get("data"))?);
        }
        for (tenant, users) in by_tenant {
            let tenant = TenantId::parse(&tenant)
                .map_err(|error| StoreError::Corrupt(format!("tenant {tenant:?}: {error}")))?;
            for chunk in users.chunks(1000) {
                self.put_users(&tenant, chunk).await?;
            }
        }
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM directory_search_version WHERE one = 1")
                .fetch_optional(&self.db.reader)
                .await
                .map_err(unavailable)?;
        if version.unwrap_or(1) < SEARCH_KEY_VERSION {
            self.rekey().await?;
        }
        Ok(())
    }

    /// Writes every search row's key again with today's [`search_key`], a thousand rows a
    /// transaction, in key order. Only the key of a row whose name is still the one read is
    /// written (a user renamed meanwhile, on any node, already has today's key), and the users'
    /// own data is not touched; each chunk moves its tenants' stamps. Another node doing the
    /// same at once writes the same keys.
    async fn rekey(&self) -> Result<(), StoreError> {
        let (mut tenant, mut id) = (String::new(), String::new());
        loop {
            let rows = sqlx::query(self.db.sql(
                "SELECT tenant, id, name FROM directory_user_search \
                 WHERE tenant > ? OR (tenant = ? AND id > ?) ORDER BY tenant, id LIMIT 1000",
            ))
            .bind(&tenant)
            .bind(&tenant)
            .bind(&id)
            .fetch_all(&self.db.reader)
            .await
            .map_err(unavailable)?;
            let Some(last) = rows.last() else {
                break;
            };
            (tenant, id) = (last.get("tenant"), last.get("id"));
            let mut transaction = self.db.writer.begin().await.map_err(unavailable)?;
            let mut tenants: Vec<String> = Vec::new();
            for row in &rows {
                let (row_tenant, row_id, name): (String, String, String) =
                    (row.get("tenant"), row.get("id"), row.get("name"));
                let Ok(user) = UserId::parse(&row_id) else {
                    continue;
                };
                sqlx::query(self.db.sql(
                    "UPDATE directory_user_search SET search = ? \
                     WHERE tenant = ? AND id = ? AND name = ?",
                ))
                .bind(search_key(&user, &name))
                .bind(&row_tenant)
                .bind(&row_id)
                .bind(&name)
                .execute(&mut *transaction)
                .await
                .map_err(unavailable)?;
                if !tenants.contains(&row_tenant) {
                    tenants.push(row_tenant);
                }
            }
            for touched in &tenants {
                move_stamp(&self.db, &mut transaction, touched).await?;
            }
            transaction.commit().await.map_err(unavailable)?;
        }
        sqlx::query(self.db.sql(
            "INSERT INTO directory_search_version (one, version) VALUES (1, ?) \
             ON CONFLICT (one) DO UPDATE SET version = excluded.version",
        ))
        .bind(SEARCH_KEY_VERSION)
        .execute(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
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

    /// The tenant's search rows as this node keeps them, read again if the stored stamp moved
    /// since; `None`: search the database (a tenant too large to keep, a load under way, or
    /// memory off).
    async fn searchable(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<std::sync::Arc<Vec<SearchRow>>>, StoreError> {
        if !self.in_memory {
            return Ok(None);
        }
        let stamp = self.stamp(tenant).await?;
        let rows = |cached: Cached| match cached {
            Cached::Rows(rows) => Some(rows),
            Cached::TooLarge => None,
        };
        if let Some(cached) = self.searches.get(tenant.as_str(), stamp) {
            return Ok(rows(cached));
        }
        // One load at a time: a search that finds one under way asks the database.
        let Ok(_loading) = self.searches.loading.try_lock() else {
            return Ok(None);
        };
        let stamp = self.stamp(tenant).await?;
        if let Some(cached) = self.searches.get(tenant.as_str(), stamp) {
            return Ok(rows(cached));
        }
        // Read after the stamp: rows at least as new as it (a write in between only makes the
        // next search read them again).
        // Limits in the statements, not bound (SQLite re-prepares on a new bound `LIMIT`).
        let found = sqlx::query(self.db.sql(&format!(
            "SELECT id, name, search FROM directory_user_search WHERE tenant = ? LIMIT {}",
            CACHED_USERS + 1
        )))
        .bind(tenant.as_str())
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        let loaded = if found.len() as i64 > CACHED_USERS {
            None
        } else {
            let mut loaded: Vec<SearchRow> = found
                .iter()
                .map(|row| SearchRow {
                    id: row.get("id"),
                    name: row.get("name"),
                    search: row.get("search"),
                })
                .collect();
            drop(found);
            loaded.sort_unstable_by(|a, b| a.id.cmp(&b.id));
            Some(loaded)
        };
        Ok(rows(self.searches.put(tenant.as_str(), stamp, loaded)))
    }

    /// The tenant's directory stamp (0 before its first write).
    async fn stamp(&self, tenant: &TenantId) -> Result<i64, StoreError> {
        let stamp: Option<i64> = sqlx::query_scalar(
            self.db
                .sql("SELECT stamp FROM directory_stamps WHERE tenant = ?"),
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.db.reader)
        .await
        .map_err(unavailable)?;
        Ok(stamp.unwrap_or(0))
    }

    /// A search of a tenant too large to keep in memory: a substring test of each row.
    async fn search_in_database(
        &self,
        tenant: &TenantId,
        query: &str,
        squeezed: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        // A substring test, not `LIKE`: no pattern to escape, and cheaper per row. The same
        // text twice tests once.
        let contains = match self.db.backend {
            crate::db::Backend::Sqlite => "instr(search, ?) > 0",
            crate::db::Backend::Postgres => "strpos(search, ?) > 0",
        };
        let condition = if squeezed == query {
            contains.to_owned()
        } else {
            format!("({contains} OR {contains})")
        };
        // Ids in byte order on both engines, as the rows in memory are.
        let id = match self.db.backend {
            crate::db::Backend::Sqlite => "id",
            crate::db::Backend::Postgres => r#"id COLLATE "C""#,
        };
        let sql = format!(
            "SELECT id, name FROM directory_user_search WHERE tenant = ? AND {id} > ? \
             AND {condition} ORDER BY {id} LIMIT {}",
            limit.min(i64::MAX as usize)
        );
        let mut select = sqlx::query(self.db.sql(&sql))
            .bind(tenant.as_str())
            .bind(after.map_or("", UserId::as_str))
            .bind(query.to_owned());
        if squeezed != query {
            select = select.bind(squeezed.to_owned());
        }
        let rows = select
            .fetch_all(&self.db.reader)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let id: String = row.get("id");
                let id = UserId::parse(&id)
                    .map_err(|error| StoreError::Corrupt(format!("user {id:?}: {error}")))?;
                Ok((id, row.get("name")))
            })
            .collect()
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
        self.put_users(tenant, std::slice::from_ref(user))
            .await
            .map(|_| ())
    }

    async fn put_users(
        &self,
        tenant: &TenantId,
        users: &[DirectoryUser],
    ) -> Result<usize, StoreError> {
        let mut transaction = self.db.writer.begin().await.map_err(unavailable)?;
        for user in users {
            sqlx::query(self.db.sql(
                "INSERT INTO directory_users (tenant, id, data) VALUES (?, ?, ?) \
                 ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data",
            ))
            .bind(tenant.as_str())
            .bind(user.id.as_str())
            .bind(encode(user))
            .execute(&mut *transaction)
            .await
            .map_err(unavailable)?;
            sqlx::query(self.db.sql(
                "INSERT INTO directory_user_search (tenant, id, name, search) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (tenant, id) DO UPDATE SET name = excluded.name, search = excluded.search",
            ))
            .bind(tenant.as_str())
            .bind(user.id.as_str())
            .bind(&user.name)
            .bind(search_key(&user.id, &user.name))
            .execute(&mut *transaction)
            .await
            .map_err(unavailable)?;
        }
        move_stamp(&self.db, &mut transaction, tenant.as_str()).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(users.len())
    }

    async fn search_users(
        &self,
        tenant: &TenantId,
        query: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        let query = query.trim().to_lowercase();
        // "zhang wei" finds zhangwei too.
        let squeezed: String = query.chars().filter(|c| !c.is_whitespace()).collect();
        let Some(rows) = self.searchable(tenant).await? else {
            return self
                .search_in_database(tenant, &query, &squeezed, after, limit)
                .await;
        };
        // Rows by id, byte-wise: start after the cursor, keep those the query is part of.
        let from = after.map_or(0, |after| {
            rows.partition_point(|row| row.id.as_str() <= after.as_str())
        });
        rows[from..]
            .iter()
            .filter(|row| row.search.contains(&query) || row.search.contains(&squeezed))
            .take(limit)
            .map(|row| {
                let id = UserId::parse(&row.id)
                    .map_err(|error| StoreError::Corrupt(format!("user {:?}: {error}", row.id)))?;
                Ok((id, row.name.clone()))
            })
            .collect()
    }

    async fn names(
        &self,
        tenant: &TenantId,
        ids: &[UserId],
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        if let Some(rows) = self.searchable(tenant).await? {
            return Ok(ids
                .iter()
                .filter_map(|id| {
                    let at = rows
                        .binary_search_by(|row| row.id.as_str().cmp(id.as_str()))
                        .ok()?;
                    Some((id.clone(), rows[at].name.clone()))
                })
                .collect());
        }
        let among = self.db.json_texts();
        let wanted: Vec<&str> = ids.iter().map(UserId::as_str).collect();
        let rows = sqlx::query(self.db.sql(&format!(
            "SELECT id, name FROM directory_user_search WHERE tenant = ? AND id IN ({among})"
        )))
        .bind(tenant.as_str())
        .bind(serde_json::to_string(&wanted).expect("strings serialize"))
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        let found: HashMap<String, String> = rows
            .iter()
            .map(|row| (row.get("id"), row.get("name")))
            .collect();
        Ok(ids
            .iter()
            .filter_map(|id| Some((id.clone(), found.get(id.as_str())?.clone())))
            .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> String {
        search_key(&UserId::parse("u1").unwrap(), name)
    }

    #[test]
    fn a_name_is_found_by_its_pinyin_in_full_and_by_initials() {
        let key = key("张伟");
        for part in ["u1", "张伟", "zhangwei", "zw"] {
            assert!(key.split('\u{1f}').any(|p| p == part), "{part} in {key:?}");
        }
    }

    #[test]
    fn a_surname_is_found_by_each_of_its_readings() {
        // 单 is dan in most words, shan as a surname.
        let key = key("单芳");
        for part in ["danfang", "df", "shanfang", "sf"] {
            assert!(key.split('\u{1f}').any(|p| p == part), "{part} in {key:?}");
        }
        // Only the first character: 芳 has one reading, 单 elsewhere gives its common one.
        let key = super::search_key(&UserId::parse("u2").unwrap(), "王单");
        assert!(
            key.contains("wangdan") && !key.contains("wangshan"),
            "{key:?}"
        );
        // Latin names are unchanged.
        assert!(
            super::search_key(&UserId::parse("u3").unwrap(), "Emma Zhou")
                .ends_with("\u{1f}emmazhou\u{1f}ez")
        );
    }
}
