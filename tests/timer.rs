//! Time-driven status: a conference starting in 2 s and ending in 4 s shows `in_progress`, then
//! `ended`, and its history records `ConferenceStarted` and `ConferenceEnded` once each.

mod common;

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use common::*;
use serde_json::json;

#[tokio::test]
async fn a_conference_two_seconds_away_starts_and_ends_and_both_are_recorded_once() {
    let app = spawn_app().await;
    app.seed("acme", 1).await;
    let alice = token("acme", "alice", false);
    let at = |seconds: i64| {
        (Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let created = app
        .post(
            "/api/v1/conferences",
            &alice,
            json!({"subject": "short", "start": at(2), "end": at(4)}),
        )
        .await;
    assert_eq!(created.ok(201)["status"], "not_started");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/conferences/{id}");

    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let status = app.get(&path, &alice).await.ok(200)["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        let history = app.get(&format!("{path}/history"), &alice).await;
        let kinds: Vec<String> = history.ok(200)["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        if status == "ended" && kinds.iter().any(|kind| kind == "ConferenceEnded") {
            assert_eq!(
                kinds
                    .iter()
                    .filter(|kind| *kind == "ConferenceStarted")
                    .count(),
                1,
                "{kinds:?}"
            );
            assert_eq!(
                kinds
                    .iter()
                    .filter(|kind| *kind == "ConferenceEnded")
                    .count(),
                1,
                "{kinds:?}"
            );
            let events = history.body["events"].as_array().unwrap().clone();
            let started_event = events
                .iter()
                .find(|e| e["type"] == "ConferenceStarted")
                .unwrap();
            assert_eq!(started_event["actor"], "system.timer");
            assert_eq!(started_event["data"]["at"], created.body["start"]);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not ended and recorded in time: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, vec!["not_started", "in_progress", "ended"]);
    // Another second of ticks records nothing more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let history = app.get(&format!("{path}/history"), &alice).await;
    assert_eq!(history.ok(200)["events"].as_array().unwrap().len(), 3);
}
