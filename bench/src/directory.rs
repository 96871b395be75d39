//! The directory at enterprise size (issue 14): `users` users synced in bulk
//! (`PUT /api/v1/directory/users`, 1,000 a call) into the real binary, then `clients` HTTP
//! clients searching it (`GET /api/v1/directory/users?q=`) for `seconds`: by a name's pinyin
//! initials, its full pinyin, its surname in characters, and an id. Verified: every answer a 200
//! page, and each kind of search finds 张伟.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::percentile_ms;

const SECRET: &str = "directory-bench-secret-not-for-production-0123456789";
const TENANT: &str = "acme";
/// Surnames and given names (with their pinyin) the users' names are drawn from.
const SURNAMES: [(&str, &str); 12] = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("赵", "zhao"),
    ("黄", "huang"),
    ("周", "zhou"),
    ("吴", "wu"),
    ("徐", "xu"),
    ("孙", "sun"),
];
const GIVEN: [(&str, &str); 16] = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
];

/// A user's id, name, full pinyin and initials.
fn person(rng: &mut StdRng, n: usize) -> (String, String, String, String) {
    if n == 0 {
        return (
            "zhangwei".into(),
            "张伟".into(),
            "zhangwei".into(),
            "zw".into(),
        );
    }
    let (surname, s) = SURNAMES[rng.random_range(0..SURNAMES.len())];
    let (given, g) = GIVEN[rng.random_range(0..GIVEN.len())];
    let initials = format!("{}{}", &s[..1], &g[..1]);
    (
        format!("{s}{g}{n}"),
        format!("{surname}{given}"),
        format!("{s}{g}"),
        initials,
    )
}

struct Server {
    child: Child,
    url: String,
    data: std::path::PathBuf,
}

impl Server {
    fn start() -> anyhow::Result<Self> {
        let binary = std::env::current_exe()?.with_file_name("meetline");
        ensure!(
            binary.exists(),
            "{} is missing: build the server first",
            binary.display()
        );
        let data =
            std::env::temp_dir().join(format!("meetline-directory-{}", uuid::Uuid::new_v4()));
        let mut child = Process::new(&binary)
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env("MEETLINE_JWT_SECRET", SECRET)
            .env("MEETLINE_RATE_LIMIT", "0")
            .env("MEETLINE_LOG", "warn")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .spawn()
            .context("starting meetline serve")?;
        let mut lines = BufReader::new(child.stdout.take().context("its output")?).lines();
        let url = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                bail!("the server ended before listening");
            };
            if let Some(url) = line?.strip_prefix("meetline listening on ") {
                break url.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { child, url, data })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Runs the workload; `Ok(false)` when the verification failed.
pub async fn directory(users: usize, clients: usize, seconds: u64) -> anyhow::Result<bool> {
    ensure!(
        users >= 1 && clients >= 1,
        "--users and --clients take at least 1"
    );
    let server = Server::start()?;
    let keys = meetline_adapters::auth::JwtKeys::from_secret(SECRET.as_bytes());
    let tenant = meetline_domain::types::TenantId::parse(TENANT)?;
    let admin = keys.mint(
        &tenant,
        &meetline_domain::types::UserId::parse("admin")?,
        true,
        chrono::Duration::hours(2),
    );
    let reader = keys.mint(
        &tenant,
        &meetline_domain::types::UserId::parse("alice")?,
        false,
        chrono::Duration::hours(2),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    let mut rng = StdRng::seed_from_u64(14);
    let people: Vec<_> = (0..users).map(|n| person(&mut rng, n)).collect();
    let syncing = Instant::now();
    for chunk in people.chunks(1000) {
        let body: Vec<Value> = chunk
            .iter()
            .map(|(id, name, _, _)| json!({"id": id, "name": name}))
            .collect();
        let answer = http
            .put(format!("{}/api/v1/directory/users", server.url))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await?;
        ensure!(
            answer.status().is_success(),
            "the sync answered {}",
            answer.status()
        );
    }
    let synced = syncing.elapsed();
    println!(
        "directory: {users} users synced in {:.2} s = {:.0} users/s",
        synced.as_secs_f64(),
        users as f64 / synced.as_secs_f64()
    );

    // Each kind of search finds 张伟.
    let mut found_all = true;
    for query in ["zw", "zhangwei", "张", "zhangwei"] {
        let page: Value = http
            .get(format!("{}/api/v1/directory/users", server.url))
            .query(&[("q", query), ("limit", "200")])
            .bearer_auth(&reader)
            .send()
            .await?
            .json()
            .await?;
        let found = page["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|item| item["id"] == "zhangwei"))
            || page["next_cursor"].is_string();
        if !found {
            println!("   {query:?} did not find 张伟");
            found_all = false;
        }
    }

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (http, url, token, people) = (
            http.clone(),
            server.url.clone(),
            reader.clone(),
            people.clone(),
        );
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(1400 + client as u64);
            let (mut latencies, mut failures) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let (id, name, full, initials) = &people[rng.random_range(0..people.len())];
                let query = match rng.random_range(0..4) {
                    0 => initials.clone(),
                    1 => full.clone(),
                    2 => name.chars().next().map(String::from).unwrap_or_default(),
                    _ => id.clone(),
                };
                let asked = Instant::now();
                let answer = http
                    .get(format!("{url}/api/v1/directory/users"))
                    .query(&[("q", query.as_str()), ("limit", "20")])
                    .bearer_auth(&token)
                    .send()
                    .await;
                let ok = match answer {
                    Ok(response) if response.status().is_success() => response
                        .json::<Value>()
                        .await
                        .is_ok_and(|page| page["items"].is_array()),
                    _ => false,
                };
                latencies.push(asked.elapsed());
                if !ok {
                    failures += 1;
                }
            }
            (latencies, failures)
        });
    }
    let (mut latencies, mut failures) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (mine, failed) = done?;
        latencies.extend(mine);
        failures += failed;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "   search: {} requests = {:.0} requests/s; p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99),
    );
    let pass = failures == 0 && found_all && !latencies.is_empty();
    println!(
        "   verify: {} ({failures} failed answers; pinyin, initials and characters find 张伟: {found_all})",
        if pass { "PASS" } else { "FAIL" }
    );
    Ok(pass)
}
