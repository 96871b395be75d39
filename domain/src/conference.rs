//! A conference and **the** fold of its events: the pool decides on it, the projector keeps it as
//! a read model, `?as_of=` replays rebuild it, command responses show it. One struct, one fold;
//! only how its line is named differs (the pool: id and provider, [`LineTag`]; the read side: id,
//! name and provider), so the struct is generic over the [`LineLabel`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::recurrence::SeriesLink;
use crate::types::{
    Actor, ConferenceId, ConferenceNumber, LineId, Mode, ProviderKind, RelatedLink, RoomName,
    Source, Status, Subject, TimeSlot, TimeZoneName, UserId,
};

/// How a conference names the line it is on.
pub trait LineLabel: Clone {
    fn id(&self) -> &LineId;
    /// Whether an external provider hosts meetings on the line (and must confirm each one).
    fn is_external(&self) -> bool;
}

/// A line as the pool names it: what deciding needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineTag {
    pub id: LineId,
    pub provider: ProviderKind,
}

impl LineLabel for LineTag {
    fn id(&self) -> &LineId {
        &self.id
    }

    fn is_external(&self) -> bool {
        self.provider.is_external()
    }
}

tagged_in_text! {
    /// A conference's meeting at its line's provider.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub enum Provisioning (tag = "state") {
        /// The builtin provider needs no round trip: links are signed locally.
        #[default]
        NotNeeded,
        /// An external provider has not confirmed the meeting yet.
        Pending,
        Done {
            line: LineId,
            meeting_id: String,
            join_url: String,
            password: Option<String>,
            meeting_code: Option<String>,
        },
        Failed {
            reason: String,
        },
    }
}

impl Provisioning {
    fn on(line: &impl LineLabel) -> Self {
        if line.is_external() {
            Self::Pending
        } else {
            Self::NotNeeded
        }
    }
}

/// A conference, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conference<L> {
    pub id: ConferenceId,
    pub number: ConferenceNumber,
    pub mode: Mode,
    pub subject: Subject,
    pub slot: TimeSlot,
    pub timezone: TimeZoneName,
    pub host: UserId,
    pub creator: UserId,
    pub attendees: Vec<UserId>,
    pub joined: Vec<UserId>,
    pub related_link: Option<RelatedLink>,
    pub source: Source,
    pub line: L,
    pub room: RoomName,
    /// The status as recorded by events; [`Conference::status_at`] adds the clock.
    pub status: Status,
    /// How many events this conference has: its `ETag`.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub stranded: bool,
    /// Set by the last edit or maintenance move that put it on another line.
    #[serde(default)]
    pub links_changed: bool,
    /// Whether the line's provider hosts the meeting yet (external providers only).
    #[serde(default)]
    pub provisioning: Provisioning,
    /// The series it is an occurrence of, if any.
    #[serde(default)]
    pub series: Option<Box<SeriesLink>>,
}

impl<L> Conference<L> {
    pub fn status_at(&self, now: DateTime<Utc>) -> Status {
        self.status.at(&self.slot, now)
    }

    /// Whether its events say it can no longer change: ended, ended early or cancelled. (One
    /// merely past its end is closed once the timer records that.)
    pub fn is_closed(&self) -> bool {
        matches!(
            self.status,
            Status::Ended | Status::ManuallyEnded | Status::Cancelled
        )
    }

    /// Host, creator, attendees and those who joined: who may see the conference.
    pub fn is_participant(&self, user: &UserId) -> bool {
        self.host == *user
            || self.creator == *user
            || self.attendees.contains(user)
            || self.joined.contains(user)
    }

    /// Host, creator, attendees and those who joined, without duplicates.
    pub fn participants(&self) -> Vec<UserId> {
        let mut all: Vec<UserId> = Vec::with_capacity(2 + self.attendees.len() + self.joined.len());
        for user in [&self.host, &self.creator]
            .into_iter()
            .chain(&self.attendees)
            .chain(&self.joined)
        {
            if !all.contains(user) {
                all.push(user.clone());
            }
        }
        all
    }

    /// Host, creator or admin: who may edit, invite, cancel or end early.
    pub fn may_manage(&self, actor: &Actor) -> bool {
        actor.admin || self.host == actor.user || self.creator == actor.user
    }

    /// May see the host link: the host, the creator and admins.
    pub fn sees_host_link(&self, user: &UserId, admin: bool) -> bool {
        admin || self.host == *user || self.creator == *user
    }

    /// The time it holds its line: none once cancelled, up to the early end once ended early.
    pub fn booking_slot(&self) -> Option<TimeSlot> {
        match self.status {
            Status::Cancelled => None,
            Status::ManuallyEnded => {
                self.ended_at
                    .filter(|at| *at > self.slot.start)
                    .map(|at| TimeSlot {
                        start: self.slot.start,
                        end: at,
                    })
            }
            _ => Some(self.slot),
        }
    }

    /// The same conference with its line named another way.
    pub fn with_line<M>(self, line: impl FnOnce(L) -> M) -> Conference<M> {
        Conference {
            id: self.id,
            number: self.number,
            mode: self.mode,
            subject: self.subject,
            slot: self.slot,
            timezone: self.timezone,
            host: self.host,
            creator: self.creator,
            attendees: self.attendees,
            joined: self.joined,
            related_link: self.related_link,
            source: self.source,
            line: line(self.line),
            room: self.room,
            status: self.status,
            version: self.version,
            created_at: self.created_at,
            ended_at: self.ended_at,
            cancelled_at: self.cancelled_at,
            stranded: self.stranded,
            links_changed: self.links_changed,
            provisioning: self.provisioning,
            series: self.series,
        }
    }
}

impl<L: LineLabel> Conference<L> {
    /// Starts a conference from its `ConferenceScheduled` event (`line` names the line it
    /// books); `None` for any other event.
    pub fn scheduled(event: &Event, line: L) -> Option<Self> {
        let Event::ConferenceScheduled {
            conference,
            number,
            mode,
            subject,
            slot,
            timezone,
            host,
            creator,
            attendees,
            related_link,
            source,
            room,
            at,
            series,
            ..
        } = event
        else {
            return None;
        };
        Some(Self {
            id: *conference,
            number: number.clone(),
            mode: *mode,
            subject: subject.clone(),
            slot: *slot,
            timezone: timezone.clone(),
            host: host.clone(),
            creator: creator.clone(),
            attendees: attendees.clone(),
            joined: Vec::new(),
            related_link: related_link.clone(),
            source: source.clone(),
            provisioning: Provisioning::on(&line),
            line,
            room: room.clone(),
            status: if *mode == Mode::Quick {
                Status::InProgress
            } else {
                Status::NotStarted
            },
            version: 1,
            created_at: *at,
            ended_at: None,
            cancelled_at: None,
            stranded: false,
            links_changed: false,
            series: series.clone(),
        })
    }

    /// Folds a later event of this conference (others are ignored). `line` names a line the
    /// event puts it on.
    pub fn apply(&mut self, event: &Event, line: impl FnOnce(&LineId) -> L) {
        if event.conference() != Some(self.id) {
            return;
        }
        self.version += 1;
        match event {
            Event::ConferenceEdited {
                subject,
                slot,
                timezone,
                attendees,
                related_link,
                line: line_id,
                room,
                ..
            } => {
                self.subject = subject.clone();
                self.slot = *slot;
                self.timezone = timezone.clone();
                self.attendees = attendees.clone();
                self.related_link = related_link.clone();
                self.room = room.clone();
                // The line is compared rather than `links_changed` believed: the two agree in
                // every log the pool decided, and the fold must not trust a flag over a fact.
                let moved = self.line.id() != line_id;
                if moved {
                    self.line = line(line_id);
                    self.stranded = false;
                    self.provisioning = Provisioning::on(&self.line);
                }
                self.links_changed = moved;
            }
            Event::AttendeesInvited { attendees, .. } => {
                self.attendees.extend(attendees.iter().cloned());
            }
            Event::ParticipantJoined { user, .. } => self.joined.push(user.clone()),
            Event::ConferenceCancelled { at, .. } => {
                self.status = Status::Cancelled;
                self.cancelled_at = Some(*at);
            }
            Event::ConferenceEndedEarly { at, .. } => {
                self.status = Status::ManuallyEnded;
                self.ended_at = Some(*at);
            }
            Event::ConferenceStarted { .. } => self.status = Status::InProgress,
            Event::ConferenceEnded { at, .. } => {
                self.status = Status::Ended;
                self.ended_at = Some(*at);
            }
            Event::ConferenceMovedToLine { to, room, .. } => {
                self.line = line(to);
                self.room = room.clone();
                self.stranded = false;
                self.links_changed = true;
                self.provisioning = Provisioning::on(&self.line);
            }
            Event::ConferenceStranded { .. } => self.stranded = true,
            Event::ConferenceProvisioned {
                line: on,
                meeting_id,
                join_url,
                password,
                meeting_code,
                ..
            } => {
                self.provisioning = Provisioning::Done {
                    line: on.clone(),
                    meeting_id: meeting_id.clone(),
                    join_url: join_url.clone(),
                    password: password.clone(),
                    meeting_code: meeting_code.clone(),
                };
            }
            Event::ProvisioningFailed { reason, at, .. } => {
                self.provisioning = Provisioning::Failed {
                    reason: reason.clone(),
                };
                self.status = Status::Cancelled;
                self.cancelled_at = Some(*at);
            }
            _ => {}
        }
    }

    /// The conference as of a list of its events (oldest first); `line` names its lines.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = &'a Event>,
        line: impl Fn(&LineId) -> L,
    ) -> Option<Self> {
        let mut conference: Option<Self> = None;
        for event in events {
            match &mut conference {
                None => {
                    if let Event::ConferenceScheduled { line: line_id, .. } = event {
                        conference = Self::scheduled(event, line(line_id));
                    }
                }
                Some(conference) => conference.apply(event, &line),
            }
        }
        conference
    }
}
