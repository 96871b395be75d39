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
/// wrongly, not fail. `fixtures/pool-snapshot-3.postcard` is the fixture's pool as schema 3 wrote
/// it (the service now ignores schema 3 and replays: its provisioned meetings had no code); it
/// still reads back to that pool, whose open conferences have no provisioned meeting. (A new
/// schema adds its own fixture: `MEETLINE_BLESS=1 cargo test -p meetline-domain --test
/// golden_events` writes the current schema's.)
#[test]
fn a_schema_3_snapshot_reads_back_to_the_pool_it_was() {
    // The fixture's events as they were when the snapshot was written (`DemandRefused` came
    // later: it would move the version on).
    let events: Vec<Event> = schema_1()
        .into_iter()
        .map(|(_, event)| event)
        .filter(|event| !matches!(event, Event::DemandRefused { .. }))
        .collect();
    let pool = LinePool::from_events(&events);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pool-snapshot-3.postcard"
    );
    // Frozen: schema 3 is no longer written, so it is never blessed again.
    let stored = std::fs::read(path).expect("the stored snapshot fixture");
    assert_eq!(LinePool::from_snapshot(&stored).unwrap(), pool);
    assert!(!pool.conferences.is_empty() && pool.latest.is_some());
    // Bytes left over are not a pool.
    let mut longer = stored.clone();
    longer.push(0);
    assert!(LinePool::from_snapshot(&longer).is_err());
}

/// Schema 4: an open conference's provisioned meeting carries its code (Tencent Meeting's nine
/// digits). `fixtures/pool-snapshot-4.postcard` is such a pool as schema 4 writes it; it must read
/// back to that pool, code included.
#[test]
fn a_schema_4_snapshot_keeps_an_open_conferences_meeting_code() {
    let mut events: Vec<Event> = schema_1()
        .into_iter()
        .map(|(_, event)| event)
        .filter(|event| !matches!(event, Event::DemandRefused { .. }))
        .collect();
    let before = LinePool::from_events(&events);
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
    let pool = LinePool::from_events(&events);
    assert!(matches!(
        &pool.conferences[&open].provisioning,
        meetline_domain::pool::Provisioning::Done { meeting_code: Some(code), .. } if code == "806146661"
    ));
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pool-snapshot-4.postcard"
    );
    if std::env::var_os("MEETLINE_BLESS").is_some() {
        std::fs::write(path, pool.to_snapshot().unwrap()).unwrap();
    }
    let stored = std::fs::read(path).expect("the stored snapshot fixture");
    assert_eq!(LinePool::from_snapshot(&stored).unwrap(), pool);
}
