//! The command side: the per-pool writer with group commit ([`service`]) and the command API's
//! axum router ([`routes`]).
//!
//! # Layout
//! - [`service`]: `CommandService` — one writer task per tenant pool, batches, idempotency,
//!   conflict retries with exponential backoff.
//! - [`draws`]: the random room nonces and conference numbers commands carry (CSPRNG).
//! - [`provisioning`]: makes external providers (whatever the registry builds for a line: Zoom,
//!   Tencent Meeting) host what the pool decided, exactly once.
//! - [`timer`]: records start and end events when their time comes (exactly once, any node count).
//! - [`routes`]: `router()` for every command row of API.md; DTO → domain command.

pub mod draws;
pub mod provisioning;
pub mod routes;
pub mod service;
pub mod timer;

pub use routes::{CommandApiDoc, CommandState, router};
pub use service::{CommandService, Outcome, ServiceConfig, Submission};
