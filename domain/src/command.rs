//! Commands: what someone asks the line pool to do. Imperative names; each is decided by
//! [`crate::LinePool::handle`]. Directory facts (a meeting's roles, a chat's members) are looked up
//! by the command service and carried in the command, so the aggregate decides without I/O.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::recurrence::{Recurrence, SeriesId};
use crate::types::{
    ChatId, ConferenceId, ConferenceNumber, LineId, LineName, MeetingId, Mode, NumberDraw,
    ProviderKind, RelatedLink, RoomNonce, Subject, TimeZoneName, UserId,
};

/// How the end of a conference is given: an instant, or a length from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndSpec {
    At(DateTime<Utc>),
    After(Duration),
}

impl EndSpec {
    pub fn resolve(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::At(end) => end,
            Self::After(length) => start + length,
        }
    }
}

/// The default length of a quick conference, and of a scheduled one given only a start.
pub const DEFAULT_MINUTES: i64 = 60;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConference {
    pub conference: ConferenceId,
    pub mode: Mode,
    pub subject: Subject,
    /// Required for `scheduled`; ignored for `quick`, which starts at `now`.
    pub start: Option<DateTime<Utc>>,
    pub end: EndSpec,
    pub timezone: TimeZoneName,
    /// Defaults to the actor.
    pub host: Option<UserId>,
    pub attendees: Vec<UserId>,
    pub related_link: Option<RelatedLink>,
    pub rooms: RoomNonce,
    pub numbers: NumberDraw,
}

/// What a series does when some occurrences find no free line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnConflict {
    /// Book nothing; the refusal lists the occurrences no line could take.
    #[default]
    Reject,
    /// Book the others; the answer lists the ones left out.
    Skip,
}

/// A series of conferences, every occurrence a conference of its own, decided in one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSeries {
    pub series: SeriesId,
    /// The first occurrence (mode `scheduled`); its id, rooms and number draw are the first's.
    pub first: ScheduleConference,
    pub recurrence: Recurrence,
    /// An id and a number draw for each occurrence after the first: the caller expands the
    /// rule ([`Recurrence::occurrences`]) to know how many.
    pub more: Vec<(ConferenceId, NumberDraw)>,
    pub on_conflict: OnConflict,
}

/// Which occurrences of a series an edit or a cancellation acts on, beside the one named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeriesScope {
    /// The one named and the later ones.
    Following,
    /// Every occurrence that has not started.
    All,
}

/// A meeting of the OA suite as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingFacts {
    pub id: MeetingId,
    pub subject: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub creator: UserId,
    pub convener: UserId,
    pub contact: UserId,
    pub attendees: Vec<UserId>,
    pub url: Option<RelatedLink>,
}

/// A chat as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatFacts {
    pub id: ChatId,
    pub name: String,
    pub members: Vec<UserId>,
}

/// Changes to a not-started conference; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConferenceChanges {
    pub subject: Option<Subject>,
    pub start: Option<DateTime<Utc>>,
    /// When only `start` changes, the conference keeps its length (it moves).
    pub end: Option<EndSpec>,
    pub timezone: Option<TimeZoneName>,
    pub attendees: Option<Vec<UserId>>,
    /// `Some(None)` clears the link.
    pub related_link: Option<Option<RelatedLink>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    AddLine {
        name: LineName,
        provider: ProviderKind,
    },
    RenameLine {
        line: LineId,
        name: LineName,
    },
    /// The line gets no new conferences; its future ones move to free lines or are stranded.
    StartLineMaintenance {
        line: LineId,
        rooms: RoomNonce,
    },
    EndLineMaintenance {
        line: LineId,
    },
    /// Refused while the line holds a not-started or in-progress conference.
    RemoveLine {
        line: LineId,
    },
    ScheduleConference(ScheduleConference),
    ScheduleSeries(ScheduleSeries),
    LaunchFromMeeting {
        conference: ConferenceId,
        meeting: MeetingFacts,
        subject: Option<Subject>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        timezone: TimeZoneName,
        rooms: RoomNonce,
        numbers: NumberDraw,
    },
    LaunchFromChat {
        conference: ConferenceId,
        chat: ChatFacts,
        subject: Option<Subject>,
        /// `None`: every other member.
        attendees: Option<Vec<UserId>>,
        timezone: TimeZoneName,
        rooms: RoomNonce,
        numbers: NumberDraw,
    },
    EditConference {
        conference: ConferenceId,
        changes: ConferenceChanges,
        /// From `If-Match`: the conference version the client last saw.
        expected_version: Option<u64>,
        rooms: RoomNonce,
    },
    /// Edits an occurrence of a series and the others in `scope`: a new time moves each by
    /// the same amount (and gives each the new length), and each moved one's line is checked
    /// again. All or nothing.
    EditSeries {
        conference: ConferenceId,
        changes: ConferenceChanges,
        expected_version: Option<u64>,
        rooms: RoomNonce,
        scope: SeriesScope,
        /// The booking horizon: no occurrence may be moved to end later.
        latest: DateTime<Utc>,
    },
    InviteAttendees {
        conference: ConferenceId,
        attendees: Vec<UserId>,
    },
    JoinConference {
        number: ConferenceNumber,
    },
    CancelConference {
        conference: ConferenceId,
        reason: Option<String>,
    },
    /// Cancels the not-started occurrences of a series in `scope`.
    CancelSeries {
        conference: ConferenceId,
        reason: Option<String>,
        scope: SeriesScope,
    },
    EndConferenceEarly {
        conference: ConferenceId,
    },
    /// Records the start and/or end that the clock has reached (the timer process's command).
    RecordElapsedTime {
        conference: ConferenceId,
    },
    /// The provisioning process reports the meeting the line's provider created.
    RecordProvisioning {
        conference: ConferenceId,
        line: LineId,
        meeting_id: String,
        join_url: String,
        password: Option<String>,
        meeting_code: Option<String>,
    },
    /// The provider's webhook: the meeting started or ended at `at`. An end reported while the
    /// conference is in progress, before its slot is over, ends it early (the host ended it).
    RecordProviderMeeting {
        conference: ConferenceId,
        started: bool,
        at: DateTime<Utc>,
    },
    /// The provisioning process gave up: release the line.
    RecordProvisioningFailure {
        conference: ConferenceId,
        line: LineId,
        reason: String,
    },
}

impl Command {
    /// A stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AddLine { .. } => "add_line",
            Self::RenameLine { .. } => "rename_line",
            Self::StartLineMaintenance { .. } => "start_line_maintenance",
            Self::EndLineMaintenance { .. } => "end_line_maintenance",
            Self::RemoveLine { .. } => "remove_line",
            Self::ScheduleConference(_) => "schedule_conference",
            Self::ScheduleSeries(_) => "schedule_series",
            Self::EditSeries { .. } => "edit_series",
            Self::CancelSeries { .. } => "cancel_series",
            Self::LaunchFromMeeting { .. } => "launch_from_meeting",
            Self::LaunchFromChat { .. } => "launch_from_chat",
            Self::EditConference { .. } => "edit_conference",
            Self::InviteAttendees { .. } => "invite_attendees",
            Self::JoinConference { .. } => "join_conference",
            Self::CancelConference { .. } => "cancel_conference",
            Self::EndConferenceEarly { .. } => "end_conference_early",
            Self::RecordElapsedTime { .. } => "record_elapsed_time",
            Self::RecordProvisioning { .. } => "record_provisioning",
            Self::RecordProvisioningFailure { .. } => "record_provisioning_failure",
            Self::RecordProviderMeeting { .. } => "record_provider_meeting",
        }
    }

    /// The conference an edit moves (its own booking does not stand in its way).
    pub fn edited(&self) -> Option<ConferenceId> {
        match self {
            Self::EditConference { conference, .. } | Self::EditSeries { conference, .. } => {
                Some(*conference)
            }
            _ => None,
        }
    }

    /// Whether the command acts on several conferences of a series at once.
    pub fn is_series(&self) -> bool {
        matches!(
            self,
            Self::ScheduleSeries(_) | Self::EditSeries { .. } | Self::CancelSeries { .. }
        )
    }

    /// The existing conference the command acts on (not one it creates).
    pub fn existing_conference(&self) -> Option<ConferenceId> {
        match self {
            Self::ScheduleConference(_)
            | Self::ScheduleSeries(_)
            | Self::LaunchFromMeeting { .. }
            | Self::LaunchFromChat { .. } => None,
            _ => self.conference(),
        }
    }

    /// The conference this command names up front, if any (join names a number instead).
    pub fn conference(&self) -> Option<ConferenceId> {
        match self {
            Self::ScheduleConference(cmd) => Some(cmd.conference),
            Self::ScheduleSeries(cmd) => Some(cmd.first.conference),
            Self::LaunchFromMeeting { conference, .. }
            | Self::LaunchFromChat { conference, .. }
            | Self::EditConference { conference, .. }
            | Self::EditSeries { conference, .. }
            | Self::CancelSeries { conference, .. }
            | Self::InviteAttendees { conference, .. }
            | Self::CancelConference { conference, .. }
            | Self::EndConferenceEarly { conference }
            | Self::RecordElapsedTime { conference }
            | Self::RecordProvisioning { conference, .. }
            | Self::RecordProvisioningFailure { conference, .. }
            | Self::RecordProviderMeeting { conference, .. } => Some(*conference),
            _ => None,
        }
    }
}
