//! Random command sequences through the `LinePool` (the generator of
//! `domain/tests/properties.rs`), judged not by the pool but by the independent checker: every
//! accepted event is recorded as the store would record it (one stream, dense versions and
//! positions, `recorded_at` = the instant it was decided), every `NoFreeLine` refusal with its
//! slot and the log position it was decided at, and `meetline_verify::check` must pass — no
//! overlap (same-start bookings included), ≤ 24 h, legal transitions, the lowest free line, and no
//! free line for any refusal.
//!
//! It lives here rather than in `domain/tests/` because the checker is this crate, and the
//! domain's own tests would otherwise be asking the pool about itself.

use chrono::{DateTime, Duration, Utc};
use meetline_domain::command::{ConferenceChanges, EndSpec};
use meetline_domain::ports::{EventMetadata, RecordedEvent};
use meetline_domain::*;
use meetline_verify::{Refusal, check};
use proptest::prelude::*;
use uuid::Uuid;

const STREAM: &str = "pool-acme";

#[derive(Debug, Clone)]
enum Step {
    Schedule {
        start_quarter: i64,
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
        // Starts bunched on fewer quarters than domain/tests/properties.rs, so that the same start
        // and a full pool (refusals) come up often.
        6 => (0..120i64, 1..110i64, 0..3usize).prop_map(|(s, q, w)| Step::Schedule { start_quarter: s, quarters: q, who: w }),
        1 => (0..3usize).prop_map(|w| Step::Quick { who: w }),
        3 => (0..40usize, 0..120i64, 1..110i64, 0..3usize).prop_map(|(t, s, q, w)| Step::Edit { target: t, start_quarter: s, quarters: q, who: w }),
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
    ]
}

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

fn quarter(n: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(15 * n)
}

fn line_id(n: u64) -> LineId {
    LineId::parse(&format!("line-{n}")).unwrap()
}

/// The pool, the log as a store would hold it, and the refusals a caller would have seen.
struct Run {
    pool: LinePool,
    log: Vec<RecordedEvent>,
    refusals: Vec<Refusal>,
    created: Vec<ConferenceId>,
}

impl Run {
    /// Decides `command` at `now`; records its events (applying them) or, for `NoFreeLine`, the
    /// refusal of `slot` (decided on the state after the last recorded position).
    fn decide(
        &mut self,
        actor: &Actor,
        command: &Command,
        now: DateTime<Utc>,
        slot: Option<(DateTime<Utc>, DateTime<Utc>, Option<ConferenceId>)>,
    ) {
        let head = self.log.last().map_or(0, |recorded| recorded.position);
        match self.pool.handle(actor, command, now) {
            Ok(events) => {
                for event in events {
                    if let Event::ConferenceScheduled { conference, .. } = &event {
                        self.created.push(*conference);
                    }
                    self.record(actor, now, event);
                }
            }
            Err(error @ DomainError::NoFreeLine { slot: refused, .. }) => {
                let (start, end, ignoring) =
                    slot.expect("only commands that ask for a slot are refused for want of a line");
                assert_eq!(
                    (refused.start, refused.end),
                    (start, end),
                    "the refused slot is the one asked for"
                );
                self.refusals.push(Refusal {
                    stream: STREAM.to_owned(),
                    start,
                    end,
                    before: head,
                    after: head,
                    ignoring,
                });
                // The log records it as the command service stores it.
                let recorded = LinePool::refusal_record(command, &error, now);
                assert_eq!(
                    recorded.len(),
                    1,
                    "a refusal for want of a line is recorded"
                );
                for event in recorded {
                    self.record(actor, now, event);
                }
            }
            Err(_) => {}
        }
    }

    /// Applies `event` to the pool and appends it to the log.
    fn record(&mut self, actor: &Actor, now: DateTime<Utc>, event: Event) {
        self.pool.apply(&event);
        let position = self.log.len() as u64 + 1;
        self.log.push(RecordedEvent {
            position,
            stream: STREAM.to_owned(),
            version: position,
            event,
            metadata: EventMetadata {
                event_id: Uuid::from_u128(u128::from(position)),
                command_id: Uuid::from_u128(u128::from(position)),
                correlation_id: Uuid::from_u128(u128::from(position)),
                causation_id: None,
                actor: actor.user.to_string(),
                recorded_at: now,
                schema_version: EVENT_SCHEMA_VERSION,
            },
        });
    }
}

fn run(steps: Vec<Step>) -> Run {
    let mut run = Run {
        pool: LinePool::default(),
        log: Vec::new(),
        refusals: Vec::new(),
        created: Vec::new(),
    };
    let mut now = t0();
    let admin = Actor::admin("root");
    for n in 0..3 {
        let command = Command::AddLine {
            name: LineName::parse(&format!("L{n}")).unwrap(),
            provider: ProviderKind::Builtin,
        };
        run.decide(&admin, &command, now, None);
    }
    for (index, step) in steps.into_iter().enumerate() {
        let rooms = RoomNonce::fixed(index as u128 + 1);
        let numbers = NumberDraw::fixed(index as u128 + 1);
        let id = ConferenceId(Uuid::from_u128(index as u128 + 1));
        let created = &run.created;
        let target = |i: usize| {
            created
                .get(i % created.len().max(1))
                .copied()
                .unwrap_or(ConferenceId(Uuid::from_u128(u128::MAX)))
        };
        let (actor, command, slot) = match step {
            Step::Schedule {
                start_quarter,
                quarters,
                who,
            } => {
                let start = quarter(start_quarter);
                let end = start + Duration::minutes(15 * quarters);
                (
                    Actor::user(USERS[who]),
                    Command::ScheduleConference(ScheduleConference {
                        conference: id,
                        mode: Mode::Scheduled,
                        subject: Subject::parse("s").unwrap(),
                        start: Some(start),
                        end: EndSpec::At(end),
                        timezone: TimeZoneName::default(),
                        host: None,
                        attendees: vec![UserId::parse(USERS[(who + 1) % 4]).unwrap()],
                        related_link: None,
                        rooms,
                        numbers,
                    }),
                    Some((start, end, None)),
                )
            }
            Step::Quick { who } => (
                Actor::user(USERS[who]),
                Command::ScheduleConference(ScheduleConference {
                    conference: id,
                    mode: Mode::Quick,
                    subject: Subject::parse("q").unwrap(),
                    start: None,
                    end: EndSpec::After(Duration::minutes(30)),
                    timezone: TimeZoneName::default(),
                    host: None,
                    attendees: vec![],
                    related_link: None,
                    rooms,
                    numbers,
                }),
                Some((now, now + Duration::minutes(30), None)),
            ),
            Step::Edit {
                target: i,
                start_quarter,
                quarters,
                who,
            } => {
                let start = quarter(start_quarter);
                let end = start + Duration::minutes(15 * quarters);
                (
                    Actor::user(USERS[who]),
                    Command::EditConference {
                        conference: target(i),
                        changes: ConferenceChanges {
                            start: Some(start),
                            end: Some(EndSpec::At(end)),
                            ..ConferenceChanges::default()
                        },
                        expected_version: None,
                        rooms,
                    },
                    Some((start, end, Some(target(i)))),
                )
            }
            Step::Invite { target: i, who } => (
                Actor::user(USERS[0]),
                Command::InviteAttendees {
                    conference: target(i),
                    attendees: vec![UserId::parse(USERS[who]).unwrap()],
                },
                None,
            ),
            Step::Cancel { target: i, who } => (
                Actor::user(USERS[who]),
                Command::CancelConference {
                    conference: target(i),
                    reason: None,
                },
                None,
            ),
            Step::EndEarly { target: i, who } => (
                Actor::user(USERS[who]),
                Command::EndConferenceEarly {
                    conference: target(i),
                },
                None,
            ),
            Step::Join { target: i, who } => {
                let Some(number) = run.pool.conference(&target(i)).map(|c| c.number.clone()) else {
                    continue;
                };
                (
                    Actor::user(USERS[who]),
                    Command::JoinConference { number },
                    None,
                )
            }
            Step::Maintenance { line } => (
                admin.clone(),
                Command::StartLineMaintenance {
                    line: line_id(line),
                    rooms,
                },
                None,
            ),
            Step::BackInService { line } => (
                admin.clone(),
                Command::EndLineMaintenance {
                    line: line_id(line),
                },
                None,
            ),
            Step::RemoveLine { line } => (
                admin.clone(),
                Command::RemoveLine {
                    line: line_id(line),
                },
                None,
            ),
            Step::AddLine => (
                admin.clone(),
                Command::AddLine {
                    name: LineName::parse("extra").unwrap(),
                    provider: ProviderKind::Builtin,
                },
                None,
            ),
            Step::Elapse { target: i } => (
                admin.clone(),
                Command::RecordElapsedTime {
                    conference: target(i),
                },
                None,
            ),
            Step::Wait { quarters } => {
                now += Duration::minutes(15 * quarters);
                continue;
            }
        };
        run.decide(&actor, &command, now, slot);
    }
    run
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_independent_checker_passes_every_log_the_pool_writes(steps in prop::collection::vec(step(), 1..120)) {
        let run = run(steps);
        let report = check(&run.log, &run.refusals);
        prop_assert!(report.passed(), "{}", report.summary());
        prop_assert_eq!(report.events, run.log.len());
    }
}

/// The generator reaches what the property is about: refusals for want of a line, bookings that
/// share a start on different lines, and a pool that fills up.
#[test]
fn the_generator_reaches_full_pools_and_shared_starts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut refusals, mut shared_starts, mut events) = (0, 0, 0);
    for _ in 0..64 {
        let steps = prop::collection::vec(step(), 60..120)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let run = run(steps);
        let report = check(&run.log, &run.refusals);
        assert!(report.passed(), "{}", report.summary());
        refusals += run.refusals.len();
        events += run.log.len();
        let mut starts: Vec<DateTime<Utc>> = run
            .log
            .iter()
            .filter_map(|recorded| match &recorded.event {
                Event::ConferenceScheduled { slot, .. } => Some(slot.start),
                _ => None,
            })
            .collect();
        let all = starts.len();
        starts.sort();
        starts.dedup();
        shared_starts += all - starts.len();
    }
    println!("{events} events, {refusals} refusals, {shared_starts} schedules sharing a start");
    assert!(refusals > 50, "only {refusals} refusals");
    assert!(shared_starts > 50, "only {shared_starts} shared starts");
}
