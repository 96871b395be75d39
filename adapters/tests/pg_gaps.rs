//! Gap test: many concurrent writers on two nodes (two store instances, two pools) whose
//! transactions stay open for random times, while a projector-style reader follows the global
//! log from its checkpoint. The reader's output must equal the full log — every event once, in
//! order, positions 1..=N with none skipped — every time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use meetline_adapters::postgres::{PgEventStore, connect};
use meetline_adapters::testing::TestDatabase;
use meetline_domain::ports::{EventMetadata, EventStore, NewEvent, StoreError};
use meetline_domain::*;
use rand::Rng;
use uuid::Uuid;

const WRITERS: usize = 12;
const EVENTS_PER_WRITER: usize = 850; // 10,200 events in all

fn event(n: usize) -> NewEvent {
    NewEvent {
        event: Event::ParticipantJoined {
            conference: ConferenceId(Uuid::from_u128(n as u128)),
            user: UserId::parse("u").unwrap(),
        },
        metadata: EventMetadata {
            event_id: Uuid::new_v4(),
            command_id: Uuid::new_v4(),
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            actor: "writer".into(),
            recorded_at: Utc::now(),
            schema_version: EVENT_SCHEMA_VERSION,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_following_the_log_never_skips_an_event_under_concurrent_writers() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let delay = Duration::from_millis(2);
    let node_a: Arc<dyn EventStore> = Arc::new(
        PgEventStore::new(connect(&database.url, 8).await.unwrap())
            .await
            .unwrap()
            .with_commit_delay(delay),
    );
    let node_b: Arc<dyn EventStore> = Arc::new(
        PgEventStore::new(connect(&database.url, 8).await.unwrap())
            .await
            .unwrap()
            .with_commit_delay(delay),
    );

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = node_b.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: Vec<u64> = Vec::new();
            let mut checkpoint = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let batch = store.read_all(checkpoint, 97).await.unwrap();
                if batch.is_empty() {
                    if finished {
                        return seen;
                    }
                    let _ = tokio::time::timeout(
                        Duration::from_millis(20),
                        store.wait_for_events(checkpoint),
                    )
                    .await;
                    continue;
                }
                for recorded in &batch {
                    seen.push(recorded.position);
                }
                checkpoint = batch.last().unwrap().position;
            }
        })
    };

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = if writer % 2 == 0 {
            node_a.clone()
        } else {
            node_b.clone()
        };
        writers.push(tokio::spawn(async move {
            let stream = format!("pool-w{writer}");
            let (mut version, mut written) = (0u64, 0usize);
            while written < EVENTS_PER_WRITER {
                let size = rand::rng()
                    .random_range(1..=8)
                    .min(EVENTS_PER_WRITER - written);
                let events: Vec<NewEvent> = (0..size)
                    .map(|i| event(writer * 10_000 + written + i))
                    .collect();
                match store.append(&stream, version, &events).await {
                    Ok(appended) => {
                        version = appended.version;
                        written += size;
                    }
                    Err(StoreError::Conflict { actual, .. }) => version = actual,
                    Err(other) => panic!("{other}"),
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let total = (WRITERS * EVENTS_PER_WRITER) as u64;
    let full: Vec<u64> = node_a
        .read_all(0, 1_000_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(full.len() as u64, total);
    assert_eq!(seen, full, "the follower's output differs from the log");
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "positions are 1..=N with no gaps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_append_wakes_a_waiter_through_notify() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let writer = PgEventStore::new(connect(&database.url, 2).await.unwrap())
        .await
        .unwrap();
    let follower = Arc::new(
        PgEventStore::new(connect(&database.url, 2).await.unwrap())
            .await
            .unwrap(),
    );
    let waiting = {
        let follower = follower.clone();
        tokio::spawn(async move { follower.wait_for_events(0).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer.append("pool-x", 0, &[event(1)]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("woken by NOTIFY")
        .unwrap();
}
