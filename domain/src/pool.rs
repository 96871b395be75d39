//! The `LinePool` aggregate: one per tenant, owner of the lines and every conference booked on
//! them. The invariant "no two conferences overlap on a line" spans all of these, so they form
//! one consistency boundary and one stream.
//!
//! Bookings are kept per line in a `BTreeMap` keyed by start. Bookings on a line are disjoint,
//! so their ends are ordered like their starts, and a slot `[s, e)` is free exactly when the
//! last booking starting before `e` ends at or before `s`: an O(log n) check.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::command::{
    ChatFacts, Command, ConferenceChanges, DEFAULT_MINUTES, EndSpec, MeetingFacts,
    ScheduleConference,
};
use crate::conference::LineTag;
pub use crate::conference::Provisioning;
use crate::error::{Conflict, DomainError};
use crate::event::Event;
use crate::free_lines::FreeLineIndex;
use crate::types::{
    Actor, ConferenceId, ConferenceNumber, LineId, LineName, LineStatus, MeetingId, Mode,
    NumberDraw, ProviderKind, RelatedLink, RoomName, RoomNonce, Source, Status, Subject, TimeSlot,
    TimeZoneName, UserId, free_text, provider_url,
};

mod series;

/// How far in the past a scheduled start may lie (a form filled in a minute ago).
pub const START_GRACE_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub end: DateTime<Utc>,
    pub conference: ConferenceId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub id: LineId,
    pub name: LineName,
    pub provider: ProviderKind,
    pub status: LineStatus,
    /// start → booking; disjoint intervals.
    pub bookings: BTreeMap<DateTime<Utc>, Booking>,
}

impl Line {
    /// Whether `slot` is free on this line, ignoring the booking of `ignoring` (a conference
    /// being moved within its own line).
    pub fn is_free(&self, slot: &TimeSlot, ignoring: Option<ConferenceId>) -> bool {
        for (_, booking) in self.bookings.range(..slot.end).rev() {
            if Some(booking.conference) == ignoring {
                continue;
            }
            return booking.end <= slot.start;
        }
        true
    }

    /// As [`Self::is_free`], ignoring the bookings of every conference in `ignoring` (a series
    /// whose occurrences move together).
    pub fn is_free_ignoring(&self, slot: &TimeSlot, ignoring: &[ConferenceId]) -> bool {
        for (_, booking) in self.bookings.range(..slot.end).rev() {
            if ignoring.contains(&booking.conference) {
                continue;
            }
            return booking.end <= slot.start;
        }
        true
    }
}

/// A conference as the pool keeps it: the one fold of [`crate::conference`], its line named by
/// id and provider. The pool holds only conferences that can still change (see
/// [`LinePool::apply`]).
pub type Conference = crate::conference::Conference<LineTag>;

/// How long a closed conference's booking stays on its line after the log's clock passed its end:
/// a decision may start a slot a few minutes in the past ([`START_GRACE_SECONDS`]) and nodes'
/// clocks differ a little, so a booking is dropped only once no decision can reach it.
pub const BOOKING_RETENTION_HOURS: i64 = 24;

/// The tenant's line pool. `handle` decides, `apply` folds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "StoredPool")]
pub struct LinePool {
    /// Events applied so far: the stream version.
    pub version: u64,
    /// In the order they were added: "the first free line" is the earliest added.
    pub lines: Vec<Line>,
    pub lines_added: u64,
    pub conferences: HashMap<ConferenceId, Conference>,
    pub numbers: HashMap<ConferenceNumber, ConferenceId>,
    pub meeting_conferences: HashMap<MeetingId, ConferenceId>,
    /// Bookings the log placed on a start another conference held (a corrupt log): (line, the
    /// conference kept, the one refused). Empty for every log the aggregate decided.
    #[serde(default)]
    pub clashes: Vec<(LineId, ConferenceId, ConferenceId)>,
    /// The latest decision time the log shows (the `at` of the events the pool decided at its
    /// clock): what tells the fold that a closed conference's booking can be dropped.
    #[serde(default)]
    pub latest: Option<DateTime<Utc>>,
    /// How to undo what [`Self::apply`] did since [`Self::begin`] (a batch being decided).
    #[serde(skip)]
    journal: Option<Journal>,
    /// Which lines are busy when (derived from the bookings; rebuilt when a pool is loaded).
    #[serde(skip)]
    pub(crate) index: FreeLineIndex,
}

/// A pool as snapshots store it: the state without what is derived from it.
#[derive(Deserialize)]
struct StoredPool {
    version: u64,
    lines: Vec<Line>,
    lines_added: u64,
    conferences: HashMap<ConferenceId, Conference>,
    numbers: HashMap<ConferenceNumber, ConferenceId>,
    meeting_conferences: HashMap<MeetingId, ConferenceId>,
    #[serde(default)]
    clashes: Vec<(LineId, ConferenceId, ConferenceId)>,
    #[serde(default)]
    latest: Option<DateTime<Utc>>,
}

impl From<StoredPool> for LinePool {
    fn from(stored: StoredPool) -> Self {
        let StoredPool {
            version,
            lines,
            lines_added,
            conferences,
            numbers,
            meeting_conferences,
            clashes,
            latest,
        } = stored;
        Self {
            index: FreeLineIndex::of(&lines),
            version,
            lines,
            lines_added,
            conferences,
            numbers,
            meeting_conferences,
            clashes,
            latest,
            journal: None,
        }
    }
}

/// What [`LinePool::rollback`] needs: the counters as they were, and each change's prior value,
/// in the order the changes were made.
/// Two pools are equal when they hold the same state: an open journal is not state.
impl PartialEq for LinePool {
    fn eq(&self, other: &Self) -> bool {
        let Self {
            version,
            lines,
            lines_added,
            conferences,
            numbers,
            meeting_conferences,
            clashes,
            latest,
            journal: _,
            index: _,
        } = self;
        *version == other.version
            && *lines == other.lines
            && *lines_added == other.lines_added
            && *conferences == other.conferences
            && *numbers == other.numbers
            && *meeting_conferences == other.meeting_conferences
            && *clashes == other.clashes
            && *latest == other.latest
    }
}

/// A point in an open journal ([`LinePool::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    undo: usize,
    version: u64,
    latest: Option<DateTime<Utc>>,
    lines_added: u64,
    clashes: usize,
}

#[derive(Debug, Clone)]
struct Journal {
    version: u64,
    latest: Option<DateTime<Utc>>,
    lines_added: u64,
    clashes: usize,
    undo: Vec<Undo>,
}

#[derive(Debug, Clone)]
enum Undo {
    Conference(ConferenceId, Option<Box<Conference>>),
    LinePushed,
    LineState {
        id: LineId,
        name: LineName,
        status: LineStatus,
    },
    LineRemoved(usize, Line),
    Booking {
        line: LineId,
        start: DateTime<Utc>,
        prior: Option<Booking>,
    },
    Number(ConferenceNumber, Option<ConferenceId>),
    Meeting(MeetingId, Option<ConferenceId>),
}

impl LinePool {
    /// The pool as a snapshot stores it: postcard (binary, fields in order, no names). What
    /// is derived (the free-line index) is not in it; [`Self::from_snapshot`] rebuilds it.
    ///
    /// # Errors
    /// Never for a pool the fold built; the `Result` is postcard's.
    pub fn to_snapshot(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_stdvec(self)
    }

    /// A pool from [`Self::to_snapshot`]'s bytes. postcard reads fields by position, so a
    /// change of the pool's fields or variants, in kind or order, is a new snapshot schema;
    /// `domain/tests/golden_events.rs` reads a stored snapshot to catch one made without it.
    ///
    /// # Errors
    /// When the bytes are not a pool of this snapshot format (bytes left over included).
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, postcard::Error> {
        match postcard::take_from_bytes(bytes)? {
            (pool, []) => Ok(pool),
            _ => Err(postcard::Error::DeserializeBadEncoding),
        }
    }

    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut pool = Self::default();
        for event in events {
            pool.apply(event);
        }
        pool
    }

    /// Starts recording how to undo what [`Self::apply`] does next, so that a batch decided on
    /// this pool can be taken back when its append fails, at the cost of what it touched (not
    /// of a reload). A second `begin` keeps the first's starting point.
    pub fn begin(&mut self) {
        if self.journal.is_none() {
            self.journal = Some(Journal {
                version: self.version,
                latest: self.latest,
                lines_added: self.lines_added,
                clashes: self.clashes.len(),
                undo: Vec::new(),
            });
        }
    }

    /// Keeps everything applied since [`Self::begin`] (its events are stored).
    pub fn commit(&mut self) {
        self.journal = None;
    }

    /// Where the open journal stands now (`None` without one): what [`Self::commit_through`]
    /// keeps when a batch decided earlier is stored while a later one is still open.
    pub fn mark(&self) -> Option<Mark> {
        self.journal.as_ref().map(|journal| Mark {
            undo: journal.undo.len(),
            version: self.version,
            latest: self.latest,
            lines_added: self.lines_added,
            clashes: self.clashes.len(),
        })
    }

    /// Keeps what was applied up to `mark` (its events are stored); what came after stays
    /// journaled: a [`Self::rollback`] now goes back to `mark`.
    pub fn commit_through(&mut self, mark: Mark) {
        if let Some(journal) = &mut self.journal {
            journal.undo.drain(..mark.undo.min(journal.undo.len()));
            journal.version = mark.version;
            journal.latest = mark.latest;
            journal.lines_added = mark.lines_added;
            journal.clashes = mark.clashes;
        }
    }

    /// Whether a batch is being decided (a journal is open): the pool then holds events that
    /// may not be stored.
    pub fn in_batch(&self) -> bool {
        self.journal.is_some()
    }

    /// Takes back everything applied since [`Self::begin`]: the pool is again exactly what it
    /// was then. Without a `begin`, nothing happens.
    pub fn rollback(&mut self) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for undo in journal.undo.into_iter().rev() {
            match undo {
                Undo::Conference(id, Some(prior)) => {
                    self.conferences.insert(id, *prior);
                }
                Undo::Conference(id, None) => {
                    self.conferences.remove(&id);
                }
                Undo::LinePushed => {
                    // Its bookings' undos came first and cleared its bits: nothing else to do
                    // unless some were left.
                    if self
                        .lines
                        .pop()
                        .is_some_and(|line| !line.bookings.is_empty())
                    {
                        self.index = FreeLineIndex::of(&self.lines);
                    }
                }
                Undo::LineState { id, name, status } => {
                    if let Some(line) = self.line_mut(&id) {
                        line.name = name;
                        line.status = status;
                    }
                }
                Undo::LineRemoved(index, line) => {
                    self.lines.insert(index, line);
                    self.index = FreeLineIndex::of(&self.lines);
                }
                Undo::Booking { line, start, prior } => {
                    let end = prior.as_ref().map(|booking| booking.end);
                    self.set_booking(&line, start, prior, end);
                }
                Undo::Number(number, Some(prior)) => {
                    self.numbers.insert(number, prior);
                }
                Undo::Number(number, None) => {
                    self.numbers.remove(&number);
                }
                Undo::Meeting(meeting, Some(prior)) => {
                    self.meeting_conferences.insert(meeting, prior);
                }
                Undo::Meeting(meeting, None) => {
                    self.meeting_conferences.remove(&meeting);
                }
            }
        }
        self.version = journal.version;
        self.latest = journal.latest;
        self.lines_added = journal.lines_added;
        self.clashes.truncate(journal.clashes);
    }

    /// Notes how to undo a change about to be made (when a batch is being decided).
    fn record(&mut self, undo: impl FnOnce(&Self) -> Undo) {
        if self.journal.is_some() {
            let undo = undo(self);
            if let Some(journal) = &mut self.journal {
                journal.undo.push(undo);
            }
        }
    }

    fn record_line_state(&mut self, id: &LineId) {
        if self.journal.is_none() {
            return;
        }
        let Some(line) = self.line(id) else {
            return;
        };
        let undo = Undo::LineState {
            id: id.clone(),
            name: line.name.clone(),
            status: line.status,
        };
        if let Some(journal) = &mut self.journal {
            journal.undo.push(undo);
        }
    }

    pub fn line(&self, id: &LineId) -> Option<&Line> {
        self.lines.iter().find(|line| line.id == *id)
    }

    /// The line `id` as a conference names it (a line no longer held counts as builtin).
    pub fn line_tag(&self, id: &LineId) -> LineTag {
        tag_of(&self.lines, id)
    }

    fn line_mut(&mut self, id: &LineId) -> Option<&mut Line> {
        self.lines.iter_mut().find(|line| line.id == *id)
    }

    pub fn conference(&self, id: &ConferenceId) -> Option<&Conference> {
        self.conferences.get(id)
    }

    pub fn conference_by_number(&self, number: &ConferenceNumber) -> Option<&Conference> {
        self.numbers
            .get(number)
            .and_then(|id| self.conferences.get(id))
    }

    /// The first active line (in the order lines were added) on which `slot` is free.
    pub fn first_free_line(
        &self,
        slot: &TimeSlot,
        ignoring: Option<ConferenceId>,
    ) -> Option<&Line> {
        let ignoring = ignoring.and_then(|id| {
            let holder = &self.conferences.get(&id)?.line.id;
            Some((self.lines.iter().position(|line| line.id == *holder)?, id))
        });
        self.index
            .first_free(
                &self.lines,
                slot,
                |line| line.status == LineStatus::Active,
                ignoring,
            )
            .map(|position| &self.lines[position])
    }

    /// The events that record `command`'s refusal as a business fact, if it is one: demand for
    /// a slot no line could serve (`no_free_line`, one event per slot). Other refusals are the caller's mistakes and
    /// leave no trace in the log.
    pub fn refusal_record(
        command: &Command,
        error: &DomainError,
        now: DateTime<Utc>,
    ) -> Vec<Event> {
        let edited = command.edited();
        let refused = |slot: &TimeSlot| Event::DemandRefused {
            slot: *slot,
            edited,
            at: now,
        };
        match error {
            DomainError::NoFreeLine { slot, .. } => vec![refused(slot)],
            // Each occurrence no line could take is demand of its own.
            DomainError::SeriesUnbookable { conflicts } => conflicts
                .iter()
                .map(|conflict| refused(&conflict.slot))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Decides a command: every business rule lives here. Never mutates `self`.
    ///
    /// # Errors
    /// The `DomainError` the rules call for; a rejected command changes nothing.
    pub fn handle(
        &self,
        actor: &Actor,
        command: &Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DomainError> {
        self.decide(actor, command, now, None)
    }

    /// As [`Self::handle`], for a command that may name a conference the pool no longer holds:
    /// `recalled` is that conference as folded from its stored events (closed, so no rule lets
    /// it change; each answers as it would have while the pool held it — `invalid_state`,
    /// `not_found` for those who may not see it, or nothing to do).
    ///
    /// # Errors
    /// As [`Self::handle`].
    pub fn decide(
        &self,
        actor: &Actor,
        command: &Command,
        now: DateTime<Utc>,
        recalled: Option<&Conference>,
    ) -> Result<Vec<Event>, DomainError> {
        let held = |id: &ConferenceId| -> Result<&Conference, DomainError> {
            self.conferences
                .get(id)
                .or(recalled.filter(|closed| closed.id == *id))
                .ok_or(DomainError::NotFound)
        };
        match command {
            Command::AddLine { name, provider } => {
                require_admin(actor)?;
                Ok(vec![Event::LineAdded {
                    line: LineId::parse(&format!("line-{}", self.lines_added + 1))?,
                    name: name.clone(),
                    provider: *provider,
                }])
            }
            Command::RenameLine { line, name } => {
                require_admin(actor)?;
                let current = self.line(line).ok_or(DomainError::NotFound)?;
                if current.name == *name {
                    return Ok(vec![]);
                }
                Ok(vec![Event::LineRenamed {
                    line: line.clone(),
                    name: name.clone(),
                }])
            }
            Command::StartLineMaintenance { line, rooms } => {
                require_admin(actor)?;
                self.start_maintenance(line, rooms, now)
            }
            Command::EndLineMaintenance { line } => {
                require_admin(actor)?;
                let current = self.line(line).ok_or(DomainError::NotFound)?;
                if current.status == LineStatus::Active {
                    return Ok(vec![]);
                }
                Ok(vec![Event::LineReturnedToService { line: line.clone() }])
            }
            Command::RemoveLine { line } => {
                require_admin(actor)?;
                self.line(line).ok_or(DomainError::NotFound)?;
                let holds_future = self.conferences.values().any(|conference| {
                    conference.line.id == *line
                        && matches!(
                            conference.status_at(now),
                            Status::NotStarted | Status::InProgress
                        )
                });
                if holds_future {
                    return Err(DomainError::InvalidState(Conflict::LineHoldsConferences));
                }
                Ok(vec![Event::LineRemoved { line: line.clone() }])
            }
            Command::ScheduleConference(schedule) => self.schedule(actor, schedule, now),
            Command::ScheduleSeries(series) => self.schedule_series(actor, series, now),
            Command::EditSeries {
                conference,
                changes,
                expected_version,
                rooms,
                scope,
                latest,
            } => self.edit_series(
                actor,
                held(conference)?,
                changes,
                *expected_version,
                rooms,
                *scope,
                *latest,
                now,
            ),
            Command::CancelSeries {
                conference,
                reason,
                scope,
            } => self.cancel_series(actor, held(conference)?, reason.as_deref(), *scope, now),
            Command::LaunchFromMeeting {
                conference,
                meeting,
                subject,
                start,
                end,
                timezone,
                rooms,
                numbers,
            } => self.launch_from_meeting(
                actor,
                *conference,
                meeting,
                (subject.clone(), *start, *end),
                timezone,
                (rooms, numbers),
                now,
            ),
            Command::LaunchFromChat {
                conference,
                chat,
                subject,
                attendees,
                timezone,
                rooms,
                numbers,
            } => self.launch_from_chat(
                actor,
                *conference,
                chat,
                subject.clone(),
                attendees.as_deref(),
                timezone,
                (rooms, numbers),
                now,
            ),
            Command::EditConference {
                conference,
                changes,
                expected_version,
                rooms,
            } => self.edit(
                actor,
                held(conference)?,
                changes,
                *expected_version,
                rooms,
                now,
            ),
            Command::InviteAttendees {
                conference,
                attendees,
            } => {
                let current = managed(actor, held(conference)?)?;
                let status = current.status_at(now);
                if !matches!(status, Status::NotStarted | Status::InProgress) {
                    return Err(DomainError::invalid_state(status));
                }
                let mut new = Vec::new();
                for user in attendees {
                    if !current.is_participant(user) && !new.contains(user) {
                        new.push(user.clone());
                    }
                }
                if new.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![Event::AttendeesInvited {
                    conference: *conference,
                    attendees: new,
                }])
            }
            Command::JoinConference { number } => {
                let current = self
                    .conference_by_number(number)
                    .ok_or(DomainError::NotFound)?;
                let status = current.status_at(now);
                if !matches!(status, Status::NotStarted | Status::InProgress) {
                    // Only those who may see it learn that a number is a past conference's.
                    if !actor.admin && !current.is_participant(&actor.user) {
                        return Err(DomainError::NotFound);
                    }
                    return Err(DomainError::invalid_state(status));
                }
                if current.is_participant(&actor.user) {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ParticipantJoined {
                    conference: current.id,
                    user: actor.user.clone(),
                }])
            }
            Command::CancelConference { conference, reason } => {
                let current = managed(actor, held(conference)?)?;
                let status = current.status_at(now);
                if status != Status::NotStarted {
                    return Err(DomainError::invalid_state(status));
                }
                let reason = reason_text(reason.as_deref())?;
                Ok(vec![Event::ConferenceCancelled {
                    conference: *conference,
                    reason,
                    at: now,
                }])
            }
            Command::EndConferenceEarly { conference } => {
                let current = managed(actor, held(conference)?)?;
                let status = current.status_at(now);
                if status != Status::InProgress {
                    return Err(DomainError::invalid_state(status));
                }
                Ok(vec![Event::ConferenceEndedEarly {
                    conference: *conference,
                    at: now,
                }])
            }
            Command::RecordProvisioning {
                conference,
                line,
                meeting_id,
                join_url,
                password,
                meeting_code,
            } => {
                require_admin(actor)?;
                // What a provider answered goes into `href`s and calendar files: only clean text.
                provider_url(join_url)?;
                free_text(meeting_id, "meeting_id", 200)?;
                if let Some(password) = password {
                    free_text(password, "password", 200)?;
                }
                if let Some(code) = meeting_code {
                    free_text(code, "meeting_code", 64)?;
                }
                let current = held(conference)?;
                let already = matches!(&current.provisioning,
                    Provisioning::Done { meeting_id: known, line: on, .. } if known == meeting_id && on == line);
                // A report for a line the conference has left is stale: its move is provisioned
                // too. A closed conference's report is still recorded: the provisioning process
                // then deletes (or ends) the meeting it made in the race with the close.
                if already || current.line.id != *line {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ConferenceProvisioned {
                    conference: *conference,
                    line: line.clone(),
                    meeting_id: meeting_id.clone(),
                    join_url: join_url.clone(),
                    password: password.clone(),
                    meeting_code: meeting_code.clone(),
                }])
            }
            Command::RecordProvisioningFailure {
                conference,
                line,
                reason,
            } => {
                require_admin(actor)?;
                let current = held(conference)?;
                let live = matches!(
                    current.status_at(now),
                    Status::NotStarted | Status::InProgress
                );
                if current.provisioning != Provisioning::Pending
                    || current.line.id != *line
                    || !live
                {
                    return Ok(vec![]);
                }
                Ok(vec![Event::ProvisioningFailed {
                    conference: *conference,
                    line: line.clone(),
                    reason: reason
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(500)
                        .collect(),
                    at: now,
                }])
            }
            Command::RecordProviderMeeting {
                conference,
                started,
                at,
            } => {
                require_admin(actor)?;
                let current = held(conference)?;
                if *started {
                    return Ok(vec![Event::ProviderMeetingStarted {
                        conference: *conference,
                        at: *at,
                    }]);
                }
                let mut events = vec![Event::ProviderMeetingEnded {
                    conference: *conference,
                    at: *at,
                }];
                // The provider's clock may run ahead of ours: an end is never later than now.
                let ended = (*at).min(now);
                let running = current.status_at(now) == Status::InProgress;
                if running && ended < current.slot.end && ended >= current.slot.start {
                    events.push(Event::ConferenceEndedEarly {
                        conference: *conference,
                        at: ended,
                    });
                }
                Ok(events)
            }
            Command::RecordElapsedTime { conference } => {
                let current = held(conference)?;
                let mut events = Vec::new();
                if current.status == Status::NotStarted && now >= current.slot.start {
                    events.push(Event::ConferenceStarted {
                        conference: *conference,
                        at: current.slot.start,
                    });
                }
                if matches!(current.status, Status::NotStarted | Status::InProgress)
                    && now >= current.slot.end
                {
                    events.push(Event::ConferenceEnded {
                        conference: *conference,
                        at: current.slot.end,
                    });
                }
                Ok(events)
            }
        }
    }

    fn schedule(
        &self,
        actor: &Actor,
        command: &ScheduleConference,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DomainError> {
        let start = match command.mode {
            Mode::Quick => now,
            Mode::Scheduled => command
                .start
                .ok_or_else(|| DomainError::invalid_input("start"))?,
        };
        let slot = TimeSlot::new(start, command.end.resolve(start))?;
        if command.mode == Mode::Scheduled && is_too_early(slot.start, now) {
            return Err(DomainError::invalid_input("start"));
        }
        let host = command.host.clone().unwrap_or_else(|| actor.user.clone());
        self.book(NewConference {
            id: command.conference,
            mode: command.mode,
            subject: command.subject.clone(),
            slot,
            timezone: command.timezone.clone(),
            attendees: attendees_without(&command.attendees, &host),
            host,
            creator: actor.user.clone(),
            related_link: command.related_link.clone(),
            source: Source::App,
            rooms: &command.rooms,
            numbers: &command.numbers,
            now,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn launch_from_meeting(
        &self,
        actor: &Actor,
        conference: ConferenceId,
        meeting: &MeetingFacts,
        (subject, start, end): (
            Option<Subject>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        ),
        timezone: &TimeZoneName,
        (rooms, numbers): (&RoomNonce, &NumberDraw),
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DomainError> {
        let convenes = [&meeting.creator, &meeting.convener, &meeting.contact];
        if !convenes.contains(&&actor.user) {
            return Err(DomainError::Forbidden);
        }
        if let Some(existing) = self
            .meeting_conferences
            .get(&meeting.id)
            .and_then(|id| self.conferences.get(id))
            .filter(|existing| {
                matches!(
                    existing.status_at(now),
                    Status::NotStarted | Status::InProgress
                )
            })
        {
            return Err(DomainError::ConferenceExists {
                conference_id: existing.id,
            });
        }
        let subject = match subject {
            Some(subject) => subject,
            None => Subject::parse(&meeting.subject)?,
        };
        let start = start.unwrap_or(meeting.start);
        let end = end.unwrap_or(meeting.end);
        // A meeting already under way gets a conference that starts now.
        let (mode, start) = if start <= now {
            (Mode::Quick, now)
        } else {
            (Mode::Scheduled, start)
        };
        let slot = TimeSlot::new(start, end)?;
        let host = actor.user.clone();
        self.book(NewConference {
            id: conference,
            mode,
            subject,
            slot,
            timezone: timezone.clone(),
            attendees: attendees_without(&meeting.attendees, &host),
            host,
            creator: actor.user.clone(),
            related_link: meeting.url.clone(),
            source: Source::Meeting {
                id: meeting.id.clone(),
            },
            rooms,
            numbers,
            now,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn launch_from_chat(
        &self,
        actor: &Actor,
        conference: ConferenceId,
        chat: &ChatFacts,
        subject: Option<Subject>,
        attendees: Option<&[UserId]>,
        timezone: &TimeZoneName,
        (rooms, numbers): (&RoomNonce, &NumberDraw),
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DomainError> {
        if !chat.members.contains(&actor.user) {
            return Err(DomainError::Forbidden);
        }
        let attendees = match attendees {
            Some(picked) => {
                if picked.iter().any(|user| !chat.members.contains(user)) {
                    return Err(DomainError::invalid_input("attendees"));
                }
                picked.to_vec()
            }
            None => chat.members.clone(),
        };
        let subject = match subject {
            Some(subject) => subject,
            None => Subject::parse(&chat.name)?,
        };
        let slot = TimeSlot::new(now, now + Duration::minutes(DEFAULT_MINUTES))?;
        self.book(NewConference {
            id: conference,
            mode: Mode::Quick,
            subject,
            slot,
            timezone: timezone.clone(),
            attendees: attendees_without(&attendees, &actor.user),
            host: actor.user.clone(),
            creator: actor.user.clone(),
            related_link: None,
            source: Source::Chat {
                id: chat.id.clone(),
            },
            rooms,
            numbers,
            now,
        })
    }

    fn book(&self, new: NewConference<'_>) -> Result<Vec<Event>, DomainError> {
        if self.conferences.contains_key(&new.id) {
            return Err(DomainError::InvalidState(Conflict::ConferenceExists));
        }
        let line = self
            .first_free_line(&new.slot, None)
            .ok_or_else(|| DomainError::no_free_line(new.slot))?;
        let number = new
            .numbers
            .candidates()
            .iter()
            .find(|number| !self.numbers.contains_key(*number))
            .ok_or(DomainError::NumbersExhausted)?;
        Ok(vec![Event::ConferenceScheduled {
            conference: new.id,
            number: number.clone(),
            mode: new.mode,
            subject: new.subject,
            slot: new.slot,
            timezone: new.timezone,
            host: new.host,
            creator: new.creator,
            attendees: new.attendees,
            related_link: new.related_link,
            source: new.source,
            line: line.id.clone(),
            room: RoomName::derive(new.rooms, 0),
            at: new.now,
            series: None,
        }])
    }

    fn edit(
        &self,
        actor: &Actor,
        current: &Conference,
        changes: &ConferenceChanges,
        expected_version: Option<u64>,
        rooms: &RoomNonce,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DomainError> {
        let current = managed(actor, current)?;
        let id = current.id;
        if let Some(expected) = expected_version
            && expected != current.version
        {
            return Err(DomainError::VersionMismatch {
                expected,
                actual: current.version,
            });
        }
        let status = current.status_at(now);
        if status != Status::NotStarted {
            return Err(DomainError::invalid_state(status));
        }
        let start = changes.start.unwrap_or(current.slot.start);
        let end = match changes.end {
            Some(end) => end.resolve(start),
            None => start + (current.slot.end - current.slot.start),
        };
        let slot = TimeSlot::new(start, end)?;
        let moved = slot != current.slot;
        if moved && is_too_early(slot.start, now) {
            return Err(DomainError::invalid_input("start"));
        }
        let own_line = self.line(&current.line.id);
        let keeps_line = own_line.is_some_and(|line| {
            line.status == LineStatus::Active && (!moved || line.is_free(&slot, Some(id)))
        });
        let (line, room) = if keeps_line {
            (current.line.id.clone(), current.room.clone())
        } else {
            let line = self
                .first_free_line(&slot, Some(id))
                .ok_or_else(|| DomainError::no_free_line(slot))?;
            (line.id.clone(), RoomName::derive(rooms, 0))
        };
        let attendees = match &changes.attendees {
            Some(attendees) => attendees_without(attendees, &current.host),
            None => current.attendees.clone(),
        };
        let subject = changes
            .subject
            .clone()
            .unwrap_or_else(|| current.subject.clone());
        let timezone = changes
            .timezone
            .clone()
            .unwrap_or_else(|| current.timezone.clone());
        let related_link = match &changes.related_link {
            Some(link) => link.clone(),
            None => current.related_link.clone(),
        };
        let unchanged = !moved
            && line == current.line.id
            && subject == current.subject
            && timezone == current.timezone
            && attendees == current.attendees
            && related_link == current.related_link;
        if unchanged {
            return Ok(vec![]);
        }
        Ok(vec![Event::ConferenceEdited {
            conference: id,
            subject,
            slot,
            timezone,
            attendees,
            related_link,
            links_changed: line != current.line.id,
            line,
            room,
        }])
    }

    fn start_maintenance(
        &self,
        line_id: &LineId,
        rooms: &RoomNonce,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DomainError> {
        let line = self.line(line_id).ok_or(DomainError::NotFound)?;
        if line.status == LineStatus::Maintenance {
            return Ok(vec![]);
        }
        let mut events = vec![Event::LineMaintenanceStarted {
            line: line_id.clone(),
        }];
        // Decide each move against the pool as the earlier moves leave it.
        let mut scratch = self.clone();
        scratch.apply(&events[0]);
        let mut future: Vec<&Conference> = line
            .bookings
            .values()
            .filter_map(|booking| self.conferences.get(&booking.conference))
            .filter(|conference| conference.status_at(now) == Status::NotStarted)
            .collect();
        future.sort_by_key(|conference| (conference.slot.start, conference.id));
        for (index, conference) in future.into_iter().enumerate() {
            let event = match scratch.first_free_line(&conference.slot, None) {
                Some(target) => Event::ConferenceMovedToLine {
                    conference: conference.id,
                    from: line_id.clone(),
                    to: target.id.clone(),
                    room: RoomName::derive(rooms, index),
                },
                None => Event::ConferenceStranded {
                    conference: conference.id,
                    line: line_id.clone(),
                },
            };
            scratch.apply(&event);
            events.push(event);
        }
        Ok(events)
    }

    /// Folds an accepted event. No validation; cannot fail.
    ///
    /// **Closing the books:** a conference whose events close it (ended, ended early, cancelled,
    /// provisioning failed) leaves the pool at once — with its number and its source meeting,
    /// which live conferences may then take — and its booking leaves its line once the log's
    /// clock is [`BOOKING_RETENTION_HOURS`] past its end. Later events of a closed conference
    /// (a provider's report) change nothing here. So what the pool holds grows with live and
    /// future work, not with history; a command naming a closed conference is decided on it as
    /// recalled from the store ([`Self::decide`]).
    pub fn apply(&mut self, event: &Event) {
        self.version += 1;
        if let Some(at) = decided_at(event)
            && self.latest.is_none_or(|latest| at > latest)
        {
            self.latest = Some(at);
        }
        match event {
            Event::LineAdded {
                line,
                name,
                provider,
            } => {
                self.record(|_| Undo::LinePushed);
                self.lines_added += 1;
                self.lines.push(Line {
                    id: line.clone(),
                    name: name.clone(),
                    provider: *provider,
                    status: LineStatus::Active,
                    bookings: BTreeMap::new(),
                });
            }
            Event::LineRenamed { line, name } => {
                self.record_line_state(line);
                if let Some(line) = self.line_mut(line) {
                    line.name = name.clone();
                }
            }
            Event::LineMaintenanceStarted { line } => {
                self.record_line_state(line);
                if let Some(line) = self.line_mut(line) {
                    line.status = LineStatus::Maintenance;
                }
            }
            Event::LineReturnedToService { line } => {
                self.record_line_state(line);
                if let Some(line) = self.line_mut(line) {
                    line.status = LineStatus::Active;
                }
            }
            Event::LineRemoved { line } => {
                if let Some(index) = self.lines.iter().position(|kept| kept.id == *line) {
                    let removed = self.lines.remove(index);
                    self.index = FreeLineIndex::of(&self.lines);
                    if let Some(journal) = &mut self.journal {
                        journal.undo.push(Undo::LineRemoved(index, removed));
                    }
                }
            }
            Event::ConferenceScheduled {
                conference,
                number,
                source,
                line,
                slot,
                ..
            } => {
                let Some(new) = Conference::scheduled(event, tag_of(&self.lines, line)) else {
                    return;
                };
                self.record(|pool| {
                    Undo::Conference(
                        *conference,
                        pool.conferences.get(conference).cloned().map(Box::new),
                    )
                });
                self.record(|pool| Undo::Number(number.clone(), pool.numbers.get(number).copied()));
                self.numbers.insert(number.clone(), *conference);
                if let Source::Meeting { id } = source {
                    self.record(|pool| {
                        Undo::Meeting(id.clone(), pool.meeting_conferences.get(id).copied())
                    });
                    self.meeting_conferences.insert(id.clone(), *conference);
                }
                self.conferences.insert(*conference, new);
                self.book_on(line, *slot, *conference);
                self.prune(line);
            }
            _ => {
                if let Some(id) = event.conference() {
                    self.apply_to_conference(id, event);
                }
            }
        }
    }

    /// Folds a later event of a conference the pool holds, and moves its booking to match.
    fn apply_to_conference(&mut self, id: ConferenceId, event: &Event) {
        let Some(current) = self.conferences.get(&id) else {
            return;
        };
        let before = (
            current.line.id.clone(),
            current.slot.start,
            current.booking_slot(),
        );
        self.record(|pool| Undo::Conference(id, pool.conferences.get(&id).cloned().map(Box::new)));
        let lines = &self.lines;
        let Some(current) = self.conferences.get_mut(&id) else {
            return;
        };
        current.apply(event, |line| tag_of(lines, line));
        let (line, booking, closed) = (
            current.line.id.clone(),
            current.booking_slot(),
            current.is_closed(),
        );
        if (&before.0, before.2) != (&line, booking) {
            self.unbook(&before.0, before.1, id);
            if let Some(slot) = booking {
                self.book_on(&line, slot, id);
            }
        }
        if closed {
            self.close(id);
            self.prune(&line);
        }
    }

    /// Lets a closed conference go: it, and the number and source meeting it held.
    fn close(&mut self, id: ConferenceId) {
        let Some(closed) = self.conferences.remove(&id) else {
            return;
        };
        if self.numbers.get(&closed.number) == Some(&id) {
            self.record(|_| Undo::Number(closed.number.clone(), Some(id)));
            self.numbers.remove(&closed.number);
        }
        if let Source::Meeting { id: meeting } = &closed.source
            && self.meeting_conferences.get(meeting) == Some(&id)
        {
            self.record(|_| Undo::Meeting(meeting.clone(), Some(id)));
            self.meeting_conferences.remove(meeting);
        }
    }

    /// Drops `line`'s earliest bookings while they belong to closed conferences and ended
    /// [`BOOKING_RETENTION_HOURS`] before the log's clock (amortised: each booking goes once).
    fn prune(&mut self, line: &LineId) {
        let Some(cutoff) = self
            .latest
            .map(|latest| latest - Duration::hours(BOOKING_RETENTION_HOURS))
        else {
            return;
        };
        loop {
            let Some((start, booking)) = self
                .line(line)
                .and_then(|known| known.bookings.first_key_value())
            else {
                return;
            };
            if booking.end >= cutoff || self.conferences.contains_key(&booking.conference) {
                return;
            }
            let start = *start;
            self.record_booking(line, start);
            self.set_booking(line, start, None, None);
        }
    }

    /// Books `slot` on `line`. A log that books a start already taken by another conference is
    /// corrupt: the first booking is kept and the clash recorded (see
    /// [`Self::overlapping_bookings`]) — never silently overwritten.
    fn book_on(&mut self, line: &LineId, slot: TimeSlot, conference: ConferenceId) {
        let Some(taken) = self.line(line).map(|known| known.bookings.get(&slot.start)) else {
            return;
        };
        if let Some(taken) = taken
            && taken.conference != conference
        {
            self.clashes
                .push((line.clone(), taken.conference, conference));
            return;
        }
        self.record_booking(line, slot.start);
        let booking = Booking {
            end: slot.end,
            conference,
        };
        self.set_booking(line, slot.start, Some(booking), Some(slot.end));
    }

    fn record_booking(&mut self, line: &LineId, start: DateTime<Utc>) {
        self.record(|pool| Undo::Booking {
            line: line.clone(),
            start,
            prior: pool
                .line(line)
                .and_then(|known| known.bookings.get(&start).cloned()),
        });
    }

    fn unbook(&mut self, line: &LineId, start: DateTime<Utc>, conference: ConferenceId) {
        if self
            .line(line)
            .and_then(|known| known.bookings.get(&start))
            .is_some_and(|booking| booking.conference == conference)
        {
            self.record_booking(line, start);
            self.set_booking(line, start, None, None);
        }
    }

    /// Puts `booking` (or nothing) at `start` on `line`, and brings the index up to date over
    /// what the old and the new booking reach (`end`: the new booking's end).
    fn set_booking(
        &mut self,
        line: &LineId,
        start: DateTime<Utc>,
        booking: Option<Booking>,
        end: Option<DateTime<Utc>>,
    ) {
        let Some(position) = self.lines.iter().position(|known| known.id == *line) else {
            return;
        };
        let bookings = &mut self.lines[position].bookings;
        let old = match booking {
            Some(booking) => bookings.insert(start, booking),
            None => bookings.remove(&start),
        };
        let reach = old.map(|old| old.end).max(end);
        if let Some(reach) = reach.filter(|reach| *reach > start) {
            self.index.refresh(
                position,
                &self.lines[position].bookings,
                &TimeSlot { start, end: reach },
            );
        }
    }

    /// Checks the pool's own invariant: no two bookings overlap on any line. Used by tests and
    /// by the load harness's verification.
    pub fn overlapping_bookings(&self) -> Vec<(LineId, ConferenceId, ConferenceId)> {
        let mut found = self.clashes.clone();
        for line in &self.lines {
            let mut previous: Option<(&DateTime<Utc>, &Booking)> = None;
            for (start, booking) in &line.bookings {
                if let Some((_, before)) = previous
                    && before.end > *start
                {
                    found.push((line.id.clone(), before.conference, booking.conference));
                }
                previous = Some((start, booking));
            }
        }
        found
    }
}

struct NewConference<'a> {
    id: ConferenceId,
    mode: Mode,
    subject: Subject,
    slot: TimeSlot,
    timezone: TimeZoneName,
    host: UserId,
    creator: UserId,
    attendees: Vec<UserId>,
    related_link: Option<RelatedLink>,
    source: Source,
    rooms: &'a RoomNonce,
    numbers: &'a NumberDraw,
    now: DateTime<Utc>,
}

/// The line `id` as a conference names it (an unknown line counts as builtin).
fn tag_of(lines: &[Line], id: &LineId) -> LineTag {
    LineTag {
        id: id.clone(),
        provider: lines
            .iter()
            .find(|line| line.id == *id)
            .map_or(ProviderKind::Builtin, |line| line.provider),
    }
}

/// When the pool decided an event, by the deciding node's clock (provider reports carry the
/// provider's clock and do not count).
fn decided_at(event: &Event) -> Option<DateTime<Utc>> {
    match event {
        Event::ConferenceScheduled { at, .. }
        | Event::ConferenceCancelled { at, .. }
        | Event::ConferenceEndedEarly { at, .. }
        | Event::ConferenceEnded { at, .. }
        | Event::ProvisioningFailed { at, .. }
        | Event::DemandRefused { at, .. } => Some(*at),
        _ => None,
    }
}

/// `conference` if the actor may see it (participant or admin) and manage it (host, creator,
/// admin): `not_found` for those who may not see it, `forbidden` for those who only may.
fn managed<'a>(actor: &Actor, conference: &'a Conference) -> Result<&'a Conference, DomainError> {
    if !actor.admin && !conference.is_participant(&actor.user) {
        return Err(DomainError::NotFound);
    }
    if !conference.may_manage(actor) {
        return Err(DomainError::Forbidden);
    }
    Ok(conference)
}

fn require_admin(actor: &Actor) -> Result<(), DomainError> {
    if actor.admin {
        Ok(())
    } else {
        Err(DomainError::Forbidden)
    }
}

/// A cancellation's reason: none when blank, else at most 500 characters of clean text.
fn reason_text(reason: Option<&str>) -> Result<Option<String>, DomainError> {
    reason
        .filter(|text| !text.trim().is_empty())
        .map(|text| free_text(text, "reason", 500))
        .transpose()
}

fn is_too_early(start: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    start < now - Duration::seconds(START_GRACE_SECONDS)
}

/// Attendees in their given order, without duplicates and without the host.
fn attendees_without(attendees: &[UserId], host: &UserId) -> Vec<UserId> {
    let mut kept: Vec<UserId> = Vec::with_capacity(attendees.len());
    for user in attendees {
        if user != host && !kept.contains(user) {
            kept.push(user.clone());
        }
    }
    kept
}

/// Re-exported for callers that build `EndSpec`s from minutes.
pub fn minutes(count: i64) -> EndSpec {
    EndSpec::After(Duration::minutes(count))
}
