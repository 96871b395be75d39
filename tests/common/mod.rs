//! `spawn_app()`: the real `meetline` binary on port 0 with a fresh data folder, and helpers to
//! talk to it as a client would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{EncodingKey, Header, encode};
use meetline_adapters::testing::TestDatabase;
use meetline_domain::ports::EventStore;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-for-the-black-box-tests-of-meetline";
pub const SETTINGS_KEY: &str = "test-settings-key-for-black-box-tests";
pub const JITSI_SECRET: &str = "test-jitsi-secret-for-black-box-tests";

pub struct TestApp {
    pub base: String,
    pub data: PathBuf,
    /// The PostgreSQL database the app runs on (`MEETLINE_BLACKBOX_STORE=postgres`), dropped with it.
    pub database: Option<TestDatabase>,
    pub client: Client,
    /// The highest `X-Position` any command returned: queries wait for it (read-your-writes),
    /// as a well-behaved client does.
    pub last_position: AtomicU64,
    /// The server process, when this app started it (and removes its data folder when dropped).
    child: Option<Child>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

pub fn fresh_data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meetline-bb-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether the black-box suite runs on PostgreSQL (`MEETLINE_BLACKBOX_STORE=postgres`) rather
/// than the embedded SQLite file.
pub fn on_postgres() -> bool {
    std::env::var("MEETLINE_BLACKBOX_STORE").is_ok_and(|store| store == "postgres")
}

/// A fresh database for one app when the suite runs on PostgreSQL.
pub async fn fresh_database() -> Option<TestDatabase> {
    if !on_postgres() {
        return None;
    }
    Some(
        TestDatabase::create()
            .await
            .expect("MEETLINE_BLACKBOX_STORE=postgres needs a PostgreSQL server"),
    )
}

/// Starts the binary on `data` (and `database`, if any) and waits for its "listening" line.
pub fn start(data: &Path, database: Option<&TestDatabase>, extra: &[&str]) -> (Child, String) {
    start_with_secret(data, database, extra, Some(SECRET))
}

/// As [`start`]; `jwt_secret: None` leaves the server to generate (or find) its own.
pub fn start_with_secret(
    data: &Path,
    database: Option<&TestDatabase>,
    extra: &[&str],
    jwt_secret: Option<&str>,
) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meetline"));
    // Secrets as an operator gives them (on PostgreSQL the server refuses to start without them
    // unless told to generate them); `None`: the server generates (or finds) its own.
    match jwt_secret {
        Some(secret) => command
            .env("MEETLINE_JWT_SECRET", secret)
            .env("MEETLINE_SETTINGS_KEY", SETTINGS_KEY)
            .env("MEETLINE_JITSI_SECRET", JITSI_SECRET),
        None => command
            .env_remove("MEETLINE_JWT_SECRET")
            .env_remove("MEETLINE_SETTINGS_KEY")
            .env_remove("MEETLINE_JITSI_SECRET"),
    };
    match database {
        Some(database) => command.env("DATABASE_URL", &database.url),
        None => command.env_remove("DATABASE_URL"),
    };
    let mut child = command
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .env("MEETLINE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the meetline binary starts");
    let base = listening_address(&mut child);
    (child, base)
}

/// The address a started `meetline serve` (stdout piped) prints it listens on; its stdout is
/// then drained on a thread so the child never blocks on a full pipe.
pub fn listening_address(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("meetline printed its address").unwrap();
        if let Some(address) = line.strip_prefix("meetline listening on ") {
            break address.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    base
}

/// As [`spawn_app_with`], with the server's log at debug level written to the returned file
/// (to check what reaches the logs).
pub async fn spawn_app_logged(extra: &[&str]) -> (TestApp, PathBuf) {
    let data = fresh_data_dir();
    let log = std::env::temp_dir().join(format!("meetline-log-{}.txt", uuid::Uuid::new_v4()));
    let database = fresh_database().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_meetline"));
    command
        .env("MEETLINE_JWT_SECRET", SECRET)
        .env("MEETLINE_SETTINGS_KEY", SETTINGS_KEY)
        .env("MEETLINE_JITSI_SECRET", JITSI_SECRET)
        .env("MEETLINE_LOG", "debug,sqlx=warn,hyper=info,h2=info");
    match &database {
        Some(database) => command.env("DATABASE_URL", &database.url),
        None => command.env_remove("DATABASE_URL"),
    };
    let mut child = command
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(&data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the meetline binary starts");
    let base = listening_address(&mut child);
    let app = TestApp {
        base,
        data,
        database,
        client: Client::new(),
        last_position: AtomicU64::new(0),
        child: Some(child),
    };
    (app, log)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    let data = fresh_data_dir();
    let database = fresh_database().await;
    let (child, base) = start(&data, database.as_ref(), extra);
    TestApp {
        base,
        data,
        database,
        client: Client::new(),
        last_position: AtomicU64::new(0),
        child: Some(child),
    }
}

/// The binary on `database` (whatever `MEETLINE_BLACKBOX_STORE` says), with a fresh data folder.
pub fn spawn_on(database: TestDatabase, extra: &[&str]) -> TestApp {
    let data = fresh_data_dir();
    let (child, base) = start(&data, Some(&database), extra);
    TestApp {
        base,
        data,
        database: Some(database),
        client: Client::new(),
        last_position: AtomicU64::new(0),
        child: Some(child),
    }
}

pub fn token(tenant: &str, user: &str, admin: bool) -> String {
    let claims = json!({
        "sub": user,
        "tenant": tenant,
        "exp": (Utc::now() + chrono::Duration::hours(1)).timestamp(),
        "roles": if admin { vec!["admin"] } else { vec![] },
    });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A parsed response: status, headers and JSON (or text) body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub async fn from(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts a problem+json with this status and code.
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        &self.body
    }

    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        &self.body
    }
}

/// The event store an app wrote to, opened independently (for checks against what is stored).
pub async fn event_store(data: &Path, database: Option<&TestDatabase>) -> Box<dyn EventStore> {
    match database {
        Some(database) => {
            let pool = meetline_adapters::postgres::connect(&database.url, 2)
                .await
                .unwrap();
            Box::new(
                meetline_adapters::postgres::PgEventStore::new(pool)
                    .await
                    .unwrap(),
            )
        }
        None => {
            let db = meetline_adapters::db::Database::open_sqlite(&data.join("meetline.db"))
                .await
                .unwrap();
            Box::new(
                meetline_adapters::sqlite::SqliteEventStore::new(db)
                    .await
                    .unwrap(),
            )
        }
    }
}

impl TestApp {
    /// A client of a server the test started (and stops) itself.
    pub fn attach(base: String, data: PathBuf) -> Self {
        TestApp {
            base,
            data,
            database: None,
            client: Client::new(),
            last_position: AtomicU64::new(0),
            child: None,
        }
    }

    pub async fn event_store(&self) -> Box<dyn EventStore> {
        event_store(&self.data, self.database.as_ref()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn send(&self, builder: RequestBuilder) -> Reply {
        let mut request = builder.build().expect("a valid request");
        let position = self.last_position.load(Ordering::SeqCst);
        if request.method() == Method::GET
            && position > 0
            && !request.headers().contains_key("x-min-position")
        {
            request
                .headers_mut()
                .insert("x-min-position", position.into());
        }
        let reply = Reply::from(self.client.execute(request).await.expect("request sent")).await;
        if let Some(position) = reply
            .header("x-position")
            .and_then(|text| text.parse().ok())
        {
            self.last_position.fetch_max(position, Ordering::SeqCst);
        }
        reply
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(self.request(Method::GET, path, token)).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(self.request(Method::POST, path, token).json(&body))
            .await
    }

    /// A command with an `Idempotency-Key`.
    pub async fn keyed(
        &self,
        method: Method,
        path: &str,
        token: &str,
        key: &str,
        body: Value,
    ) -> Reply {
        self.send(
            self.request(method, path, token)
                .header("Idempotency-Key", key)
                .json(&body),
        )
        .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(self.request(Method::PATCH, path, token).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(self.request(Method::PUT, path, token).json(&body))
            .await
    }

    /// Users, two lines, a meeting and a group chat in `tenant`.
    pub async fn seed(&self, tenant: &str, lines: usize) {
        let admin = token(tenant, "admin", true);
        for user in ["admin", "alice", "bob", "carol", "dave", "erin", "mallory"] {
            self.put(
                &format!("/api/v1/directory/users/{user}"),
                &admin,
                json!({"name": user.to_uppercase()}),
            )
            .await
            .ok(200);
        }
        for n in 0..lines {
            self.post(
                "/api/v1/lines",
                &admin,
                json!({"name": format!("Line {}", n + 1), "provider": "builtin"}),
            )
            .await
            .ok(201);
        }
        self.put(
            "/api/v1/directory/meetings/m1",
            &admin,
            json!({"subject": "季度评审", "start": later(48), "end": later(49), "creator": "alice", "convener": "bob",
                   "contact": "carol", "attendees": ["dave", "erin"], "url": "https://oa.example.com/meetings/m1"}),
        )
        .await
        .ok(200);
        self.put(
            "/api/v1/directory/chats/c1",
            &admin,
            json!({"kind": "group", "name": "项目群", "members": ["alice", "bob", "carol", "dave"]}),
        )
        .await
        .ok(200);
    }

    /// Creates a scheduled conference as `user`, `from`–`to` hours from now.
    pub async fn schedule(&self, tenant: &str, user: &str, from: i64, to: i64) -> Reply {
        self.post(
            "/api/v1/conferences",
            &token(tenant, user, false),
            json!({"mode": "scheduled", "subject": "周会", "start": later(from), "end": later(to), "attendees": ["bob"]}),
        )
        .await
    }
}

/// An RFC 3339 instant `hours` from now, on the hour (so slots line up across calls).
pub fn later(hours: i64) -> String {
    let now = Utc::now();
    let base = DateTime::from_timestamp(now.timestamp() - now.timestamp() % 3600, 0).unwrap();
    (base + chrono::Duration::hours(hours)).to_rfc3339()
}

pub async fn wait_until<F: AsyncFnMut() -> bool>(mut check: F) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 5 s");
}

/// The independent checker (`meetline-verify`) over everything `store` holds, with the refusals
/// a test saw: panics with its findings unless it passes.
pub async fn assert_independent_check(
    store: &dyn EventStore,
    refusals: &[meetline_verify::Refusal],
) {
    let log = meetline_verify::whole_log(store).await.unwrap();
    let report = meetline_verify::check(&log, refusals);
    assert!(report.passed(), "{}", report.summary());
}

/// A refusal for want of a line, for `[start, end)` in `stream`, decided at some point of the
/// whole log (right for logs that only ever add bookings while it runs).
pub fn refusal_anytime(stream: &str, start: &str, end: &str) -> meetline_verify::Refusal {
    let at = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    };
    meetline_verify::Refusal {
        stream: stream.to_owned(),
        start: at(start),
        end: at(end),
        before: 0,
        after: u64::MAX,
        ignoring: None,
    }
}

/// The start of the current hour (UTC): the origin of a test's fixed clock.
pub fn this_hour() -> DateTime<Utc> {
    let now = Utc::now().timestamp();
    DateTime::from_timestamp(now - now % 3600, 0).unwrap()
}

/// An instant as the server writes it: RFC 3339, whole seconds, `Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The hidden `--fixed-now` flag: the server's clock frozen at `at` (tests and benchmarks only).
pub fn fixed_now(at: DateTime<Utc>) -> [String; 2] {
    ["--fixed-now".to_owned(), rfc3339(at)]
}

/// `flags` as the `&[&str]` that `spawn_app_with`, `start` and `TestApp::restart` take.
pub fn flags(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// Polls `check` (every 100 ms) until it returns `Some`, for at most `deadline`; panics naming
/// `what` otherwise. For a slow machine: generous deadlines, no fixed sleeps.
pub async fn eventually<T, F: AsyncFnMut() -> Option<T>>(
    deadline: Duration,
    what: &str,
    mut check: F,
) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "{what}: not reached in {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl TestApp {
    /// Stops the server this app started (kill, then wait), keeping its data folder and
    /// database for a restart, a rebuild or a look at what is stored.
    pub fn stop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts the binary again on the same data folder (and database) with
    /// `extra` flags, e.g. another `--fixed-now`.
    pub fn restart(&mut self, extra: &[&str]) {
        self.stop();
        let (child, base) = start(&self.data, self.database.as_ref(), extra);
        self.child = Some(child);
        self.base = base;
    }

    /// The events of a conference's history (`GET …/history` as `user` of `tenant`).
    pub async fn history(&self, tenant: &str, user: &str, id: &str) -> Vec<Value> {
        let reply = self
            .get(
                &format!("/api/v1/conferences/{id}/history"),
                &token(tenant, user, false),
            )
            .await;
        reply.ok(200)["events"].as_array().unwrap().clone()
    }
}

/// The `type` of each history event, in order.
pub fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

/// Zoom played by wiremock: its OAuth server, handing out a token; the test mounts the API
/// calls it needs.
pub async fn zoom_oauth() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "tok", "token_type": "bearer", "expires_in": 3599}),
        ))
        .mount(&server)
        .await;
    server
}
