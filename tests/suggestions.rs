//! Nearest free times (API.md v1.1): a schedule or an edit refused with `no_free_line` carries
//! `suggestions` — free now, the length asked, on the 15-minute grid, nearest first. Runs on
//! SQLite, and on PostgreSQL in `scripts/test`'s second pass.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use serde_json::{Value, json};

const T: &str = "acme";

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// `later(hours)` moved by `minutes`.
fn shifted(hours: i64, minutes: i64) -> DateTime<Utc> {
    instant(&later(hours)) + Duration::minutes(minutes)
}

/// The suggestions of a refusal, as (start, end) instants.
fn suggested(problem: &Value) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    problem["suggestions"]
        .as_array()
        .expect("a no_free_line problem carries suggestions")
        .iter()
        .map(|slot| {
            (
                instant(slot["start"].as_str().unwrap()),
                instant(slot["end"].as_str().unwrap()),
            )
        })
        .collect()
}

async fn book(app: &TestApp, user: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Reply {
    app.post(
        "/api/v1/conferences",
        &token(T, user, false),
        json!({"mode": "scheduled", "subject": "周会", "start": rfc3339(from), "end": rfc3339(to)}),
    )
    .await
}

#[tokio::test]
async fn a_refused_schedule_suggests_the_nearest_free_times_and_they_book() {
    let app = spawn_app().await;
    app.seed(T, 2).await;
    // Both lines busy 5–6 h from now.
    for user in ["alice", "bob"] {
        app.schedule(T, user, 5, 6).await.ok(201);
    }
    let refused = app.schedule(T, "carol", 5, 6).await;
    let problem = refused.problem(409, "no_free_line");
    // An hour long, on the grid, nearest to the start asked: 4:00 and 6:00 are as near (the
    // earlier first), then 3:45.
    assert_eq!(
        suggested(problem),
        vec![
            (shifted(4, 0), shifted(5, 0)),
            (shifted(6, 0), shifted(7, 0)),
            (shifted(3, 45), shifted(4, 45)),
        ]
    );
    // In English too, and the seed's message stays.
    let english = app
        .send(
            app.request(reqwest::Method::POST, "/api/v1/conferences", &token(T, "carol", false))
                .header("Accept-Language", "en")
                .json(&json!({"mode": "scheduled", "subject": "周会", "start": later(5), "end": later(6)})),
        )
        .await;
    assert_eq!(suggested(english.problem(409, "no_free_line")).len(), 3);
    // Each is bookable: take the first.
    let (start, end) = suggested(problem)[0];
    book(&app, "carol", start, end).await.ok(201);
    // Now 4:00 is taken on one line only: still free on the other.
    let again = app.schedule(T, "dave", 5, 6).await;
    assert_eq!(
        suggested(again.problem(409, "no_free_line"))[0],
        (shifted(4, 0), shifted(5, 0))
    );
}

#[tokio::test]
async fn a_refused_edit_does_not_count_the_conferences_own_booking() {
    let app = spawn_app().await;
    app.seed(T, 2).await;
    let x = app.schedule(T, "alice", 11, 12).await.ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.schedule(T, "bob", 11, 12).await.ok(201);
    app.schedule(T, "carol", 12, 13).await.ok(201);
    app.schedule(T, "dave", 12, 13).await.ok(201);
    let refused = app
        .patch(
            &format!("/api/v1/conferences/{x}"),
            &token(T, "alice", false),
            json!({"start": later(12), "end": later(13)}),
        )
        .await;
    // 11:00–12:00 is free for this conference: its own booking is there.
    assert_eq!(
        suggested(refused.problem(409, "no_free_line")),
        vec![
            (shifted(11, 0), shifted(12, 0)),
            (shifted(13, 0), shifted(14, 0)),
            (shifted(10, 45), shifted(11, 45)),
        ]
    );
    let moved = app
        .patch(
            &format!("/api/v1/conferences/{x}"),
            &token(T, "alice", false),
            json!({"start": rfc3339(shifted(10, 45)), "end": rfc3339(shifted(11, 45))}),
        )
        .await;
    moved.ok(200);
}

#[tokio::test]
async fn without_any_line_there_is_nothing_to_suggest_and_the_past_is_never_suggested() {
    let app = spawn_app().await;
    app.seed(T, 0).await;
    let refused = app.schedule(T, "alice", 5, 6).await;
    assert!(suggested(refused.problem(409, "no_free_line")).is_empty());

    // One line, busy from now on for two hours: a quick meeting is refused, and nothing before
    // now is offered — the nearest free times are after.
    let app = spawn_app().await;
    app.seed(T, 1).await;
    let now = Utc::now();
    book(&app, "alice", now, now + Duration::hours(2))
        .await
        .ok(201);
    let quick = app
        .post(
            "/api/v1/conferences",
            &token(T, "bob", false),
            json!({"mode": "quick", "subject": "现在"}),
        )
        .await;
    let offered = suggested(quick.problem(409, "no_free_line"));
    assert_eq!(offered.len(), 3);
    for (start, end) in &offered {
        assert!(
            *start >= now + Duration::hours(2) - Duration::minutes(15),
            "{start}"
        );
        assert_eq!(start.timestamp() % 900, 0);
        assert_eq!(
            *end - *start,
            Duration::minutes(60),
            "a quick meeting's default length"
        );
    }
    assert!(offered.windows(2).all(|pair| pair[0].0 < pair[1].0));
}
