//! What both HTTP APIs share: the problem+json error type and its localization, the caller
//! extractors, the conference DTO, metrics and the clock.
//!
//! # Layout
//! - [`error`]: `ApiError` → status + localized problem+json, in one place; `ApiJson`/`ApiQuery`/`ApiPath`.
//! - [`auth`]: `Caller` / `AdminCaller` extractors (bearer header or cookie).
//! - [`dto`]: `ConferenceDto`, the conference view of API.md, and link rendering.
//! - [`metrics`]: the Prometheus registry.
//! - [`limit`]: per-caller rate limits (429 `rate_limited`) and limits on failed attempts.
//! - [`security`]: CSRF guard and browser hardening headers; the session cookie's name and flags.
//! - [`fields`]: a request's RFC 3339 times (422 naming the field), a conference's `ETag`.
//! - [`request_id`]: `X-Request-Id` per request, the events' correlation id.
//!
//! **Architecture Invariant:** only the API crates know JSON request and response shapes; they
//! turn DTOs into domain commands and views into DTOs.

pub mod auth;
pub mod dto;
pub mod error;
pub mod fields;
pub mod limit;
pub mod metrics;
pub mod request_id;
pub mod security;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use meetline_domain::ports::TokenVerifier;

pub use auth::{AdminCaller, Caller};
pub use dto::{ConferenceDto, LinkRenderer};
pub use error::{ApiBytes, ApiError, ApiJson, ApiPath, ApiQuery, Lang};
pub use limit::{FailedAttempts, RateLimits, ServerLimit};
pub use metrics::Metrics;

/// Where "now" comes from: the system clock, or a fixed instant (benchmarks, tests).
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// Whole seconds: conference times and event records need no finer grain, and round
    /// numbers keep responses and calendar files tidy.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now().trunc_subsecs(0),
            Self::Fixed(at) => *at,
        }
    }
}

/// What every handler may need, shared by both routers' states (`FromRef`).
#[derive(Debug, Clone)]
pub struct ApiContext {
    /// Verifies bearer tokens (the binary wires the signers it trusts).
    pub keys: Arc<dyn TokenVerifier>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub links: Arc<LinkRenderer>,
    /// Per-caller request limits (`None`: unlimited).
    pub limits: Option<Arc<RateLimits>>,
    /// How browsers reach the server: the session cookie's name and flags, our origin.
    pub web: Arc<security::WebSecurity>,
}
