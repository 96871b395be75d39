//! The read models equal the fold of the log, and a rebuild from position 0 gives the same rows.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use meetline_adapters::db::Database;
use meetline_adapters::postgres::PgEventStore;
use meetline_adapters::sqlite::SqliteEventStore;
use meetline_adapters::testing::TestDatabase;
use meetline_domain::command::{ConferenceChanges, EndSpec, ScheduleConference};
use meetline_domain::ports::{EventMetadata, EventStore, NewEvent, pool_stream};
use meetline_domain::*;
use meetline_projections::read::ListFilter;
use meetline_projections::view::LineRef;
use meetline_projections::{ConferenceView, Projector, ReadModels};
use sqlx::Row;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

/// Drives a pool through a deterministic mix of commands and stores every accepted event.
async fn generate(store: &dyn EventStore, tenant: &TenantId, steps: u64) {
    let mut pool = LinePool::default();
    let stream = pool_stream(tenant);
    let users = ["alice", "bob", "carol", "dave"];
    let mut seed = 42u64;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut ids: Vec<ConferenceId> = Vec::new();
    let admin = Actor::admin("root");
    for step in 0..steps {
        let now = t0() + Duration::minutes(step as i64 * 7);
        let who = Actor::user(users[next(4) as usize]);
        let pick =
            |ids: &Vec<ConferenceId>, r: u64| ids.get(r as usize % ids.len().max(1)).copied();
        let (actor, command) = match (step, next(10)) {
            (0..=3, _) => (
                admin.clone(),
                Command::AddLine {
                    name: LineName::parse(&format!("L{step}")).unwrap(),
                    provider: ProviderKind::Builtin,
                },
            ),
            (_, 0..=4) => {
                let start = now + Duration::minutes(15 * next(400) as i64 + 15);
                (
                    who,
                    Command::ScheduleConference(ScheduleConference {
                        conference: ConferenceId(Uuid::from_u128(step as u128)),
                        mode: if next(5) == 0 {
                            Mode::Quick
                        } else {
                            Mode::Scheduled
                        },
                        subject: Subject::parse(&format!("会议 {step}")).unwrap(),
                        start: Some(start),
                        end: EndSpec::After(Duration::minutes(30 * (1 + next(4) as i64))),
                        timezone: TimeZoneName::default(),
                        host: None,
                        attendees: vec![UserId::parse(users[next(4) as usize]).unwrap()],
                        related_link: None,
                        rooms: RoomNonce::fixed(step as u128),
                        numbers: NumberDraw::fixed(step as u128),
                    }),
                )
            }
            (_, 5) => match pick(&ids, next(1000)) {
                Some(id) => (
                    admin.clone(),
                    Command::EditConference {
                        conference: id,
                        changes: ConferenceChanges {
                            start: Some(now + Duration::minutes(15 * next(400) as i64 + 15)),
                            ..Default::default()
                        },
                        expected_version: None,
                        rooms: RoomNonce::fixed(10_000 + step as u128),
                    },
                ),
                None => continue,
            },
            (_, 6) => match pick(&ids, next(1000)) {
                Some(id) => (
                    admin.clone(),
                    Command::CancelConference {
                        conference: id,
                        reason: None,
                    },
                ),
                None => continue,
            },
            (_, 7) => match pick(&ids, next(1000)) {
                Some(id) => (
                    admin.clone(),
                    Command::EndConferenceEarly { conference: id },
                ),
                None => continue,
            },
            (_, 8) => match pick(&ids, next(1000)) {
                Some(id) => (
                    admin.clone(),
                    Command::InviteAttendees {
                        conference: id,
                        attendees: vec![UserId::parse("erin").unwrap()],
                    },
                ),
                None => continue,
            },
            _ => {
                let line = LineId::parse(&format!("line-{}", 1 + next(4))).unwrap();
                if next(2) == 0 {
                    (
                        admin.clone(),
                        Command::StartLineMaintenance {
                            line,
                            rooms: RoomNonce::fixed(20_000 + step as u128),
                        },
                    )
                } else {
                    (admin.clone(), Command::EndLineMaintenance { line })
                }
            }
        };
        let Ok(events) = pool.handle(&actor, &command, now) else {
            continue;
        };
        if events.is_empty() {
            continue;
        }
        let new: Vec<NewEvent> = events
            .iter()
            .map(|event| NewEvent {
                event: event.clone(),
                metadata: EventMetadata {
                    event_id: Uuid::new_v4(),
                    command_id: Uuid::new_v4(),
                    correlation_id: Uuid::new_v4(),
                    causation_id: None,
                    actor: actor.user.to_string(),
                    recorded_at: now,
                    schema_version: EVENT_SCHEMA_VERSION,
                },
            })
            .collect();
        store.append(&stream, pool.version, &new).await.unwrap();
        for event in &events {
            if let Event::ConferenceScheduled { conference, .. } = event {
                ids.push(*conference);
            }
            pool.apply(event);
        }
    }
}

async fn dump(db: &Database) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    for (table, order) in [
        ("rm_conferences", "tenant, id"),
        ("rm_participants", "tenant, user_id, conference_id"),
        ("rm_lines", "tenant, line_id"),
    ] {
        let query = format!("SELECT * FROM {table} ORDER BY {order}");
        for row in sqlx::query(sqlx::AssertSqlSafe(query))
            .fetch_all(&db.reader)
            .await
            .unwrap()
        {
            let columns: Vec<String> = (0..row.len())
                .map(|i| {
                    row.try_get::<String, _>(i)
                        .or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string()))
                        .unwrap_or_default()
                })
                .collect();
            rows.push(format!("{table}|{}", columns.join("|")));
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_read_models_equal_the_fold_of_the_log_and_a_rebuild_is_identical() {
    let db = Database::temporary().await.unwrap();
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::new(db.clone()).await.unwrap());
    read_models_equal_the_fold_of_the_log_and_a_rebuild_is_identical(db, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_read_models_equal_the_fold_of_the_log_and_a_rebuild_is_identical() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let pool = meetline_adapters::postgres::connect(&database.url, 4)
        .await
        .unwrap();
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool).await.unwrap());
    let db = Database::connect_postgres(&database.url, 4).await.unwrap();
    read_models_equal_the_fold_of_the_log_and_a_rebuild_is_identical(db, store).await;
}

async fn read_models_equal_the_fold_of_the_log_and_a_rebuild_is_identical(
    db: Database,
    store: Arc<dyn EventStore>,
) {
    let tenant = TenantId::parse("acme").unwrap();
    generate(store.as_ref(), &tenant, 1500).await;
    let other = TenantId::parse("other").unwrap();
    generate(store.as_ref(), &other, 200).await;

    let projector = Projector::new(store.clone(), db.clone()).await.unwrap();
    let applied = projector.catch_up(|_| {}).await.unwrap();
    assert_eq!(applied, store.head_position().await.unwrap());
    let live = dump(&db).await;
    assert!(live.len() > 500);

    // Every conference's row equals the fold of its own events.
    let read_models = ReadModels::new(db.clone());
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM rm_conferences WHERE tenant = 'acme'")
            .fetch_all(&db.reader)
            .await
            .unwrap();
    let lines = read_models.lines(&tenant).await.unwrap();
    for id in &ids {
        let id = ConferenceId(Uuid::parse_str(id).unwrap());
        let row = read_models.conference(&tenant, id).await.unwrap().unwrap();
        let events = store.read_tagged(&pool_stream(&tenant), id).await.unwrap();
        let folded = ConferenceView::fold(&tenant, events.iter().map(|e| &e.event), |line| {
            lines.iter().find(|l| l.id == line.as_str()).map_or_else(
                || LineRef::unknown(line),
                |l| LineRef {
                    id: line.clone(),
                    name: l.name.clone(),
                    provider: l.provider.clone(),
                },
            )
        })
        .unwrap();
        assert_eq!(row, folded);
    }
    // Nothing leaks across tenants.
    let alice = UserId::parse("alice").unwrap();
    let page = read_models
        .list(
            &other,
            &alice,
            &ListFilter {
                limit: 100,
                ..Default::default()
            },
            t0(),
        )
        .await
        .unwrap();
    assert!(page.items.iter().all(|view| view.tenant == other));

    projector.rebuild(|_| {}).await.unwrap();
    assert_eq!(dump(&db).await, live);
}
