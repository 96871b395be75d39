//! The domain's one error enum. The API crates map each variant to a status and a localized
//! problem+json body in one place (`meetline-api-common`).
//!
//! The seed's messages are the business rules' own wording, kept here: for a bad duration, an
//! invalid field and no free line, `Display` is the seed's Chinese text exactly (Chinese is the
//! product's default language); the other variants display in English, for logs.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::{ConferenceId, Status, TimeSlot};

/// The seed's exact text for a bad duration (note the full-width colon and the space).
pub const DURATION_ZH: &str = "无效的输入参数： duration";
/// API.md's English for it.
pub const DURATION_EN: &str = "Invalid input parameter: duration";
/// The seed's exact text when no line is free.
pub const NO_FREE_LINE_ZH: &str = "找不到空闲线路，请检查线路维护是否正常，或者重新选择会议时间";
/// API.md's English for it.
pub const NO_FREE_LINE_EN: &str =
    "No free line: check that line maintenance is normal, or choose another time";

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum DomainError {
    /// The end is not after the start, or more than 24 h later.
    #[error("{DURATION_ZH}")]
    InvalidDuration,
    /// A field is invalid; `field` names it (`attendees`, `start`, `subject`, …).
    #[error("无效的输入参数： {field}")]
    InvalidInput { field: String },
    /// No line is free for `slot`, the time asked for. `suggestions`: the nearest free times
    /// of the same length, filled in when the refusal is answered (`LinePool::suggestions`).
    #[error("{NO_FREE_LINE_ZH}")]
    NoFreeLine {
        slot: TimeSlot,
        #[serde(default)]
        suggestions: Vec<TimeSlot>,
    },
    /// Some occurrences of a series found no free line (and the series was to be booked whole):
    /// nothing is booked. Answered as `no_free_line`, listing them.
    #[error("{NO_FREE_LINE_ZH}")]
    SeriesUnbookable { conflicts: Vec<SeriesConflict> },
    /// The action is not allowed in the state of the thing it acts on.
    #[error("not allowed: {0}")]
    InvalidState(Conflict),
    /// No such conference/line in this tenant, or the actor may not know it exists.
    #[error("not found")]
    NotFound,
    /// The actor knows the thing but may not do this to it.
    #[error("forbidden")]
    Forbidden,
    /// The meeting already has an active video conference.
    #[error("the meeting already has an active conference {conference_id}")]
    ConferenceExists { conference_id: ConferenceId },
    /// Every candidate number the command brought is held by another conference of the tenant
    /// (practically never: the caller draws them at random; retrying draws new ones).
    #[error("every candidate conference number is taken")]
    NumbersExhausted,
    /// `If-Match` named another version.
    #[error("version mismatch: expected {expected}, actual {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
}

impl DomainError {
    /// No line is free for `slot` (the suggestions are filled in when the refusal is answered).
    pub fn no_free_line(slot: TimeSlot) -> Self {
        Self::NoFreeLine {
            slot,
            suggestions: Vec::new(),
        }
    }

    pub fn invalid_input(field: &str) -> Self {
        Self::InvalidInput {
            field: field.to_owned(),
        }
    }

    /// Not allowed while the conference is in `status`.
    pub fn invalid_state(status: Status) -> Self {
        Self::InvalidState(Conflict::Conference(status))
    }
}

/// An occurrence of a series no line could take, and the nearest free times of its length
/// (filled in when the refusal is answered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesConflict {
    pub slot: TimeSlot,
    #[serde(default)]
    pub suggestions: Vec<TimeSlot>,
}

/// What stands in the way of an action (`DomainError::InvalidState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conflict {
    /// The conference is in this status.
    Conference(Status),
    /// The line still holds conferences that have not ended (it cannot be removed).
    LineHoldsConferences,
    /// A conference with this id exists already.
    ConferenceExists,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Conference(status) => write!(f, "the conference is {}", status.as_str()),
            Self::LineHoldsConferences => f.write_str("the line holds conferences"),
            Self::ConferenceExists => f.write_str("the conference exists"),
        }
    }
}
