//! Outbound adapters: the embedded SQLite event store and directory, JWT auth, and the builtin
//! provider's link signing.
//!
//! # Layout
//! - [`sqlite`]: `Database` (one writer connection, many readers) and `SqliteEventStore`.
//! - [`directory`]: the `Directory` port and `SqliteDirectory`.
//! - [`auth`]: HS256 bearer tokens (`JwtKeys`).
//! - [`links`]: Jitsi Meet JWT links for the builtin provider.

pub mod auth;
pub mod directory;
pub mod links;
pub mod sqlite;
