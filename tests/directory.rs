//! The directory at enterprise size (API.md v1.1): bulk sync in one transaction, and a search by
//! name, id and pinyin (full or initials), a page at a time. Runs on SQLite, and on PostgreSQL in
//! `scripts/test`'s second pass.

mod common;

use common::*;
use serde_json::{Value, json};

const T: &str = "acme";

async fn search(app: &TestApp, query: &str) -> Reply {
    app.get(
        &format!("/api/v1/directory/users?{query}"),
        &token(T, "alice", false),
    )
    .await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_thousand_users_sync_at_once_and_are_found_by_pinyin_name_and_id() {
    let app = spawn_app().await;
    let admin = token(T, "admin", true);
    // Full-size entries: a thousand of them is well over 64 KiB.
    let mut users: Vec<Value> = (0..997)
        .map(|n| {
            json!({"id": format!("u{n:04}"), "name": format!("User {n}"),
                   "email": format!("user.number.{n:04}@acme-enterprise.example.com"),
                   "timezone": "Asia/Shanghai"})
        })
        .collect();
    users.push(json!({"id": "zhangwei", "name": "张伟", "email": "zw@acme.example", "timezone": "Asia/Shanghai"}));
    users.push(json!({"id": "lina", "name": "李娜"}));
    users.push(json!({"id": "wangfang", "name": "王芳"}));
    assert!(serde_json::to_vec(&users).unwrap().len() > 100 * 1024);
    let synced = app
        .put("/api/v1/directory/users", &admin, json!(users))
        .await;
    assert_eq!(synced.ok(200)["upserted"], 1000);
    assert!(synced.header("x-position").is_some());

    for query in [
        "q=zhangwei",
        "q=zw",
        "q=%E5%BC%A0",
        "q=ZHANG%20WEI",
        "q=zhang+wei",
        "q=zhangw",
    ] {
        let page = search(&app, query).await;
        assert!(
            ids(page.ok(200)).contains(&"zhangwei".to_owned()),
            "{query}"
        );
    }
    assert_eq!(ids(search(&app, "q=lin").await.ok(200)), vec!["lina"]);
    assert_eq!(ids(search(&app, "q=wf").await.ok(200)), vec!["wangfang"]);
    assert_eq!(
        ids(search(&app, "q=u0999").await.ok(200)),
        Vec::<String>::new()
    );
    assert_eq!(ids(search(&app, "q=u0996").await.ok(200)), vec!["u0996"]);
    // Wildcards are plain characters.
    assert!(ids(search(&app, "q=%25").await.ok(200)).is_empty());
    assert!(ids(search(&app, "q=_").await.ok(200)).is_empty());

    // Paging by cursor: every match once, in id order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("q=user%2099&limit=3&cursor={cursor}"),
            None => "q=user%2099&limit=3".to_owned(),
        };
        let page = search(&app, &query).await;
        let body = page.ok(200).clone();
        seen.extend(ids(&body));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..997)
        .filter(|n| format!("user {n}").contains("user 99"))
        .map(|n| format!("u{n:04}"))
        .collect();
    assert_eq!(seen, expected);
    // Everyone, 50 by default.
    let first = search(&app, "").await;
    assert_eq!(ids(first.ok(200)).len(), 50);
    assert!(first.ok(200)["next_cursor"].is_string());
}

#[tokio::test]
async fn a_bad_sync_stores_nothing_and_bad_searches_name_their_field() {
    let app = spawn_app().await;
    let admin = token(T, "admin", true);
    let mut users: Vec<Value> = (0..10)
        .map(|n| json!({"id": format!("v{n}"), "name": format!("V {n}")}))
        .collect();
    users[5]["name"] = json!("");
    let refused = app
        .put("/api/v1/directory/users", &admin, json!(users))
        .await;
    assert_eq!(
        refused.problem(422, "invalid_input")["field"],
        "users[5].name"
    );
    users[5]["name"] = json!("V 5");
    users[7]["timezone"] = json!("Mars/Olympus");
    let refused = app
        .put("/api/v1/directory/users", &admin, json!(users))
        .await;
    assert_eq!(
        refused.problem(422, "invalid_input")["field"],
        "users[7].timezone"
    );
    assert!(
        ids(search(&app, "q=v").await.ok(200)).is_empty(),
        "all or nothing"
    );

    let too_many: Vec<Value> = (0..1001)
        .map(|n| json!({"id": format!("w{n}"), "name": "W"}))
        .collect();
    let refused = app
        .put("/api/v1/directory/users", &admin, json!(too_many))
        .await;
    assert_eq!(refused.problem(422, "invalid_input")["field"], "users");
    let empty = app.put("/api/v1/directory/users", &admin, json!([])).await;
    assert_eq!(empty.problem(422, "invalid_input")["field"], "users");
    let not_admin = app
        .put(
            "/api/v1/directory/users",
            &token(T, "alice", false),
            json!([{"id": "x", "name": "X"}]),
        )
        .await;
    not_admin.problem(403, "forbidden");

    assert_eq!(
        search(&app, "limit=0").await.problem(422, "invalid_input")["field"],
        "limit"
    );
    assert_eq!(
        search(&app, "limit=201")
            .await
            .problem(422, "invalid_input")["field"],
        "limit"
    );
    assert_eq!(
        search(&app, "cursor=%00")
            .await
            .problem(422, "invalid_input")["field"],
        "cursor"
    );
    let long = "a".repeat(101);
    assert_eq!(
        search(&app, &format!("q={long}"))
            .await
            .problem(422, "invalid_input")["field"],
        "q"
    );
    // Another tenant's users are not found.
    app.put(
        "/api/v1/directory/users",
        &admin,
        json!([{"id": "zhangwei", "name": "张伟"}]),
    )
    .await
    .ok(200);
    let other = app
        .get(
            "/api/v1/directory/users?q=zw",
            &token("other", "bob", false),
        )
        .await;
    assert!(ids(other.ok(200)).is_empty());
}

#[tokio::test]
async fn ids_give_exactly_those_users_names() {
    let app = spawn_app().await;
    let admin = token(T, "admin", true);
    let users: Vec<serde_json::Value> = ["wangwei", "awang", "wangwei2"]
        .iter()
        .map(|id| serde_json::json!({"id": id, "name": "王伟"}))
        .collect();
    app.put("/api/v1/directory/users", &admin, serde_json::json!(users))
        .await
        .ok(200);
    let reader = token(T, "alice", false);
    let page = app
        .get(
            "/api/v1/directory/users?ids=wangwei2,nobody,awang,wangwei,wangwei",
            &reader,
        )
        .await;
    assert_eq!(
        page.ok(200)["items"],
        serde_json::json!([{"id": "awang", "name": "王伟"}, {"id": "wangwei", "name": "王伟"},
            {"id": "wangwei2", "name": "王伟"}])
    );
    // Another tenant's user of the same id is not this tenant's.
    app.put(
        "/api/v1/directory/users",
        &token("other", "admin", true),
        serde_json::json!([{"id": "wangwei", "name": "别人"}]),
    )
    .await
    .ok(200);
    let page = app
        .get("/api/v1/directory/users?ids=wangwei", &reader)
        .await;
    assert_eq!(page.ok(200)["items"][0]["name"], "王伟");
    // A hundred distinct ids (and a repeat) are taken.
    let hundred: Vec<String> = (0..100)
        .map(|n| format!("u{n}"))
        .chain(["u1".to_owned()])
        .collect();
    app.get(
        &format!("/api/v1/directory/users?ids={}", hundred.join(",")),
        &reader,
    )
    .await
    .ok(200);
    for bad in ["ids=a,b&q=x", "ids=a&cursor=b", "ids=bad%20id"] {
        let reply = app
            .get(&format!("/api/v1/directory/users?{bad}"), &reader)
            .await;
        assert_eq!(reply.problem(422, "invalid_input")["field"], "ids", "{bad}");
    }
    let many: Vec<String> = (0..101).map(|n| format!("u{n}")).collect();
    let reply = app
        .get(
            &format!("/api/v1/directory/users?ids={}", many.join(",")),
            &reader,
        )
        .await;
    assert_eq!(reply.problem(422, "invalid_input")["field"], "ids");
}
