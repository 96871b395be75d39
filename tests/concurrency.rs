//! 200 concurrent creates for the same hour against 5 lines, over HTTP: exactly 5 are accepted,
//! the rest get `no_free_line`, and the stored events hold no overlap.

mod common;

use std::collections::HashMap;

use common::*;
use meetline_domain::Event;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_creates_for_one_hour_on_five_lines_accept_exactly_five() {
    let app = spawn_app().await;
    app.seed("acme", 5).await;
    let start = later(26);
    let end = later(27);
    let mut tasks = Vec::new();
    for n in 0..200 {
        let request = app
            .request(
                reqwest::Method::POST,
                "/api/v1/conferences",
                &token("acme", ["alice", "bob", "carol", "dave"][n % 4], false),
            )
            .json(&json!({"subject": format!("会议 {n}"), "start": start, "end": end}));
        tasks.push(tokio::spawn(async move {
            Reply::from(request.send().await.unwrap()).await
        }));
    }
    let mut outcomes: HashMap<u16, usize> = HashMap::new();
    let mut lines = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        *outcomes.entry(reply.status.as_u16()).or_default() += 1;
        match reply.status.as_u16() {
            201 => lines.push(reply.body["line"]["id"].as_str().unwrap().to_owned()),
            409 => assert_eq!(reply.body["code"], "no_free_line"),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert_eq!(outcomes.get(&201), Some(&5), "{outcomes:?}");
    assert_eq!(outcomes.get(&409), Some(&195), "{outcomes:?}");
    lines.sort();
    assert_eq!(
        lines,
        vec!["line-1", "line-2", "line-3", "line-4", "line-5"]
    );

    // Re-read what is stored, through a store of our own.
    let store = app.event_store().await;
    let events = store.read_stream("pool-acme", 0, 100_000).await.unwrap();
    let scheduled = events
        .iter()
        .filter(|e| matches!(e.event, Event::ConferenceScheduled { .. }))
        .count();
    assert_eq!(scheduled, 5);
    // The independent checker: no overlap, the lowest free line for each booking, and no line
    // free for the 195 refused (bookings only grow here, so any moment of the log will do).
    let refused: Vec<_> = (0..195)
        .map(|_| refusal_anytime("pool-acme", &start, &end))
        .collect();
    assert_independent_check(store.as_ref(), &refused).await;
    let mut slots: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::ConferenceScheduled { line, slot, .. } => {
                Some((line.clone(), slot.start, slot.end))
            }
            _ => None,
        })
        .collect();
    slots.sort();
    assert!(
        slots
            .windows(2)
            .all(|pair| pair[0].0 != pair[1].0 || pair[0].2 <= pair[1].1)
    );
}
