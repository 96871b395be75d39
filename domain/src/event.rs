//! Events: what happened, past tense. **A persisted contract**: changing a shape needs a new
//! schema version and an upcaster in [`Event::from_stored`].
//!
//! Schema history:
//! - 1: the first shapes.
//! - 2: `ConferenceEdited.line_changed` is `links_changed` — what it always meant (the edit gave
//!   the conference new links), and the name the conference and its view already used.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::recurrence::SeriesLink;
use crate::types::{
    ConferenceId, ConferenceNumber, LineId, LineName, Mode, ProviderKind, RelatedLink, RoomName,
    Source, Subject, TimeSlot, TimeZoneName, UserId,
};

/// The schema version written with every new event.
pub const EVENT_SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    LineAdded {
        line: LineId,
        name: LineName,
        provider: ProviderKind,
    },
    LineRenamed {
        line: LineId,
        name: LineName,
    },
    LineMaintenanceStarted {
        line: LineId,
    },
    LineReturnedToService {
        line: LineId,
    },
    LineRemoved {
        line: LineId,
    },
    ConferenceScheduled {
        conference: ConferenceId,
        number: ConferenceNumber,
        mode: Mode,
        subject: Subject,
        slot: TimeSlot,
        timezone: TimeZoneName,
        host: UserId,
        creator: UserId,
        attendees: Vec<UserId>,
        related_link: Option<RelatedLink>,
        source: Source,
        line: LineId,
        room: RoomName,
        at: DateTime<Utc>,
        /// The series it is an occurrence of; absent for a conference of its own (and in every
        /// event recorded before series existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        series: Option<Box<SeriesLink>>,
    },
    /// The editable fields as they are after the edit. `links_changed`: the edit gave the
    /// conference new links (another line, or a new room on it).
    ConferenceEdited {
        conference: ConferenceId,
        subject: Subject,
        slot: TimeSlot,
        timezone: TimeZoneName,
        attendees: Vec<UserId>,
        related_link: Option<RelatedLink>,
        line: LineId,
        room: RoomName,
        links_changed: bool,
    },
    AttendeesInvited {
        conference: ConferenceId,
        attendees: Vec<UserId>,
    },
    ParticipantJoined {
        conference: ConferenceId,
        user: UserId,
    },
    ConferenceCancelled {
        conference: ConferenceId,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    ConferenceEndedEarly {
        conference: ConferenceId,
        at: DateTime<Utc>,
    },
    ConferenceStarted {
        conference: ConferenceId,
        at: DateTime<Utc>,
    },
    ConferenceEnded {
        conference: ConferenceId,
        at: DateTime<Utc>,
    },
    /// A line went into maintenance and this conference moved to a free line (new links).
    ConferenceMovedToLine {
        conference: ConferenceId,
        from: LineId,
        to: LineId,
        room: RoomName,
    },
    /// A line went into maintenance and no free line could take this conference.
    ConferenceStranded {
        conference: ConferenceId,
        line: LineId,
    },
    /// The line's provider created the meeting (or moved it along with the conference).
    ConferenceProvisioned {
        conference: ConferenceId,
        line: LineId,
        meeting_id: String,
        join_url: String,
        password: Option<String>,
        /// The number people dial or type to join (Tencent Meeting's nine-digit code); absent
        /// in events recorded before providers reported it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meeting_code: Option<String>,
    },
    /// The provider could not host the conference after every retry: the line is released and
    /// the conference cannot take place.
    ProvisioningFailed {
        conference: ConferenceId,
        line: LineId,
        reason: String,
        at: DateTime<Utc>,
    },
    /// The provider reports the meeting really started (its webhook), at that time.
    ProviderMeetingStarted {
        conference: ConferenceId,
        at: DateTime<Utc>,
    },
    /// The provider reports the meeting really ended, at that time.
    ProviderMeetingEnded {
        conference: ConferenceId,
        at: DateTime<Utc>,
    },
    /// Demand no line could serve: a schedule (or, `edited`, an edit of that conference) for
    /// `slot` was refused for want of a free line, at `at`. Changes no state; it is the record
    /// the operators' counts are built from, and it survives a rebuild. Not tagged with the
    /// edited conference: a refusal is not part of its history and leaves its version alone.
    DemandRefused {
        slot: TimeSlot,
        edited: Option<ConferenceId>,
        at: DateTime<Utc>,
    },
}

/// Rewrites an event's JSON of schema `from` into schema `from + 1`.
fn upcast(from: u32, value: &mut serde_json::Value) {
    if from == 1
        && value["type"] == "ConferenceEdited"
        && let Some(object) = value.as_object_mut()
        && let Some(changed) = object.remove("line_changed")
    {
        object.insert("links_changed".to_owned(), changed);
    }
}

/// Why a stored event could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("cannot read stored event {event_type} (schema {schema_version}): {source}")]
pub struct EventDecodeError {
    pub event_type: String,
    pub schema_version: u32,
    #[source]
    pub source: serde_json::Error,
}

impl Event {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::LineAdded { .. } => "LineAdded",
            Self::LineRenamed { .. } => "LineRenamed",
            Self::LineMaintenanceStarted { .. } => "LineMaintenanceStarted",
            Self::LineReturnedToService { .. } => "LineReturnedToService",
            Self::LineRemoved { .. } => "LineRemoved",
            Self::ConferenceScheduled { .. } => "ConferenceScheduled",
            Self::ConferenceEdited { .. } => "ConferenceEdited",
            Self::AttendeesInvited { .. } => "AttendeesInvited",
            Self::ParticipantJoined { .. } => "ParticipantJoined",
            Self::ConferenceCancelled { .. } => "ConferenceCancelled",
            Self::ConferenceEndedEarly { .. } => "ConferenceEndedEarly",
            Self::ConferenceStarted { .. } => "ConferenceStarted",
            Self::ConferenceEnded { .. } => "ConferenceEnded",
            Self::ConferenceMovedToLine { .. } => "ConferenceMovedToLine",
            Self::ConferenceStranded { .. } => "ConferenceStranded",
            Self::ConferenceProvisioned { .. } => "ConferenceProvisioned",
            Self::ProvisioningFailed { .. } => "ProvisioningFailed",
            Self::ProviderMeetingStarted { .. } => "ProviderMeetingStarted",
            Self::ProviderMeetingEnded { .. } => "ProviderMeetingEnded",
            Self::DemandRefused { .. } => "DemandRefused",
        }
    }

    /// The conference this event is about: the tag that makes one conference's history one
    /// indexed read.
    pub fn conference(&self) -> Option<ConferenceId> {
        match self {
            Self::ConferenceScheduled { conference, .. }
            | Self::ConferenceEdited { conference, .. }
            | Self::AttendeesInvited { conference, .. }
            | Self::ParticipantJoined { conference, .. }
            | Self::ConferenceCancelled { conference, .. }
            | Self::ConferenceEndedEarly { conference, .. }
            | Self::ConferenceStarted { conference, .. }
            | Self::ConferenceEnded { conference, .. }
            | Self::ConferenceMovedToLine { conference, .. }
            | Self::ConferenceStranded { conference, .. }
            | Self::ConferenceProvisioned { conference, .. }
            | Self::ProvisioningFailed { conference, .. }
            | Self::ProviderMeetingStarted { conference, .. }
            | Self::ProviderMeetingEnded { conference, .. } => Some(*conference),
            _ => None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }

    /// Reads a stored event of schema `schema_version`, upcasting an older shape to the current
    /// one first (each upcaster rewrites the JSON of one version into the next).
    ///
    /// # Errors
    /// `EventDecodeError` when the payload does not decode (a corrupt row, an unknown type, or a
    /// schema newer than this code knows).
    pub fn from_stored(
        event_type: &str,
        schema_version: u32,
        data: &str,
    ) -> Result<Self, EventDecodeError> {
        let failed = |source| EventDecodeError {
            event_type: event_type.to_owned(),
            schema_version,
            source,
        };
        if schema_version == EVENT_SCHEMA_VERSION {
            return serde_json::from_str(data).map_err(failed);
        }
        if schema_version == 0 || schema_version > EVENT_SCHEMA_VERSION {
            return Err(failed(serde::de::Error::custom(format!(
                "schema {schema_version} is not one this version of meetline reads (1 to {EVENT_SCHEMA_VERSION})"
            ))));
        }
        let mut value: serde_json::Value = serde_json::from_str(data).map_err(failed)?;
        for from in schema_version..EVENT_SCHEMA_VERSION {
            upcast(from, &mut value);
        }
        serde_json::from_value(value).map_err(failed)
    }
}
