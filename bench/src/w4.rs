//! W4: listing latency over HTTP against the real binary. A store of `conferences` conferences
//! among `users` users is written through the pool (as the command service would decide them)
//! and projected; then `meetline serve --role query` runs on it in a process of its own while
//! `clients` HTTP clients ask for `GET /api/v1/conferences/recent` and the first page of
//! `GET /api/v1/conferences` for random users.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use meetline_adapters::auth::JwtKeys;
use meetline_domain::command::{EndSpec, ScheduleConference};
use meetline_domain::ports::pool_stream;
use meetline_domain::*;
use meetline_projections::Projector;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::w5::Filler;
use crate::{StoreKind, open_store, percentile_ms, t0};

/// Tenants the conferences are spread over (each its own pool; users are per tenant).
const TENANTS: usize = 20;
/// Lines per tenant.
const LINES: usize = 50;
/// The JWT secret the server is started with, and the clients' tokens are signed with.
const SECRET: &str = "w4-bench-secret-not-for-production-0123456789";

/// Runs W4; `Ok(false)` when an answer was not a 200 with the expected shape.
pub async fn w4(
    kind: StoreKind,
    conferences: usize,
    users: usize,
    clients: usize,
    seconds: u64,
    reuse: Option<std::path::PathBuf>,
) -> anyhow::Result<bool> {
    ensure!(
        users >= TENANTS && conferences >= TENANTS,
        "--users and --conferences take at least {TENANTS}"
    );
    let (store, now) = if let Some(folder) = reuse {
        ensure!(kind == StoreKind::Sqlite, "--reuse takes a SQLite folder");
        ensure!(
            std::env::var_os("MEETLINE_BENCH_KEEP").is_some(),
            "--reuse needs MEETLINE_BENCH_KEEP=1 (or the folder is removed afterwards)"
        );
        ensure!(
            folder.join("meetline.db").is_file(),
            "{} holds no meetline.db",
            folder.display()
        );
        println!("W4 {kind:?}: reusing {}", folder.display());
        (crate::open_sqlite_at(folder).await?, server_clock())
    } else {
        let store = open_store(kind, 4).await?;
        let filling = Instant::now();
        let now = fill(store.events.as_ref(), conferences, users).await?;
        let projecting = Instant::now();
        let projector = Projector::new(store.events.clone(), store.db.clone()).await?;
        let applied = projector.catch_up(|_| {}).await?;
        drop(projector);
        println!(
            "W4 {kind:?}: {conferences} conferences among {users} users over {TENANTS} tenants written in {:.1} s, \
             {applied} events projected in {:.1} s",
            (projecting - filling).as_secs_f64(),
            projecting.elapsed().as_secs_f64()
        );
        (store, now)
    };

    let mut server = Server::start(kind, &store, now)?;
    let outcome = load(&server.url, users, clients, seconds).await;
    let rss = server.peak_rss_mib();
    server.stop();
    let outcome = outcome?;
    for (endpoint, latencies) in [
        ("GET /api/v1/conferences/recent", &outcome.recent),
        ("GET /api/v1/conferences (first page)", &outcome.listing),
    ] {
        println!(
            "   {endpoint}: {} requests = {:.0} requests/s; p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms",
            latencies.len(),
            latencies.len() as f64 / outcome.elapsed.as_secs_f64(),
            percentile_ms(latencies, 0.50),
            percentile_ms(latencies, 0.99),
            percentile_ms(latencies, 0.999),
        );
    }
    println!(
        "   {clients} clients, {:.1} s; server peak RSS {rss:.0} MiB (the server process alone)",
        outcome.elapsed.as_secs_f64()
    );
    let pass = outcome.failures.is_empty() && outcome.items > 0;
    if pass {
        println!(
            "   verify: PASS (every answer 200 with a JSON page; {} conferences listed in all)",
            outcome.items
        );
    } else {
        println!(
            "   verify: FAIL ({} failed answers, first: {:?}; {} conferences listed)",
            outcome.failures.len(),
            outcome.failures.first(),
            outcome.items
        );
    }
    Ok(pass)
}

/// A user of W4: its tenant and id.
fn user(users: usize, n: usize) -> (TenantId, UserId) {
    let per_tenant = users / TENANTS;
    let tenant = TenantId::parse(&format!("w4-{}", n % TENANTS)).expect("a tenant");
    let user = UserId::parse(&format!("user-{}", (n / TENANTS) % per_tenant)).expect("a user");
    (tenant, user)
}

/// The two years the conferences are spread over, in minutes.
const SPAN_MINUTES: i64 = 2 * 365 * 24 * 60;

/// The server's clock: three quarters of the way through the two years.
fn server_clock() -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(SPAN_MINUTES * 3 / 4)
}

/// Writes the conferences, tenant by tenant: each lasts 30–120 minutes on a line with room for
/// it, spread over two years from T0; a host and two attendees among the tenant's users; the
/// ones over by the server's clock are recorded as ended by the timer. Returns that clock: three
/// quarters of the way through, so that a month of them is still ahead ("recent") and most are
/// history.
async fn fill(
    store: &dyn meetline_domain::ports::EventStore,
    conferences: usize,
    users: usize,
) -> anyhow::Result<DateTime<Utc>> {
    let per_tenant_users = users / TENANTS;
    let admin = Actor::admin("admin");
    let mut rng = StdRng::seed_from_u64(4);
    let now = server_clock();
    let mut ended: Vec<u128> = Vec::new();
    for t in 0..TENANTS {
        let tenant = TenantId::parse(&format!("w4-{t}"))?;
        let stream = pool_stream(&tenant);
        let mut filler = Filler::new(store, &stream);
        for n in 1..=LINES {
            let add = Command::AddLine {
                name: LineName::parse(&format!("Line {n}"))?,
                provider: ProviderKind::Builtin,
            };
            filler.run(&admin, &add, t0()).await?;
        }
        let count = conferences / TENANTS + usize::from(t < conferences % TENANTS);
        // Each line takes every LINES-th conference, one after another in time.
        let step = (SPAN_MINUTES / (count.div_ceil(LINES) as i64).max(1)).max(120);
        for i in 0..count {
            let slot = (i / LINES) as i64;
            let start = t0() + chrono::Duration::minutes(slot * step - slot * step % 15);
            let minutes = [30i64, 60, 90, 120][rng.random_range(0..4usize)];
            let person = |rng: &mut StdRng| {
                UserId::parse(&format!("user-{}", rng.random_range(0..per_tenant_users)))
                    .expect("a user")
            };
            let host = person(&mut rng);
            let id = (t as u128) << 64 | (i as u128 + 1);
            let schedule = Command::ScheduleConference(ScheduleConference {
                conference: ConferenceId(Uuid::from_u128(id)),
                mode: Mode::Scheduled,
                subject: Subject::parse(&format!("W4 review {i}"))?,
                start: Some(start),
                end: EndSpec::At(start + chrono::Duration::minutes(minutes)),
                timezone: TimeZoneName::default(),
                host: None,
                attendees: vec![person(&mut rng), person(&mut rng)],
                related_link: None,
                rooms: RoomNonce::fixed(id),
                numbers: NumberDraw::fixed(id),
            });
            let events = filler
                .run(&Actor::user(host.as_str()), &schedule, t0())
                .await?;
            ensure!(!events.is_empty(), "conference {i} of {tenant} was refused");
            if start + chrono::Duration::minutes(minutes) <= now {
                ended.push(id);
            }
        }
        // The timer has recorded the ones over by now (as it would have, as they ended).
        for id in ended.drain(..) {
            let elapsed = Command::RecordElapsedTime {
                conference: ConferenceId(Uuid::from_u128(id)),
            };
            filler.run(&admin, &elapsed, now).await?;
        }
        filler.flush().await?;
    }
    Ok(now)
}

/// The real binary serving the query API on the store.
struct Server {
    child: Child,
    url: String,
    /// The data folder made for a server on PostgreSQL (removed when it stops).
    folder: Option<std::path::PathBuf>,
}

impl Server {
    fn start(
        kind: StoreKind,
        store: &crate::BenchStore,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Self> {
        let binary = std::env::current_exe()?.with_file_name("meetline");
        ensure!(
            binary.exists(),
            "{} is missing: build the server first (cargo build -p meetline, with the same profile)",
            binary.display()
        );
        let mut command = Process::new(&binary);
        let mut folder = None;
        command
            .args(["serve", "--role", "query", "--addr", "127.0.0.1:0"])
            .env("MEETLINE_JWT_SECRET", SECRET)
            // On PostgreSQL a server is given its secrets (or told to generate them).
            .env(
                "MEETLINE_JITSI_SECRET",
                "w4-bench-jitsi-secret-not-for-production",
            )
            .env(
                "MEETLINE_SETTINGS_KEY",
                "w4-bench-settings-key-not-for-production",
            )
            .env("MEETLINE_RATE_LIMIT", "0")
            .env("MEETLINE_FIXED_NOW", now.to_rfc3339())
            .env("MEETLINE_LOG", "warn")
            .stdout(Stdio::piped());
        match kind {
            StoreKind::Sqlite => {
                let crate::TempFolder(folder) = store._folder.as_ref().context("a folder")?;
                command.arg("--data").arg(folder);
            }
            StoreKind::Postgres => {
                let database = store._database.as_ref().context("a database")?;
                let data = std::env::temp_dir().join(format!("meetline-w4-{}", Uuid::new_v4()));
                command
                    .arg("--data")
                    .arg(&data)
                    .env("DATABASE_URL", &database.url);
                folder = Some(data);
            }
        }
        let mut child = command.spawn().context("starting meetline serve")?;
        let stdout = child.stdout.take().context("the server's output")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                bail!("the server ended before listening");
            };
            if let Some(url) = line?.strip_prefix("meetline listening on ") {
                break url.trim().to_owned();
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { child, url, folder })
    }

    fn peak_rss_mib(&self) -> f64 {
        crate::peak_rss_mib_of(&format!("/proc/{}/status", self.child.id()))
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(folder) = self.folder.take() {
            let _ = std::fs::remove_dir_all(folder);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the clients saw.
struct Outcome {
    elapsed: Duration,
    recent: Vec<Duration>,
    listing: Vec<Duration>,
    failures: Vec<String>,
    items: usize,
}

/// A listing's answer as the clients check it: a JSON object with an array of items, each any
/// JSON value (checked for syntax, not kept).
#[derive(serde::Deserialize)]
struct Listed {
    items: Vec<serde::de::IgnoredAny>,
}

/// `clients` clients, each asking for a random user's recent conferences, then the first page of
/// the same user's conferences, until `seconds` have passed.
async fn load(url: &str, users: usize, clients: usize, seconds: u64) -> anyhow::Result<Outcome> {
    let keys = JwtKeys::from_secret(SECRET.as_bytes());
    let tokens: Arc<Vec<(String, usize)>> = Arc::new(
        (0..users)
            .map(|n| {
                let (tenant, user) = user(users, n);
                (
                    keys.mint(&tenant, &user, false, chrono::Duration::hours(2)),
                    n,
                )
            })
            .collect(),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(30))
        .build()?;
    // Warm-up: one round of both requests for a few users, not measured.
    for (token, _) in tokens.iter().take(clients) {
        for path in ["/api/v1/conferences/recent", "/api/v1/conferences?limit=20"] {
            http.get(format!("{url}{path}"))
                .bearer_auth(token)
                .send()
                .await?;
        }
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (http, tokens, url) = (http.clone(), tokens.clone(), url.to_owned());
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(400 + client as u64);
            let (mut recent, mut listing, mut failures, mut items) =
                (Vec::new(), Vec::new(), Vec::new(), 0usize);
            while Instant::now() < deadline {
                let (token, _) = &tokens[rng.random_range(0..tokens.len())];
                for (path, into) in [
                    ("/api/v1/conferences/recent", &mut recent),
                    ("/api/v1/conferences?limit=20", &mut listing),
                ] {
                    let asked = Instant::now();
                    let answer = match http
                        .get(format!("{url}{path}"))
                        .bearer_auth(token)
                        .send()
                        .await
                    {
                        Ok(response) if response.status().is_success() => {
                            response.bytes().await.map_err(|e| format!("{path}: {e}"))
                        }
                        Ok(response) => Err(format!("{path}: {}", response.status())),
                        Err(error) => Err(format!("{path}: {error}")),
                    };
                    // The latency ends with the answer's last byte; checking it is the
                    // client's own work, on the same two cores as the server: a page is
                    // parsed without building a tree of it.
                    into.push(asked.elapsed());
                    match answer.and_then(|body| {
                        serde_json::from_slice::<Listed>(&body).map_err(|e| {
                            format!("{path}: {e} in {}", String::from_utf8_lossy(&body))
                        })
                    }) {
                        Ok(page) => items += page.items.len(),
                        Err(error) => failures.push(error),
                    }
                }
            }
            (recent, listing, failures, items)
        });
    }
    let mut outcome = Outcome {
        elapsed: Duration::ZERO,
        recent: Vec::new(),
        listing: Vec::new(),
        failures: Vec::new(),
        items: 0,
    };
    while let Some(done) = tasks.join_next().await {
        let (recent, listing, failures, items) = done?;
        outcome.recent.extend(recent);
        outcome.listing.extend(listing);
        outcome.failures.extend(failures);
        outcome.items += items;
    }
    outcome.elapsed = started.elapsed();
    outcome.recent.sort_unstable();
    outcome.listing.sort_unstable();
    Ok(outcome)
}
