//! meetline's domain: value types, commands, events, the per-tenant [`LinePool`] aggregate and
//! the ports (traits) adapters implement.
//!
//! **Architecture Invariant:** this crate does no I/O, reads no clock and draws no randomness:
//! `now` and random room nonces are arguments. Adding `sqlx` or `tokio` here is a design change.
//!
//! # Layout
//! - [`types`]: identifiers and validated value types (`TimeSlot`, `Subject`, `Status`, …).
//! - [`command`] / [`event`]: what is asked and what happened (events are a persisted contract).
//! - [`conference`]: a conference and the one fold of its events (pool, projections, replays).
//! - [`pool`]: the `LinePool` aggregate — `handle` decides, `apply` folds.
//! - [`error`]: `DomainError`, mapped to HTTP once, at the API edge.
//! - [`ports`]: the `EventStore` trait and the envelopes it stores.

pub mod command;
pub mod conference;
pub mod error;
pub mod event;
mod free_lines;
pub mod pool;
pub mod ports;
pub mod types;

pub use command::{
    ChatFacts, Command, ConferenceChanges, DEFAULT_MINUTES, EndSpec, MeetingFacts,
    ScheduleConference,
};
pub use error::DomainError;
pub use event::{EVENT_SCHEMA_VERSION, Event};
pub use pool::{Conference, Line, LinePool, Provisioning};
pub use types::*;
