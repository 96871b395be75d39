//! A node when what it depends on misbehaves, on PostgreSQL (the test plays the misbehaviour):
//!
//! - **a lagging projector** — the test holds the projection's advisory lock, so no node applies
//!   events: a query with `X-Min-Position` waits, answers stale when the wait runs out, and
//!   answers fresh as soon as the projector catches up; `/readyz` and the ops summary say how far
//!   behind the read models are;
//! - **the store away** — the database refuses connections: commands and queries answer 503
//!   `unavailable` with `Retry-After`, `/readyz` says so, and the node recovers by itself;
//! - **a full queue** — the events table is locked, so the pool's writer waits on its append:
//!   requests beyond the queue are refused at once with 429 and `Retry-After`, and every command
//!   the queue took is stored once the table is free.

mod common;

use std::time::{Duration, Instant};

use common::*;
use meetline_adapters::testing::TestDatabase;
use meetline_command_api::service::MAX_BATCH;
use meetline_domain::ports::{EventMetadata, NewEvent};
use meetline_domain::{EVENT_SCHEMA_VERSION, Event};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;

const T: &str = "acme";

fn position(reply: &Reply) -> u64 {
    reply
        .header("x-position")
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("an X-Position header: {reply:?}"))
}

/// A GET without the read-your-writes header `TestApp` adds, with `X-Min-Position` when given.
async fn get_at(app: &TestApp, path: &str, user_token: &str, min_position: Option<u64>) -> Reply {
    let mut request = app.client.get(app.url(path)).bearer_auth(user_token);
    if let Some(position) = min_position {
        request = request.header("X-Min-Position", position);
    }
    Reply::from(request.send().await.unwrap()).await
}

async fn readyz(app: &TestApp) -> (u16, String) {
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The ops summary as it stands, without waiting for any position.
async fn summary(app: &TestApp) -> Value {
    get_at(app, "/api/v1/ops/summary", &token(T, "admin", true), None)
        .await
        .ok(200)
        .clone()
}

fn create_body(hours_from_now: i64) -> Value {
    json!({"subject": format!("周会 {hours_from_now}"), "start": later(hours_from_now),
           "end": later(hours_from_now + 1), "attendees": ["bob"]})
}

#[tokio::test]
async fn a_lagging_projector_makes_queries_wait_and_readiness_and_the_summary_say_so() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    // The projection lock, taken before any node starts: no node can apply events until the test
    // lets go of it.
    let mut holder = sqlx::PgConnection::connect(&database.url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(meetline_projections::projector::PROJECTION_LOCK)
        .execute(&mut holder)
        .await
        .unwrap();
    let app = spawn_on(database, &["--rate-limit", "0"]);
    app.seed(T, 1).await;
    let alice = token(T, "alice", false);
    let created = app
        .post("/api/v1/conferences", &alice, create_body(5))
        .await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    let wanted = position(&created);
    let path = format!("/api/v1/conferences/{id}");

    // The summary shows the lag as it is: the head moved, the read models did not.
    let behind = summary(&app).await;
    assert_eq!(behind["head_position"], wanted, "{behind}");
    let applied = behind["applied_position"].as_u64().unwrap();
    assert!(applied < wanted, "{behind}");
    assert_eq!(behind["projection_lag"], wanted - applied, "{behind}");
    assert_eq!(readyz(&app).await, (200, "ready".to_owned()));

    // Asked to wait for a position nobody applies, a query waits its 5 s, then answers with what
    // it has (the conference is not in the read models yet).
    let asked = Instant::now();
    let stale = get_at(&app, &path, &alice, Some(wanted)).await;
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(4900),
        "answered after {waited:?}"
    );
    stale.problem(404, "not_found");

    // More than 1,000 events behind, the node says it is not ready.
    let store = app.event_store().await;
    let events: Vec<NewEvent> = (0..1001)
        .map(|n| NewEvent {
            event: Event::LineAdded {
                line: meetline_domain::LineId::parse(&format!("bulk-{n}")).unwrap(),
                name: meetline_domain::LineName::parse(&format!("Bulk {n}")).unwrap(),
                provider: meetline_domain::ProviderKind::Builtin,
            },
            metadata: EventMetadata {
                event_id: uuid::Uuid::now_v7(),
                command_id: uuid::Uuid::now_v7(),
                correlation_id: uuid::Uuid::now_v7(),
                causation_id: None,
                actor: "admin".to_owned(),
                recorded_at: chrono::Utc::now(),
                schema_version: EVENT_SCHEMA_VERSION,
            },
        })
        .collect();
    let appended = store.append("pool-globex", 0, &events).await.unwrap();
    let head = *appended.positions.last().unwrap();
    assert_eq!(readyz(&app).await, (503, "catching up".to_owned()));

    // A query waiting for the conference answers as soon as the projector is let go of.
    let waiting = {
        let (client, url, alice) = (app.client.clone(), app.url(&path), alice.clone());
        tokio::spawn(async move {
            let asked = Instant::now();
            let reply = Reply::from(
                client
                    .get(url)
                    .bearer_auth(alice)
                    .header("X-Min-Position", wanted)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            (reply, asked.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!waiting.is_finished(), "answered while nothing was applied");
    holder.close().await.unwrap();
    let (fresh, waited) = waiting.await.unwrap();
    assert_eq!(fresh.ok(200)["id"], id.as_str());
    let applied: u64 = fresh.header("x-applied-position").unwrap().parse().unwrap();
    assert!(applied >= wanted, "applied {applied} < {wanted}");
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );

    // Caught up: ready, and the summary shows no lag.
    let caught_up = get_at(
        &app,
        "/api/v1/ops/summary",
        &token(T, "admin", true),
        Some(head),
    )
    .await;
    assert_eq!(caught_up.ok(200)["applied_position"], head, "{caught_up:?}");
    assert_eq!(caught_up.body["head_position"], head);
    assert_eq!(caught_up.body["projection_lag"], 0);
    assert_eq!(readyz(&app).await, (200, "ready".to_owned()));
}

#[tokio::test]
async fn with_the_store_away_requests_get_503_and_the_node_recovers_by_itself() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let name = database.name.clone();
    let server = database.url.rsplit_once('/').unwrap().0.to_owned();
    let app = spawn_on(database, &["--rate-limit", "0"]);
    app.seed(T, 2).await;
    let alice = token(T, "alice", false);
    let before = app
        .post("/api/v1/conferences", &alice, create_body(5))
        .await;
    let kept = before.ok(201)["id"].as_str().unwrap().to_owned();

    // The database goes away: no new connection, every open one ended.
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    let set_connections = |allow: bool| {
        sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allow}"
        ))
    };
    sqlx::query(set_connections(false))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();

    let asked = Instant::now();
    let refused = app
        .post("/api/v1/conferences", &alice, create_body(7))
        .await;
    refused.problem(503, "unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "the 503 took {:?}",
        asked.elapsed()
    );
    let (status, text) = readyz(&app).await;
    assert_eq!((status, text.as_str()), (503, "store unavailable"));
    let listing = get_at(&app, "/api/v1/conferences", &alice, None).await;
    listing.problem(503, "unavailable");
    assert!(listing.header("retry-after").is_some());

    // Back: the node reconnects by itself and takes commands again.
    sqlx::query(set_connections(true))
        .execute(&mut admin)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let reply = app
            .post("/api/v1/conferences", &alice, create_body(9))
            .await;
        if reply.status.as_u16() == 201 {
            break reply;
        }
        reply.problem(503, "unavailable");
        assert!(Instant::now() < deadline, "not back in 30 s: {reply:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let recovered = after.body["id"].as_str().unwrap().to_owned();
    assert_eq!(readyz(&app).await.0, 200);
    let listed = app.get("/api/v1/conferences?limit=100", &alice).await;
    let ids: Vec<&str> = listed.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&kept.as_str()) && ids.contains(&recovered.as_str()));

    // Nothing the outage refused was stored, and the log is sound.
    let store = app.event_store().await;
    let log = meetline_verify::whole_log(store.as_ref()).await.unwrap();
    let scheduled = log
        .iter()
        .filter(|recorded| matches!(recorded.event, Event::ConferenceScheduled { .. }))
        .count();
    assert_eq!(scheduled, 2);
    assert_independent_check(store.as_ref(), &[]).await;
}

#[tokio::test]
async fn a_full_queue_refuses_requests_at_once_with_429_and_stores_all_it_took() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let url = database.url.clone();
    let app = spawn_on(
        database,
        &["--rate-limit", "0", "--command-queue-depth", "2"],
    );
    app.seed(T, 1).await;

    // Appends wait while the test holds the events table.
    let mut locker = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();

    let send = |hours: i64, user: &'static str| {
        let request = app
            .client
            .post(app.url("/api/v1/conferences"))
            .bearer_auth(token(T, user, false))
            .json(&create_body(hours));
        tokio::spawn(async move { Reply::from(request.send().await.unwrap()).await })
    };
    // The first command: the writer takes it and waits on its append…
    let first = send(3, "alice");
    let mut monitor = sqlx::PgConnection::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut monitor)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no append waits on the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // …the writer takes up to one batch more (decided while the append waits: pipelining), two
    // more fill the queue, and the rest are refused at once.
    let others: Vec<_> = (0..80).map(|n| send(5 + 2 * n, "bob")).collect();
    let most_waiting = MAX_BATCH + 2;
    let at_least_refused = others.len() - most_waiting;
    let deadline = Instant::now() + Duration::from_secs(15);
    while others.iter().filter(|task| task.is_finished()).count() < at_least_refused {
        assert!(
            Instant::now() < deadline,
            "the refusals did not come at once"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished());
    let refused_early = others.iter().filter(|task| task.is_finished()).count();

    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    let mut taken = vec![first.await.unwrap()];
    let mut refused = 0;
    for task in others {
        let reply = task.await.unwrap();
        if reply.status.as_u16() == 429 {
            reply.problem(429, "rate_limited");
            assert_eq!(reply.header("retry-after"), Some("1"));
            refused += 1;
        } else {
            taken.push(reply);
        }
    }
    // Every refusal came while the append waited; no more than a batch and the queue waited.
    assert_eq!(refused, refused_early);
    assert!(refused >= at_least_refused, "{refused} refused");
    assert_eq!(taken.len() + refused, 81);
    let admin = token(T, "admin", true);
    for reply in &taken {
        let id = reply.ok(201)["id"].as_str().unwrap();
        app.send(
            app.request(Method::GET, &format!("/api/v1/conferences/{id}"), &admin)
                .header("X-Min-Position", position(reply)),
        )
        .await
        .ok(200);
    }
    let store = app.event_store().await;
    let log = meetline_verify::whole_log(store.as_ref()).await.unwrap();
    let scheduled = log
        .iter()
        .filter(|recorded| matches!(recorded.event, Event::ConferenceScheduled { .. }))
        .count();
    assert_eq!(
        scheduled,
        taken.len(),
        "exactly the commands taken are stored"
    );
    assert_independent_check(store.as_ref(), &[]).await;
}
