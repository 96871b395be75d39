//! The stored event format is a persisted contract. `fixtures/events-schema-N.jsonl` holds one
//! stored payload of every event type exactly as schema N writes it; stores in the field hold
//! such rows. These tests read them back: the current schema's must write again the same JSON
//! (so no field can be renamed, retyped or dropped without a new schema version and an
//! upcaster), an older schema's must read — through `Event::from_stored`'s upcasters — as the
//! same events as the current one's, and they replay.

use std::collections::HashSet;

use meetline_domain::conference::{Conference, LineTag};
use meetline_domain::event::{EVENT_SCHEMA_VERSION, Event};
use meetline_domain::pool::LinePool;
use meetline_domain::types::{ConferenceId, LineStatus, ProviderKind, Status};

const SCHEMA_1: &str = include_str!("fixtures/events-schema-1.jsonl");
const SCHEMA_2: &str = include_str!("fixtures/events-schema-2.jsonl");

/// The fixture of `schema`, each line as stored and as read back.
fn stored(fixture: &str, schema: u32) -> Vec<(serde_json::Value, Event)> {
    fixture
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let stored: serde_json::Value = serde_json::from_str(line).unwrap();
            let kind = stored["type"].as_str().unwrap().to_owned();
            let event = Event::from_stored(&kind, schema, line)
                .unwrap_or_else(|error| panic!("schema {schema} {kind} no longer reads: {error}"));
            (stored, event)
        })
        .collect()
}

fn schema_1() -> Vec<(serde_json::Value, Event)> {
    stored(SCHEMA_1, 1)
}

#[test]
fn every_event_type_of_the_current_schema_reads_back_and_writes_the_same_json() {
    let events = stored(SCHEMA_2, 2);
    let kinds: HashSet<&str> = events.iter().map(|(_, event)| event.type_name()).collect();
    assert_eq!(kinds.len(), 20, "the fixture covers every event type");
    for (stored, event) in &events {
        let written: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(
            &written,
            stored,
            "{} is written differently from schema 2: bump EVENT_SCHEMA_VERSION and add an upcaster",
            event.type_name()
        );
        assert_eq!(stored["type"], event.type_name());
    }
    // While the writer writes schema 2, its fixture is today's format. A new schema version
    // adds a fixture of its own and keeps this one, read through the upcaster.
    assert_eq!(EVENT_SCHEMA_VERSION, 2);
}

#[test]
fn schema_1_reads_through_the_upcaster_as_the_same_events() {
    let old: Vec<Event> = schema_1().into_iter().map(|(_, event)| event).collect();
    let new: Vec<Event> = stored(SCHEMA_2, 2)
        .into_iter()
        .map(|(_, event)| event)
        .collect();
    assert_eq!(old, new);
    // The one change: `ConferenceEdited.line_changed` became `links_changed`.
    let edited = old
        .iter()
        .find(|event| matches!(event, Event::ConferenceEdited { .. }))
        .unwrap();
    assert!(edited.to_json().contains("\"links_changed\""));
    // A schema this code does not know is refused, not guessed at.
    let line = SCHEMA_2.lines().next().unwrap();
    assert!(Event::from_stored("LineAdded", EVENT_SCHEMA_VERSION + 1, line).is_err());
    assert!(Event::from_stored("LineAdded", 0, line).is_err());
}

#[test]
fn the_schema_1_fixture_replays_to_the_state_it_describes() {
    let events: Vec<Event> = schema_1().into_iter().map(|(_, event)| event).collect();
    let pool = LinePool::from_events(&events);
    assert_eq!(pool.version, events.len() as u64);
    let id = |n: u128| {
        ConferenceId(uuid::Uuid::from_u128(
            0x0190c2b5_0000_7000_8000_000000000000 + n,
        ))
    };
    // Closed conferences left the pool; the one fold of their own events tells their state.
    let folded = |n: u128| {
        let own = events
            .iter()
            .filter(|event| event.conference() == Some(id(n)));
        Conference::fold(own, |line| LineTag {
            id: line.clone(),
            provider: ProviderKind::Builtin,
        })
        .unwrap()
    };
    for (n, closed) in [
        (1, Status::Ended),
        (2, Status::Cancelled),
        (3, Status::ManuallyEnded),
        (7, Status::Cancelled),
    ] {
        assert!(pool.conference(&id(n)).is_none(), "{n} is closed");
        assert_eq!(folded(n).status, closed);
    }
    let first = folded(1);
    assert_eq!(first.subject.as_str(), "周会（改）");
    assert!(first.attendees.iter().any(|user| user.as_str() == "erin"));
    assert!(first.joined.iter().any(|user| user.as_str() == "dave"));
    assert_eq!(pool.conference(&id(4)).unwrap().line.id.as_str(), "line-2");
    assert!(pool.conference(&id(5)).unwrap().stranded);
    let line = |name: &str| pool.lines.iter().find(|line| line.id.as_str() == name);
    assert_eq!(line("line-1").unwrap().name.as_str(), "线路一");
    assert_eq!(line("line-1").unwrap().status, LineStatus::Active);
    assert_eq!(line("line-3").unwrap().status, LineStatus::Maintenance);
    assert!(line("line-5").is_none(), "removed");
    assert!(pool.overlapping_bookings().is_empty());
}

#[test]
fn replaying_a_booking_onto_a_taken_start_reports_it_instead_of_overwriting() {
    let events: Vec<Event> = schema_1().into_iter().map(|(_, event)| event).collect();
    // The first conference's booking, and a corrupt copy of it under another id.
    let first = events
        .iter()
        .find(|event| matches!(event, Event::ConferenceScheduled { .. }))
        .unwrap()
        .clone();
    let Event::ConferenceScheduled { conference, .. } = &first else {
        unreachable!()
    };
    let kept = *conference;
    let mut copy = first.clone();
    let Event::ConferenceScheduled { conference, .. } = &mut copy else {
        unreachable!()
    };
    *conference = ConferenceId(uuid::Uuid::from_u128(99));
    let pool = LinePool::from_events(&[events[0].clone(), first, copy]);
    let overlaps = pool.overlapping_bookings();
    assert_eq!(overlaps.len(), 1, "{overlaps:?}");
    assert_eq!(overlaps[0].1, kept, "the first booking is kept");
    assert_eq!(overlaps[0].2, ConferenceId(uuid::Uuid::from_u128(99)));
    let line = &pool.lines[0];
    assert_eq!(line.bookings.len(), 1);
    assert_eq!(line.bookings.values().next().unwrap().conference, kept);
}

/// The snapshot format is stored too, and postcard reads fields by position: a pool's fields or
/// variants changed in kind or order without a new snapshot schema would read old snapshots
/// wrongly. Each schema's fixture is kept; the service reads only the current schema's and
/// replays the stream for any other. (A new schema adds its own fixture:
/// `MEETLINE_BLESS=1 cargo test -p meetline-domain --test golden_events` writes the current
/// schema's.)
fn fixture_pool() -> (Vec<Event>, LinePool) {
    // The fixture's events as they were when the first snapshots were written (`DemandRefused`
    // came later: it would move the version on).
    let events: Vec<Event> = schema_1()
        .into_iter()
        .map(|(_, event)| event)
        .filter(|event| !matches!(event, Event::DemandRefused { .. }))
        .collect();
    let pool = LinePool::from_events(&events);
    (events, pool)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).expect("the stored snapshot fixture")
}

/// Schemas 3 and 4 (frozen, never written again) do not read as today's pool: every conference
/// now carries its series, so their bytes end early or decode to another pool — which is why
/// the schema number moved on and the service replays instead.
#[test]
fn older_snapshot_schemas_are_not_taken_for_the_current_one() {
    let (_, pool) = fixture_pool();
    assert!(!pool.conferences.is_empty() && pool.latest.is_some());
    for name in ["pool-snapshot-3.postcard", "pool-snapshot-4.postcard"] {
        let stored = fixture(name);
        assert_ne!(
            LinePool::from_snapshot(&stored).ok(),
            Some(pool.clone()),
            "{name}"
        );
    }
}

/// Schema 5: conferences carry their series (rule, first occurrence, zone, occurrence), and an
/// open conference's provisioned meeting its code (schema 4). `fixtures/pool-snapshot-5.postcard`
/// is such a pool as schema 5 writes it; it must read back to that pool.
#[test]
fn a_schema_5_snapshot_keeps_series_and_meeting_codes() {
    use meetline_domain::Command;
    use meetline_domain::command::{EndSpec, OnConflict, ScheduleConference, ScheduleSeries};
    use meetline_domain::recurrence::{Frequency, Recurrence, RecurrenceEnd, SeriesId};
    use meetline_domain::types::{
        Actor, Mode, NumberDraw, RoomNonce, Subject, TimeZoneName, UserId,
    };

    let (mut events, before) = fixture_pool();
    let (&open, conference) = before
        .conferences
        .iter()
        .min_by_key(|(id, _)| **id)
        .expect("the fixture leaves a conference open");
    events.push(Event::ConferenceProvisioned {
        conference: open,
        line: conference.line.id.clone(),
        meeting_id: "7000000000000000001".to_owned(),
        join_url: "https://meeting.tencent.com/dm/room1".to_owned(),
        password: None,
        meeting_code: Some("806146661".to_owned()),
    });
    let mut pool = LinePool::from_events(&events);
    let latest = pool.latest.expect("the fixture has a clock");
    let start = latest + chrono::Duration::days(3);
    let actor = Actor {
        user: UserId::parse("alice").unwrap(),
        admin: false,
    };
    let series = Command::ScheduleSeries(ScheduleSeries {
        series: SeriesId(uuid::Uuid::from_u128(5)),
        first: ScheduleConference {
            conference: ConferenceId(uuid::Uuid::from_u128(500)),
            mode: Mode::Scheduled,
            subject: Subject::parse("周会").unwrap(),
            start: Some(start),
            end: EndSpec::After(chrono::Duration::minutes(30)),
            timezone: TimeZoneName::default(),
            host: None,
            attendees: vec![],
            related_link: None,
            rooms: RoomNonce::fixed(500),
            numbers: NumberDraw::fixed(500),
        },
        recurrence: Recurrence::new(Frequency::Weekly, 1, &[], RecurrenceEnd::Count(3)).unwrap(),
        more: (501..503)
            .map(|n| (ConferenceId(uuid::Uuid::from_u128(n)), NumberDraw::fixed(n)))
            .collect(),
        on_conflict: OnConflict::Reject,
    });
    for event in pool.handle(&actor, &series, latest).unwrap() {
        pool.apply(&event);
    }
    assert_eq!(
        pool.conferences
            .values()
            .filter(|conference| conference.series.is_some())
            .count(),
        3
    );
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pool-snapshot-5.postcard"
    );
    if std::env::var_os("MEETLINE_BLESS").is_some() {
        std::fs::write(path, pool.to_snapshot().unwrap()).unwrap();
    }
    let stored = std::fs::read(path).expect("the stored snapshot fixture");
    assert_eq!(LinePool::from_snapshot(&stored).unwrap(), pool);
    // Bytes left over are not a pool.
    let mut longer = stored.clone();
    longer.push(0);
    assert!(LinePool::from_snapshot(&longer).is_err());
}
