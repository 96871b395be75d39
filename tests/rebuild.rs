//! `meetline rebuild` through the binary: the server stopped, the read models dropped and replayed
//! from the event log by the subcommand, and the restarted server answers every query exactly as
//! before. On PostgreSQL too (`MEETLINE_BLACKBOX_STORE=postgres`): the subcommand is given the
//! same `DATABASE_URL`.

mod common;

use std::process::{Command, Output};

use common::*;
use meetline_adapters::db::Database;
use serde_json::{Value, json};

const T: &str = "acme";

/// Runs `meetline rebuild` on the app's data folder (and database), as an operator would.
fn rebuild(app: &TestApp) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meetline"));
    command
        .args(["rebuild", "--data"])
        .arg(&app.data)
        .env("MEETLINE_JWT_SECRET", SECRET)
        .env("MEETLINE_SETTINGS_KEY", SETTINGS_KEY)
        .env("MEETLINE_JITSI_SECRET", JITSI_SECRET)
        .env("MEETLINE_LOG", "warn")
        .env_remove("MEETLINE_DATA")
        .env_remove("MEETLINE_EVENT_STORE");
    match &app.database {
        Some(database) => command.env("DATABASE_URL", &database.url),
        None => command.env_remove("DATABASE_URL"),
    };
    command.output().expect("meetline rebuild runs")
}

/// The database of the read models, opened apart from any server.
async fn read_model_database(app: &TestApp) -> Database {
    match &app.database {
        Some(database) => Database::connect_postgres(&database.url, 1).await.unwrap(),
        None => Database::open_sqlite(&app.data.join("meetline.db"))
            .await
            .unwrap(),
    }
}

/// Every answer the read side gives about the tenant: each conference's view and history (as
/// an admin), the listings and recent lists of its users, the lines and the ops summary.
async fn everything(app: &TestApp, ids: &[String], head: u64) -> Vec<(String, Value)> {
    let admin = token(T, "admin", true);
    let mut answers = Vec::new();
    let mut paths: Vec<(String, String)> = Vec::new();
    for id in ids {
        paths.push((format!("/api/v1/conferences/{id}"), admin.clone()));
        paths.push((format!("/api/v1/conferences/{id}/history"), admin.clone()));
    }
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        let user_token = token(T, user, false);
        paths.push(("/api/v1/conferences".to_owned(), user_token.clone()));
        paths.push(("/api/v1/conferences/recent".to_owned(), user_token.clone()));
        paths.push((
            "/api/v1/conferences?status=cancelled,manually_ended".to_owned(),
            user_token,
        ));
    }
    paths.push(("/api/v1/lines".to_owned(), admin.clone()));
    paths.push(("/api/v1/ops/summary".to_owned(), admin.clone()));
    for (path, bearer) in paths {
        let reply = app
            .send(
                app.request(reqwest::Method::GET, &path, &bearer)
                    .header("X-Min-Position", head),
            )
            .await;
        answers.push((path, reply.ok(200).clone()));
    }
    answers
}

#[tokio::test]
async fn rebuild_through_the_binary_gives_back_every_answer_the_server_gave_before() {
    let now = this_hour();
    let at = |minutes: i64| rfc3339(now + chrono::Duration::minutes(minutes));
    let clock = fixed_now(now);
    let mut app = spawn_app_with(&flags(&clock)).await;
    app.seed(T, 2).await;
    let alice = token(T, "alice", false);
    let mut ids = Vec::new();
    let mut book = async |user: &str, body: Value| {
        let created = app
            .post("/api/v1/conferences", &token(T, user, false), body)
            .await;
        created.ok(201);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
        created
    };
    let a = book(
        "alice",
        json!({"subject": "A", "start": at(300), "end": at(360), "attendees": ["bob"]}),
    )
    .await;
    let b = book(
        "bob",
        json!({"subject": "B", "start": at(300), "end": at(360)}),
    )
    .await;
    let c = book(
        "alice",
        json!({"subject": "C", "start": at(480), "end": at(540)}),
    )
    .await;
    // Both lines are taken from 300 to 360: a schedule and an edit into that hour are refused,
    // and counted on the ops dashboard — from the log, which records each refusal as an event
    // (`DemandRefused`), so a rebuild counts them again.
    app.post(
        "/api/v1/conferences",
        &token(T, "carol", false),
        json!({"subject": "No room", "start": at(310), "end": at(350)}),
    )
    .await
    .problem(409, "no_free_line");
    app.patch(
        &format!("/api/v1/conferences/{}", c.body["id"].as_str().unwrap()),
        &alice,
        json!({"start": at(310), "end": at(350)}),
    )
    .await
    .problem(409, "no_free_line");
    let quick = book(
        "dave",
        json!({"mode": "quick", "subject": "Q", "duration_minutes": 30}),
    )
    .await;
    assert_eq!(a.body["line"]["id"], "line-1");
    assert_eq!(b.body["line"]["id"], "line-2");
    // An edit that moves a conference onto the other line, an edit in place, an invitation,
    // a join by number, a cancel, an early end and a conference of a meeting.
    let id = |reply: &Reply| reply.body["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/conferences/{}/cancel", id(&b)),
        &token(T, "bob", false),
        json!({"reason": "moved"}),
    )
    .await
    .ok(200);
    let moved = app
        .patch(
            &format!("/api/v1/conferences/{}", id(&c)),
            &alice,
            json!({"subject": "C moved", "start": at(330), "end": at(390)}),
        )
        .await;
    assert_eq!(moved.ok(200)["line"]["id"], "line-2");
    app.patch(
        &format!("/api/v1/conferences/{}", id(&a)),
        &alice,
        json!({"subject": "A edited", "attendees": ["bob", "carol"]}),
    )
    .await
    .ok(200);
    app.post(
        &format!("/api/v1/conferences/{}/invitations", id(&a)),
        &alice,
        json!({"attendees": ["dave"]}),
    )
    .await
    .ok(200);
    app.post(
        "/api/v1/conferences/join",
        &token(T, "erin", false),
        json!({"number": a.body["number"]}),
    )
    .await
    .ok(200);
    app.post(
        &format!("/api/v1/conferences/{}/end", id(&quick)),
        &token(T, "dave", false),
        json!({}),
    )
    .await
    .ok(200);
    let launched = app
        .post("/api/v1/meetings/m1/conference", &alice, json!({}))
        .await;
    launched.ok(201);
    ids.push(id(&launched));

    let store = app.event_store().await;
    let head = store.head_position().await.unwrap();
    let refused: Vec<_> = store
        .read_all(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|recorded| match recorded.event {
            meetline_domain::event::Event::DemandRefused { edited, .. } => {
                Some((recorded.metadata.actor, edited.map(|id| id.to_string())))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            ("carol".to_owned(), None),
            ("alice".to_owned(), Some(id(&c)))
        ]
    );
    let before = everything(&app, &ids, head).await;
    let summary = &before.last().unwrap().1;
    assert_eq!(summary["no_free_line_rejections"], 2);
    let hour = now.format("%Y-%m-%dT%H:00Z").to_string();
    assert_eq!(summary["rejections_by_hour"], json!([[hour, 2]]));
    // Not an empty comparison: the listings hold what was made.
    let listed = |answers: &[(String, Value)], index: usize| {
        answers[index].1["items"].as_array().unwrap().len()
    };
    let alice_list = 2 * ids.len();
    assert_eq!(before[alice_list].0, "/api/v1/conferences");
    assert_eq!(listed(&before, alice_list), 3, "alice's A, C and m1's");
    assert_eq!(
        before.last().unwrap().1["by_status"],
        json!({"not_started": 3, "cancelled": 1, "manually_ended": 1})
    );

    app.stop();
    let output = rebuild(&app);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "meetline rebuild failed ({:?}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // Positions are dense from 1: the head is the number of events, every one replayed.
    assert!(
        stdout.contains(&format!("rebuilt from {head} events")),
        "{stdout}"
    );
    // The subcommand itself left the read models complete (not the next server's catch-up).
    let database = read_model_database(&app).await;
    assert_eq!(
        meetline_projections::projector::checkpoint(&database)
            .await
            .unwrap(),
        head
    );
    database.writer.close().await;
    database.reader.close().await;

    app.restart(&flags(&clock));
    let after = everything(&app, &ids, head).await;
    assert_eq!(after.len(), before.len());
    for ((path, was), (_, is)) in before.iter().zip(&after) {
        assert_eq!(is, was, "{path} answers differently after the rebuild");
    }
}
