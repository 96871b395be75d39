//! An **independent checker** of a meetline event log. It reads the raw recorded events and
//! re-derives every invariant the engine promises with its own deliberately plain code — the
//! intervals of each line, by start, a handful of fields per conference — sharing nothing with the
//! aggregate (`LinePool`) but the stored event shapes. Tests, the benchmark harness and
//! `meetline verify` use it, so a bug in the aggregate cannot hide itself by being asked whether
//! it is right.
//!
//! What it checks, per pool stream (tenant), in log order:
//! - **versions** are 1, 2, 3… per stream, and **positions** increase by one across the log;
//! - **no overlap**: no two bookings on one line share an instant (a booking is the slot of a
//!   conference that is not cancelled; an early end shortens it);
//! - **duration**: every slot is longer than zero and at most 24 hours;
//! - **legal transitions**: nothing happens to a conference that its state at that instant does
//!   not allow (e.g. an edit after its start, a cancel after an end, an early end before its start);
//! - **the lowest free line**: a new conference, a move off a busy line and a move off a line in
//!   maintenance each take the first active line, in the order lines were added, on which the slot
//!   is free — and a conference is stranded only when none is;
//! - **unique numbers** among live conferences of a tenant;
//! - **refusals**: every refusal the log records (`DemandRefused`) had no active line free for
//!   its slot in the state just before it; and every command a caller saw refused for want of a
//!   line (reported with the log positions around it) had none free at some moment while it was
//!   being decided.
//!
//! # Layout
//! - [`check`]: the whole log (and refusals) → a [`Report`].
//! - [`expected`]: the expected read model, folded apart from the projector.
//! - `Tenant` / `Booking`: the checker's own state, nothing more than the rules need.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub mod expected;

use chrono::{DateTime, Duration, Utc};
use meetline_domain::event::Event;
use meetline_domain::ports::RecordedEvent;
use meetline_domain::types::ConferenceId;

/// A command refused with `no_free_line`: in pool `stream`, for `[start, end)`, decided at some
/// moment while the log went from position `before` to `after` (the caller reads the head before
/// sending and after the answer). `ignoring`: the conference being edited (its own booking does
/// not count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub stream: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub before: u64,
    pub after: u64,
    pub ignoring: Option<ConferenceId>,
}

/// One broken rule, with the event that broke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub position: u64,
    pub stream: String,
    pub rule: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "position {} in {}: {}: {}",
            self.position, self.stream, self.rule, self.detail
        )
    }
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub events: usize,
    pub streams: usize,
    pub conferences: usize,
    pub refusals: usize,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// `verify (independent checker): PASS (…)` or `FAIL` with the first violations.
    pub fn summary(&self) -> String {
        if self.passed() {
            format!(
                "verify (independent checker): PASS ({} events, {} pools, {} conferences, {} refusals; no overlap, durations, transitions, lowest free line, numbers, refusals)",
                self.events, self.streams, self.conferences, self.refusals
            )
        } else {
            let mut text = format!(
                "verify (independent checker): FAIL ({} violations)",
                self.violations.len()
            );
            for violation in self.violations.iter().take(10) {
                text.push_str(&format!("\n  {violation}"));
            }
            text
        }
    }
}

const MAX_LENGTH_HOURS: i64 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Cancelled,
    EndedEarly(DateTime<Utc>),
    Ended,
}

#[derive(Debug, Clone)]
struct Conference {
    number: String,
    line: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    phase: Phase,
    started: bool,
}

impl Conference {
    /// The interval it holds on its line, if any.
    fn booking(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match self.phase {
            Phase::Cancelled => None,
            Phase::EndedEarly(at) if at <= self.start => None,
            Phase::EndedEarly(at) => Some((self.start, at.min(self.end))),
            Phase::Open | Phase::Ended => Some((self.start, self.end)),
        }
    }
}

#[derive(Debug, Clone)]
struct Line {
    id: String,
    active: bool,
    removed: bool,
}

/// A line's bookings: `(start, conference) → end`, in order of start — so that a check looks
/// only at those starting within 24 h before a slot (a longer booking is a violation of its own,
/// reported as such), not at the line's whole history.
type Intervals = BTreeMap<(DateTime<Utc>, ConferenceId), DateTime<Utc>>;

/// One pool's state, as plain as the rules allow.
#[derive(Debug, Default)]
struct Tenant {
    version: u64,
    /// In the order they were added.
    lines: Vec<Line>,
    conferences: HashMap<ConferenceId, Conference>,
    /// Per line, the intervals its conferences hold.
    intervals: HashMap<String, Intervals>,
    /// Number → every conference that was given it.
    numbers: HashMap<String, Vec<ConferenceId>>,
}

impl Tenant {
    /// Whether `[start, end)` is free on `line` (ignoring one conference's own booking).
    fn free_on(
        &self,
        line: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        ignoring: Option<ConferenceId>,
    ) -> bool {
        !self
            .reaching(line, start, end)
            .any(|id| Some(id) != ignoring)
    }

    /// The conferences whose interval on `line` shares an instant with `[start, end)`.
    fn reaching(
        &self,
        line: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> impl Iterator<Item = ConferenceId> + '_ {
        let earliest = start - Duration::hours(MAX_LENGTH_HOURS);
        let nil = ConferenceId(uuid::Uuid::nil());
        self.intervals
            .get(line)
            .into_iter()
            .flat_map(move |held| held.range((earliest, nil)..(end, nil)))
            .filter(move |((from, _), to)| *from < end && start < **to)
            .map(|((_, id), _)| *id)
    }

    /// Changes a conference, keeping its line's intervals in step.
    fn update(&mut self, conference: ConferenceId, change: impl FnOnce(&mut Conference)) {
        let Some(current) = self.conferences.get_mut(&conference) else {
            return;
        };
        if let Some((start, _)) = current.booking()
            && let Some(held) = self.intervals.get_mut(&current.line)
        {
            held.remove(&(start, conference));
        }
        change(current);
        if let Some((start, end)) = current.booking() {
            self.intervals
                .entry(current.line.clone())
                .or_default()
                .insert((start, conference), end);
        }
    }

    fn insert(&mut self, id: ConferenceId, conference: Conference) {
        if let Some((start, end)) = conference.booking() {
            self.intervals
                .entry(conference.line.clone())
                .or_default()
                .insert((start, id), end);
        }
        self.numbers
            .entry(conference.number.clone())
            .or_default()
            .push(id);
        self.conferences.insert(id, conference);
    }

    /// The first active line, in the order lines were added, on which the slot is free.
    fn first_free(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        ignoring: Option<ConferenceId>,
    ) -> Option<&str> {
        self.lines
            .iter()
            .filter(|line| line.active && !line.removed)
            .find(|line| self.free_on(&line.id, start, end, ignoring))
            .map(|line| line.id.as_str())
    }

    fn is_active(&self, line: &str) -> bool {
        self.lines
            .iter()
            .any(|known| known.id == line && known.active && !known.removed)
    }

    /// Every pair of bookings that share an instant on `line`, involving `conference`.
    fn overlaps_of(&self, conference: ConferenceId) -> Vec<ConferenceId> {
        let Some(subject) = self.conferences.get(&conference) else {
            return Vec::new();
        };
        let Some((start, end)) = subject.booking() else {
            return Vec::new();
        };
        self.reaching(&subject.line, start, end)
            .filter(|id| *id != conference)
            .collect()
    }
}

struct Checker {
    tenants: HashMap<String, Tenant>,
    violations: Vec<Violation>,
    position: u64,
    stream: String,
}

impl Checker {
    fn fail(&mut self, rule: &'static str, detail: String) {
        self.violations.push(Violation {
            position: self.position,
            stream: self.stream.clone(),
            rule,
            detail,
        });
    }

    fn tenant(&mut self) -> &mut Tenant {
        self.tenants.entry(self.stream.clone()).or_default()
    }

    fn check_length(&mut self, conference: ConferenceId, start: DateTime<Utc>, end: DateTime<Utc>) {
        let length = end - start;
        if length <= Duration::zero() || length > Duration::hours(MAX_LENGTH_HOURS) {
            self.fail(
                "duration",
                format!(
                    "conference {conference} lasts {} minutes",
                    length.num_minutes()
                ),
            );
        }
    }

    fn check_no_overlap(&mut self, conference: ConferenceId) {
        let others = self.tenant().overlaps_of(conference);
        for other in others {
            self.fail(
                "no overlap",
                format!("conference {conference} overlaps {other} on its line"),
            );
        }
    }

    /// The conference, which must exist and be open (else a transition violation).
    fn open(&mut self, conference: ConferenceId, what: &str) -> Option<Conference> {
        match self.tenant().conferences.get(&conference).cloned() {
            None => {
                self.fail(
                    "transition",
                    format!("{what} of unknown conference {conference}"),
                );
                None
            }
            Some(current) if current.phase != Phase::Open => {
                self.fail(
                    "transition",
                    format!(
                        "{what} of conference {conference}, already {:?}",
                        current.phase
                    ),
                );
                None
            }
            Some(current) => Some(current),
        }
    }

    fn apply(&mut self, recorded: &RecordedEvent) {
        let at = recorded.metadata.recorded_at;
        match &recorded.event {
            Event::LineAdded { line, .. } => {
                let tenant = self.tenant();
                if tenant.lines.iter().any(|known| known.id == line.as_str()) {
                    let detail = format!("line {line} added twice");
                    self.fail("transition", detail);
                } else {
                    tenant.lines.push(Line {
                        id: line.to_string(),
                        active: true,
                        removed: false,
                    });
                }
            }
            Event::LineRenamed { .. } => {}
            Event::LineMaintenanceStarted { line } | Event::LineReturnedToService { line } => {
                let active = matches!(recorded.event, Event::LineReturnedToService { .. });
                let tenant = self.tenant();
                if let Some(known) = tenant
                    .lines
                    .iter_mut()
                    .find(|known| known.id == line.as_str())
                {
                    known.active = active;
                } else {
                    self.fail("transition", format!("unknown line {line}"));
                }
            }
            Event::LineRemoved { line } => {
                let holds = self.tenant().conferences.values().any(|conference| {
                    conference.line == line.as_str()
                        && conference.phase == Phase::Open
                        && conference.end > at
                });
                if holds {
                    self.fail(
                        "transition",
                        format!(
                            "line {line} removed while it holds a conference that has not ended"
                        ),
                    );
                }
                if let Some(known) = self
                    .tenant()
                    .lines
                    .iter_mut()
                    .find(|known| known.id == line.as_str())
                {
                    known.removed = true;
                }
            }
            Event::ConferenceScheduled {
                conference,
                number,
                slot,
                line,
                ..
            } => {
                let (start, end) = (slot.start, slot.end);
                self.check_length(*conference, start, end);
                let tenant = self.tenant();
                if tenant.conferences.contains_key(conference) {
                    self.fail(
                        "transition",
                        format!("conference {conference} scheduled twice"),
                    );
                    return;
                }
                let expected = tenant.first_free(start, end, None).map(str::to_owned);
                let clash = tenant
                    .numbers
                    .get(number.as_str())
                    .into_iter()
                    .flatten()
                    .copied()
                    .find(|id| {
                        tenant
                            .conferences
                            .get(id)
                            .is_some_and(|other| other.phase == Phase::Open && other.end > at)
                    });
                if expected.as_deref() != Some(line.as_str()) {
                    self.fail(
                        "lowest free line",
                        format!(
                            "conference {conference} booked on {line}; the first free line was {expected:?}"
                        ),
                    );
                }
                if let Some(other) = clash {
                    self.fail(
                        "unique numbers",
                        format!(
                            "conference {conference} got number {number} of live conference {other}"
                        ),
                    );
                }
                self.tenant().insert(
                    *conference,
                    Conference {
                        number: number.to_string(),
                        line: line.to_string(),
                        start,
                        end,
                        phase: Phase::Open,
                        started: false,
                    },
                );
                self.check_no_overlap(*conference);
            }
            Event::ConferenceEdited {
                conference,
                slot,
                line,
                ..
            } => {
                let Some(current) = self.open(*conference, "edit") else {
                    return;
                };
                if at >= current.start {
                    self.fail(
                        "transition",
                        format!("conference {conference} edited after its start"),
                    );
                }
                self.check_length(*conference, slot.start, slot.end);
                let moved = slot.start != current.start || slot.end != current.end;
                let tenant = self.tenant();
                let own_keeps = tenant.is_active(&current.line)
                    && (!moved
                        || tenant.free_on(&current.line, slot.start, slot.end, Some(*conference)));
                let expected = if own_keeps {
                    Some(current.line.clone())
                } else {
                    tenant
                        .first_free(slot.start, slot.end, Some(*conference))
                        .map(str::to_owned)
                };
                if expected.as_deref() != Some(line.as_str()) {
                    self.fail(
                        "lowest free line",
                        format!(
                            "conference {conference} edited onto {line}; expected {expected:?} (own line {})",
                            current.line
                        ),
                    );
                }
                let (start, end, line) = (slot.start, slot.end, line.to_string());
                self.tenant().update(*conference, |edited| {
                    edited.start = start;
                    edited.end = end;
                    edited.line = line;
                });
                self.check_no_overlap(*conference);
            }
            Event::AttendeesInvited { conference, .. }
            | Event::ParticipantJoined { conference, .. } => {
                if let Some(current) = self.open(*conference, "invitation or join")
                    && at >= current.end
                {
                    self.fail(
                        "transition",
                        format!("conference {conference} joined after its end"),
                    );
                }
            }
            Event::ConferenceCancelled {
                conference,
                at: when,
                ..
            } => {
                let Some(current) = self.open(*conference, "cancel") else {
                    return;
                };
                if *when >= current.start || at >= current.start {
                    self.fail(
                        "transition",
                        format!("conference {conference} cancelled after its start"),
                    );
                }
                self.set_phase(*conference, Phase::Cancelled);
            }
            Event::ConferenceEndedEarly {
                conference,
                at: when,
            } => {
                let Some(current) = self.open(*conference, "early end") else {
                    return;
                };
                if *when < current.start || *when >= current.end || at < current.start {
                    self.fail(
                        "transition",
                        format!("conference {conference} ended early at {when} outside its slot"),
                    );
                }
                self.set_phase(*conference, Phase::EndedEarly(*when));
            }
            Event::ConferenceStarted { conference, .. } => {
                let Some(current) = self.open(*conference, "start") else {
                    return;
                };
                if current.started || at < current.start {
                    self.fail(
                        "transition",
                        format!("conference {conference} started twice or before its start"),
                    );
                }
                if let Some(started) = self.tenant().conferences.get_mut(conference) {
                    started.started = true;
                }
            }
            Event::ConferenceEnded { conference, .. } => {
                let Some(current) = self.open(*conference, "end") else {
                    return;
                };
                if at < current.end {
                    self.fail(
                        "transition",
                        format!("conference {conference} ended before its end"),
                    );
                }
                self.set_phase(*conference, Phase::Ended);
            }
            Event::ConferenceMovedToLine {
                conference,
                from,
                to,
                ..
            } => {
                let Some(current) = self.open(*conference, "maintenance move") else {
                    return;
                };
                if current.line != from.as_str() || at >= current.start {
                    self.fail(
                        "transition",
                        format!("conference {conference} moved from {from}, which is not its line, or after its start"),
                    );
                }
                let expected = self
                    .tenant()
                    .first_free(current.start, current.end, Some(*conference))
                    .map(str::to_owned);
                if expected.as_deref() != Some(to.as_str()) {
                    self.fail(
                        "lowest free line",
                        format!("conference {conference} moved to {to}; the first free line was {expected:?}"),
                    );
                }
                let to = to.to_string();
                self.tenant().update(*conference, |moved| moved.line = to);
                self.check_no_overlap(*conference);
            }
            Event::ConferenceStranded { conference, .. } => {
                let Some(current) = self.open(*conference, "stranding") else {
                    return;
                };
                let free = self
                    .tenant()
                    .first_free(current.start, current.end, Some(*conference))
                    .map(str::to_owned);
                if let Some(free) = free {
                    self.fail(
                        "lowest free line",
                        format!("conference {conference} stranded although {free} was free"),
                    );
                }
            }
            Event::ConferenceProvisioned { conference, .. }
            | Event::ProviderMeetingStarted { conference, .. }
            | Event::ProviderMeetingEnded { conference, .. } => {
                if !self.tenant().conferences.contains_key(conference) {
                    self.fail(
                        "transition",
                        format!("provider news of unknown conference {conference}"),
                    );
                }
            }
            Event::ProvisioningFailed { conference, .. } => {
                let Some(current) = self.open(*conference, "provisioning failure") else {
                    return;
                };
                if at >= current.end {
                    self.fail(
                        "transition",
                        format!("conference {conference} failed after its end"),
                    );
                }
                self.set_phase(*conference, Phase::Cancelled);
            }
            Event::DemandRefused { slot, edited, .. } => {
                // Recorded where it was decided: the state just before it had no active line
                // free for the slot (the edited conference's own booking aside).
                if let Some(free) = self.tenant().first_free(slot.start, slot.end, *edited) {
                    let detail = format!(
                        "demand for {} – {} refused while {free} was free",
                        slot.start, slot.end
                    );
                    self.fail("refusal", detail);
                }
            }
        }
    }

    fn set_phase(&mut self, conference: ConferenceId, phase: Phase) {
        self.tenant()
            .update(conference, |current| current.phase = phase);
    }

    /// Whether, in the state as it is now, `refusal`'s slot is free on no active line.
    fn no_line_free(&self, refusal: &Refusal) -> bool {
        self.tenants.get(&refusal.stream).is_none_or(|tenant| {
            tenant
                .first_free(refusal.start, refusal.end, refusal.ignoring)
                .is_none()
        })
    }
}

/// Every event `store` holds, in log order (what [`check`] and the expected read model read).
///
/// # Errors
/// When the store cannot be read.
pub async fn whole_log(
    store: &dyn meetline_domain::ports::EventStore,
) -> Result<Vec<RecordedEvent>, meetline_domain::ports::StoreError> {
    let mut log = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        log.extend(page);
    }
    Ok(log)
}

/// Checks a whole log, given in position order (every stream of the store, or those of the
/// tenants to check), and the refusals a caller observed.
pub fn check(events: &[RecordedEvent], refusals: &[Refusal]) -> Report {
    let mut checker = Checker {
        tenants: HashMap::new(),
        violations: Vec::new(),
        position: 0,
        stream: String::new(),
    };
    // Refusals by the position from which they may be judged; each is satisfied once a state
    // within its window has no free line.
    let mut waiting: Vec<(usize, &Refusal)> = refusals.iter().enumerate().collect();
    waiting.sort_by_key(|(_, refusal)| refusal.before);
    let mut satisfied = vec![false; refusals.len()];
    let mut next = 0;
    let mut open: Vec<usize> = Vec::new();
    let mut previous: Option<u64> = None;
    // Judges the open refusals of `stream` (all, for `None`) against the state now.
    let judge = |checker: &Checker,
                 open: &mut Vec<usize>,
                 satisfied: &mut Vec<bool>,
                 at: u64,
                 stream: Option<&str>| {
        open.retain(|&index| {
            let refusal = &refusals[index];
            if at > refusal.after {
                return false;
            }
            if stream.is_none_or(|stream| stream == refusal.stream) && checker.no_line_free(refusal)
            {
                satisfied[index] = true;
                return false;
            }
            true
        });
    };
    // The state before the first event (position 0).
    while next < waiting.len() && waiting[next].1.before == 0 {
        open.push(waiting[next].0);
        next += 1;
    }
    judge(&checker, &mut open, &mut satisfied, 0, None);
    for recorded in events {
        checker.position = recorded.position;
        checker.stream.clone_from(&recorded.stream);
        if let Some(last) = previous
            && recorded.position != last + 1
        {
            checker.fail(
                "dense positions",
                format!("position {} follows {last}", recorded.position),
            );
        }
        previous = Some(recorded.position);
        let tenant = checker.tenant();
        tenant.version += 1;
        if recorded.version != tenant.version {
            let expected = tenant.version;
            tenant.version = recorded.version;
            checker.fail(
                "dense versions",
                format!("version {} where {expected} was due", recorded.version),
            );
        }
        checker.apply(recorded);
        judge(
            &checker,
            &mut open,
            &mut satisfied,
            recorded.position,
            Some(&recorded.stream),
        );
        let opened = open.len();
        while next < waiting.len() && waiting[next].1.before <= recorded.position {
            open.push(waiting[next].0);
            next += 1;
        }
        if open.len() > opened {
            // Newly opened ones are judged on the state they start from, whatever its stream.
            let mut fresh = open.split_off(opened);
            judge(
                &checker,
                &mut fresh,
                &mut satisfied,
                recorded.position,
                None,
            );
            open.extend(fresh);
        }
    }
    // Refusals whose window starts after the last event are judged on the final state.
    while next < waiting.len() {
        open.push(waiting[next].0);
        next += 1;
    }
    let last = previous.unwrap_or(0);
    open.retain(|&index| refusals[index].before >= last);
    for &index in &open {
        if checker.no_line_free(&refusals[index]) {
            satisfied[index] = true;
        }
    }
    for (index, refusal) in refusals.iter().enumerate() {
        if !satisfied[index] {
            checker.violations.push(Violation {
                position: refusal.after,
                stream: refusal.stream.clone(),
                rule: "refusal",
                detail: format!(
                    "a command refused for want of a line had one free for {}–{} throughout positions {}–{}",
                    refusal.start, refusal.end, refusal.before, refusal.after
                ),
            });
        }
    }
    Report {
        events: events.len(),
        streams: checker.tenants.len(),
        conferences: checker.tenants.values().map(|t| t.conferences.len()).sum(),
        refusals: refusals.len(),
        violations: checker.violations,
    }
}
