//! Moving a deployment's history between stores through the binary: `meetline export` from the
//! embedded SQLite store, `import` into PostgreSQL, export again, `import` into a new SQLite
//! store — the same checksum each time, and a server on each store answers every query as the
//! first did. What an import must refuse (a store that is not empty, a damaged or cut file,
//! settings it could not open) leaves the target as it was. And `meetline verify` re-checks a
//! store's log, naming the event that breaks a rule.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::*;
use meetline_adapters::testing::TestDatabase;
use serde_json::{Value, json};

const T: &str = "acme";

/// Where a command of the binary runs: a data folder, and a PostgreSQL database or not.
struct Target<'a> {
    data: &'a Path,
    database: Option<&'a TestDatabase>,
}

/// Runs `meetline <args>` on `target` with the test secrets, `input` on its standard input.
fn meetline(
    args: &[&str],
    target: &Target<'_>,
    input: Option<&[u8]>,
    settings_key: &str,
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meetline"));
    command
        .args(args)
        .arg("--data")
        .arg(target.data)
        .env("MEETLINE_SETTINGS_KEY", settings_key)
        .env("MEETLINE_LOG", "warn")
        .env_remove("MEETLINE_EVENT_STORE")
        .env_remove("MEETLINE_DATA")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match target.database {
        Some(database) => command.env("DATABASE_URL", &database.url),
        None => command.env_remove("DATABASE_URL"),
    };
    let mut child = command.spawn().expect("meetline runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.unwrap_or_default().to_vec();
    let feeding = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    feeding.join().unwrap();
    output
}

fn succeeded(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failed(output: &Output, what: &str) -> String {
    assert!(
        !output.status.success(),
        "{what} should have failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The checksum of an export (its `end` record).
fn checksum(export: &str) -> String {
    let end: Value = serde_json::from_str(export.lines().last().unwrap()).unwrap();
    assert_eq!(end["record"], "end", "the export ends with its end record");
    end["checksum"].as_str().unwrap().to_owned()
}

/// A server on `target`, stopped when dropped.
struct Server {
    app: TestApp,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(target: &Target<'_>, clock: &[String]) -> Server {
    let (child, base) = start(target.data, target.database, &flags(clock));
    Server {
        app: TestApp::attach(base, target.data.to_path_buf()),
        child,
    }
}

/// Every answer the read side gives about the tenant: each conference's view and history, the
/// users' listings, the lines and the ops summary.
async fn everything(app: &TestApp, ids: &[String]) -> Vec<(String, Value)> {
    let admin = token(T, "admin", true);
    let head = app.get("/api/v1/ops/summary", &admin).await.ok(200)["head_position"]
        .as_u64()
        .unwrap();
    let mut paths: Vec<(String, String)> = Vec::new();
    for id in ids {
        paths.push((format!("/api/v1/conferences/{id}"), admin.clone()));
        paths.push((format!("/api/v1/conferences/{id}/history"), admin.clone()));
    }
    for user in ["alice", "bob", "carol", "dave"] {
        let user_token = token(T, user, false);
        paths.push(("/api/v1/conferences".to_owned(), user_token.clone()));
        paths.push(("/api/v1/conferences/recent".to_owned(), user_token));
    }
    paths.push(("/api/v1/lines".to_owned(), admin.clone()));
    paths.push(("/api/v1/ops/summary".to_owned(), admin.clone()));
    paths.push(("/api/v1/directory/users".to_owned(), admin.clone()));
    let mut answers = Vec::new();
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

/// A tenant's life on the first store: lines (one with its own Jitsi settings), bookings on
/// every line, an edit, a cancel, an invitation, a join, a refusal, the directory.
async fn book_a_history(app: &TestApp, at: impl Fn(i64) -> String) -> Vec<String> {
    app.seed(T, 2).await;
    let admin = token(T, "admin", true);
    app.post(
        "/api/v1/lines",
        &admin,
        json!({"name": "Own Jitsi", "provider": "builtin",
               "settings": {"base_url": "https://meet.acme.example", "app_id": "acme", "secret": "acme-jitsi-secret-0001"}}),
    )
    .await
    .ok(201);
    let mut ids = Vec::new();
    for (user, subject) in [("alice", "A"), ("bob", "B"), ("carol", "C")] {
        let made = app
            .post(
                "/api/v1/conferences",
                &token(T, user, false),
                json!({"subject": subject, "start": at(120), "end": at(180), "attendees": ["dave"]}),
            )
            .await;
        made.ok(201);
        ids.push(made.body["id"].as_str().unwrap().to_owned());
    }
    app.post(
        "/api/v1/conferences",
        &token(T, "dave", false),
        json!({"subject": "No room", "start": at(130), "end": at(150)}),
    )
    .await
    .problem(409, "no_free_line");
    let alice = token(T, "alice", false);
    app.patch(
        &format!("/api/v1/conferences/{}", ids[0]),
        &alice,
        json!({"subject": "A edited", "attendees": ["bob", "dave"]}),
    )
    .await
    .ok(200);
    app.post(
        &format!("/api/v1/conferences/{}/cancel", ids[1]),
        &token(T, "bob", false),
        json!({"reason": "moved"}),
    )
    .await
    .ok(200);
    let third = app
        .get(&format!("/api/v1/conferences/{}", ids[2]), &admin)
        .await;
    assert_eq!(third.ok(200)["line"]["id"], "line-3");
    app.post(
        "/api/v1/conferences/join",
        &token(T, "bob", false),
        json!({"number": third.body["number"]}),
    )
    .await
    .ok(200);
    ids
}

#[tokio::test]
async fn a_history_moves_from_sqlite_to_postgresql_and_back_and_every_answer_stays_the_same() {
    let Some(postgres) = TestDatabase::create().await else {
        return; // Outside CI without a PostgreSQL server (printed).
    };
    let now = this_hour();
    let clock = fixed_now(now);
    let at = |minutes: i64| rfc3339(now + chrono::Duration::minutes(minutes));

    let first = fresh_data_dir();
    let source = Target {
        data: &first,
        database: None,
    };
    let (ids, before) = {
        let server = serve(&source, &clock);
        let ids = book_a_history(&server.app, at).await;
        (ids.clone(), everything(&server.app, &ids).await)
    };
    // Not an empty comparison: the third conference is on the line with its own settings, and
    // its link says so.
    let view = &before[4].1;
    assert!(
        view["links"]["host"]
            .as_str()
            .is_some_and(|url| url.starts_with("https://meet.acme.example/")),
        "{view}"
    );
    assert_eq!(
        before.last().unwrap().1["items"].as_array().unwrap().len(),
        7
    );

    let exported = succeeded(
        &meetline(&["export"], &source, None, SETTINGS_KEY),
        "export from SQLite",
    );
    let sum = checksum(&exported);

    // Into PostgreSQL: the same checksum read back, and a server there answers as before.
    let pg_data = fresh_data_dir();
    let onto_postgres = Target {
        data: &pg_data,
        database: Some(&postgres),
    };
    let said = succeeded(
        &meetline(
            &["import"],
            &onto_postgres,
            Some(exported.as_bytes()),
            SETTINGS_KEY,
        ),
        "import into PostgreSQL",
    );
    assert!(said.contains(&sum) && said.contains("verified"), "{said}");
    // The imported history is not provisioned again: the process starts after it.
    let imported_head = head_of(&onto_postgres).await;
    assert!(imported_head > 0);
    let db = meetline_adapters::db::Database::connect_postgres(&postgres.url, 1)
        .await
        .unwrap();
    let provisioning: i64 =
        sqlx::query_scalar("SELECT position FROM rm_checkpoints WHERE name = 'provisioning'")
            .fetch_one(&db.reader)
            .await
            .unwrap();
    assert_eq!(provisioning as u64, imported_head);
    db.writer.close().await;
    db.reader.close().await;
    let again = succeeded(
        &meetline(&["export"], &onto_postgres, None, SETTINGS_KEY),
        "export from PostgreSQL",
    );
    assert_eq!(checksum(&again), sum);
    {
        let server = serve(&onto_postgres, &clock);
        let after = everything(&server.app, &ids).await;
        for ((path, was), (_, is)) in before.iter().zip(&after) {
            assert_eq!(is, was, "{path} answers differently on PostgreSQL");
        }
    }
    // A store that is not empty is refused, and left as it was.
    let refused = failed(
        &meetline(
            &["import"],
            &onto_postgres,
            Some(exported.as_bytes()),
            SETTINGS_KEY,
        ),
        "an import into a store that is not empty",
    );
    assert!(refused.contains("not empty"), "{refused}");
    let unchanged = succeeded(
        &meetline(&["export"], &onto_postgres, None, SETTINGS_KEY),
        "export from PostgreSQL",
    );
    assert_eq!(checksum(&unchanged), sum);

    // And back into a new SQLite store.
    let last = fresh_data_dir();
    let back = Target {
        data: &last,
        database: None,
    };
    succeeded(
        &meetline(&["import"], &back, Some(again.as_bytes()), SETTINGS_KEY),
        "import into SQLite",
    );
    let final_export = succeeded(
        &meetline(&["export"], &back, None, SETTINGS_KEY),
        "export from the new SQLite store",
    );
    assert_eq!(checksum(&final_export), sum);
    {
        let server = serve(&back, &clock);
        let after = everything(&server.app, &ids).await;
        for ((path, was), (_, is)) in before.iter().zip(&after) {
            assert_eq!(is, was, "{path} answers differently after the round trip");
        }
    }
    succeeded(
        &meetline(&["verify"], &back, None, SETTINGS_KEY),
        "verify of the imported store",
    );
    for folder in [first, pg_data, last] {
        let _ = std::fs::remove_dir_all(folder);
    }
}

/// The events of an export, as JSON values, and its other lines.
fn lines(export: &str) -> Vec<String> {
    export.lines().map(str::to_owned).collect()
}

/// A process checkpoint of the SQLite store in `data`.
async fn checkpoint_of(data: &Path, name: &str) -> Option<u64> {
    let db = meetline_adapters::db::Database::open_sqlite(&data.join("meetline.db"))
        .await
        .unwrap();
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM rm_checkpoints WHERE name = ?")
            .bind(name)
            .fetch_optional(&db.reader)
            .await
            .unwrap();
    db.writer.close().await;
    db.reader.close().await;
    position.map(|position| position as u64)
}

async fn head_of(target: &Target<'_>) -> u64 {
    event_store(target.data, target.database)
        .await
        .head_position()
        .await
        .unwrap()
}

/// A fresh SQLite store holding [`book_a_history`] at this hour's clock, the server stopped;
/// its folder and the clock.
async fn a_booked_store() -> (std::path::PathBuf, [String; 2]) {
    let now = this_hour();
    let clock = fixed_now(now);
    let folder = fresh_data_dir();
    let target = Target {
        data: &folder,
        database: None,
    };
    let server = serve(&target, &clock);
    book_a_history(&server.app, |minutes| {
        rfc3339(now + chrono::Duration::minutes(minutes))
    })
    .await;
    drop(server);
    (folder, clock)
}

#[tokio::test]
async fn an_import_refuses_a_damaged_file_and_settings_it_cannot_open_and_writes_nothing() {
    let (first, clock) = a_booked_store().await;
    let source = Target {
        data: &first,
        database: None,
    };
    let exported = succeeded(
        &meetline(&["export"], &source, None, SETTINGS_KEY),
        "export",
    );
    let original = lines(&exported);

    // One changed subject: the checksum no longer matches.
    let damaged = exported.replacen("\"subject\":\"A edited\"", "\"subject\":\"A forged\"", 1);
    assert_ne!(damaged, exported);
    let folder = fresh_data_dir();
    let target = Target {
        data: &folder,
        database: None,
    };
    let error = failed(
        &meetline(&["import"], &target, Some(damaged.as_bytes()), SETTINGS_KEY),
        "an import of a damaged file",
    );
    assert!(error.contains("does not match its end record"), "{error}");
    assert_eq!(head_of(&target).await, 0, "nothing was written");

    // Cut short: no end record.
    let cut = original[..original.len() - 1].join("\n");
    let error = failed(
        &meetline(&["import"], &target, Some(cut.as_bytes()), SETTINGS_KEY),
        "an import of a cut file",
    );
    assert!(error.contains("cut short"), "{error}");
    // A version missing in a stream: the file's own order is checked too.
    let mut gap = original.clone();
    gap.remove(3);
    let error = failed(
        &meetline(
            &["import"],
            &target,
            Some(gap.join("\n").as_bytes()),
            SETTINGS_KEY,
        ),
        "an import of a file with a gap",
    );
    assert!(error.contains("version"), "{error}");
    // A record twice (a directory entry repeated): not what export writes.
    let user = original
        .iter()
        .position(|line| line.contains("\"record\":\"user\""))
        .unwrap();
    let mut repeated = original.clone();
    repeated.insert(user, original[user].clone());
    let error = failed(
        &meetline(
            &["import"],
            &target,
            Some(repeated.join("\n").as_bytes()),
            SETTINGS_KEY,
        ),
        "an import of a file with a repeated record",
    );
    assert!(error.contains("repeated or out of the order"), "{error}");
    // Not an export at all.
    let error = failed(
        &meetline(
            &["import"],
            &target,
            Some(b"{\"hello\": 1}\n"),
            SETTINGS_KEY,
        ),
        "an import of something else",
    );
    assert!(
        error.contains("not a record of a meetline export"),
        "{error}"
    );
    assert_eq!(head_of(&target).await, 0, "nothing was written");

    // The line's settings were sealed with another key than this target's.
    let error = failed(
        &meetline(
            &["import"],
            &target,
            Some(exported.as_bytes()),
            "another key",
        ),
        "an import whose settings do not open",
    );
    assert!(error.contains("do not open"), "{error}");
    assert_eq!(head_of(&target).await, 0, "nothing was written");

    // One tenant added to a store that has another: only that tenant's records, and only once.
    let other = fresh_data_dir();
    let target = Target {
        data: &other,
        database: None,
    };
    {
        let server = serve(&target, &clock);
        server.app.seed("globex", 1).await;
    }
    let before = head_of(&target).await;
    let error = failed(
        &meetline(
            &["import"],
            &target,
            Some(exported.as_bytes()),
            SETTINGS_KEY,
        ),
        "a whole import into a store that is not empty",
    );
    assert!(error.contains("not empty"), "{error}");
    assert_eq!(head_of(&target).await, before);
    let said = succeeded(
        &meetline(
            &["import", "--tenant", T],
            &target,
            Some(exported.as_bytes()),
            SETTINGS_KEY,
        ),
        "adding a tenant",
    );
    assert!(said.contains(&checksum(&exported)), "{said}");
    // The added tenant's history is not provisioned again by the target's nodes.
    let head = head_of(&target).await;
    assert_eq!(checkpoint_of(&other, "imported@acme").await, Some(head));
    let error = failed(
        &meetline(
            &["import", "--tenant", T],
            &target,
            Some(exported.as_bytes()),
            SETTINGS_KEY,
        ),
        "adding the tenant again",
    );
    assert!(error.contains("already has tenant acme"), "{error}");
    let tenant_only = succeeded(
        &meetline(&["export", "--tenant", T], &target, None, SETTINGS_KEY),
        "export of the added tenant",
    );
    assert_eq!(checksum(&tenant_only), checksum(&exported));
    // The server there serves both tenants, the added one's views included.
    {
        let server = serve(&target, &clock);
        let listed = server
            .app
            .send(
                server
                    .app
                    .request(
                        reqwest::Method::GET,
                        "/api/v1/conferences",
                        &token(T, "alice", false),
                    )
                    .header("X-Min-Position", head),
            )
            .await;
        assert_eq!(listed.ok(200)["items"].as_array().unwrap().len(), 1);
        let lines = server
            .app
            .get("/api/v1/lines", &token("globex", "admin", true))
            .await;
        assert_eq!(lines.ok(200)["items"].as_array().unwrap().len(), 1);
    }
    for folder in [first, folder, other] {
        let _ = std::fs::remove_dir_all(folder);
    }
}

#[tokio::test]
async fn verify_passes_on_a_sound_store_and_names_the_event_of_a_corrupted_one() {
    let (folder, _) = a_booked_store().await;
    let target = Target {
        data: &folder,
        database: None,
    };
    let said = succeeded(
        &meetline(&["verify"], &target, None, SETTINGS_KEY),
        "verify of a sound store",
    );
    assert!(said.contains("PASS"), "{said}");

    // By hand, in the file: bob's conference is put on alice's line at the same hour.
    let db = meetline_adapters::db::Database::open_sqlite(&folder.join("meetline.db"))
        .await
        .unwrap();
    let position: i64 = sqlx::query_scalar(
        "SELECT position FROM events WHERE event_type = 'ConferenceScheduled' \
         AND json_extract(data, '$.line') = 'line-2'",
    )
    .fetch_one(&db.writer)
    .await
    .unwrap();
    sqlx::query("UPDATE events SET data = json_set(data, '$.line', 'line-1') WHERE position = ?")
        .bind(position)
        .execute(&db.writer)
        .await
        .unwrap();
    db.writer.close().await;
    db.reader.close().await;
    let output = meetline(&["verify"], &target, None, SETTINGS_KEY);
    failed(&output, "verify of a corrupted store");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("FAIL"), "{said}");
    assert!(
        said.contains(&format!("position {position} in pool-acme: no overlap"))
            && said.contains("ConferenceScheduled"),
        "{said}"
    );
    // Such a log does not get into another store: import checks the rules before writing.
    let corrupted = succeeded(
        &meetline(&["export"], &target, None, SETTINGS_KEY),
        "export of the corrupted store",
    );
    let elsewhere = fresh_data_dir();
    let into = Target {
        data: &elsewhere,
        database: None,
    };
    let error = failed(
        &meetline(&["import"], &into, Some(corrupted.as_bytes()), SETTINGS_KEY),
        "an import of a log that breaks the rules",
    );
    assert!(
        error.contains("break") && error.contains("no overlap"),
        "{error}"
    );
    assert_eq!(head_of(&into).await, 0, "nothing was written");
    let _ = std::fs::remove_dir_all(elsewhere);
    let _ = std::fs::remove_dir_all(folder);
}

/// `tests/fixtures/store-v1.ndjson`: a small store as this version writes it, at fixed times
/// (`scripts/make-history-fixture`), imported into a new store for each test that reads it.
fn fixture_store() -> std::path::PathBuf {
    let folder = fresh_data_dir();
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/store-v1.ndjson"
    ))
    .unwrap();
    let target = Target {
        data: &folder,
        database: None,
    };
    succeeded(
        &meetline(&["import"], &target, Some(&fixture), SETTINGS_KEY),
        "import of the fixture",
    );
    folder
}

/// The fixture's weekly conference: scheduled, edited, invited to, joined, moved off a line in
/// maintenance, started and ended by the timer.
const WEEKLY: &str = "882663662";

#[tokio::test]
async fn history_prints_a_conference_timeline_from_the_log() {
    let folder = fixture_store();
    let target = Target {
        data: &folder,
        database: None,
    };
    let text = succeeded(
        &meetline(
            &["history", WEEKLY, "--tenant", T, "--tz", "Asia/Shanghai"],
            &target,
            None,
            SETTINGS_KEY,
        ),
        "history",
    );
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/history-weekly.txt"
    );
    if std::env::var_os("MEETLINE_BLESS").is_some() {
        std::fs::write(golden, &text).unwrap();
    }
    assert_eq!(text, std::fs::read_to_string(golden).unwrap());

    // As of a moment: what had happened by then, and the status then.
    let then = succeeded(
        &meetline(
            &[
                "history",
                WEEKLY,
                "--tenant",
                T,
                "--tz",
                "Asia/Shanghai",
                "--as-of",
                "2026-03-02T01:00:30Z",
            ],
            &target,
            None,
            SETTINGS_KEY,
        ),
        "history as of",
    );
    assert!(then.contains("#5") && !then.contains("#6"), "{then}");
    assert!(then.contains("Status then: not_started."), "{then}");

    // JSON: the same events, each with its data, in UTC and in the zone asked for.
    let json: Value = serde_json::from_str(&succeeded(
        &meetline(
            &["history", WEEKLY, "--tenant", T, "--json"],
            &target,
            None,
            SETTINGS_KEY,
        ),
        "history --json",
    ))
    .unwrap();
    let events = json["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ConferenceScheduled",
            "ConferenceEdited",
            "AttendeesInvited",
            "ParticipantJoined",
            "ConferenceMovedToLine",
            "ConferenceStarted",
            "ConferenceEnded"
        ]
    );
    assert_eq!(json["number"], WEEKLY);
    assert_eq!(json["status"], "ended");
    assert_eq!(json["time_zone"], "UTC");
    assert_eq!(events[1]["actor"], "alice");
    assert_eq!(events[1]["data"]["subject"], "Weekly sync (moved)");
    assert_eq!(events[0]["recorded_at"], "2026-03-02T01:00:00Z");

    // What it cannot answer, it says so and fails.
    for (args, says) in [
        (
            vec!["history", "123456789", "--tenant", T],
            "no such conference",
        ),
        (
            vec!["history", WEEKLY, "--tenant", "globex"],
            "no such conference",
        ),
        (
            vec!["history", "12", "--tenant", T],
            "neither a conference id nor",
        ),
        (
            vec!["history", WEEKLY, "--tenant", T, "--tz", "Mars/Olympus"],
            "not an IANA time zone",
        ),
        (
            vec![
                "history",
                WEEKLY,
                "--tenant",
                T,
                "--as-of",
                "2026-03-01T00:00:00Z",
            ],
            "no such conference as of",
        ),
    ] {
        let error = failed(&meetline(&args, &target, None, SETTINGS_KEY), "history");
        assert!(error.contains(says), "{args:?}: {error}");
    }
    let _ = std::fs::remove_dir_all(folder);
}

/// Schema evolution, once for real: a store written by the version before `links_changed` (its
/// rows keep schema 1 and `line_changed`) is read by this one through the upcaster — replayed
/// by the pool and the projector, served, audited and verified — without being rewritten.
#[tokio::test]
async fn a_store_of_schema_1_is_replayed_served_and_verified_by_this_version() {
    let folder = fresh_data_dir();
    // The rows exactly as the older version stored them.
    let fixture = include_str!("fixtures/store-v1.ndjson");
    {
        let store = event_store(&folder, None).await;
        drop(store);
        let db = meetline_adapters::db::Database::open_sqlite(&folder.join("meetline.db"))
            .await
            .unwrap();
        let mut rows = 0;
        for line in fixture.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            if record["record"] != "event" {
                continue;
            }
            assert_eq!(record["schema_version"], 1, "the fixture is of schema 1");
            let recorded_at =
                chrono::DateTime::parse_from_rfc3339(record["recorded_at"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&chrono::Utc);
            sqlx::query(
                "INSERT INTO events (stream, version, event_id, event_type, schema_version, \
                 conference_id, command_id, correlation_id, causation_id, actor, recorded_at, data) \
                 VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(record["stream"].as_str().unwrap())
            .bind(record["version"].as_i64().unwrap())
            .bind(record["event_id"].as_str().unwrap())
            .bind(record["type"].as_str().unwrap())
            .bind(record["data"]["conference"].as_str())
            .bind(record["command_id"].as_str().unwrap())
            .bind(record["correlation_id"].as_str().unwrap())
            .bind(record["causation_id"].as_str())
            .bind(record["actor"].as_str().unwrap())
            .bind(meetline_adapters::db::timestamp(recorded_at))
            .bind(record["data"].to_string())
            .execute(&db.writer)
            .await
            .unwrap();
            rows += 1;
        }
        assert!(
            fixture.contains("\"line_changed\""),
            "the fixture has the old shape"
        );
        assert_eq!(rows, 20);
        db.writer.close().await;
        db.reader.close().await;
    }
    let target = Target {
        data: &folder,
        database: None,
    };
    // Served: the pool replays it (a command on it is decided), the projector projects it.
    let clock = fixed_now(
        chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    {
        let server = serve(&target, &clock);
        let listed = server
            .app
            .send(
                server
                    .app
                    .request(
                        reqwest::Method::GET,
                        "/api/v1/conferences",
                        &token(T, "alice", false),
                    )
                    .header("X-Min-Position", 20),
            )
            .await;
        let items = listed.ok(200)["items"].as_array().unwrap().clone();
        let weekly = items
            .iter()
            .find(|item| item["number"] == WEEKLY)
            .expect("the weekly conference is listed");
        assert_eq!(weekly["subject"], "Weekly sync (moved)");
        assert_eq!(weekly["line"]["id"], "line-2");
        // The pool replayed the old log: the retro cancelled at 02:00 the next day left both
        // lines free then, so two bookings take line-1 and line-2, and a third finds none.
        let book = async |subject: &str| {
            server
                .app
                .post(
                    "/api/v1/conferences",
                    &token(T, "alice", false),
                    json!({"subject": subject, "start": "2026-03-03T02:00:00Z", "end": "2026-03-03T03:00:00Z"}),
                )
                .await
        };
        assert_eq!(book("one").await.ok(201)["line"]["id"], "line-1");
        assert_eq!(book("two").await.ok(201)["line"]["id"], "line-2");
        book("three").await.problem(409, "no_free_line");
    }
    // Audited and verified as it is, and its rows are still schema 1.
    let text = succeeded(
        &meetline(
            &["history", WEEKLY, "--tenant", T, "--tz", "Asia/Shanghai"],
            &target,
            None,
            SETTINGS_KEY,
        ),
        "history of a schema 1 store",
    );
    let golden = include_str!("fixtures/history-weekly.txt");
    assert_eq!(text, golden);
    succeeded(
        &meetline(&["verify"], &target, None, SETTINGS_KEY),
        "verify of a schema 1 store",
    );
    let exported = succeeded(
        &meetline(&["export"], &target, None, SETTINGS_KEY),
        "export of a schema 1 store",
    );
    assert!(exported.contains("\"links_changed\"") && !exported.contains("\"line_changed\""));
    let db = meetline_adapters::db::Database::open_sqlite(&folder.join("meetline.db"))
        .await
        .unwrap();
    let old_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE schema_version = 1")
        .fetch_one(&db.reader)
        .await
        .unwrap();
    assert_eq!(old_rows, 20, "the old rows are read, not rewritten");
    let _ = std::fs::remove_dir_all(folder);
}
