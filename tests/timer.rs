//! Time-driven status on a fixed clock (`--fixed-now`), never on wall time: the server is
//! restarted on the same data with the clock moved on, and the timer (one tick a second) records
//! what fell due — `ConferenceStarted` and `ConferenceEnded` exactly once each, catching up on a
//! conference whose whole slot passed while it was down.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{Value, json};

const T: &str = "acme";
/// Waits for what the timer records: generous, for a slow machine.
const DEADLINE: Duration = Duration::from_secs(30);
/// Comfortably more than two of the timer's one-second ticks.
const TWO_TICKS: Duration = Duration::from_millis(2500);

struct Booked {
    id: String,
    start: String,
    end: String,
}

async fn book(app: &TestApp, subject: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Booked {
    let created = app
        .post(
            "/api/v1/conferences",
            &token(T, "alice", false),
            json!({"subject": subject, "start": rfc3339(start), "end": rfc3339(end)}),
        )
        .await;
    let body = created.ok(201);
    assert_eq!(body["status"], "not_started", "{}", created.text);
    assert_eq!(body["start"], rfc3339(start));
    assert_eq!(body["end"], rfc3339(end));
    Booked {
        id: body["id"].as_str().unwrap().to_owned(),
        start: rfc3339(start),
        end: rfc3339(end),
    }
}

async fn status(app: &TestApp, conference: &Booked) -> String {
    let view = app
        .get(
            &format!("/api/v1/conferences/{}", conference.id),
            &token(T, "alice", false),
        )
        .await;
    view.ok(200)["status"].as_str().unwrap().to_owned()
}

/// The one event of `kind` in `events`, asserting there is exactly one.
/// Waits until each of `conferences` has a `kind` event, then checks that two more ticks at the
/// same instant record nothing more.
async fn recorded_then_still(app: &TestApp, conferences: &[&Booked], kind: &str) {
    for conference in conferences {
        eventually(DEADLINE, &format!("the timer records {kind}"), async || {
            let events = app.history(T, "alice", &conference.id).await;
            kinds(&events).contains(&kind).then_some(())
        })
        .await;
    }
    let head = app.event_store().await.head_position().await.unwrap();
    tokio::time::sleep(TWO_TICKS).await;
    assert_eq!(
        app.event_store().await.head_position().await.unwrap(),
        head,
        "later ticks at the same instant record nothing more"
    );
}

fn only<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| e["type"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}: {:?}", kinds(events));
    found[0]
}

/// A timer event: recorded by the timer at the clock's instant, for the slot's own time.
fn assert_timer_event(event: &Value, slot_time: &str, clock: DateTime<Utc>) {
    assert_eq!(event["actor"], "system.timer", "{event}");
    assert_eq!(event["data"]["at"], slot_time, "{event}");
    let recorded = DateTime::parse_from_rfc3339(event["at"].as_str().unwrap()).unwrap();
    assert_eq!(
        recorded, clock,
        "recorded on the server's (fixed) clock: {event}"
    );
}

#[tokio::test]
async fn on_a_fixed_clock_the_timer_records_each_start_and_end_once_and_catches_up_after_a_restart()
{
    let t0 = this_hour();
    let minutes = |n: i64| t0 + chrono::Duration::minutes(n);
    let mut app = spawn_app_with(&flags(&fixed_now(t0))).await;
    app.seed(T, 2).await;
    let a = book(&app, "A", minutes(60), minutes(120)).await;
    let b = book(&app, "B", minutes(70), minutes(80)).await;
    let c = book(&app, "C", minutes(100), minutes(110)).await;

    // T + 1h15m: A and B have started, C has not.
    let first = minutes(75);
    app.restart(&flags(&fixed_now(first)));
    for (conference, shown) in [
        (&a, "in_progress"),
        (&b, "in_progress"),
        (&c, "not_started"),
    ] {
        assert_eq!(status(&app, conference).await, shown, "at T+1h15m");
    }
    recorded_then_still(&app, &[&a, &b], "ConferenceStarted").await;
    for conference in [&a, &b] {
        let events = app.history(T, "alice", &conference.id).await;
        assert_eq!(kinds(&events), ["ConferenceScheduled", "ConferenceStarted"]);
        assert_timer_event(only(&events, "ConferenceStarted"), &conference.start, first);
    }
    assert_eq!(
        kinds(&app.history(T, "alice", &c.id).await),
        ["ConferenceScheduled"],
        "C starts at T+1h40m"
    );

    // T + 3h, after a time down: A and B end; C started and ended meanwhile, both caught up.
    let second = minutes(180);
    app.restart(&flags(&fixed_now(second)));
    for conference in [&a, &b, &c] {
        assert_eq!(status(&app, conference).await, "ended", "at T+3h");
    }
    recorded_then_still(&app, &[&a, &b, &c], "ConferenceEnded").await;
    for conference in [&a, &b] {
        let events = app.history(T, "alice", &conference.id).await;
        assert_eq!(
            kinds(&events),
            [
                "ConferenceScheduled",
                "ConferenceStarted",
                "ConferenceEnded"
            ]
        );
        assert_timer_event(only(&events, "ConferenceStarted"), &conference.start, first);
        assert_timer_event(only(&events, "ConferenceEnded"), &conference.end, second);
    }
    let events = app.history(T, "alice", &c.id).await;
    assert_eq!(
        kinds(&events),
        [
            "ConferenceScheduled",
            "ConferenceStarted",
            "ConferenceEnded"
        ]
    );
    assert_timer_event(only(&events, "ConferenceStarted"), &c.start, second);
    assert_timer_event(only(&events, "ConferenceEnded"), &c.end, second);
    for conference in [&a, &b, &c] {
        assert_eq!(status(&app, conference).await, "ended");
    }
}
