//! The query side's HTTP API: listings over the read models, one conference's view, its history
//! and as-of replays from the event store, `.ics` files, lines and ops summaries, metrics and
//! health.
//!
//! # Layout
//! - [`routes`]: `router()` for every query row of API.md; `X-Min-Position` read-your-writes.
//! - [`ics`]: iCalendar rendering.
//! - [`directory`]: what a signed-in user reads from the directory (`/api/v1/me`, the tenant's
//!   users, their meetings and chats); served by every node.

pub mod directory;
pub mod ics;
pub mod routes;

pub use routes::{QueryApiDoc, QueryState, router};
