//! Two `meetline serve` processes on one PostgreSQL database: any node takes any command, the
//! pool's optimistic concurrency keeps them correct, exactly one node runs the projections, and
//! the other takes over when it dies — with no event skipped or applied twice.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use meetline_adapters::testing::TestDatabase;
use meetline_command_api::service::load_pool;
use meetline_domain::Event;
use reqwest::{Client, Method};
use serde_json::{Value, json};

const T: &str = "acme";

struct Node {
    child: Child,
    base: String,
    data: std::path::PathBuf,
}

impl Node {
    fn start(database: &TestDatabase) -> Self {
        let data = fresh_data_dir();
        let (child, base) = start(&data, Some(database), &[]);
        Self { child, base, data }
    }

    async fn send(
        &self,
        client: &Client,
        method: Method,
        path: &str,
        user: &str,
        body: Option<Value>,
        min_position: u64,
    ) -> Reply {
        let mut request = client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token(T, user, user == "admin"))
            .header("X-Min-Position", min_position);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.unwrap()).await
    }

    async fn leads(&self, client: &Client) -> bool {
        let metrics = client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .any(|line| line.trim() == "meetline_projection_leader 1")
    }

    async fn conference_ids(&self, client: &Client, min_position: u64) -> BTreeSet<String> {
        let reply = self
            .send(
                client,
                Method::GET,
                "/api/v1/conferences?limit=100",
                "admin",
                None,
                min_position,
            )
            .await;
        let applied = reply
            .header("x-applied-position")
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(applied >= min_position, "{}", reply.text);
        reply.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn position(reply: &Reply) -> u64 {
    reply
        .header("x-position")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_book_each_line_once_and_survive_the_projector_dying() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let client = Client::new();
    let node_a = Node::start(&database);
    let node_b = Node::start(&database);

    // Set up through node A: users (the admin books as attendee of everything) and 8 lines.
    let mut head = 0;
    for user in ["admin", "alice", "bob", "carol", "dave", "erin", "frank"] {
        let reply = node_a
            .send(
                &client,
                Method::PUT,
                &format!("/api/v1/directory/users/{user}"),
                "admin",
                Some(json!({"name": user})),
                0,
            )
            .await;
        reply.ok(200);
    }
    for n in 1..=8 {
        let reply = node_a
            .send(
                &client,
                Method::POST,
                "/api/v1/lines",
                "admin",
                Some(json!({"name": format!("L{n}"), "provider": "builtin"})),
                0,
            )
            .await;
        reply.ok(201);
        head = head.max(position(&reply));
    }

    // 400 concurrent creates for the same hour, split across both nodes.
    let (start, end) = (later(30), later(31));
    let mut tasks = Vec::new();
    for n in 0..400 {
        let base = if n % 2 == 0 {
            node_a.base.clone()
        } else {
            node_b.base.clone()
        };
        let request = client
            .post(format!("{base}/api/v1/conferences"))
            .bearer_auth(token(T, ["alice", "bob", "carol", "dave"][n % 4], false))
            .json(&json!({"subject": format!("c{n}"), "start": start, "end": end, "attendees": ["admin"]}));
        tasks.push(tokio::spawn(async move {
            Reply::from(request.send().await.unwrap()).await
        }));
    }
    let mut outcomes: HashMap<u16, usize> = HashMap::new();
    let mut accepted = BTreeSet::new();
    for task in tasks {
        let reply = task.await.unwrap();
        *outcomes.entry(reply.status.as_u16()).or_default() += 1;
        if reply.status.as_u16() == 201 {
            accepted.insert(reply.body["id"].as_str().unwrap().to_owned());
            head = head.max(position(&reply));
        } else {
            assert_eq!(reply.body["code"], "no_free_line", "{}", reply.text);
        }
    }
    assert_eq!(outcomes.get(&201), Some(&8), "{outcomes:?}");
    assert_eq!(outcomes.get(&409), Some(&392), "{outcomes:?}");

    // No overlap in the store.
    let store = event_store(&node_a.data, Some(&database)).await;
    let pool = load_pool(store.as_ref(), "pool-acme").await.unwrap();
    assert_eq!(pool.conferences.len(), 8);
    assert_independent_check(store.as_ref(), &[]).await;

    // Both nodes' query APIs list the same conferences.
    assert_eq!(node_a.conference_ids(&client, head).await, accepted);
    assert_eq!(node_b.conference_ids(&client, head).await, accepted);

    // Exactly one node runs the projections; kill it.
    let (a_leads, b_leads) = (node_a.leads(&client).await, node_b.leads(&client).await);
    assert!(
        a_leads ^ b_leads,
        "exactly one leader: a={a_leads} b={b_leads}"
    );
    let (mut leader, survivor) = if a_leads {
        (node_a, node_b)
    } else {
        (node_b, node_a)
    };
    let killed = Instant::now();
    leader.kill();

    // Write through the survivor; its projector must take over within a few seconds.
    let first = accepted.iter().next().unwrap().clone();
    let invite = survivor
        .send(
            &client,
            Method::POST,
            &format!("/api/v1/conferences/{first}/invitations"),
            "admin",
            Some(json!({"attendees": ["erin", "frank"]})),
            0,
        )
        .await;
    invite.ok(200);
    let more = survivor.send(&client, Method::POST, "/api/v1/conferences", "alice", Some(json!({"subject": "after", "start": later(40), "end": later(41), "attendees": ["admin"]})), 0).await;
    more.ok(201);
    let after = position(&more).max(position(&invite));
    loop {
        if survivor.leads(&client).await {
            let listed = survivor
                .send(
                    &client,
                    Method::GET,
                    "/api/v1/conferences?limit=100",
                    "admin",
                    None,
                    after,
                )
                .await;
            if listed
                .header("x-applied-position")
                .and_then(|p| p.parse::<u64>().ok())
                .unwrap_or(0)
                >= after
            {
                break;
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the survivor did not take over the projections"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "the survivor projected the new events {:?} after the kill",
        killed.elapsed()
    );

    // Nothing skipped, nothing applied twice: every row equals its events.
    let ids = survivor.conference_ids(&client, after).await;
    assert_eq!(ids.len(), 9);
    for id in &ids {
        let view = survivor
            .send(
                &client,
                Method::GET,
                &format!("/api/v1/conferences/{id}"),
                "admin",
                None,
                after,
            )
            .await;
        let history = survivor
            .send(
                &client,
                Method::GET,
                &format!("/api/v1/conferences/{id}/history"),
                "admin",
                None,
                after,
            )
            .await;
        let events = history.ok(200)["events"].as_array().unwrap().len() as u64;
        assert_eq!(
            view.ok(200)["version"].as_u64().unwrap(),
            events,
            "{id}: version vs. events"
        );
        let attendees: Vec<&str> = view.body["attendees"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let unique: BTreeSet<&str> = attendees.iter().copied().collect();
        assert_eq!(
            attendees.len(),
            unique.len(),
            "{id}: an event was applied twice: {attendees:?}"
        );
    }
    let invited = survivor
        .send(
            &client,
            Method::GET,
            &format!("/api/v1/conferences/{first}"),
            "admin",
            None,
            after,
        )
        .await;
    let attendees = invited.ok(200)["attendees"].as_array().unwrap();
    assert!(attendees.contains(&json!("erin")) && attendees.contains(&json!("frank")));
    let scheduled = store
        .read_all(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(e.event, Event::ConferenceScheduled { .. }))
        .count();
    assert_eq!(scheduled, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_told_to_generate_secrets_share_the_generated_ones() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let client = Client::new();
    let (data_a, data_b) = (fresh_data_dir(), fresh_data_dir());
    let generate = ["--generate-secrets"];
    let (child_a, base_a) = start_with_secret(&data_a, Some(&database), &generate, None);
    let (child_b, base_b) = start_with_secret(&data_b, Some(&database), &generate, None);
    let mut nodes = [
        Node {
            child: child_a,
            base: base_a,
            data: data_a,
        },
        Node {
            child: child_b,
            base: base_b,
            data: data_b,
        },
    ];

    // A token minted from the database's secret is valid on both nodes.
    let minted = std::process::Command::new(env!("CARGO_BIN_EXE_meetline"))
        .args([
            "token",
            "--tenant",
            T,
            "--user",
            "admin",
            "--admin",
            "--database-url",
            &database.url,
        ])
        .env_remove("MEETLINE_JWT_SECRET")
        .output()
        .unwrap();
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let admin = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let put = client
        .put(format!("{}/api/v1/directory/users/admin", nodes[0].base))
        .bearer_auth(&admin)
        .json(&json!({"name": "Admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let line = Reply::from(
        client
            .post(format!("{}/api/v1/lines", nodes[1].base))
            .bearer_auth(&admin)
            .json(&json!({"name": "L", "provider": "builtin"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    line.ok(201);

    // Both nodes sign the same links for a conference.
    let created = Reply::from(
        client
            .post(format!("{}/api/v1/conferences", nodes[0].base))
            .bearer_auth(&admin)
            .json(&json!({"subject": "s", "start": later(3), "end": later(4)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    let seen = Reply::from(
        client
            .get(format!("{}/api/v1/conferences/{id}", nodes[1].base))
            .bearer_auth(&admin)
            .header("X-Min-Position", position(&created))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen.ok(200)["links"], created.body["links"]);
    for node in &mut nodes {
        node.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_record_a_conferences_start_and_end_exactly_once() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let client = Client::new();
    let nodes = [Node::start(&database), Node::start(&database)];
    for user in ["admin", "alice"] {
        nodes[0]
            .send(
                &client,
                Method::PUT,
                &format!("/api/v1/directory/users/{user}"),
                "admin",
                Some(json!({"name": user})),
                0,
            )
            .await
            .ok(200);
    }
    nodes[1]
        .send(
            &client,
            Method::POST,
            "/api/v1/lines",
            "admin",
            Some(json!({"name": "L", "provider": "builtin"})),
            0,
        )
        .await
        .ok(201);
    // Several short conferences, so both nodes' timers find them due at about the same time.
    let at = |seconds: i64| {
        (chrono::Utc::now() + chrono::Duration::seconds(seconds))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        let created = nodes[n % 2]
            .send(&client, Method::POST, "/api/v1/conferences", "alice", Some(json!({"subject": format!("s{n}"), "start": at(2 + 2 * n as i64), "end": at(3 + 2 * n as i64)})), 0)
            .await;
        ids.push(created.ok(201)["id"].as_str().unwrap().to_owned());
    }
    let store = event_store(&nodes[0].data, Some(&database)).await;
    let started = Instant::now();
    loop {
        let events = store.read_all(0, 10_000).await.unwrap();
        let ended = events
            .iter()
            .filter(|e| matches!(e.event, Event::ConferenceEnded { .. }))
            .count();
        if ended >= 3 {
            // Give both timers a few more ticks to (wrongly) record anything twice.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let events = store.read_all(0, 10_000).await.unwrap();
            for id in &ids {
                let of = |kind: &str| {
                    events
                        .iter()
                        .filter(|e| {
                            e.event.type_name() == kind
                                && e.event.conference().map(|c| c.to_string()).as_deref()
                                    == Some(id)
                        })
                        .count()
                };
                assert_eq!(of("ConferenceStarted"), 1, "{id}");
                assert_eq!(of("ConferenceEnded"), 1, "{id}");
            }
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the timers did not record the ends"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn on_postgresql_the_server_refuses_to_start_without_its_secrets() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let data = fresh_data_dir();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meetline"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("DATABASE_URL", &database.url)
        .env_remove("MEETLINE_JWT_SECRET")
        .env_remove("MEETLINE_SETTINGS_KEY")
        .env_remove("MEETLINE_JITSI_SECRET")
        .env_remove("MEETLINE_GENERATE_SECRETS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("MEETLINE_JWT_SECRET") && stderr.contains("--generate-secrets"),
        "{stderr}"
    );
    // Each of the three is required: with only the token secret, the settings key is missing.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meetline"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("DATABASE_URL", &database.url)
        .env("MEETLINE_JWT_SECRET", SECRET)
        .env_remove("MEETLINE_SETTINGS_KEY")
        .env_remove("MEETLINE_JITSI_SECRET")
        .env_remove("MEETLINE_GENERATE_SECRETS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("MEETLINE_JITSI_SECRET") || stderr.contains("MEETLINE_SETTINGS_KEY"),
        "{stderr}"
    );
    // Nothing was generated into the database on the way.
    let db = meetline_adapters::db::Database::connect_postgres(&database.url, 1)
        .await
        .unwrap();
    for name in ["jwt-secret", "settings-key", "jitsi-secret"] {
        assert!(
            meetline_adapters::secrets::load(&db, name)
                .await
                .unwrap()
                .is_none(),
            "{name} was generated into the database"
        );
    }
    // Given as files (readable only by the server), they are taken from there.
    let secret_file = |name: &str, value: &str| {
        let path = data.join(name);
        std::fs::write(&path, value).unwrap();
        path
    };
    let (jwt, key, jitsi) = (
        secret_file("jwt", SECRET),
        secret_file("key", SETTINGS_KEY),
        secret_file("jitsi", JITSI_SECRET),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meetline"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("DATABASE_URL", &database.url)
        .env_remove("MEETLINE_JWT_SECRET")
        .env_remove("MEETLINE_SETTINGS_KEY")
        .env_remove("MEETLINE_JITSI_SECRET")
        .env("MEETLINE_JWT_SECRET_FILE", &jwt)
        .env("MEETLINE_SETTINGS_KEY_FILE", &key)
        .env("MEETLINE_JITSI_SECRET_FILE", &jitsi)
        .env("MEETLINE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = listening_address(&mut child);
    let app = TestApp::attach(base, data.clone());
    // A token signed with the file's secret is accepted.
    app.get("/api/v1/conferences/recent", &token(T, "alice", false))
        .await
        .ok(200);
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&data);
}

/// Each node keeps a tenant's directory search rows in memory: a write on one node is found by
/// a search on the other at once (the directory's stamp moves in the write's transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_write_on_one_node_is_found_by_a_search_on_the_other() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let (mut a, mut b) = (Node::start(&database), Node::start(&database));
    let client = Client::new();
    let found = async |node: &Node, q: &str| -> Vec<String> {
        let reply = node
            .send(
                &client,
                Method::GET,
                &format!("/api/v1/directory/users?q={q}"),
                "alice",
                None,
                0,
            )
            .await;
        reply.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                format!(
                    "{}={}",
                    item["id"].as_str().unwrap(),
                    item["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let put = async |node: &Node, name: &str| {
        node.send(
            &client,
            Method::PUT,
            "/api/v1/directory/users",
            "admin",
            Some(json!([{"id": "u1", "name": name}])),
            0,
        )
        .await
        .ok(200);
    };
    put(&a, "张三").await;
    // Both nodes load the tenant's rows.
    assert_eq!(found(&b, "zs").await, ["u1=张三"]);
    assert_eq!(found(&a, "zs").await, ["u1=张三"]);
    // Renamed on one node: the other's next search sees it.
    put(&a, "李四").await;
    assert_eq!(found(&b, "ls").await, ["u1=李四"]);
    assert!(found(&b, "zs").await.is_empty());
    put(&b, "王五").await;
    assert_eq!(found(&a, "ww").await, ["u1=王五"]);
    for node in [&mut a, &mut b] {
        node.child.kill().ok();
        node.child.wait().ok();
    }
}
