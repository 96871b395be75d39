//! The domain's one error enum. The API crates map each variant to a status and a localized
//! problem+json body in one place (`meetline-api-common`).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::{ConferenceId, Status};

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum DomainError {
    /// The end is not after the start, or more than 24 h later (seed: `无效的输入参数： duration`).
    #[error("invalid input parameter: duration")]
    InvalidDuration,
    /// A field is invalid; `field` names it (`attendees`, `start`, `subject`, …).
    #[error("invalid input parameter: {field}")]
    InvalidInput { field: String },
    /// No line is free for the requested time (the seed's 找不到空闲线路… message).
    #[error("no free line for the requested time")]
    NoFreeLine,
    /// The action is not allowed in the conference's status, or on the line in its state.
    #[error("not allowed while {status}")]
    InvalidState { status: String },
    /// No such conference/line in this tenant, or the actor may not know it exists.
    #[error("not found")]
    NotFound,
    /// The actor knows the thing but may not do this to it.
    #[error("forbidden")]
    Forbidden,
    /// The meeting already has an active video conference.
    #[error("the meeting already has an active conference {conference_id}")]
    ConferenceExists { conference_id: ConferenceId },
    /// `If-Match` named another version.
    #[error("version mismatch: expected {expected}, actual {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
}

impl DomainError {
    pub fn invalid_input(field: &str) -> Self {
        Self::InvalidInput {
            field: field.to_owned(),
        }
    }

    pub fn invalid_state(status: Status) -> Self {
        Self::InvalidState {
            status: status.as_str().to_owned(),
        }
    }
}
