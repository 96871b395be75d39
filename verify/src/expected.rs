//! The **expected read model**: what every conference's row should say, folded from the raw
//! events by code written apart from the projector's `ConferenceView::fold` — plain fields, sets
//! for people — so a test or a benchmark can compare the projector's rows with something the
//! projector did not compute.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use meetline_domain::event::Event;
use meetline_domain::ports::RecordedEvent;
use meetline_domain::types::{ConferenceId, Mode};

/// One conference as its read-model row should show it (status as stored, before the clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedConference {
    pub number: String,
    pub subject: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub line: String,
    pub host: String,
    pub creator: String,
    pub attendees: BTreeSet<String>,
    pub joined: BTreeSet<String>,
    /// `not_started`, `in_progress`, `ended`, `manually_ended` or `cancelled`.
    pub status: &'static str,
    /// Events about this conference so far.
    pub version: u64,
    pub ended_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub stranded: bool,
}

/// Every conference of the log, by pool stream and id.
pub fn expected_conferences(
    log: &[RecordedEvent],
) -> HashMap<(String, ConferenceId), ExpectedConference> {
    let mut rows: HashMap<(String, ConferenceId), ExpectedConference> = HashMap::new();
    let text = |value: &dyn std::fmt::Display| value.to_string();
    for recorded in log {
        let Some(id) = recorded.event.conference() else {
            continue;
        };
        let key = (recorded.stream.clone(), id);
        if let Event::ConferenceScheduled {
            number,
            mode,
            subject,
            slot,
            host,
            creator,
            attendees,
            line,
            ..
        } = &recorded.event
        {
            rows.insert(
                key.clone(),
                ExpectedConference {
                    number: text(number),
                    subject: subject.as_str().to_owned(),
                    start: slot.start,
                    end: slot.end,
                    line: text(line),
                    host: text(host),
                    creator: text(creator),
                    attendees: attendees.iter().map(|user| text(user)).collect(),
                    joined: BTreeSet::new(),
                    status: if *mode == Mode::Quick {
                        "in_progress"
                    } else {
                        "not_started"
                    },
                    version: 0,
                    ended_at: None,
                    cancelled_at: None,
                    stranded: false,
                },
            );
        }
        let Some(row) = rows.get_mut(&key) else {
            continue;
        };
        row.version += 1;
        match &recorded.event {
            Event::ConferenceEdited {
                subject,
                slot,
                attendees,
                line,
                ..
            } => {
                row.subject = subject.as_str().to_owned();
                row.start = slot.start;
                row.end = slot.end;
                row.attendees = attendees.iter().map(|user| text(user)).collect();
                // An edit that puts it on another line gives it a line again.
                let line = text(line);
                if line != row.line {
                    row.stranded = false;
                }
                row.line = line;
            }
            Event::AttendeesInvited { attendees, .. } => {
                row.attendees
                    .extend(attendees.iter().map(|user| text(user)));
            }
            Event::ParticipantJoined { user, .. } => {
                row.joined.insert(text(user));
            }
            Event::ConferenceCancelled { at, .. } | Event::ProvisioningFailed { at, .. } => {
                row.status = "cancelled";
                row.cancelled_at = Some(*at);
            }
            Event::ConferenceEndedEarly { at, .. } => {
                row.status = "manually_ended";
                row.ended_at = Some(*at);
            }
            Event::ConferenceStarted { .. } => row.status = "in_progress",
            Event::ConferenceEnded { at, .. } => {
                row.status = "ended";
                row.ended_at = Some(*at);
            }
            Event::ConferenceMovedToLine { to, .. } => {
                row.line = text(to);
                row.stranded = false;
            }
            Event::ConferenceStranded { .. } => row.stranded = true,
            _ => {}
        }
    }
    rows
}

impl ExpectedConference {
    /// The fields in which `actual` (a row as some read model shows it) differs from this
    /// expected row: `(field, actual, expected)`, in declaration order; empty when they agree.
    /// (Destructured in full, so a field added to the struct cannot go uncompared.)
    pub fn differences(&self, actual: &ExpectedConference) -> Vec<(&'static str, String, String)> {
        let ExpectedConference {
            number,
            subject,
            start,
            end,
            line,
            host,
            creator,
            attendees,
            joined,
            status,
            version,
            ended_at,
            cancelled_at,
            stranded,
        } = self;
        let mut found = Vec::new();
        let mut field = |name: &'static str, got: String, want: String| {
            if got != want {
                found.push((name, got, want));
            }
        };
        field("number", actual.number.clone(), number.clone());
        field("subject", actual.subject.clone(), subject.clone());
        field("start", actual.start.to_rfc3339(), start.to_rfc3339());
        field("end", actual.end.to_rfc3339(), end.to_rfc3339());
        field("line", actual.line.clone(), line.clone());
        field("host", actual.host.clone(), host.clone());
        field("creator", actual.creator.clone(), creator.clone());
        field(
            "attendees",
            format!("{:?}", actual.attendees),
            format!("{attendees:?}"),
        );
        field(
            "joined",
            format!("{:?}", actual.joined),
            format!("{joined:?}"),
        );
        field("status", actual.status.to_owned(), (*status).to_owned());
        field("version", actual.version.to_string(), version.to_string());
        field(
            "ended_at",
            format!("{:?}", actual.ended_at),
            format!("{ended_at:?}"),
        );
        field(
            "cancelled_at",
            format!("{:?}", actual.cancelled_at),
            format!("{cancelled_at:?}"),
        );
        field(
            "stranded",
            actual.stranded.to_string(),
            stranded.to_string(),
        );
        found
    }
}
