//! Random command sequences against a few lines. After every step: no overlap on any line,
//! every slot at most 24 h, only legal status changes, and the pool rebuilt from its events
//! equals the live one. Steps are grouped into batches as the writer decides them (`begin`, then
//! `commit` or `rollback`): a rolled-back batch leaves the pool exactly as it was before.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use meetline_domain::command::{ConferenceChanges, EndSpec};
use meetline_domain::conference::LineTag;
use meetline_domain::*;
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Step {
    Schedule {
        start_quarter: i64,
        /// Milliseconds off the 15-minute grid (mostly none; some less than a second).
        off_grid: i64,
        /// Milliseconds added to the end alone (mostly none).
        end_fraction: i64,
        quarters: i64,
        who: usize,
    },
    Quick {
        who: usize,
    },
    Edit {
        target: usize,
        start_quarter: i64,
        quarters: i64,
        who: usize,
    },
    Invite {
        target: usize,
        who: usize,
    },
    Cancel {
        target: usize,
        who: usize,
    },
    EndEarly {
        target: usize,
        who: usize,
    },
    Join {
        target: usize,
        who: usize,
    },
    Maintenance {
        line: u64,
    },
    BackInService {
        line: u64,
    },
    RemoveLine {
        line: u64,
    },
    AddLine,
    Elapse {
        target: usize,
    },
    Wait {
        quarters: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..200i64, prop_oneof![6 => Just(0i64), 1 => 1..900_000i64, 1 => 1..1000i64],
              prop_oneof![3 => Just(0i64), 1 => 1..1000i64], 1..110i64, 0..3usize)
            .prop_map(|(s, o, f, q, w)| Step::Schedule { start_quarter: s, off_grid: o, end_fraction: f, quarters: q, who: w }),
        1 => (0..3usize).prop_map(|w| Step::Quick { who: w }),
        3 => (0..40usize, 0..200i64, 1..110i64, 0..3usize).prop_map(|(t, s, q, w)| Step::Edit { target: t, start_quarter: s, quarters: q, who: w }),
        1 => (0..40usize, 0..4usize).prop_map(|(t, w)| Step::Invite { target: t, who: w }),
        2 => (0..40usize, 0..3usize).prop_map(|(t, w)| Step::Cancel { target: t, who: w }),
        2 => (0..40usize, 0..3usize).prop_map(|(t, w)| Step::EndEarly { target: t, who: w }),
        1 => (0..40usize, 0..4usize).prop_map(|(t, w)| Step::Join { target: t, who: w }),
        1 => (1..5u64).prop_map(|l| Step::Maintenance { line: l }),
        1 => (1..5u64).prop_map(|l| Step::BackInService { line: l }),
        1 => (1..5u64).prop_map(|l| Step::RemoveLine { line: l }),
        1 => Just(Step::AddLine),
        1 => (0..40usize).prop_map(|t| Step::Elapse { target: t }),
        2 => (1..12i64).prop_map(|q| Step::Wait { quarters: q }),
        // Long enough for closed conferences' bookings to leave their lines.
        1 => (24..100i64).prop_map(|q| Step::Wait { quarters: q }),
    ]
}

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

fn quarter(n: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(15 * n)
}

/// The first free line found by walking every line: what the pool's index must agree with.
fn first_free_by_walking(
    pool: &LinePool,
    slot: &TimeSlot,
    ignoring: Option<ConferenceId>,
) -> Option<LineId> {
    pool.lines
        .iter()
        .find(|line| line.status == LineStatus::Active && line.is_free(slot, ignoring))
        .map(|line| line.id.clone())
}

/// Asks `pool` for the first free line of many slots (on and off the grid, short and long, and
/// ignoring a conference's own booking) and compares with walking every line.
fn index_agrees(pool: &LinePool, seed: usize) -> Result<(), TestCaseError> {
    let conferences: Vec<ConferenceId> = pool.conferences.keys().copied().collect();
    for probe in 0..12usize {
        let n = seed * 31 + probe * 7;
        let start = quarter((n % 220) as i64) + Duration::minutes([0, 0, 5, 14][n % 4]);
        let minutes = [15, 30, 60, 100, 240, 1440][(n / 4) % 6];
        let slot = TimeSlot {
            start,
            end: start + Duration::minutes(minutes),
        };
        let ignoring = (probe % 3 == 0)
            .then(|| conferences.get(n % conferences.len().max(1)).copied())
            .flatten();
        let found = pool
            .first_free_line(&slot, ignoring)
            .map(|line| line.id.clone());
        prop_assert_eq!(
            found,
            first_free_by_walking(pool, &slot, ignoring),
            "slot {:?} ignoring {:?}",
            slot,
            ignoring
        );
    }
    Ok(())
}

fn legal(from: Status, to: Status) -> bool {
    use Status::*;
    from == to
        || matches!(
            (from, to),
            (NotStarted, InProgress)
                | (NotStarted, Ended)
                | (NotStarted, Cancelled)
                | (InProgress, Ended)
                | (InProgress, ManuallyEnded)
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_command_sequences_keep_every_invariant(steps in prop::collection::vec(step(), 1..120)) {
        let mut pool = LinePool::default();
        let mut log: Vec<Event> = Vec::new();
        let mut now = t0();
        let mut created: Vec<ConferenceId> = Vec::new();
        let admin = Actor::admin("root");
        for n in 0..3 {
            let events = pool.handle(&admin, &Command::AddLine {
                name: LineName::parse(&format!("L{n}")).unwrap(), provider: ProviderKind::Builtin,
            }, now).unwrap();
            for event in &events { pool.apply(event); }
            log.extend(events);
        }
        // The open batch: the pool and the log's length before it.
        let mut batch: Option<(LinePool, usize)> = None;
        // A mark in the open batch, the pool then, and the log's length then.
        let mut marked: Option<(meetline_domain::pool::Mark, LinePool, usize)> = None;
        for (index, step) in steps.into_iter().enumerate() {
            if batch.is_none() {
                batch = Some((pool.clone(), log.len()));
                pool.begin();
            }
            let rooms = RoomNonce::fixed(index as u128 + 1);
            let target = |i: usize| created.get(i % created.len().max(1)).copied()
                .unwrap_or(ConferenceId(Uuid::from_u128(u128::MAX)));
            let (actor, command) = match step {
                Step::Schedule { start_quarter, off_grid, end_fraction, quarters, who } => {
                    let id = ConferenceId(Uuid::from_u128(index as u128 + 1));
                    let start = quarter(start_quarter) + Duration::milliseconds(off_grid);
                    (Actor::user(USERS[who]), Command::ScheduleConference(ScheduleConference {
                        conference: id, mode: Mode::Scheduled, subject: Subject::parse("s").unwrap(),
                        start: Some(start),
                        end: EndSpec::At(start + Duration::minutes(15 * quarters) + Duration::milliseconds(end_fraction)),
                        timezone: TimeZoneName::default(), host: None,
                        attendees: vec![UserId::parse(USERS[(who + 1) % 4]).unwrap()],
                        related_link: None, rooms: rooms.clone(), numbers: NumberDraw::fixed(index as u128 + 1),
                    }))
                }
                Step::Quick { who } => {
                    let id = ConferenceId(Uuid::from_u128(index as u128 + 1));
                    (Actor::user(USERS[who]), Command::ScheduleConference(ScheduleConference {
                        conference: id, mode: Mode::Quick, subject: Subject::parse("q").unwrap(),
                        start: None, end: EndSpec::After(Duration::minutes(30)),
                        timezone: TimeZoneName::default(), host: None, attendees: vec![],
                        related_link: None, rooms: rooms.clone(), numbers: NumberDraw::fixed(index as u128 + 1),
                    }))
                }
                Step::Edit { target: i, start_quarter, quarters, who } => {
                    let start = quarter(start_quarter);
                    (Actor::user(USERS[who]), Command::EditConference {
                        conference: target(i),
                        changes: ConferenceChanges {
                            start: Some(start),
                            end: Some(EndSpec::At(start + Duration::minutes(15 * quarters))),
                            ..ConferenceChanges::default()
                        },
                        expected_version: None, rooms,
                    })
                }
                Step::Invite { target: i, who } => (Actor::user(USERS[0]), Command::InviteAttendees {
                    conference: target(i), attendees: vec![UserId::parse(USERS[who]).unwrap()],
                }),
                Step::Cancel { target: i, who } => (Actor::user(USERS[who]), Command::CancelConference { conference: target(i), reason: None }),
                Step::EndEarly { target: i, who } => (Actor::user(USERS[who]), Command::EndConferenceEarly { conference: target(i) }),
                Step::Join { target: i, who } => {
                    let Some(number) = pool.conference(&target(i)).map(|c| c.number.clone()) else { continue };
                    (Actor::user(USERS[who]), Command::JoinConference { number })
                }
                Step::Maintenance { line } => (admin.clone(), Command::StartLineMaintenance { line: LineId::parse(&format!("line-{line}")).unwrap(), rooms }),
                Step::BackInService { line } => (admin.clone(), Command::EndLineMaintenance { line: LineId::parse(&format!("line-{line}")).unwrap() }),
                Step::RemoveLine { line } => (admin.clone(), Command::RemoveLine { line: LineId::parse(&format!("line-{line}")).unwrap() }),
                Step::AddLine => (admin.clone(), Command::AddLine { name: LineName::parse("extra").unwrap(), provider: ProviderKind::Builtin }),
                Step::Elapse { target: i } => (admin.clone(), Command::RecordElapsedTime { conference: target(i) }),
                Step::Wait { quarters } => { now += Duration::minutes(15 * quarters); continue; }
            };
            let before: HashMap<ConferenceId, Status> =
                pool.conferences.values().map(|c| (c.id, c.status_at(now))).collect();
            // As the writer: a conference the pool let go is decided on as recalled from the log.
            let recalled = command.conference().filter(|id| pool.conference(id).is_none()).and_then(|id| {
                Conference::fold(log.iter().filter(|event| event.conference() == Some(id)), |line| LineTag {
                    id: line.clone(), provider: ProviderKind::Builtin,
                })
            });
            prop_assert!(recalled.as_ref().is_none_or(Conference::is_closed), "the pool let a live conference go");
            let Ok(events) = pool.decide(&actor, &command, now, recalled.as_ref()) else { continue };
            prop_assert!(recalled.is_none() || events.is_empty(), "a closed conference changed: {events:?}");
            for event in &events {
                if let Event::ConferenceScheduled { conference, .. } = event { created.push(*conference); }
                pool.apply(event);
            }
            log.extend(events);
            // Close the batch now and then: keep it, or take it back and check that nothing of it
            // is left, then apply its events again (as the writer re-decides them).
            match index % 6 {
                0 | 1 => {
                    pool.commit();
                    batch = None;
                    marked = None;
                }
                2 | 5 => {
                    marked = None;
                    let (saved, from) = batch.take().expect("a batch is open");
                    pool.rollback();
                    prop_assert_eq!(&pool, &saved, "a rolled-back batch left something");
                    // Equality ignores the index: ask it directly, before anything refreshes it.
                    index_agrees(&pool, index + 3)?;
                    prop_assert_eq!(pool.version, saved.version);
                    for event in &log[from..] {
                        pool.apply(event);
                    }
                }
                // A pipelined writer: mark where the batch stands (the earlier batch, decided),
                // go on deciding, then keep what the mark covers (the earlier batch is stored)
                // while the rest stays journaled — a later rollback goes back to the mark.
                3 => marked = Some((pool.mark().expect("a batch is open"), pool.clone(), log.len())),
                4 => {
                    if let Some((mark, at_mark, from)) = marked.take() {
                        pool.commit_through(mark);
                        batch = Some((at_mark, from));
                    }
                }
                _ => {}
            }

            prop_assert!(pool.overlapping_bookings().is_empty(), "overlap after {command:?}");
            for conference in pool.conferences.values() {
                prop_assert!(conference.slot.end - conference.slot.start <= Duration::hours(24));
                prop_assert!(conference.slot.end > conference.slot.start);
                if let Some(was) = before.get(&conference.id) {
                    let is = conference.status_at(now);
                    prop_assert!(legal(*was, is), "{was:?} -> {is:?} by {command:?}");
                }
                // Every conference that still needs its line holds a booking on it.
                if matches!(conference.status_at(now), Status::NotStarted | Status::InProgress) {
                    // …from its start to its end.
                    let booked = pool.line(&conference.line.id).is_some_and(|line| {
                        line.bookings.get(&conference.slot.start).is_some_and(|b| {
                            b.conference == conference.id && b.end == conference.slot.end
                        })
                    });
                    prop_assert!(booked, "{:?} lost its booking", conference.id);
                }
            }
            // Closing the books: the pool holds no closed conference, and the numbers it knows
            // are its live conferences' (so no two live conferences share one).
            prop_assert!(pool.conferences.values().all(|held| !held.is_closed()));
            prop_assert_eq!(pool.numbers.len(), pool.conferences.len());
            prop_assert!(pool.numbers.iter().all(|(number, id)| pool.conference(id).is_some_and(|held| held.number == *number)));
            let rebuilt = LinePool::from_events(&log);
            prop_assert_eq!(&rebuilt, &pool);
            // A snapshot taken part-way, and the tail after it, give the same pool.
            if index % 6 == 5 {
                let cut = log.len() / 2;
                let snapshot = LinePool::from_events(&log[..cut]).to_snapshot().unwrap();
                let mut resumed = LinePool::from_snapshot(&snapshot).unwrap();
                for event in &log[cut..] {
                    resumed.apply(event);
                }
                prop_assert_eq!(&resumed, &pool);
                index_agrees(&resumed, index + 4)?;
            }
            // The index of free lines agrees with walking the lines: live, rebuilt, and loaded
            // from a snapshot (where it is rebuilt from the bookings).
            index_agrees(&pool, index)?;
            if index % 8 == 7 {
                index_agrees(&rebuilt, index + 1)?;
                let loaded = LinePool::from_snapshot(&pool.to_snapshot().unwrap()).unwrap();
                prop_assert_eq!(&loaded, &pool);
                index_agrees(&loaded, index + 2)?;
            }
        }
    }
}

/// More lines than one word of the index holds (150 = 2 words and a part), bookings on and off
/// the grid, some cancelled and some moved: the index agrees with walking the lines.
#[test]
fn the_free_line_index_agrees_with_walking_past_64_lines() {
    let admin = Actor::admin("root");
    let alice = Actor::user("alice");
    let mut pool = LinePool::default();
    for n in 0..150 {
        let command = Command::AddLine {
            name: LineName::parse(&format!("L{n}")).unwrap(),
            provider: ProviderKind::Builtin,
        };
        for event in pool.handle(&admin, &command, t0()).unwrap() {
            pool.apply(&event);
        }
    }
    let mut seed = 7u64;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut booked: Vec<ConferenceId> = Vec::new();
    for n in 0..3000u64 {
        let start = quarter(next(48) as i64)
            + Duration::milliseconds([0, 0, 0, 250, 61_000][next(5) as usize] as i64);
        let end = start
            + Duration::minutes(15 * (1 + next(8) as i64))
            + Duration::milliseconds([0, 0, 999][next(3) as usize] as i64);
        let command = match next(10) {
            0 if !booked.is_empty() => Command::CancelConference {
                conference: booked[next(booked.len() as u64) as usize],
                reason: None,
            },
            1 if !booked.is_empty() => Command::EditConference {
                conference: booked[next(booked.len() as u64) as usize],
                changes: ConferenceChanges {
                    start: Some(start),
                    end: Some(EndSpec::At(end)),
                    ..ConferenceChanges::default()
                },
                expected_version: None,
                rooms: RoomNonce::fixed(u128::from(n)),
            },
            _ => Command::ScheduleConference(ScheduleConference {
                conference: ConferenceId(Uuid::from_u128(u128::from(n) + 1)),
                mode: Mode::Scheduled,
                subject: Subject::parse("s").unwrap(),
                start: Some(start),
                end: EndSpec::At(end),
                timezone: TimeZoneName::default(),
                host: None,
                attendees: vec![],
                related_link: None,
                rooms: RoomNonce::fixed(u128::from(n)),
                numbers: NumberDraw::fixed(u128::from(n) + 1),
            }),
        };
        if let Ok(events) = pool.handle(&alice, &command, t0()) {
            for event in &events {
                if let Event::ConferenceScheduled { conference, .. } = event {
                    booked.push(*conference);
                }
                pool.apply(event);
            }
        }
        if n % 100 == 99 {
            index_agrees(&pool, n as usize).unwrap();
        }
    }
    assert!(pool.overlapping_bookings().is_empty());
    assert!(
        pool.lines
            .iter()
            .filter(|line| !line.bookings.is_empty())
            .count()
            > 64,
        "the bookings reach past the first word"
    );
}
