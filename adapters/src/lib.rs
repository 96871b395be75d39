//! Outbound adapters: the embedded SQLite event store and directory, JWT auth, and the builtin
//! provider's link signing.
//!
//! # Layout
//! - [`db`]: `Database` — SQLite (one writer connection, many readers) or PostgreSQL through
//!   sqlx's `Any` driver, one SQL text for both.
//! - [`sqlite`]: `SqliteEventStore`, the embedded event store.
//! - [`postgres`]: `PgEventStore` — gap-free global order under concurrent writers, LISTEN/NOTIFY.
//! - `group_commit` (private): the committer both SQL stores share, which writes the appends of
//!   all waiting streams in one transaction (decision 0010).
//! - `esdb` (feature `esdb`, on by default): `EsdbEventStore` on EventStoreDB / KurrentDB.
//! - [`secrets`]: generated secrets shared by all nodes of a PostgreSQL deployment.
//! - [`net`]: the outbound HTTP client (no redirects), the check for operator URLs, and what
//!   every provider adapter's calls share: `RetryPolicy`, `Retry-After`, percent-encoding.
//! - [`zoom`]: `ZoomProvider`, the video provider port on Zoom's REST API (S2S OAuth).
//! - [`tencent`]: `TencentProvider`, the port on Tencent Meeting's REST API (signed requests).
//! - [`testing`]: a fresh PostgreSQL database per test.
//! - [`directory`]: the `Directory` port and `SqlDirectory`.
//! - [`auth`]: bearer tokens: HS256 (`meetline token`) and the OA identity provider's
//!   RS256/ES256/EdDSA tokens from a JWKS, with issuer, audience, lifetime and tenant checks.
//! - [`line_settings`]: provider account settings per line, encrypted at rest.
//! - [`links`]: Jitsi Meet JWT links for the builtin provider.
//! - [`providers`]: `Providers`, the provider registry port: a line's provider from its
//!   settings, its links, its webhooks.

pub mod auth;
pub use meetline_db as db;
pub mod directory;
mod directory_search;
#[cfg(feature = "esdb")]
pub mod esdb;
mod group_commit;
pub mod line_settings;
pub mod links;
pub mod net;
pub mod postgres;
pub mod providers;
pub mod secrets;
pub mod sqlite;
pub mod tencent;
pub mod testing;
pub mod zoom;

/// Checks that the `index`-th event of a stream page read after `after_version` is the version
/// that follows (versions are dense: a page out of order or with a gap is never used).
pub(crate) fn expect_next_version(
    stream: &str,
    after_version: u64,
    index: usize,
    version: u64,
) -> Result<(), meetline_domain::ports::StoreError> {
    let expected = after_version + index as u64 + 1;
    if version == expected {
        Ok(())
    } else {
        Err(meetline_domain::ports::StoreError::Corrupt(format!(
            "{stream}: version {version} where {expected} was expected"
        )))
    }
}

/// The slot of a stored `DemandRefused` event's payload, of schema `schema` (a command's record
/// of its refusal).
pub(crate) fn refused_slot(
    data: &str,
    schema: Option<i64>,
) -> Result<meetline_domain::types::TimeSlot, meetline_domain::ports::StoreError> {
    use meetline_domain::event::Event;
    let schema = schema
        .and_then(|schema| u32::try_from(schema).ok())
        .unwrap_or(meetline_domain::event::EVENT_SCHEMA_VERSION);
    match Event::from_stored("DemandRefused", schema, data) {
        Ok(Event::DemandRefused { slot, .. }) => Ok(slot),
        Ok(other) => Err(meetline_domain::ports::StoreError::Corrupt(format!(
            "a DemandRefused row holds a {}",
            other.type_name()
        ))),
        Err(error) => Err(meetline_domain::ports::StoreError::Corrupt(
            error.to_string(),
        )),
    }
}
