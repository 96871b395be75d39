//! Series of conferences: booking one in one decision, and editing or cancelling an occurrence
//! together with the later ones or all of them. Every occurrence is an ordinary conference;
//! what these rules add is choosing their lines together and acting on them at once.
//!
//! Finding a series' occurrences walks the conferences the pool holds (live and future work
//! only, see [`LinePool::apply`]): no index to keep, at the cost of one pass per scoped edit or
//! cancellation.

use chrono::{DateTime, Utc};

use super::{Conference, LinePool, attendees_without, is_too_early, managed, reason_text};
use crate::command::{ConferenceChanges, OnConflict, ScheduleSeries, SeriesScope};
use crate::error::{DomainError, SeriesConflict};
use crate::event::Event;
use crate::recurrence::{SeriesLink, at_local};
use crate::types::{
    Actor, ConferenceId, ConferenceNumber, LineId, LineStatus, Mode, RoomName, RoomNonce, Source,
    Status, TimeSlot,
};

impl LinePool {
    /// Books every occurrence of a series: on one line when one is free for all of them (so
    /// the links stay the same), else each on the first free line. With
    /// [`OnConflict::Reject`] an occurrence no line can take refuses the whole series; with
    /// [`OnConflict::Skip`] it is left out and recorded as demand refused.
    pub(super) fn schedule_series(
        &self,
        actor: &Actor,
        command: &ScheduleSeries,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DomainError> {
        let first = &command.first;
        if first.mode != Mode::Scheduled {
            return Err(DomainError::invalid_input("mode"));
        }
        let start = first
            .start
            .ok_or_else(|| DomainError::invalid_input("start"))?;
        let first_slot = TimeSlot::new(start, first.end.resolve(start))?;
        if is_too_early(first_slot.start, now) {
            return Err(DomainError::invalid_input("start"));
        }
        let slots = command
            .recurrence
            .occurrences(&first_slot, &first.timezone)?;
        if slots.len() != command.more.len() + 1 {
            return Err(DomainError::invalid_input("recurrence"));
        }
        let ids: Vec<(ConferenceId, &crate::types::NumberDraw)> =
            std::iter::once((first.conference, &first.numbers))
                .chain(command.more.iter().map(|(id, draw)| (*id, draw)))
                .collect();
        for (index, (id, _)) in ids.iter().enumerate() {
            if self.conferences.contains_key(id) || ids[..index].iter().any(|(seen, _)| seen == id)
            {
                return Err(DomainError::InvalidState(
                    crate::error::Conflict::ConferenceExists,
                ));
            }
        }
        let whole = self
            .lines
            .iter()
            .find(|line| {
                line.status == LineStatus::Active
                    && slots.iter().all(|slot| line.is_free(slot, None))
            })
            .map(|line| line.id.clone());
        let mut placed: Vec<(usize, LineId)> = Vec::with_capacity(slots.len());
        let mut conflicts: Vec<SeriesConflict> = Vec::new();
        for (index, slot) in slots.iter().enumerate() {
            match whole
                .clone()
                .or_else(|| self.first_free_line(slot, None).map(|line| line.id.clone()))
            {
                Some(line) => placed.push((index, line)),
                None => conflicts.push(SeriesConflict {
                    slot: *slot,
                    suggestions: Vec::new(),
                }),
            }
        }
        if !conflicts.is_empty() && (command.on_conflict == OnConflict::Reject || placed.is_empty())
        {
            return Err(DomainError::SeriesUnbookable { conflicts });
        }
        let host = first.host.clone().unwrap_or_else(|| actor.user.clone());
        let attendees = attendees_without(&first.attendees, &host);
        let mut taken: Vec<&ConferenceNumber> = Vec::with_capacity(placed.len());
        let mut events = Vec::with_capacity(slots.len());
        let mut placed = placed.into_iter().peekable();
        for (index, slot) in slots.iter().enumerate() {
            let Some((_, line)) = placed.next_if(|(at, _)| *at == index) else {
                events.push(Event::DemandRefused {
                    slot: *slot,
                    edited: None,
                    at: now,
                });
                continue;
            };
            let (id, draw) = ids[index];
            let number = draw
                .candidates()
                .iter()
                .find(|number| !self.numbers.contains_key(*number) && !taken.contains(number))
                .ok_or(DomainError::NumbersExhausted)?;
            taken.push(number);
            events.push(Event::ConferenceScheduled {
                conference: id,
                number: number.clone(),
                mode: Mode::Scheduled,
                subject: first.subject.clone(),
                slot: *slot,
                timezone: first.timezone.clone(),
                host: host.clone(),
                creator: actor.user.clone(),
                attendees: attendees.clone(),
                related_link: first.related_link.clone(),
                source: Source::App,
                line,
                room: RoomName::derive(&first.rooms, index),
                at: now,
                series: Some(Box::new(SeriesLink {
                    id: command.series,
                    recurrence: command.recurrence.clone(),
                    first: first_slot,
                    timezone: first.timezone.clone(),
                    occurrence: slot.start,
                })),
            });
        }
        Ok(events)
    }

    /// The not-started occurrences of `target`'s series in `scope`, in the series' order, each
    /// one the actor may manage.
    fn in_scope<'a>(
        &'a self,
        actor: &Actor,
        target: &Conference,
        scope: SeriesScope,
        now: DateTime<Utc>,
    ) -> Result<Vec<&'a Conference>, DomainError> {
        let link = target
            .series
            .as_ref()
            .ok_or_else(|| DomainError::invalid_input("scope"))?;
        // The occurrence named is one of those acted on: a started, ended or cancelled one
        // cannot stand for the series (nor move it again and again).
        let status = target.status_at(now);
        if status != Status::NotStarted {
            return Err(DomainError::invalid_state(status));
        }
        let mut members: Vec<&Conference> = self
            .conferences
            .values()
            .filter(|conference| {
                conference.series.as_ref().is_some_and(|other| {
                    other.id == link.id
                        && (scope == SeriesScope::All || other.occurrence >= link.occurrence)
                })
            })
            .filter(|conference| conference.status_at(now) == Status::NotStarted)
            .collect();
        members.sort_by_key(|conference| (occurrence_of(conference), conference.id));
        for member in &members {
            managed(actor, member)?;
        }
        Ok(members)
    }

    /// Edits the occurrences of `target`'s series in `scope` as [`LinePool::handle`] edits one:
    /// a new start moves each by the same local amount in the series' zone (a weekly 09:00 moved
    /// to 10:00 stays 10:00 across a change of clocks), a new end gives each the new length, and
    /// each one moved keeps its line if it is free there (the series' own old times not
    /// counted), else takes the line the previous one took, else the first free line. No
    /// occurrence may end after `latest` (the booking horizon). All or nothing: occurrences no
    /// line can take refuse the edit, listed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn edit_series(
        &self,
        actor: &Actor,
        target: &Conference,
        changes: &ConferenceChanges,
        expected_version: Option<u64>,
        rooms: &RoomNonce,
        scope: SeriesScope,
        latest: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DomainError> {
        let target = managed(actor, target)?;
        if let Some(expected) = expected_version
            && expected != target.version
        {
            return Err(DomainError::VersionMismatch {
                expected,
                actual: target.version,
            });
        }
        let members = self.in_scope(actor, target, scope, now)?;
        let start = changes.start.unwrap_or(target.slot.start);
        let end = match changes.end {
            Some(end) => end.resolve(start),
            None => start + (target.slot.end - target.slot.start),
        };
        let new = TimeSlot::new(start, end)?;
        let link = target.series.as_ref().expect("in_scope checked it");
        let tz: chrono_tz::Tz = link
            .timezone
            .as_str()
            .parse()
            .map_err(|_| DomainError::invalid_input("timezone"))?;
        let local = |at: DateTime<Utc>| at.with_timezone(&tz).naive_local();
        let shift = local(new.start) - local(target.slot.start);
        let mut slots = Vec::with_capacity(members.len());
        for member in &members {
            let start = if shift.is_zero() {
                member.slot.start
            } else {
                local(member.slot.start)
                    .checked_add_signed(shift)
                    .ok_or_else(|| DomainError::invalid_input("start"))
                    .and_then(|moved| at_local(&tz, moved))?
            };
            let length = if changes.end.is_some() {
                new.end - new.start
            } else {
                member.slot.end - member.slot.start
            };
            let end = start
                .checked_add_signed(length)
                .ok_or_else(|| DomainError::invalid_input("start"))?;
            let slot = TimeSlot::new(start, end)?;
            if slot != member.slot && (is_too_early(slot.start, now) || slot.end > latest) {
                return Err(DomainError::invalid_input("start"));
            }
            slots.push(slot);
        }
        let ignoring: Vec<ConferenceId> = members.iter().map(|member| member.id).collect();
        let mut placed: Vec<(LineId, TimeSlot)> = Vec::with_capacity(members.len());
        let mut chosen: Vec<Option<LineId>> = Vec::with_capacity(members.len());
        let mut conflicts = Vec::new();
        for (member, slot) in members.iter().zip(&slots) {
            let previous = placed.last().map(|(line, _)| line);
            let line = self.line_for(member, slot, &ignoring, &placed, previous);
            match &line {
                Some(line) => placed.push((line.clone(), *slot)),
                None => conflicts.push(SeriesConflict {
                    slot: *slot,
                    suggestions: Vec::new(),
                }),
            }
            chosen.push(line);
        }
        if !conflicts.is_empty() {
            return Err(DomainError::SeriesUnbookable { conflicts });
        }
        let mut events: Vec<((LineId, DateTime<Utc>), Event)> = Vec::new();
        for (index, ((member, slot), line)) in members.iter().zip(slots).zip(chosen).enumerate() {
            let line = line.expect("every occurrence has a line");
            let moved_line = line != member.line.id;
            let edited = Event::ConferenceEdited {
                conference: member.id,
                subject: changes
                    .subject
                    .clone()
                    .unwrap_or_else(|| member.subject.clone()),
                slot,
                timezone: changes
                    .timezone
                    .clone()
                    .unwrap_or_else(|| member.timezone.clone()),
                attendees: match &changes.attendees {
                    Some(attendees) => attendees_without(attendees, &member.host),
                    None => member.attendees.clone(),
                },
                related_link: match &changes.related_link {
                    Some(link) => link.clone(),
                    None => member.related_link.clone(),
                },
                room: if moved_line {
                    RoomName::derive(rooms, index)
                } else {
                    member.room.clone()
                },
                links_changed: moved_line,
                line,
            };
            if !unchanged(member, &edited) {
                events.push(((member.line.id.clone(), member.slot.start), edited));
            }
        }
        applicable(events)
    }

    /// Cancels the not-started occurrences of `target`'s series in `scope`.
    pub(super) fn cancel_series(
        &self,
        actor: &Actor,
        target: &Conference,
        reason: Option<&str>,
        scope: SeriesScope,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DomainError> {
        let target = managed(actor, target)?;
        let reason = reason_text(reason)?;
        let members = self.in_scope(actor, target, scope, now)?;
        Ok(members
            .into_iter()
            .map(|member| Event::ConferenceCancelled {
                conference: member.id,
                reason: reason.clone(),
                at: now,
            })
            .collect())
    }

    /// The line an occurrence moved to `slot` takes: its own if it is active and free (the
    /// series' own old bookings in `ignoring` not counted, its new ones in `placed` counted),
    /// else the line the previous occurrence took, else the first active line free then.
    fn line_for(
        &self,
        member: &Conference,
        slot: &TimeSlot,
        ignoring: &[ConferenceId],
        placed: &[(LineId, TimeSlot)],
        previous: Option<&LineId>,
    ) -> Option<LineId> {
        let usable = |id: &LineId| {
            let clear = !placed.iter().any(|(line, other)| {
                line == id && other.start < slot.end && slot.start < other.end
            });
            // Only its own line may keep it at its time unchecked (it holds that time there).
            let stays = *id == member.line.id && *slot == member.slot;
            clear
                && self.line(id).is_some_and(|line| {
                    line.status == LineStatus::Active
                        && (stays || line.is_free_ignoring(slot, ignoring))
                })
        };
        if usable(&member.line.id) {
            return Some(member.line.id.clone());
        }
        if let Some(previous) = previous.filter(|id| usable(id)) {
            return Some(previous.clone());
        }
        self.lines
            .iter()
            .map(|line| &line.id)
            .find(|id| usable(id))
            .cloned()
    }
}

/// The edits in an order the fold can apply: a booking is keyed by its line and start, and each
/// edit frees its old key before it takes its new one, so an edit goes after every other one
/// whose old key it takes (moved a week later, the latest first). Each entry is an edit with its
/// member's old key. The new keys are free of every other booking (the lines were checked), so
/// only the members' own old keys can stand in the way; an order that frees them all exists
/// unless two edits would swap keys, which is refused.
fn applicable(
    mut pending: Vec<((LineId, DateTime<Utc>), Event)>,
) -> Result<Vec<Event>, DomainError> {
    let new_key = |event: &Event| match event {
        Event::ConferenceEdited { line, slot, .. } => Some((line.clone(), slot.start)),
        _ => None,
    };
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = (0..pending.len()).find(|&index| {
            let wanted = new_key(&pending[index].1);
            pending
                .iter()
                .enumerate()
                .all(|(other, (old, _))| other == index || Some(old) != wanted.as_ref())
        });
        let Some(index) = ready else {
            return Err(DomainError::invalid_input("start"));
        };
        ordered.push(pending.remove(index).1);
    }
    Ok(ordered)
}

/// An occurrence's start by its series' rule (its own start if it is in none).
fn occurrence_of(conference: &Conference) -> DateTime<Utc> {
    conference
        .series
        .as_ref()
        .map_or(conference.slot.start, |link| link.occurrence)
}

/// Whether `edited` leaves `member` as it is.
fn unchanged(member: &Conference, edited: &Event) -> bool {
    let Event::ConferenceEdited {
        subject,
        slot,
        timezone,
        attendees,
        related_link,
        line,
        ..
    } = edited
    else {
        return false;
    };
    *subject == member.subject
        && *slot == member.slot
        && *timezone == member.timezone
        && *attendees == member.attendees
        && *related_link == member.related_link
        && *line == member.line.id
}
