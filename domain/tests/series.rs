//! Series of conferences in the `LinePool`: booking one, and editing or cancelling occurrences
//! together — always with the pool rebuilt from its log equal to the live one and no two
//! bookings overlapping on a line.

use chrono::{DateTime, Duration, Utc};
use meetline_domain::command::{
    ConferenceChanges, EndSpec, OnConflict, ScheduleConference, ScheduleSeries, SeriesScope,
};
use meetline_domain::*;
use uuid::Uuid;

/// Monday 2027-01-04 02:00 UTC (10:00 in Shanghai).
fn monday() -> DateTime<Utc> {
    DateTime::from_timestamp(1_799_028_000, 0).unwrap()
}

fn now() -> DateTime<Utc> {
    monday() - Duration::days(2)
}

fn alice() -> Actor {
    Actor {
        user: UserId::parse("alice").unwrap(),
        admin: false,
    }
}

fn admin() -> Actor {
    Actor {
        user: UserId::parse("admin").unwrap(),
        admin: true,
    }
}

struct Pool {
    pool: LinePool,
    log: Vec<Event>,
    next: u128,
}

impl Pool {
    fn with_lines(count: usize) -> Self {
        let mut pool = Self {
            pool: LinePool::default(),
            log: Vec::new(),
            next: 1,
        };
        for n in 0..count {
            pool.run(
                &admin(),
                Command::AddLine {
                    name: LineName::parse(&format!("L{n}")).unwrap(),
                    provider: ProviderKind::Builtin,
                },
            )
            .unwrap();
        }
        pool
    }

    fn run(&mut self, actor: &Actor, command: Command) -> Result<Vec<Event>, DomainError> {
        let events = self.pool.handle(actor, &command, now())?;
        for event in &events {
            self.pool.apply(event);
            self.log.push(event.clone());
        }
        // The invariant, and the one fold: the log replays to the live pool.
        assert!(
            self.pool.overlapping_bookings().is_empty(),
            "{:?}",
            self.pool.overlapping_bookings()
        );
        assert!(
            self.pool.clashes.is_empty(),
            "clashes: {:?}",
            self.pool.clashes
        );
        assert_eq!(LinePool::from_events(&self.log), self.pool);
        Ok(events)
    }

    fn fresh(&mut self) -> u128 {
        self.next += 1;
        self.next
    }

    fn book(&mut self, start: DateTime<Utc>, minutes: i64) -> Result<Vec<Event>, DomainError> {
        let n = self.fresh();
        self.run(
            &alice(),
            Command::ScheduleConference(schedule(n, start, minutes)),
        )
    }

    fn series(
        &mut self,
        recurrence: Recurrence,
        start: DateTime<Utc>,
        on_conflict: OnConflict,
    ) -> Result<Vec<Event>, DomainError> {
        let first = self.fresh() * 1000;
        let slot = TimeSlot::new(start, start + Duration::hours(1)).unwrap();
        let count = recurrence
            .occurrences(&slot, &TimeZoneName::default())
            .unwrap()
            .len();
        self.run(
            &alice(),
            Command::ScheduleSeries(ScheduleSeries {
                series: SeriesId(Uuid::from_u128(first)),
                first: schedule(first, start, 60),
                recurrence,
                more: (1..count as u128)
                    .map(|n| {
                        (
                            ConferenceId(Uuid::from_u128(first + n)),
                            NumberDraw::fixed(first + n),
                        )
                    })
                    .collect(),
                on_conflict,
            }),
        )
    }

    fn edit(
        &mut self,
        id: ConferenceId,
        changes: ConferenceChanges,
        scope: SeriesScope,
    ) -> Result<Vec<Event>, DomainError> {
        self.run(
            &alice(),
            Command::EditSeries {
                conference: id,
                changes,
                expected_version: None,
                rooms: RoomNonce::fixed(99),
                scope,
                latest: now() + Duration::days(730),
            },
        )
    }
}

fn schedule(n: u128, start: DateTime<Utc>, minutes: i64) -> ScheduleConference {
    ScheduleConference {
        conference: ConferenceId(Uuid::from_u128(n)),
        mode: Mode::Scheduled,
        subject: Subject::parse("周会").unwrap(),
        start: Some(start),
        end: EndSpec::After(Duration::minutes(minutes)),
        timezone: TimeZoneName::default(),
        host: None,
        attendees: vec![],
        related_link: None,
        rooms: RoomNonce::fixed(n),
        numbers: NumberDraw::fixed(n),
    }
}

fn weekly(count: u32) -> Recurrence {
    Recurrence::new(Frequency::Weekly, 1, &[], RecurrenceEnd::Count(count)).unwrap()
}

/// The conferences a series command scheduled: (id, line, start).
fn scheduled(events: &[Event]) -> Vec<(ConferenceId, LineId, DateTime<Utc>)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::ConferenceScheduled {
                conference,
                line,
                slot,
                ..
            } => Some((*conference, line.clone(), slot.start)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_series_takes_one_line_when_one_is_free_for_all_and_falls_back_per_occurrence() {
    let mut pool = Pool::with_lines(2);
    pool.book(monday() + Duration::weeks(2), 60).unwrap();
    let booked = scheduled(
        &pool
            .series(weekly(5), monday(), OnConflict::Reject)
            .unwrap(),
    );
    assert_eq!(booked.len(), 5);
    assert!(booked.iter().all(|(_, line, _)| line.as_str() == "line-2"));

    // Line 1 taken in week 1, line 2 in week 0 (of the next hour): no line is free for a whole
    // new series then, and each occurrence takes the first line free for it.
    let hour = monday() + Duration::hours(1);
    let first = scheduled(&pool.book(hour, 60).unwrap())[0].0;
    pool.book(hour, 60).unwrap();
    pool.run(
        &alice(),
        Command::CancelConference {
            conference: first,
            reason: None,
        },
    )
    .unwrap();
    pool.book(hour + Duration::weeks(1), 60).unwrap();
    let booked = scheduled(&pool.series(weekly(3), hour, OnConflict::Reject).unwrap());
    let lines: Vec<&str> = booked.iter().map(|(_, line, _)| line.as_str()).collect();
    assert_eq!(lines, ["line-1", "line-2", "line-1"]);
}

#[test]
fn reject_books_nothing_and_skip_records_the_demand_it_left_out() {
    let mut pool = Pool::with_lines(1);
    pool.book(monday() + Duration::weeks(1), 60).unwrap();
    let before = pool.pool.clone();
    let refused = pool.series(weekly(3), monday(), OnConflict::Reject);
    let Err(DomainError::SeriesUnbookable { conflicts }) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].slot.start, monday() + Duration::weeks(1));
    assert_eq!(pool.pool, before, "nothing decided");
    let events = pool.series(weekly(3), monday(), OnConflict::Skip).unwrap();
    assert_eq!(scheduled(&events).len(), 2);
    assert!(events.iter().any(|event| matches!(event,
        Event::DemandRefused { slot, edited: None, .. } if slot.start == monday() + Duration::weeks(1))));
}

#[test]
fn moving_a_series_by_its_own_period_frees_the_first_week_and_keeps_every_booking() {
    let mut pool = Pool::with_lines(1);
    let booked = scheduled(
        &pool
            .series(weekly(4), monday(), OnConflict::Reject)
            .unwrap(),
    );
    // Every occurrence a week later: each new start is the next one's old start.
    pool.edit(
        booked[0].0,
        ConferenceChanges {
            start: Some(monday() + Duration::weeks(1)),
            ..ConferenceChanges::default()
        },
        SeriesScope::All,
    )
    .unwrap();
    for (n, (id, _, _)) in booked.iter().enumerate() {
        let held = pool.pool.conference(id).unwrap();
        assert_eq!(held.slot.start, monday() + Duration::weeks(n as i64 + 1));
    }
    // Week 0 is free now, week 4 is not: the line holds four bookings, not fewer.
    let line = pool.pool.line(&booked[0].1).unwrap();
    assert_eq!(line.bookings.len(), 4);
    pool.book(monday(), 60).unwrap();
    assert!(matches!(
        pool.book(monday() + Duration::weeks(4), 60),
        Err(DomainError::NoFreeLine { .. })
    ));
    // And back, a week earlier: moved earlier, the earliest goes first (week 0 is taken again
    // by the booking above, so first free it).
    let taken = pool.pool.line(&booked[0].1).unwrap().bookings[&monday()].conference;
    pool.run(
        &alice(),
        Command::CancelConference {
            conference: taken,
            reason: None,
        },
    )
    .unwrap();
    pool.edit(
        booked[0].0,
        ConferenceChanges {
            start: Some(monday()),
            ..ConferenceChanges::default()
        },
        SeriesScope::All,
    )
    .unwrap();
    for (n, (id, _, _)) in booked.iter().enumerate() {
        assert_eq!(
            pool.pool.conference(id).unwrap().slot.start,
            monday() + Duration::weeks(n as i64)
        );
    }
}

#[test]
fn following_rechecks_lines_and_refuses_all_or_nothing() {
    let mut pool = Pool::with_lines(2);
    let booked = scheduled(
        &pool
            .series(weekly(4), monday(), OnConflict::Reject)
            .unwrap(),
    );
    // Line 1 taken an hour after the third: moved there, it changes lines.
    pool.book(monday() + Duration::weeks(2) + Duration::hours(1), 60)
        .unwrap();
    let events = pool
        .edit(
            booked[1].0,
            ConferenceChanges {
                start: Some(monday() + Duration::weeks(1) + Duration::hours(1)),
                ..ConferenceChanges::default()
            },
            SeriesScope::Following,
        )
        .unwrap();
    assert_eq!(events.len(), 3);
    let third = pool.pool.conference(&booked[2].0).unwrap();
    assert_eq!(third.line.id.as_str(), "line-2");
    assert_eq!(
        pool.pool.conference(&booked[0].0).unwrap().slot.start,
        monday()
    );
    // Both lines taken at the fourth's next time: nothing moves.
    let fourth = monday() + Duration::weeks(3) + Duration::hours(2);
    pool.book(fourth, 60).unwrap();
    pool.book(fourth, 60).unwrap();
    let before = pool.pool.clone();
    let refused = pool.edit(
        booked[1].0,
        ConferenceChanges {
            start: Some(monday() + Duration::weeks(1) + Duration::hours(2)),
            ..ConferenceChanges::default()
        },
        SeriesScope::Following,
    );
    assert!(
        matches!(&refused, Err(DomainError::SeriesUnbookable { conflicts }) if conflicts.len() == 1 && conflicts[0].slot.start == fourth),
        "{refused:?}"
    );
    assert_eq!(pool.pool, before);
}

#[test]
fn scoped_changes_need_a_not_started_occurrence_and_stay_within_the_horizon() {
    let mut pool = Pool::with_lines(1);
    let booked = scheduled(
        &pool
            .series(weekly(3), monday(), OnConflict::Reject)
            .unwrap(),
    );
    pool.run(
        &alice(),
        Command::CancelConference {
            conference: booked[0].0,
            reason: None,
        },
    )
    .unwrap();
    let cancelled = pool.edit(
        booked[0].0,
        ConferenceChanges {
            subject: Some(Subject::parse("x").unwrap()),
            ..ConferenceChanges::default()
        },
        SeriesScope::All,
    );
    assert!(
        matches!(
            cancelled,
            Err(DomainError::InvalidState(_)) | Err(DomainError::NotFound)
        ),
        "{cancelled:?}"
    );
    let far = pool.edit(
        booked[1].0,
        ConferenceChanges {
            start: Some(now() + Duration::days(729)),
            ..ConferenceChanges::default()
        },
        SeriesScope::All,
    );
    assert_eq!(far, Err(DomainError::invalid_input("start")));
    // Cancelling the following ones of the second: the second and third.
    let events = pool
        .run(
            &alice(),
            Command::CancelSeries {
                conference: booked[1].0,
                reason: None,
                scope: SeriesScope::Following,
            },
        )
        .unwrap();
    assert_eq!(events.len(), 2);
    assert!(pool.pool.line(&booked[0].1).unwrap().bookings.is_empty());
}

#[test]
fn a_stranded_occurrence_is_not_put_on_a_busy_line_by_a_scoped_edit() {
    let mut pool = Pool::with_lines(2);
    let booked = scheduled(
        &pool
            .series(weekly(2), monday(), OnConflict::Reject)
            .unwrap(),
    );
    assert!(booked.iter().all(|(_, line, _)| line.as_str() == "line-1"));
    // Line 2 taken at the second occurrence's time; line 1 goes into maintenance: the first
    // moves to line 2, the second is stranded on line 1.
    pool.book(monday() + Duration::weeks(1), 60).unwrap();
    pool.run(
        &admin(),
        Command::StartLineMaintenance {
            line: booked[0].1.clone(),
            rooms: RoomNonce::fixed(7),
        },
    )
    .unwrap();
    let second = pool.pool.conference(&booked[1].0).unwrap();
    assert!(second.stranded, "{second:?}");
    // A new subject for all: the stranded one has no free line at its time — refused, never
    // put onto line 2's booking.
    let refused = pool.edit(
        booked[0].0,
        ConferenceChanges {
            subject: Some(Subject::parse("新").unwrap()),
            ..ConferenceChanges::default()
        },
        SeriesScope::All,
    );
    assert!(
        matches!(&refused, Err(DomainError::SeriesUnbookable { conflicts }) if conflicts.len() == 1),
        "{refused:?}"
    );
}
