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
//! - [`recurrence`]: the rule a series of conferences repeats by, and its occurrences.
//! - [`error`]: `DomainError`, mapped to HTTP once, at the API edge.
//! - [`ports`]: the `EventStore` trait and the envelopes it stores.

/// Declares an enum whose variants hold named fields (or none) and gives it two encodings: in
/// human-readable formats (JSON: events, read models, the API) an internally tagged map, as
/// `#[serde(tag = …)]` writes it; in binary formats (snapshots: postcard, which has no field names
/// to look a tag up by) the variant's index and its fields in order. serde's derive can do only
/// one of the two; `Serializer::is_human_readable` tells them apart, as `uuid` and `chrono` do.
macro_rules! tagged_in_text {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident (tag = $tag:literal) {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident $({ $($field:ident : $type:ty),* $(,)? })?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                $variant $({ $($field: $type),* })?
            ),*
        }

        const _: () = {
            #[derive(serde::Serialize, serde::Deserialize)]
            #[serde(tag = $tag, rename_all = "snake_case")]
            enum Tagged {
                $($variant $({ $($field: $type),* })?),*
            }

            #[derive(serde::Serialize, serde::Deserialize)]
            enum Indexed {
                $($variant $({ $($field: $type),* })?),*
            }

            impl From<$name> for Tagged {
                fn from(value: $name) -> Self {
                    match value {
                        $($name::$variant $({ $($field),* })? => Self::$variant $({ $($field),* })?),*
                    }
                }
            }

            impl From<$name> for Indexed {
                fn from(value: $name) -> Self {
                    match value {
                        $($name::$variant $({ $($field),* })? => Self::$variant $({ $($field),* })?),*
                    }
                }
            }

            impl From<Tagged> for $name {
                fn from(value: Tagged) -> Self {
                    match value {
                        $(Tagged::$variant $({ $($field),* })? => Self::$variant $({ $($field),* })?),*
                    }
                }
            }

            impl From<Indexed> for $name {
                fn from(value: Indexed) -> Self {
                    match value {
                        $(Indexed::$variant $({ $($field),* })? => Self::$variant $({ $($field),* })?),*
                    }
                }
            }

            impl serde::Serialize for $name {
                fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    if serializer.is_human_readable() {
                        Tagged::from(self.clone()).serialize(serializer)
                    } else {
                        Indexed::from(self.clone()).serialize(serializer)
                    }
                }
            }

            impl<'de> serde::Deserialize<'de> for $name {
                fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                    if deserializer.is_human_readable() {
                        Tagged::deserialize(deserializer).map(Self::from)
                    } else {
                        Indexed::deserialize(deserializer).map(Self::from)
                    }
                }
            }
        };
    };
}

pub mod command;
pub mod conference;
pub mod error;
pub mod event;
mod free_lines;
pub mod pool;
pub mod ports;
pub mod recurrence;
pub mod suggest;
pub mod types;

pub use command::{
    ChatFacts, Command, ConferenceChanges, DEFAULT_MINUTES, EndSpec, MeetingFacts, OnConflict,
    ScheduleConference, ScheduleSeries, SeriesScope,
};
pub use error::{DomainError, SeriesConflict};
pub use event::{EVENT_SCHEMA_VERSION, Event};
pub use pool::{Conference, Line, LinePool, Provisioning};
pub use recurrence::{Frequency, Recurrence, RecurrenceEnd, SeriesId, SeriesLink};
pub use types::*;
