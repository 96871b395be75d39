//! One append the database refuses fails only itself: the committer writes the appends of many
//! streams (tenants) in one transaction, and when PostgreSQL refuses one row — `jsonb` cannot hold
//! U+0000 — the others must still be stored, not fail with it.

use chrono::Utc;
use meetline_adapters::postgres::{PgEventStore, connect};
use meetline_adapters::testing::TestDatabase;
use meetline_domain::ports::{EventMetadata, EventStore, NewEvent};
use meetline_domain::*;
use uuid::Uuid;

fn invited(user: &str) -> NewEvent {
    NewEvent {
        event: Event::AttendeesInvited {
            conference: ConferenceId(Uuid::from_u128(1)),
            // Not through `UserId::parse` (which refuses it): a value only a bug could write.
            attendees: vec![serde_json::from_value(serde_json::json!(user)).unwrap()],
        },
        metadata: EventMetadata {
            event_id: Uuid::now_v7(),
            command_id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            actor: "writer".into(),
            recorded_at: Utc::now(),
            schema_version: EVENT_SCHEMA_VERSION,
        },
    }
}

// A current-thread runtime: every append below is queued before the committer runs, so they
// form one group.
#[tokio::test]
async fn an_append_postgresql_refuses_fails_alone_and_the_rest_of_its_group_is_stored() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let store = PgEventStore::new(connect(&database.url, 4).await.unwrap())
        .await
        .unwrap();
    let appends = (0..12).map(|n| {
        let user = if n == 5 {
            "bad\u{0}user".to_owned()
        } else {
            format!("user-{n}")
        };
        let events = vec![invited(&user)];
        let store = &store;
        async move { store.append(&format!("pool-t{n}"), 0, &events).await }
    });
    let outcomes = futures_join_all(appends).await;
    for (n, outcome) in outcomes.iter().enumerate() {
        if n == 5 {
            assert!(outcome.is_err(), "the refused append fails");
        } else {
            assert!(outcome.is_ok(), "pool-t{n}: {outcome:?}");
        }
    }
    let stored = store.read_all(0, 100).await.unwrap();
    assert_eq!(stored.len(), 11);
    assert!(stored.iter().all(|recorded| recorded.stream != "pool-t5"));
    // Positions stay dense: the refused append took none.
    let positions: Vec<u64> = stored.iter().map(|recorded| recorded.position).collect();
    assert_eq!(positions, (1..=11).collect::<Vec<u64>>());
}

/// Polls every future in one task (no spawning), so all are started before any completes.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("ready"))
        .collect()
}
