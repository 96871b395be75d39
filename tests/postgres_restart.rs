//! PostgreSQL restarted under load (`pg_ctlcluster … restart`, from the test): while it is away
//! commands answer `503 unavailable` with `Retry-After` (never anything else); the node
//! reconnects by itself; no acknowledged command is lost; and the projector, the timer and the
//! provisioning process resume. Its own test binary: it takes PostgreSQL away from every other
//! test, and cargo runs test binaries one at a time. It leaves PostgreSQL running.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use meetline_adapters::testing::TestDatabase;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// The local cluster's `pg_ctlcluster` arguments, when the test server is this machine's.
fn local_cluster() -> Option<(String, String)> {
    let server = meetline_adapters::testing::server_url();
    if !(server.contains("@127.0.0.1") || server.contains("@localhost")) {
        return None;
    }
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .max()?;
    Some((version, "main".to_owned()))
}

fn pg_ctlcluster(cluster: &(String, String), action: &str) -> bool {
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &cluster.0, &cluster.1, action])
        .status()
        .is_ok_and(|status| status.success())
}

/// Starts PostgreSQL again if the test left it down (it must stay up for the others).
struct KeepRunning((String, String));

impl Drop for KeepRunning {
    fn drop(&mut self) {
        if !Command::new("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", "5432"])
            .status()
            .is_ok_and(|status| status.success())
        {
            pg_ctlcluster(&self.0, "start");
        }
    }
}

#[tokio::test]
async fn a_postgresql_restart_under_load_loses_no_acknowledged_command_and_everything_resumes() {
    let Some(cluster) = local_cluster() else {
        meetline_adapters::testing::note_skip(
            "PostgreSQL is not this machine's: cannot restart it",
        );
        return;
    };
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let _keep = KeepRunning(cluster.clone());
    // Zoom, for the provisioning process.
    let zoom = zoom_oauth().await;
    Mock::given(method("POST"))
        .and(path("/v2/users/host%40zoomco.example/meetings"))
        .respond_with(|request: &wiremock::Request| {
            // The meeting carries the request's agenda (the conference's marker).
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            ResponseTemplate::new(201).set_body_json(json!({
                "id": 94000000001_u64, "topic": "z", "agenda": body["agenda"],
                "join_url": "https://zoomco.zoom.us/j/94000000001",
                "start_url": "https://zoomco.zoom.us/s/94000000001", "password": "p"}))
        })
        .mount(&zoom)
        .await;
    let zoom_flags = [
        "--zoom-api-url".to_owned(),
        format!("{}/v2", zoom.uri()),
        "--zoom-oauth-url".to_owned(),
        zoom.uri(),
        "--rate-limit".to_owned(),
        "0".to_owned(),
    ];
    let app = spawn_on(database, &flags(&zoom_flags));
    app.seed("acme", 3).await;
    let admin = token("zoomco", "admin", true);
    app.put(
        "/api/v1/directory/users/ann",
        &admin,
        json!({"name": "Ann"}),
    )
    .await
    .ok(200);
    app.post(
        "/api/v1/lines",
        &admin,
        json!({"name": "Zoom", "provider": "zoom", "settings": {
            "account_id": "acct", "client_id": "cid", "client_secret": "cs", "user_id": "host@zoomco.example"}}),
    )
    .await
    .ok(201);

    // Load: four clients creating one conference after another, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let alice = token("acme", "alice", false);
    let mut workers = Vec::new();
    for worker in 0..4_i64 {
        let (client, base, alice, stop) = (
            reqwest::Client::new(),
            app.base.clone(),
            alice.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let (mut acknowledged, mut unavailable) = (Vec::new(), 0_usize);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let hour = 24 + worker * 3_000 + n;
                let reply = client
                    .post(format!("{base}/api/v1/conferences"))
                    .bearer_auth(&alice)
                    .json(&json!({"subject": "s", "start": later(hour), "end": later(hour + 1)}))
                    .send()
                    .await
                    .expect("the node itself stays up");
                let status = reply.status().as_u16();
                let retry_after = reply.headers().contains_key("retry-after");
                let body: Value = reply.json().await.unwrap();
                match status {
                    201 => {
                        acknowledged.push((body["id"].as_str().unwrap().to_owned(), Instant::now()))
                    }
                    503 => {
                        assert_eq!(body["code"], "unavailable", "{body}");
                        assert!(retry_after, "a 503 without Retry-After");
                        unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => panic!("answered {other} while PostgreSQL restarted: {body}"),
                }
            }
            (acknowledged, unavailable)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let restarting = Instant::now();
    let restart = cluster.clone();
    let restarted = tokio::task::spawn_blocking(move || pg_ctlcluster(&restart, "restart"))
        .await
        .unwrap();
    assert!(restarted, "pg_ctlcluster restart failed");
    let restarted_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut acknowledged, mut unavailable) = (Vec::new(), 0);
    for worker in workers {
        let (mine, refused) = worker.await.unwrap();
        acknowledged.extend(mine);
        unavailable += refused;
    }
    let after = acknowledged
        .iter()
        .filter(|(_, at)| *at > restarted_at)
        .count();
    let first_after = acknowledged
        .iter()
        .filter(|(_, at)| *at > restarting)
        .map(|(_, at)| at.duration_since(restarting))
        .min();
    println!(
        "restart took {:?}; {} creates acknowledged ({after} after PostgreSQL was back), {unavailable} answered 503; \
         first acknowledged {first_after:?} after the restart began",
        restarted_at.duration_since(restarting),
        acknowledged.len()
    );
    assert!(after > 0, "the node did not resume after the restart");

    // Nothing acknowledged is lost.
    let store = app.event_store().await;
    let mut stored = std::collections::HashSet::new();
    let mut position = 0;
    loop {
        let page = store.read_all(position, 5000).await.unwrap();
        let Some(last) = page.last() else { break };
        position = last.position;
        for recorded in &page {
            if let meetline_domain::event::Event::ConferenceScheduled { conference, .. } =
                &recorded.event
            {
                stored.insert(conference.to_string());
            }
        }
    }
    for (id, _) in &acknowledged {
        assert!(stored.contains(id), "acknowledged {id} is not stored");
    }

    // The projector resumed: the read models reach the head.
    let summary_admin = token("acme", "admin", true);
    let head = store.head_position().await.unwrap();
    eventually(
        Duration::from_secs(15),
        "the projector catching up after the restart",
        async || {
            let summary = app.get("/api/v1/ops/summary", &summary_admin).await;
            (summary.status == 200 && summary.body["applied_position"].as_u64() >= Some(head))
                .then_some(())
        },
    )
    .await;

    // The provisioning process resumed: a conference on the Zoom line gets its meeting.
    let made = app
        .post(
            "/api/v1/conferences",
            &token("zoomco", "ann", false),
            json!({"subject": "z", "start": later(30), "end": later(31)}),
        )
        .await;
    assert!(made.status == 201 || made.status == 202, "{:?}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(15),
        "provisioning resuming after the restart",
        async || {
            let view = app
                .get(
                    &format!("/api/v1/conferences/{id}"),
                    &token("zoomco", "ann", false),
                )
                .await;
            (view.body["provisioning"] == "done").then_some(())
        },
    )
    .await;

    // The timer resumed: a conference that starts and ends now is recorded as such.
    let now = chrono::Utc::now();
    let soon = app
        .post(
            "/api/v1/conferences",
            &alice,
            json!({"subject": "now", "start": rfc3339(now + chrono::Duration::seconds(2)),
                   "end": rfc3339(now + chrono::Duration::seconds(3))}),
        )
        .await;
    soon.ok(201);
    let soon = soon.body["id"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(15),
        "the timer resuming after the restart",
        async || {
            let history = app.history("acme", "alice", &soon).await;
            kinds(&history).contains(&"ConferenceEnded").then_some(())
        },
    )
    .await;
}
