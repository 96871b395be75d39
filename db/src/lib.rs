//! The relational database that holds read models and the directory (and, for the embedded
//! deployment, the events): one SQLite file, or a PostgreSQL database.
//!
//! Code above this module writes one SQL text with `?` placeholders and runs it on either engine
//! through sqlx's `Any` driver; [`Database::sql`] rewrites the placeholders to `$1, $2, …` for
//! PostgreSQL. Only the schemas differ per engine (types, collation).
//!
//! SQLite allows one writer at a time. Rather than let connections race for the write lock, a
//! SQLite database has exactly **one writer connection** (a pool of size 1) through which every
//! write goes, and a pool of readers that WAL mode never blocks (decision 0005). On PostgreSQL
//! both handles are the same pool.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use meetline_domain::ports::StoreError;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AssertSqlSafe, Executor};
use uuid::Uuid;

/// Which engine a [`Database`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Database {
    pub writer: AnyPool,
    pub reader: AnyPool,
    pub backend: Backend,
}

/// Pragmas for SQLite's one writer connection, besides [`SQLITE_PRAGMAS`].
const SQLITE_WRITER_PRAGMAS: &str = "PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;";

/// Pragmas for SQLite's reader connections, besides [`SQLITE_PRAGMAS`].
const SQLITE_READER_PRAGMAS: &str = "PRAGMA mmap_size = 67108864;";

/// Pragmas for every SQLite connection: WAL, `synchronous=FULL` (an acknowledged write survives
/// a power cut), a generous busy timeout, foreign keys.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
    PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;";

impl Database {
    /// Opens (creating if needed) the SQLite file at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub async fn open_sqlite(path: &Path) -> Result<Self, sqlx::Error> {
        install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        // Every connection gets `SQLITE_PRAGMAS`, then those of its role.
        let options = |role: &'static str| {
            AnyPoolOptions::new()
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                // A connection to a local file does not go stale: no ping (a hand-over to the
                // connection's worker thread) before every statement.
                .test_before_acquire(false)
                .after_connect(move |connection, _| {
                    Box::pin(async move {
                        connection.execute(SQLITE_PRAGMAS).await?;
                        connection.execute(role).await?;
                        Ok(())
                    })
                })
        };
        // The one writer gets a large page cache (64 MiB): a projection batch or a rebuild
        // touches pages all over the read models' indexes, and a cache smaller than a batch's
        // pages spills them to the WAL mid-transaction. Statement journals (an upsert's) stay in
        // memory.
        let writer = options(SQLITE_WRITER_PRAGMAS)
            .max_connections(1)
            .connect(&url)
            .await?;
        // Readers map up to 64 MiB of the file: listings touch pages all over the indexes, and
        // each page missed in SQLite's own cache is otherwise a read(2) out of the kernel's.
        // (A larger mapping is faster still, but each connection's mapping counts again in the
        // process's resident memory; a larger page cache instead gained nothing.)
        let reader = options(SQLITE_READER_PRAGMAS)
            .max_connections(8)
            .connect(&url)
            .await?;
        Ok(Self {
            writer,
            reader,
            backend: Backend::Sqlite,
        })
    }

    /// Connects to a PostgreSQL database.
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn connect_postgres(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            backend: Backend::Postgres,
        })
    }

    /// A fresh SQLite database in a new file under the system's temporary folder (tests).
    ///
    /// # Errors
    /// When the file cannot be created.
    pub async fn temporary() -> Result<Self, sqlx::Error> {
        let folder = std::env::temp_dir().join(format!("meetline-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&folder).map_err(sqlx::Error::Io)?;
        Self::open_sqlite(&folder.join("meetline.db")).await
    }

    /// `text` with its `?` / `?N` placeholders in this engine's syntax.
    pub fn sql(&self, text: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(match self.backend {
            Backend::Sqlite => text.to_owned(),
            Backend::Postgres => numbered_placeholders(text),
        })
    }

    /// A subquery of the text values of one bound JSON array of strings (`… IN ({})`): a set of
    /// any size as a single parameter.
    pub fn json_texts(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "SELECT value FROM json_each(?)",
            Backend::Postgres => "SELECT json_array_elements_text(?::json)",
        }
    }

    /// Runs a schema script: `sqlite` or `postgres`, whichever this engine is.
    ///
    /// # Errors
    /// When a statement fails.
    pub async fn migrate(&self, sqlite: &str, postgres: &str) -> Result<(), sqlx::Error> {
        let script = match self.backend {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        };
        sqlx::raw_sql(AssertSqlSafe(script.to_owned()))
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

/// Rewrites `?` to `$1, $2, …` and `?N` to `$N`, leaving quoted literals and identifiers alone.
fn numbered_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut next = 0;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(open), c) if c == open => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                        out.push(digit);
                    }
                } else {
                    next += 1;
                    out.push_str(&next.to_string());
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// Timestamps are stored as fixed-width RFC 3339 text (UTC, microseconds), which sorts
/// chronologically as text on both engines.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// # Errors
/// `StoreError::Corrupt` when the text is not RFC 3339.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| StoreError::Corrupt(format!("timestamp {text:?}: {error}")))
}

pub fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::numbered_placeholders;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered_placeholders(r#"SELECT "end" FROM t WHERE a = ? AND b LIKE '?%' AND c = ?"#),
            r#"SELECT "end" FROM t WHERE a = $1 AND b LIKE '?%' AND c = $2"#
        );
        assert_eq!(
            numbered_placeholders("x <= ?1 AND y = ?2 AND z > ?1"),
            "x <= $1 AND y = $2 AND z > $1"
        );
    }

    /// The bundled SQLite is built without `SQLITE_ENABLE_MEMORY_MANAGEMENT` (the workspace's
    /// `.cargo/config.toml`): with it, every connection of the process shares one page cache
    /// behind one global mutex (decision 0022). A build that lost the flag fails here.
    #[test]
    fn each_sqlite_connection_has_a_page_cache_of_its_own() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let db = super::Database::temporary().await.unwrap();
            let shared: i64 =
                sqlx::query_scalar("SELECT sqlite_compileoption_used('ENABLE_MEMORY_MANAGEMENT')")
                    .fetch_one(&db.reader)
                    .await
                    .unwrap();
            assert_eq!(
                shared, 0,
                "SQLite was built with SQLITE_ENABLE_MEMORY_MANAGEMENT"
            );
            // The query itself works: an option it was built with answers 1.
            let threadsafe: i64 =
                sqlx::query_scalar("SELECT sqlite_compileoption_used('THREADSAFE=1')")
                    .fetch_one(&db.reader)
                    .await
                    .unwrap();
            assert_eq!(threadsafe, 1);
        });
    }
}
