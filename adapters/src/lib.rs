//! Outbound adapters: the embedded SQLite event store and directory, JWT auth, and the builtin
//! provider's link signing.
//!
//! # Layout
//! - [`sqlite`]: `Database` (one writer connection, many readers) and `SqliteEventStore`.
//! - [`postgres`]: `PgEventStore` — gap-free global order under concurrent writers, LISTEN/NOTIFY.
//! - [`testing`]: a fresh PostgreSQL database per test.
//! - [`directory`]: the `Directory` port and `SqliteDirectory`.
//! - [`auth`]: HS256 bearer tokens (`JwtKeys`).
//! - [`links`]: Jitsi Meet JWT links for the builtin provider.

pub mod auth;
pub mod directory;
pub mod links;
pub mod postgres;
pub mod sqlite;
pub mod testing;
