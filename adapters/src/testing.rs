//! Test support: a fresh PostgreSQL database per test, dropped afterwards.
//!
//! The server is `MEETLINE_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`). Outside CI a
//! test skips when no server answers — loudly: it prints why and adds its name to the ledger
//! `MEETLINE_SKIP_LEDGER` names, which `scripts/test` reads back in its closing summary. With `CI`
//! set (to anything) that is a failure, so CI never passes by skipping.

use std::time::Duration;

use uuid::Uuid;

pub fn server_url() -> String {
    std::env::var("MEETLINE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Adds the running test's name and `why` to the skip ledger (`MEETLINE_SKIP_LEDGER`), so a
/// green run that skipped something says so at its end.
pub fn note_skip(why: &str) {
    use std::io::Write;
    let Some(ledger) = std::env::var_os("MEETLINE_SKIP_LEDGER") else {
        return;
    };
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger)
    {
        let _ = writeln!(file, "{test}: {why}");
    }
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// Creates `meetline_test_<random>`; `None` (with a printed reason) when no server answers
    /// outside CI.
    ///
    /// # Panics
    /// Under `CI=true` when the server cannot be reached.
    pub async fn create() -> Option<Self> {
        let server = server_url();
        let admin = match tokio::time::timeout(
            Duration::from_secs(5),
            crate::postgres::connect(&format!("{server}/postgres"), 1),
        )
        .await
        {
            Ok(Ok(pool)) => pool,
            failure => {
                let reason = match failure {
                    Ok(Err(error)) => error.to_string(),
                    _ => "timed out".to_owned(),
                };
                if std::env::var("CI").is_ok_and(|ci| !ci.is_empty()) {
                    panic!("PostgreSQL at {server} is required in CI: {reason}");
                }
                eprintln!(
                    "SKIPPED: no PostgreSQL at {server} ({reason}); set MEETLINE_TEST_PG or start the server"
                );
                note_skip(&format!("needs PostgreSQL at {server}"));
                return None;
            }
        };
        let name = format!("meetline_test_{}", Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("CREATE DATABASE");
        admin.close().await;
        Some(Self {
            url: format!("{server}/{name}"),
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = server_url();
        let name = self.name.clone();
        // Drop runs outside async code: use a private runtime on a plain thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let admin = crate::postgres::connect(&format!("{server}/postgres"), 1)
                    .await
                    .ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
