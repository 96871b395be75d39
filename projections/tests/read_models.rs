//! Every read-model row equals the **expected read model** that `meetline-verify` folds from the
//! raw log with its own code (not `ConferenceView::fold`, which the projector itself uses), field
//! by field, with as many rows as the log has conferences; and a rebuild from position 0 gives
//! the same rows as the live projection.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use meetline_adapters::db::Database;
use meetline_adapters::postgres::PgEventStore;
use meetline_adapters::sqlite::SqliteEventStore;
use meetline_adapters::testing::TestDatabase;
use meetline_domain::command::{ConferenceChanges, EndSpec, ScheduleConference};
use meetline_domain::ports::{EventMetadata, EventStore, NewEvent, StoreError, pool_stream};
use meetline_domain::*;
use meetline_projections::read::ListFilter;
use meetline_projections::view::tenant_of_stream;
use meetline_projections::{ConferenceView, Projector, ReadModels};
use meetline_verify::expected::{ExpectedConference, expected_conferences};
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

/// A fresh SQLite database and its event store.
async fn sqlite_store() -> (Database, Arc<dyn EventStore>) {
    let db = Database::temporary().await.unwrap();
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::new(db.clone()).await.unwrap());
    (db, store)
}

/// A fresh PostgreSQL database (dropped with the first value), the read models' handle on it
/// with `connections`, and its event store; `None` without a server.
async fn postgres_store(connections: u32) -> Option<(TestDatabase, Database, Arc<dyn EventStore>)> {
    let database = TestDatabase::create().await?;
    let pool = meetline_adapters::postgres::connect(&database.url, 4)
        .await
        .unwrap();
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool).await.unwrap());
    let db = Database::connect_postgres(&database.url, connections)
        .await
        .unwrap();
    Some((database, db, store))
}

/// The secondary indexes whose names start with `prefix`, by name (not primary keys).
async fn secondary_indexes(db: &Database, prefix: &str) -> Vec<String> {
    let sql = match db.backend {
        meetline_adapters::db::Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ? || '%' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        meetline_adapters::db::Backend::Postgres => {
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() \
             AND indexname LIKE ? || '%' AND indexname NOT LIKE '%_pkey' ORDER BY indexname"
        }
    };
    sqlx::query_scalar(db.sql(sql))
        .bind(prefix)
        .fetch_all(&db.reader)
        .await
        .unwrap()
}

/// The read-model generations and their states, by number.
async fn generations_of(db: &Database) -> Vec<(i64, String)> {
    sqlx::query(db.sql("SELECT generation, state FROM rm_generations ORDER BY generation"))
        .fetch_all(&db.reader)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
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
async fn on_sqlite_read_models_equal_the_expected_read_model_and_a_rebuild_is_identical() {
    let (db, store) = sqlite_store().await;
    read_models_equal_the_expected_read_model_and_a_rebuild_is_identical(db, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_read_models_equal_the_expected_read_model_and_a_rebuild_is_identical() {
    let Some((_database, db, store)) = postgres_store(4).await else {
        return;
    };
    read_models_equal_the_expected_read_model_and_a_rebuild_is_identical(db, store).await;
}

async fn read_models_equal_the_expected_read_model_and_a_rebuild_is_identical(
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

    // Every conference's row equals the expected read model, field by field.
    let read_models = ReadModels::new(db.clone());
    compare_with_expected_read_model(store.as_ref(), &db, &read_models).await;
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
    let others: std::collections::HashSet<_> = store
        .read_stream(&meetline_domain::ports::pool_stream(&other), 0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter_map(|recorded| recorded.event.conference())
        .collect();
    assert!(!page.items.is_empty());
    assert!(page.items.iter().all(|view| others.contains(&view.id)));

    projector.rebuild(|_| {}).await.unwrap();
    assert_eq!(dump(&db).await, live);
    compare_with_expected_read_model(store.as_ref(), &db, &read_models).await;
}

/// The row as the read model shows it, in the expected read model's terms.
fn as_expected(row: &ConferenceView) -> ExpectedConference {
    let people = |users: &[UserId]| users.iter().map(ToString::to_string).collect();
    ExpectedConference {
        number: row.number.to_string(),
        subject: row.subject.as_str().to_owned(),
        start: row.slot.start,
        end: row.slot.end,
        line: row.line.id.to_string(),
        host: row.host.to_string(),
        creator: row.creator.to_string(),
        attendees: people(&row.attendees),
        joined: people(&row.joined),
        status: row.status.as_str(),
        version: row.version,
        ended_at: row.ended_at,
        cancelled_at: row.cancelled_at,
        stranded: row.stranded,
    }
}

/// Every conference of the whole log against its read-model row, field by field, and the row
/// count against the log's conference count. Panics naming each differing row and field.
async fn compare_with_expected_read_model(
    store: &dyn EventStore,
    db: &Database,
    read_models: &ReadModels,
) {
    let log = meetline_verify::whole_log(store).await.unwrap();
    let expected = expected_conferences(&log);
    assert!(expected.len() > 100, "too few conferences to mean much");
    let mut keys: Vec<_> = expected.keys().collect();
    keys.sort();
    let mut mismatches: Vec<String> = Vec::new();
    let mut rows_differing = 0;
    for key in keys {
        let (stream, id) = key;
        let want = &expected[key];
        let tenant = tenant_of_stream(stream).expect("a pool stream");
        let Some(row) = read_models.conference(&tenant, *id).await.unwrap() else {
            rows_differing += 1;
            mismatches.push(format!("row {stream}/{id}: missing from rm_conferences"));
            continue;
        };
        let differences = want.differences(&as_expected(&row));
        if !differences.is_empty() {
            rows_differing += 1;
        }
        for (field, got, want) in differences {
            mismatches.push(format!(
                "row {stream}/{id}: field {field}: read model {got}, expected {want}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{rows_differing} of {} read-model rows differ from the expected read model:\n  {}",
        expected.len(),
        mismatches
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    let rows: i64 = sqlx::query_scalar(db.sql("SELECT COUNT(*) FROM rm_conferences"))
        .fetch_one(&db.reader)
        .await
        .unwrap();
    assert_eq!(
        usize::try_from(rows).unwrap(),
        expected.len(),
        "read-model rows vs conferences in the log"
    );
}

/// Every conference `user` takes part in, as the "all" listing pages through them.
async fn whole_listing(read_models: &ReadModels, tenant: &TenantId, user: &UserId) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = read_models
            .list(
                tenant,
                user,
                &ListFilter {
                    limit: 100,
                    cursor,
                    ..Default::default()
                },
                t0(),
            )
            .await
            .unwrap();
        ids.extend(
            page.items
                .iter()
                .map(|view| format!("{}:{}", view.id, view.version)),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_rebuild_never_takes_the_listings_away() {
    let (db, store) = sqlite_store().await;
    a_rebuild_never_takes_the_listings_away(db, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_rebuild_never_takes_the_listings_away() {
    let Some((_database, db, store)) = postgres_store(8).await else {
        return;
    };
    a_rebuild_never_takes_the_listings_away(db, store).await;
}

/// Queries run throughout a rebuild, and through an interrupted one, and every one of them sees
/// the whole listing; the interrupted rebuild leaves the live rows as they were, and the next
/// rebuild clears what it left.
async fn a_rebuild_never_takes_the_listings_away(db: Database, store: Arc<dyn EventStore>) {
    let tenant = TenantId::parse("acme").unwrap();
    generate(store.as_ref(), &tenant, 4000).await;
    let projector = Projector::new(store.clone(), db.clone()).await.unwrap();
    projector.catch_up(|_| {}).await.unwrap();
    let live = dump(&db).await;
    let read_models = ReadModels::new(db.clone());
    let alice = UserId::parse("alice").unwrap();
    let listing = whole_listing(&read_models, &tenant, &alice).await;
    assert!(
        listing.len() > 250,
        "{} conferences: too few to page",
        listing.len()
    );

    // Readers page through alice's conferences for as long as the rebuild runs.
    let reading = |until: tokio::sync::watch::Receiver<bool>| {
        let (read_models, tenant, alice, listing) = (
            read_models.clone(),
            tenant.clone(),
            alice.clone(),
            listing.clone(),
        );
        tokio::spawn(async move {
            let mut reads = 0;
            while !*until.borrow() {
                let seen = whole_listing(&read_models, &tenant, &alice).await;
                assert_eq!(
                    seen.len(),
                    listing.len(),
                    "a partial or empty listing during a rebuild"
                );
                assert_eq!(seen, listing);
                reads += 1;
            }
            reads
        })
    };

    // An interrupted rebuild: dropped once its first chunk is in.
    let (done, until) = tokio::sync::watch::channel(false);
    let readers = [reading(until.clone()), reading(until)];
    let first_chunk = tokio::sync::Notify::new();
    tokio::select! {
        result = projector.rebuild(|_| first_chunk.notify_one()) => panic!("not interrupted: {result:?}"),
        () = first_chunk.notified() => {}
    }
    let generations = generations_of(&db).await;
    assert_eq!(
        generations,
        [(1, "live".to_owned()), (2, "building".to_owned())]
    );
    assert_eq!(
        dump(&db).await,
        live,
        "an interrupted rebuild changed the live rows"
    );
    // Its lease still runs: a second rebuild is refused rather than racing it.
    let refused = projector.rebuild(|_| {}).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "a rebuild while another holds the lease: {refused:?}"
    );
    assert_eq!(dump(&db).await, live);
    // The interrupted one is dead: once its lease has run out, the next rebuild drops its tables.
    sqlx::query(db.sql("UPDATE rm_generations SET lease_until = 0 WHERE state = 'building'"))
        .execute(&db.writer)
        .await
        .unwrap();

    // A whole rebuild, with readers throughout.
    projector.rebuild(|_| {}).await.unwrap();
    done.send_replace(true);
    for reader in readers {
        let reads = reader.await.unwrap();
        assert!(reads > 0, "no listing was read while the rebuilds ran");
    }
    assert_eq!(dump(&db).await, live);
    let generations = generations_of(&db).await;
    assert_eq!(
        generations,
        [(3, "live".to_owned())],
        "the old and the abandoned generations are dropped, and no number is used twice"
    );
    // The live projector goes on, in the new generation.
    generate(store.as_ref(), &TenantId::parse("later").unwrap(), 300).await;
    projector.catch_up(|_| {}).await.unwrap();
    compare_with_expected_read_model(store.as_ref(), &db, &read_models).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_read_models_from_before_generations_are_adopted() {
    let (db, store) = sqlite_store().await;
    let legacy = include_str!("fixtures/legacy-read-models.sqlite.sql");
    read_models_from_before_generations_are_adopted(db, store, legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_read_models_from_before_generations_are_adopted() {
    let Some((_database, db, store)) = postgres_store(4).await else {
        return;
    };
    let legacy = include_str!("fixtures/legacy-read-models.postgres.sql");
    read_models_from_before_generations_are_adopted(db, store, legacy).await;
}

/// A database whose read models are plain tables under the query names (before generations)
/// becomes generation 1 on the first start: its rows stay, the queries find them, its indexes
/// are the generation's, and a second start changes nothing.
async fn read_models_from_before_generations_are_adopted(
    db: Database,
    store: Arc<dyn EventStore>,
    legacy: &str,
) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(legacy.to_owned()))
        .execute(&db.writer)
        .await
        .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let id = ConferenceId(Uuid::from_u128(7));
    for _start in 0..2 {
        let projector = Projector::new(store.clone(), db.clone()).await.unwrap();
        assert_eq!(*projector.applied().borrow(), 2);
        let read_models = ReadModels::new(db.clone());
        let row = read_models.conference(&tenant, id).await.unwrap().unwrap();
        assert_eq!(row.subject.as_str(), "Legacy");
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(whole_listing(&read_models, &tenant, &alice).await.len(), 1);
        let line = LineId::parse("line-1").unwrap();
        assert_eq!(
            meetline_projections::ProviderMeetings::new(db.clone())
                .conference_for_meeting(&tenant, &line, "zoom-42")
                .await
                .unwrap(),
            Some(id),
            "the pre-0.2 provider meeting row is carried over"
        );
        let generations = generations_of(&db).await;
        assert_eq!(generations, [(1, "live".to_owned())]);
        assert_eq!(
            secondary_indexes(&db, "rm").await,
            [
                "rm_g1_conferences_by_line",
                "rm_g1_conferences_by_number",
                "rm_g1_conferences_live",
                "rm_g1_participants_all",
                "rm_g1_participants_upcoming",
                "rm_g1_provider_meetings_by_id",
            ],
            "each index once, under the generation's name"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_generation_without_refusal_counts_is_given_them() {
    let (db, store) = sqlite_store().await;
    a_generation_without_refusal_counts_is_given_them(db, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_generation_without_refusal_counts_is_given_them() {
    let Some((_database, db, store)) = postgres_store(4).await else {
        return;
    };
    a_generation_without_refusal_counts_is_given_them(db, store).await;
}

/// A rebuild by the version before refusals were events swaps in a generation with four tables
/// and leaves `rm_refusals` on the generation it retired (and, dying before the drop, leaves
/// that one behind). The next start gives the live generation its refusal counts, points the
/// view at them, and can drop the retired generation; the projector then counts refusals there.
async fn a_generation_without_refusal_counts_is_given_them(
    db: Database,
    store: Arc<dyn EventStore>,
) {
    Projector::new(store.clone(), db.clone()).await.unwrap();
    let mut older_swap = String::new();
    for (table, view) in [
        ("rm_lines", "rm_lines"),
        ("rm_conferences", "rm_conferences"),
        ("rm_participants", "rm_participants"),
        ("rm_provider_meetings", "rm_provider_meetings_by_line"),
    ] {
        older_swap.push_str(&format!(
            "CREATE TABLE {table}_g2 AS SELECT * FROM {table}_g1; DROP VIEW {view}; \
             CREATE VIEW {view} AS SELECT * FROM {table}_g2;\n"
        ));
    }
    older_swap.push_str(
        "UPDATE rm_generations SET state = 'retired' WHERE generation = 1; \
         INSERT INTO rm_generations (generation, state) VALUES (2, 'live');",
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(older_swap))
        .execute(&db.writer)
        .await
        .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let at = t0();
    let refused = NewEvent {
        event: Event::DemandRefused {
            slot: TimeSlot::new(at, at + Duration::hours(1)).unwrap(),
            edited: None,
            at,
        },
        metadata: EventMetadata {
            event_id: Uuid::now_v7(),
            command_id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            actor: "alice".to_owned(),
            recorded_at: at,
            schema_version: meetline_domain::event::EVENT_SCHEMA_VERSION,
        },
    };
    store
        .append(&pool_stream(&tenant), 0, &[refused])
        .await
        .unwrap();
    let projector = Projector::new(store.clone(), db.clone()).await.unwrap();
    assert_eq!(generations_of(&db).await, [(2, "live".to_owned())]);
    projector.catch_up(|_| {}).await.unwrap();
    let summary = ReadModels::new(db.clone())
        .ops_summary(&tenant, at)
        .await
        .unwrap();
    assert_eq!(summary.no_free_line_rejections, 1);
    assert_eq!(
        summary.rejections_by_hour,
        [(at.format("%Y-%m-%dT%H:00Z").to_string(), 1)]
    );
    let counted: i64 = sqlx::query_scalar("SELECT count FROM rm_refusals_g2")
        .fetch_one(&db.reader)
        .await
        .unwrap();
    assert_eq!(counted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_generation_with_the_first_recent_index_is_given_the_upcoming_one() {
    let (db, store) = sqlite_store().await;
    a_generation_with_the_first_recent_index_is_given_the_upcoming_one(db, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_generation_with_the_first_recent_index_is_given_the_upcoming_one() {
    let Some((_database, db, store)) = postgres_store(4).await else {
        return;
    };
    a_generation_with_the_first_recent_index_is_given_the_upcoming_one(db, store).await;
}

/// A live generation made by the version before the "upcoming" index has the first "recent"
/// index instead: the next start builds the new one and drops the old, once.
async fn a_generation_with_the_first_recent_index_is_given_the_upcoming_one(
    db: Database,
    store: Arc<dyn EventStore>,
) {
    Projector::new(store.clone(), db.clone()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(
        "DROP INDEX rm_g1_participants_upcoming; \
         CREATE INDEX rm_g1_participants_recent ON rm_participants_g1 (tenant, user_id, start) \
         WHERE status IN ('not_started', 'in_progress');"
            .to_owned(),
    ))
    .execute(&db.writer)
    .await
    .unwrap();
    let indexes = || secondary_indexes(&db, "rm_g1_participants");
    assert_eq!(
        indexes().await,
        ["rm_g1_participants_all", "rm_g1_participants_recent"]
    );
    for _ in 0..2 {
        Projector::new(store.clone(), db.clone()).await.unwrap();
        assert_eq!(
            indexes().await,
            ["rm_g1_participants_all", "rm_g1_participants_upcoming"]
        );
    }
}
