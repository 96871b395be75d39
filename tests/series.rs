//! Recurring conferences (API.md v1.1): a schedule request with `recurrence` books a series in
//! one command — one line for all when one is free; `on_conflict` reject or skip; edits and
//! cancellations with `scope`; the series' calendar file with `RRULE` and `EXDATE`. Runs on
//! SQLite, and on PostgreSQL in `scripts/test`'s second pass.

mod common;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use common::*;
use serde_json::{Value, json};

const T: &str = "acme";

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// `later(hours)` plus `weeks`.
fn week(hours: i64, weeks: i64) -> DateTime<Utc> {
    instant(&later(hours)) + Duration::weeks(weeks)
}

/// The series' conferences of an answer.
fn items(body: &Value) -> &Vec<Value> {
    body["items"].as_array().expect("items")
}

fn starts(items: &[Value]) -> Vec<DateTime<Utc>> {
    items
        .iter()
        .map(|item| instant(item["start"].as_str().unwrap()))
        .collect()
}

/// Books `user` one hour at `start` (any line).
async fn book(app: &TestApp, user: &str, start: DateTime<Utc>) -> Reply {
    app.post(
        "/api/v1/conferences",
        &token(T, user, false),
        json!({"subject": "占用", "start": rfc3339(start), "end": rfc3339(start + Duration::hours(1))}),
    )
    .await
}

/// A weekly series of `count` one-hour occurrences as alice, from `later(hours)`.
async fn weekly(app: &TestApp, hours: i64, count: u32, on_conflict: Option<&str>) -> Reply {
    let mut body = json!({
        "subject": "周会",
        "start": later(hours),
        "duration_minutes": 60,
        "attendees": ["bob"],
        "recurrence": {"frequency": "weekly", "count": count},
    });
    if let Some(choice) = on_conflict {
        body["on_conflict"] = json!(choice);
    }
    app.post("/api/v1/conferences", &token(T, "alice", false), body)
        .await
}

/// How many conferences with `subject` alice's listing holds (projected).
async fn listed(app: &TestApp, subject: &str) -> usize {
    let page = app
        .get("/api/v1/conferences?limit=100", &token(T, "alice", false))
        .await;
    page.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["subject"] == subject)
        .count()
}

#[tokio::test]
async fn a_weekly_series_books_ten_conferences_on_one_line() {
    let app = spawn_app().await;
    app.seed(T, 2).await;
    // Line 1 is taken in the series' third week: the whole series goes to line 2.
    book(&app, "bob", week(48, 2)).await.ok(201);
    let created = weekly(&app, 48, 10, None).await;
    let body = created.ok(201).clone();
    let series = body["series_id"].as_str().expect("a series id").to_owned();
    let all = items(&body);
    assert_eq!(all.len(), 10);
    assert_eq!(
        starts(all),
        (0..10).map(|n| week(48, n)).collect::<Vec<_>>()
    );
    let numbers: std::collections::HashSet<&str> = all
        .iter()
        .map(|item| item["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers.len(), 10, "every occurrence has its own number");
    for item in all {
        assert_eq!(item["series_id"], series.as_str());
        assert_eq!(
            item["line"]["id"], "line-2",
            "one line for the whole series"
        );
        assert_eq!(item["recurrence"]["frequency"], "weekly");
        assert_eq!(item["recurrence"]["count"], 10);
        assert_eq!(item["attendees"], json!(["bob"]));
    }
    assert!(body["skipped"].as_array().unwrap().is_empty());
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/conferences/{}", all[0]["id"].as_str().unwrap()).as_str())
    );
    // Each is a conference of its own, on the query side too.
    let fifth = all[4]["id"].as_str().unwrap();
    let position = created.header("x-position").unwrap().to_owned();
    let view = app
        .send(
            app.request(
                reqwest::Method::GET,
                &format!("/api/v1/conferences/{fifth}"),
                &token(T, "bob", false),
            )
            .header("X-Min-Position", position),
        )
        .await;
    assert_eq!(view.ok(200)["series_id"], series.as_str());
    assert_eq!(listed(&app, "周会").await, 10);
    // A keyed retry answers the same series, books nothing more.
    let keyed = async || {
        app.keyed(
            reqwest::Method::POST,
            "/api/v1/conferences",
            &token(T, "alice", false),
            "series-1",
            json!({"subject": "月会", "start": later(72), "duration_minutes": 30,
                "recurrence": {"frequency": "monthly", "count": 3}}),
        )
        .await
    };
    let first = keyed().await;
    let again = keyed().await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.ok(201)["series_id"], again.ok(201)["series_id"]);
    assert_eq!(starts(items(first.ok(201))), starts(items(again.ok(201))));
    wait_until(async || listed(&app, "月会").await == 3).await;
}

#[tokio::test]
async fn reject_stores_nothing_and_names_the_conflicts_skip_books_the_rest() {
    let app = spawn_app().await;
    app.seed(T, 1).await;
    let taken = [week(30, 1), week(30, 3)];
    for start in taken {
        book(&app, "bob", start).await.ok(201);
    }
    let refused = weekly(&app, 30, 6, None).await;
    let problem = refused.problem(409, "no_free_line").clone();
    let conflicts = problem["conflicts"].as_array().expect("conflicts");
    assert_eq!(
        conflicts
            .iter()
            .map(|c| (
                instant(c["start"].as_str().unwrap()),
                instant(c["end"].as_str().unwrap())
            ))
            .collect::<Vec<_>>(),
        taken
            .iter()
            .map(|start| (*start, *start + Duration::hours(1)))
            .collect::<Vec<_>>()
    );
    for conflict in conflicts {
        assert!(!conflict["suggestions"].as_array().unwrap().is_empty());
    }
    // Nothing was stored.
    let explicit = app
        .post(
            "/api/v1/conferences",
            &token(T, "alice", false),
            json!({"subject": "周会", "start": later(30), "duration_minutes": 60,
                   "recurrence": {"frequency": "weekly", "count": 6}, "on_conflict": "reject"}),
        )
        .await;
    explicit.problem(409, "no_free_line");

    // Skip: the other four are booked; the two left out come back with their suggestions. A
    // keyed retry gets the same series (it stored refusals beside its bookings, and is no
    // refusal for that).
    let skip = async || {
        app.send(
            app.request(reqwest::Method::POST, "/api/v1/conferences", &token(T, "alice", false))
                .header("Idempotency-Key", "skip-1")
                .json(&json!({"subject": "周会", "start": later(30), "duration_minutes": 60, "attendees": ["bob"],
                    "recurrence": {"frequency": "weekly", "count": 6}, "on_conflict": "skip"})),
        )
        .await
    };
    let created = skip().await;
    let body = created.ok(201).clone();
    let retried = skip().await;
    assert_eq!(retried.header("idempotent-replayed"), Some("true"));
    assert_eq!(retried.ok(201)["series_id"], body["series_id"]);
    assert_eq!(
        retried.ok(201)["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["start"].clone())
            .collect::<Vec<_>>(),
        body["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["start"].clone())
            .collect::<Vec<_>>()
    );
    // The two refusals stored nothing: alice's listing, once it shows the series, holds just
    // its four.
    let seen = app
        .send(
            app.request(
                reqwest::Method::GET,
                "/api/v1/conferences?limit=100",
                &token(T, "alice", false),
            )
            .header("X-Min-Position", created.header("x-position").unwrap()),
        )
        .await;
    let mine: Vec<&Value> = seen.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["subject"] == "周会")
        .collect();
    assert_eq!(mine.len(), 4);
    assert_eq!(
        starts(items(&body)),
        [0, 2, 4, 5].map(|n| week(30, n)).to_vec()
    );
    let skipped = body["skipped"].as_array().unwrap();
    assert_eq!(
        skipped
            .iter()
            .map(|s| instant(s["start"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        taken.to_vec()
    );
    // A suggestion for a skipped one books.
    let suggestion = &skipped[0]["suggestions"][0];
    app.post(
        "/api/v1/conferences",
        &token(T, "alice", false),
        json!({"subject": "补", "start": suggestion["start"], "end": suggestion["end"]}),
    )
    .await
    .ok(201);

    // The calendar file of the series: the rule, and the two left out as exceptions.
    let first = items(&body)[0]["id"].as_str().unwrap().to_owned();
    let calendar = calendar(&app, &first, created.header("x-position").unwrap()).await;
    let (rrule, exdates) = series_rule(&calendar);
    let weekday = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][shanghai(week(30, 0))
        .format("%u")
        .to_string()
        .parse::<usize>()
        .unwrap()
        - 1];
    assert_eq!(
        rrule,
        format!("FREQ=WEEKLY;INTERVAL=1;BYDAY={weekday};COUNT=6")
    );
    assert_eq!(
        exdates,
        taken
            .iter()
            .map(|start| shanghai(*start).format("%Y%m%dT%H%M%S").to_string())
            .collect::<Vec<_>>()
    );
}

/// `at` in Shanghai's local time (UTC+8 all year).
fn shanghai(at: DateTime<Utc>) -> DateTime<FixedOffset> {
    at.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
}

/// The calendar file of a conference, as alice fetches it once the query side has `position`.
async fn calendar(app: &TestApp, id: &str, position: &str) -> String {
    let reply = app
        .send(
            app.request(
                reqwest::Method::GET,
                &format!("/api/v1/conferences/{id}/calendar.ics"),
                &token(T, "alice", false),
            )
            .header("X-Min-Position", position),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.text);
    reply.text.clone()
}

/// The repeating event's `RRULE` and its `EXDATE`s (local times), read with the `icalendar`
/// crate's parser; also checks its zone is described and the overrides name the series.
fn series_rule(text: &str) -> (String, Vec<String>) {
    use icalendar::{Calendar, CalendarComponent, Component};
    let parsed: Calendar = text.parse().expect("the calendar parses");
    let events: Vec<&icalendar::Event> = parsed
        .components
        .iter()
        .filter_map(|component| match component {
            CalendarComponent::Event(event) => Some(event),
            _ => None,
        })
        .collect();
    let master = events
        .iter()
        .find(|event| event.property_value("RRULE").is_some())
        .expect("a repeating event");
    let uid = master.get_uid().expect("a UID").to_owned();
    for event in &events {
        assert_eq!(event.get_uid(), Some(uid.as_str()), "one series, one UID");
    }
    assert!(text.contains("BEGIN:VTIMEZONE\r\nTZID:Asia/Shanghai\r\n"));
    assert!(
        master
            .properties()
            .get("DTSTART")
            .and_then(|dtstart| dtstart.params().get("TZID"))
            .is_some_and(|tzid| tzid.value() == "Asia/Shanghai")
    );
    let rrule = master.property_value("RRULE").unwrap().to_owned();
    let mut exdates: Vec<String> = master
        .multi_properties()
        .get("EXDATE")
        .into_iter()
        .flatten()
        .chain(master.properties().get("EXDATE"))
        .map(|property| property.value().to_owned())
        .collect();
    exdates.sort();
    exdates.dedup();
    (rrule, exdates)
}

#[tokio::test]
async fn following_moves_only_the_later_ones_and_checks_their_lines_again() {
    let app = spawn_app().await;
    app.seed(T, 2).await;
    let created = weekly(&app, 40, 4, None).await;
    let body = created.ok(201).clone();
    let all = items(&body).clone();
    assert!(all.iter().all(|item| item["line"]["id"] == "line-1"));
    // Line 1 is taken an hour after the third occurrence: moved there, it must change lines.
    book(&app, "bob", week(41, 2)).await.ok(201);
    let second = all[1]["id"].as_str().unwrap();
    let moved = app
        .patch(
            &format!("/api/v1/conferences/{second}?scope=following"),
            &token(T, "alice", false),
            json!({"start": rfc3339(week(41, 1))}),
        )
        .await;
    let changed = items(moved.ok(200)).clone();
    assert_eq!(starts(&changed), [1, 2, 3].map(|n| week(41, n)).to_vec());
    let lines: Vec<&str> = changed
        .iter()
        .map(|item| item["line"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["line-1", "line-2", "line-1"]);
    assert_eq!(changed[1]["links_changed"], true);
    // The first did not move.
    let first = app
        .get(
            &format!("/api/v1/conferences/{}", all[0]["id"].as_str().unwrap()),
            &token(T, "alice", false),
        )
        .await;
    assert_eq!(
        instant(first.ok(200)["start"].as_str().unwrap()),
        week(40, 0)
    );

    // All or nothing: with both lines taken at the fourth's new time, nothing moves.
    book(&app, "carol", week(42, 3)).await.ok(201);
    book(&app, "dave", week(42, 3)).await.ok(201);
    let refused = app
        .patch(
            &format!("/api/v1/conferences/{second}?scope=following"),
            &token(T, "alice", false),
            json!({"start": rfc3339(week(42, 1))}),
        )
        .await;
    let conflicts = refused.problem(409, "no_free_line")["conflicts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        instant(conflicts[0]["start"].as_str().unwrap()),
        week(42, 3)
    );
    let third = app
        .get(
            &format!("/api/v1/conferences/{}", all[2]["id"].as_str().unwrap()),
            &token(T, "alice", false),
        )
        .await;
    assert_eq!(
        instant(third.ok(200)["start"].as_str().unwrap()),
        week(41, 2)
    );

    // A new subject for all: every not-started one, times kept.
    let renamed = app
        .patch(
            &format!("/api/v1/conferences/{second}?scope=all"),
            &token(T, "alice", false),
            json!({"subject": "新周会"}),
        )
        .await;
    let renamed = items(renamed.ok(200)).clone();
    assert_eq!(renamed.len(), 4);
    assert!(renamed.iter().all(|item| item["subject"] == "新周会"));

    // The calendar: the moved ones are overrides of the rule's occurrences.
    let position = app
        .post(
            &format!(
                "/api/v1/conferences/{}/cancel",
                all[3]["id"].as_str().unwrap()
            ),
            &token(T, "alice", false),
            json!({}),
        )
        .await
        .header("x-position")
        .unwrap()
        .to_owned();
    let text = calendar(&app, all[0]["id"].as_str().unwrap(), &position).await;
    let (rrule, exdates) = series_rule(&text);
    assert!(rrule.ends_with(";COUNT=4"), "{rrule}");
    assert_eq!(
        exdates,
        [shanghai(week(40, 3)).format("%Y%m%dT%H%M%S").to_string()]
    );
    // Every live occurrence but the first is an override (each has its own number and links);
    // the moved ones carry their new times under the rule's.
    assert_eq!(text.matches("RECURRENCE-ID;TZID=Asia/Shanghai:").count(), 2);
    let unfolded = text.replace("\r\n ", "");
    for n in [1, 2] {
        let override_of = format!(
            "RECURRENCE-ID;TZID=Asia/Shanghai:{}\r\nDTSTART:{}\r\n",
            shanghai(week(40, n)).format("%Y%m%dT%H%M%S"),
            week(41, n).format("%Y%m%dT%H%M%SZ")
        );
        assert!(
            unfolded.contains(&override_of),
            "{override_of:?} in {unfolded}"
        );
    }

    // Cancelling all: the not-started ones that are left.
    let cancelled = app
        .post(
            &format!("/api/v1/conferences/{second}/cancel?scope=all"),
            &token(T, "alice", false),
            json!({"reason": "项目结束"}),
        )
        .await;
    let cancelled = items(cancelled.ok(200)).clone();
    assert_eq!(cancelled.len(), 3);
    assert!(cancelled.iter().all(|item| item["status"] == "cancelled"));
    // Their lines are free again: bob books the first's time on line 1.
    let again = book(&app, "erin", week(40, 0)).await;
    assert_eq!(again.ok(201)["line"]["id"], "line-1");
}

#[tokio::test]
async fn bad_series_requests_are_refused_naming_the_field() {
    let app = spawn_app().await;
    app.seed(T, 1).await;
    let alice = token(T, "alice", false);
    let refused = async |body: Value, field: &str| {
        let reply = app.post("/api/v1/conferences", &alice, body).await;
        assert_eq!(
            reply.problem(422, "invalid_input")["field"],
            field,
            "{:?}",
            reply.text
        );
    };
    let start = later(30);
    for rule in [
        json!({"frequency": "weekly", "count": 101}),
        json!({"frequency": "weekly", "count": 0}),
        json!({"frequency": "weekly", "count": 60}),
        json!({"frequency": "daily", "count": 3, "until": "2099-01-01"}),
        json!({"frequency": "daily"}),
        json!({"frequency": "hourly", "count": 3}),
        json!({"frequency": "weekly", "count": 3, "weekdays": ["XX"]}),
        json!({"frequency": "weekly", "count": 3, "weekdays": []}),
        json!({"frequency": "daily", "count": 3, "interval": 0}),
        json!({"frequency": "daily", "until": "2099-01-01"}),
        json!({"frequency": "daily", "until": "yesterday"}),
        json!({"frequency": "monthly", "count": 3, "weekdays": ["MO"]}),
    ] {
        refused(
            json!({"subject": "s", "start": start, "recurrence": rule}),
            "recurrence",
        )
        .await;
    }
    refused(
        json!({"mode": "quick", "subject": "s", "recurrence": {"frequency": "daily", "count": 2}}),
        "recurrence",
    )
    .await;
    refused(
        json!({"subject": "s", "start": start, "recurrence": {"frequency": "daily", "count": 2}, "on_conflict": "maybe"}),
        "on_conflict",
    )
    .await;
    refused(
        json!({"subject": "s", "start": start, "on_conflict": "skip"}),
        "on_conflict",
    )
    .await;
    // Unknown fields in the rule are malformed, not ignored.
    let malformed = app
        .post(
            "/api/v1/conferences",
            &alice,
            json!({"subject": "s", "start": start, "recurrence": {"frequency": "daily", "count": 2, "byhour": 3}}),
        )
        .await;
    assert_eq!(malformed.status, 400, "{:?}", malformed.text);
    // A scope on a conference outside any series, and an unknown scope.
    let single = app.schedule(T, "alice", 50, 51).await;
    let id = single.ok(201)["id"].as_str().unwrap().to_owned();
    let outside = app
        .patch(
            &format!("/api/v1/conferences/{id}?scope=all"),
            &alice,
            json!({"subject": "x"}),
        )
        .await;
    assert_eq!(outside.problem(422, "invalid_input")["field"], "scope");
    let unknown = app
        .post(
            &format!("/api/v1/conferences/{id}/cancel?scope=everything"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(unknown.problem(422, "invalid_input")["field"], "scope");
    // Someone else's series cannot be acted on as a whole.
    let series = weekly(&app, 60, 3, None).await;
    let member = items(series.ok(201))[1]["id"].as_str().unwrap().to_owned();
    let foreign = app
        .post(
            &format!("/api/v1/conferences/{member}/cancel?scope=all"),
            &token(T, "mallory", false),
            json!({}),
        )
        .await;
    foreign.problem(404, "not_found");
    let attendee = app
        .post(
            &format!("/api/v1/conferences/{member}/cancel?scope=all"),
            &token(T, "bob", false),
            json!({}),
        )
        .await;
    attendee.problem(403, "forbidden");
}

#[tokio::test]
async fn a_keyed_retry_of_a_refused_series_gets_the_same_conflicts_also_after_a_restart() {
    let mut app = spawn_app().await;
    app.seed(T, 1).await;
    let taken = [week(30, 1), week(30, 2)];
    for start in taken {
        book(&app, "bob", start).await.ok(201);
    }
    let keyed = async |app: &TestApp| {
        app.keyed(
            reqwest::Method::POST,
            "/api/v1/conferences",
            &token(T, "alice", false),
            "reject-1",
            json!({"subject": "周会", "start": later(30), "duration_minutes": 60,
                "recurrence": {"frequency": "weekly", "count": 4}}),
        )
        .await
    };
    let starts_of = |reply: &Reply| -> Vec<DateTime<Utc>> {
        reply.problem(409, "no_free_line")["conflicts"]
            .as_array()
            .expect("conflicts")
            .iter()
            .map(|conflict| instant(conflict["start"].as_str().unwrap()))
            .collect()
    };
    assert_eq!(starts_of(&keyed(&app).await), taken.to_vec());
    assert_eq!(starts_of(&keyed(&app).await), taken.to_vec());
    // After a restart the refusal is read back from the log: the same conflicts.
    app.restart(&[]);
    let again = keyed(&app).await;
    assert_eq!(starts_of(&again), taken.to_vec());
    assert!(
        again.problem(409, "no_free_line")["conflicts"][0]["suggestions"]
            .as_array()
            .is_some_and(|suggestions| !suggestions.is_empty())
    );
}
