//! `ConferenceView`: a conference as the read side keeps it, and the one fold that builds it from
//! events — used by the projector, by `?as_of=` replays, and (via [`ConferenceView::from_pool`])
//! by command responses, so all three always agree.

use chrono::{DateTime, Utc};
use meetline_domain::event::Event;
use meetline_domain::pool::{Conference, Line, Provisioning};
use meetline_domain::types::{
    ConferenceId, ConferenceNumber, LineId, Mode, RelatedLink, RoomName, Source, Status, Subject,
    TenantId, TimeSlot, TimeZoneName, UserId,
};
use serde::{Deserialize, Serialize};

/// The line a conference is on, with the name and provider it had when last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRef {
    pub id: LineId,
    pub name: String,
    pub provider: String,
}

impl LineRef {
    /// A line the read side has not seen (removed, or not yet projected).
    pub fn unknown(id: &LineId) -> Self {
        Self {
            id: id.clone(),
            name: id.to_string(),
            provider: "builtin".to_owned(),
        }
    }

    pub fn of(line: &Line) -> Self {
        Self {
            id: line.id.clone(),
            name: line.name.as_str().to_owned(),
            provider: line.provider.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConferenceView {
    pub tenant: TenantId,
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
    pub line: LineRef,
    pub room: RoomName,
    /// As recorded; [`ConferenceView::status_at`] adds the clock.
    pub status: Status,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub stranded: bool,
    /// Set by the last edit or maintenance move that put it on another line.
    pub links_changed: bool,
    /// The meeting at an external provider.
    #[serde(default)]
    pub provisioning: Provisioning,
}

fn provisioning_on(line: &LineRef) -> Provisioning {
    if line.provider == "builtin" {
        Provisioning::NotNeeded
    } else {
        Provisioning::Pending
    }
}

impl ConferenceView {
    pub fn status_at(&self, now: DateTime<Utc>) -> Status {
        self.status.at(&self.slot, now)
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

    pub fn is_participant(&self, user: &UserId) -> bool {
        self.host == *user
            || self.creator == *user
            || self.attendees.contains(user)
            || self.joined.contains(user)
    }

    /// May see the host link: the host, the creator and admins.
    pub fn sees_host_link(&self, user: &UserId, admin: bool) -> bool {
        admin || self.host == *user || self.creator == *user
    }

    /// The view of a conference as the pool holds it (command responses).
    pub fn from_pool(tenant: &TenantId, conference: &Conference, line: LineRef) -> Self {
        Self {
            tenant: tenant.clone(),
            id: conference.id,
            number: conference.number.clone(),
            mode: conference.mode,
            subject: conference.subject.clone(),
            slot: conference.slot,
            timezone: conference.timezone.clone(),
            host: conference.host.clone(),
            creator: conference.creator.clone(),
            attendees: conference.attendees.clone(),
            joined: conference.joined.clone(),
            related_link: conference.related_link.clone(),
            source: conference.source.clone(),
            line,
            room: conference.room.clone(),
            status: conference.status,
            version: conference.version,
            created_at: conference.created_at,
            ended_at: conference.ended_at,
            cancelled_at: conference.cancelled_at,
            stranded: conference.stranded,
            links_changed: false,
            provisioning: conference.provisioning.clone(),
        }
    }

    /// Starts a view from its `ConferenceScheduled` event; `None` for any other event.
    pub fn scheduled(tenant: &TenantId, event: &Event, line: LineRef) -> Option<Self> {
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
            ..
        } = event
        else {
            return None;
        };
        let provisioning = provisioning_on(&line);
        Some(Self {
            tenant: tenant.clone(),
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
            provisioning,
        })
    }

    /// Folds a later event of this conference. `line` resolves a line id to its current name.
    pub fn apply(&mut self, event: &Event, line: impl Fn(&LineId) -> LineRef) {
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
                line_changed,
                ..
            } => {
                self.subject = subject.clone();
                self.slot = *slot;
                self.timezone = timezone.clone();
                self.attendees = attendees.clone();
                self.related_link = related_link.clone();
                if *line_changed {
                    self.line = line(line_id);
                    self.stranded = false;
                    self.provisioning = provisioning_on(&self.line);
                }
                self.room = room.clone();
                self.links_changed = *line_changed;
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
                self.provisioning = provisioning_on(&self.line);
            }
            Event::ConferenceStranded { .. } => self.stranded = true,
            Event::ConferenceProvisioned {
                line: on,
                meeting_id,
                join_url,
                password,
                ..
            } => {
                self.provisioning = Provisioning::Done {
                    line: on.clone(),
                    meeting_id: meeting_id.clone(),
                    join_url: join_url.clone(),
                    password: password.clone(),
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

    /// The view as of a list of this conference's events (oldest first).
    pub fn fold<'a>(
        tenant: &TenantId,
        events: impl IntoIterator<Item = &'a Event>,
        line: impl Fn(&LineId) -> LineRef,
    ) -> Option<Self> {
        let mut view: Option<Self> = None;
        for event in events {
            match &mut view {
                None => {
                    if let Event::ConferenceScheduled { line: line_id, .. } = event {
                        view = Self::scheduled(tenant, event, line(line_id));
                    }
                }
                Some(view) => view.apply(event, &line),
            }
        }
        view
    }
}

/// The tenant a pool stream belongs to (`pool-{tenant}`).
pub fn tenant_of_stream(stream: &str) -> Option<TenantId> {
    stream
        .strip_prefix("pool-")
        .and_then(|tenant| TenantId::parse(tenant).ok())
}
