//! The independent checker on small hand-written logs: a clean log passes, and each rule it
//! guards fails on the log that breaks it.

use chrono::{DateTime, Duration, Utc};
use meetline_domain::event::Event;
use meetline_domain::ports::{EventMetadata, RecordedEvent};
use meetline_domain::types::*;
use meetline_verify::{Refusal, Report, check};
use uuid::Uuid;

const STREAM: &str = "pool-acme";

fn t(hours: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap() + Duration::hours(hours)
}

fn id(n: u128) -> ConferenceId {
    ConferenceId(Uuid::from_u128(n))
}

fn line(n: u32) -> LineId {
    LineId::parse(&format!("line-{n}")).unwrap()
}

fn add_line(n: u32) -> Event {
    Event::LineAdded {
        line: line(n),
        name: LineName::parse(&format!("Line {n}")).unwrap(),
        provider: ProviderKind::Builtin,
    }
}

fn scheduled(n: u128, on: u32, from: i64, to: i64, at: i64) -> Event {
    Event::ConferenceScheduled {
        conference: id(n),
        number: NumberDraw::fixed(n).candidates()[0].clone(),
        mode: Mode::Scheduled,
        subject: Subject::parse("s").unwrap(),
        slot: TimeSlot {
            start: t(from),
            end: t(to),
        },
        timezone: TimeZoneName::default(),
        host: UserId::parse("alice").unwrap(),
        creator: UserId::parse("alice").unwrap(),
        attendees: vec![],
        related_link: None,
        source: Source::App,
        line: line(on),
        room: RoomName::derive(&RoomNonce::fixed(n), 0),
        at: t(at),
        series: None,
    }
}

/// One stream's log: each event with the instant it was decided.
fn log(events: Vec<(Event, i64)>) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(index, (event, at))| RecordedEvent {
            position: index as u64 + 1,
            stream: STREAM.to_owned(),
            version: index as u64 + 1,
            event,
            metadata: EventMetadata {
                event_id: Uuid::from_u128(index as u128 + 1),
                command_id: Uuid::from_u128(index as u128 + 1),
                correlation_id: Uuid::from_u128(index as u128 + 1),
                causation_id: None,
                actor: "alice".to_owned(),
                recorded_at: t(at),
                schema_version: 1,
            },
        })
        .collect()
}

fn rules(report: &Report) -> Vec<&'static str> {
    report.violations.iter().map(|v| v.rule).collect()
}

#[test]
fn a_clean_log_passes() {
    let events = log(vec![
        (add_line(1), -10),
        (add_line(2), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
        (scheduled(2, 2, 1, 2, -5), -5),
        (scheduled(3, 1, 2, 3, -4), -4),
        (
            Event::ConferenceCancelled {
                conference: id(3),
                reason: None,
                at: t(-3),
            },
            -3,
        ),
        (scheduled(4, 1, 2, 4, -2), -2),
        (
            Event::ConferenceStarted {
                conference: id(1),
                at: t(1),
            },
            1,
        ),
        (
            Event::ConferenceEndedEarly {
                conference: id(1),
                at: t(1) + Duration::minutes(30),
            },
            1,
        ),
        (
            Event::ConferenceEnded {
                conference: id(2),
                at: t(2),
            },
            2,
        ),
    ]);
    let report = check(&events, &[]);
    assert!(report.passed(), "{}", report.summary());
    assert_eq!(report.conferences, 4);
    assert!(
        report
            .summary()
            .starts_with("verify (independent checker): PASS")
    );
}

#[test]
fn two_bookings_with_the_same_start_on_one_line_are_an_overlap() {
    // Exactly what a map keyed by start would hide: the second replaces the first.
    let events = log(vec![
        (add_line(1), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
        (scheduled(2, 1, 1, 2, -5), -5),
    ]);
    let report = check(&events, &[]);
    assert!(
        rules(&report).contains(&"no overlap"),
        "{}",
        report.summary()
    );
}

#[test]
fn a_booking_past_the_first_free_line_breaks_the_lowest_free_line_rule() {
    let events = log(vec![
        (add_line(1), -10),
        (add_line(2), -10),
        (scheduled(1, 2, 1, 2, -5), -5),
    ]);
    assert_eq!(rules(&check(&events, &[])), vec!["lowest free line"]);
    // A line in maintenance does not count.
    let events = log(vec![
        (add_line(1), -10),
        (add_line(2), -10),
        (Event::LineMaintenanceStarted { line: line(1) }, -9),
        (scheduled(1, 2, 1, 2, -5), -5),
    ]);
    assert!(check(&events, &[]).passed());
}

#[test]
fn slots_over_a_day_or_empty_are_refused() {
    let events = log(vec![(add_line(1), -10), (scheduled(1, 1, 1, 26, -5), -5)]);
    assert_eq!(rules(&check(&events, &[])), vec!["duration"]);
}

#[test]
fn illegal_transitions_are_named() {
    let cancel_late = log(vec![
        (add_line(1), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
        (
            Event::ConferenceCancelled {
                conference: id(1),
                reason: None,
                at: t(1),
            },
            1,
        ),
    ]);
    assert_eq!(rules(&check(&cancel_late, &[])), vec!["transition"]);
    let early_end_before_start = log(vec![
        (add_line(1), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
        (
            Event::ConferenceEndedEarly {
                conference: id(1),
                at: t(0),
            },
            0,
        ),
    ]);
    assert_eq!(
        rules(&check(&early_end_before_start, &[])),
        vec!["transition"]
    );
    let after_cancel = log(vec![
        (add_line(1), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
        (
            Event::ConferenceCancelled {
                conference: id(1),
                reason: None,
                at: t(-4),
            },
            -4,
        ),
        (
            Event::ConferenceStarted {
                conference: id(1),
                at: t(1),
            },
            1,
        ),
    ]);
    assert_eq!(rules(&check(&after_cancel, &[])), vec!["transition"]);
}

#[test]
fn a_refusal_is_right_only_if_no_line_was_free_while_it_was_decided() {
    let events = log(vec![
        (add_line(1), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
        (
            Event::ConferenceCancelled {
                conference: id(1),
                reason: None,
                at: t(-4),
            },
            -4,
        ),
    ]);
    let refusal = |before, after| Refusal {
        stream: STREAM.to_owned(),
        start: t(1),
        end: t(2),
        before,
        after,
        ignoring: None,
    };
    // Decided while the line was taken (positions 2–2): right.
    assert!(check(&events, &[refusal(2, 2)]).passed());
    // Somewhere between 1 and 3 the line was taken: right.
    assert!(check(&events, &[refusal(1, 3)]).passed());
    // After the cancel the line was free throughout: wrong.
    assert_eq!(rules(&check(&events, &[refusal(3, 3)])), vec!["refusal"]);
    // Before anything was booked: wrong (with no line at all, nothing was free: right).
    assert_eq!(rules(&check(&events, &[refusal(1, 1)])), vec!["refusal"]);
    assert!(check(&events, &[refusal(0, 0)]).passed());
}

#[test]
fn maintenance_moves_go_to_the_first_free_line_and_strand_only_when_none_is() {
    let base = vec![
        (add_line(1), -10),
        (add_line(2), -10),
        (add_line(3), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
        (Event::LineMaintenanceStarted { line: line(1) }, -4),
    ];
    let mut to_three = base.clone();
    to_three.push((
        Event::ConferenceMovedToLine {
            conference: id(1),
            from: line(1),
            to: line(3),
            room: RoomName::derive(&RoomNonce::fixed(9), 0),
        },
        -4,
    ));
    assert_eq!(rules(&check(&log(to_three), &[])), vec!["lowest free line"]);
    let mut stranded = base;
    stranded.push((
        Event::ConferenceStranded {
            conference: id(1),
            line: line(1),
        },
        -4,
    ));
    assert_eq!(rules(&check(&log(stranded), &[])), vec!["lowest free line"]);
}

#[test]
fn gaps_in_versions_or_positions_and_reused_live_numbers_are_found() {
    let mut events = log(vec![
        (add_line(1), -10),
        (add_line(2), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
    ]);
    events[2].position = 7;
    events[2].version = 5;
    let found = rules(&check(&events, &[]));
    assert!(
        found.contains(&"dense positions") && found.contains(&"dense versions"),
        "{found:?}"
    );

    let mut second = scheduled(2, 2, 1, 2, -5);
    if let Event::ConferenceScheduled { number, .. } = &mut second {
        *number = NumberDraw::fixed(1).candidates()[0].clone();
    }
    let events = log(vec![
        (add_line(1), -10),
        (add_line(2), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
        (second, -5),
    ]);
    assert_eq!(rules(&check(&events, &[])), vec!["unique numbers"]);
}

#[test]
fn the_expected_read_model_follows_a_conference_through_its_life() {
    let events = log(vec![
        (add_line(1), -10),
        (add_line(2), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
        (
            Event::AttendeesInvited {
                conference: id(1),
                attendees: vec![UserId::parse("carol").unwrap()],
            },
            -4,
        ),
        (
            Event::ParticipantJoined {
                conference: id(1),
                user: UserId::parse("dave").unwrap(),
            },
            -4,
        ),
        (Event::LineMaintenanceStarted { line: line(1) }, -3),
        (
            Event::ConferenceMovedToLine {
                conference: id(1),
                from: line(1),
                to: line(2),
                room: RoomName::derive(&RoomNonce::fixed(5), 0),
            },
            -3,
        ),
        (
            Event::ConferenceCancelled {
                conference: id(1),
                reason: None,
                at: t(-2),
            },
            -2,
        ),
    ]);
    let rows = meetline_verify::expected::expected_conferences(&events);
    let row = &rows[&(STREAM.to_owned(), id(1))];
    assert_eq!(row.line, "line-2");
    assert_eq!(row.status, "cancelled");
    assert_eq!(row.cancelled_at, Some(t(-2)));
    assert_eq!(row.version, 5);
    assert!(row.attendees.contains("carol"));
    assert!(row.joined.contains("dave"));
    assert_eq!((row.start, row.end), (t(1), t(2)));
}

#[test]
fn in_the_expected_read_model_an_edit_onto_another_line_ends_a_stranding() {
    let edited = |on: u32, n: u128| Event::ConferenceEdited {
        conference: id(1),
        subject: Subject::parse("s").unwrap(),
        slot: TimeSlot {
            start: t(3),
            end: t(4),
        },
        timezone: TimeZoneName::default(),
        attendees: vec![],
        related_link: None,
        line: line(on),
        room: RoomName::derive(&RoomNonce::fixed(n), 0),
        links_changed: on != 1,
    };
    let stranded = log(vec![
        (add_line(1), -10),
        (add_line(2), -10),
        (scheduled(1, 1, 1, 2, -5), -5),
        (Event::LineMaintenanceStarted { line: line(1) }, -4),
        (
            Event::ConferenceStranded {
                conference: id(1),
                line: line(1),
            },
            -4,
        ),
    ]);
    let rows = meetline_verify::expected::expected_conferences(&stranded);
    assert!(rows[&(STREAM.to_owned(), id(1))].stranded);

    // Back in service, an edit that keeps its line leaves it stranded (as the pool does)…
    let mut kept = stranded.clone();
    kept.extend(log(vec![
        (Event::LineReturnedToService { line: line(1) }, -3),
        (edited(1, 7), -3),
    ]));
    let rows = meetline_verify::expected::expected_conferences(&kept);
    assert!(rows[&(STREAM.to_owned(), id(1))].stranded);

    // …and one that puts it on another line gives it a line again.
    let mut moved = stranded;
    moved.extend(log(vec![(edited(2, 8), -3)]));
    let rows = meetline_verify::expected::expected_conferences(&moved);
    let row = &rows[&(STREAM.to_owned(), id(1))];
    assert!(!row.stranded);
    assert_eq!((row.line.as_str(), row.start), ("line-2", t(3)));
}
