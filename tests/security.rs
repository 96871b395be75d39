//! Security against colleagues, tenant admins and web pages (issue #8), black-box against the
//! binary — on SQLite, and on PostgreSQL when `MEETLINE_BLACKBOX_STORE=postgres` (where a
//! U+0000 once failed a whole tenant's batch).

mod common;

use std::collections::HashSet;

use common::*;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use serde_json::{Value, json};

const T: &str = "acme";

fn number_of(reply: &Reply) -> u64 {
    reply.body["number"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn numbers_are_unguessable_and_a_colleague_cannot_scan_for_them() {
    let app = spawn_app().await;
    app.seed(T, 30).await;
    let mut numbers = Vec::new();
    for hour in 0..30 {
        let reply = app.schedule(T, "alice", 2 + hour % 3, 3 + hour % 3).await;
        numbers.push(number_of(&reply));
        reply.ok(201);
    }
    assert_eq!(numbers.iter().collect::<HashSet<_>>().len(), 30);
    assert!(
        numbers
            .iter()
            .all(|n| (100_000_000..=999_999_999).contains(n))
    );
    // The old numbers were an affine function of a counter: consecutive differences were all
    // the same modulo 900,000,000. Random ones share no step.
    let steps: HashSet<u64> = numbers
        .windows(2)
        .map(|pair| (pair[1] + 900_000_000 - pair[0]) % 900_000_000)
        .collect();
    assert!(steps.len() > 25, "steps repeat: {steps:?}");

    // Mallory, invited to nothing, tries numbers: 10 unknown ones a minute, then 429 — even
    // for a number that exists, so the limit is no oracle.
    let mallory = token(T, "mallory", false);
    let mut guess = 100_000_000u64;
    let mut refused = None;
    for _ in 0..10 {
        guess += 1;
        while numbers.contains(&guess) {
            guess += 1;
        }
        app.post(
            "/api/v1/conferences/join",
            &mallory,
            json!({"number": guess.to_string()}),
        )
        .await
        .problem(404, "not_found");
    }
    for number in [guess + 1, numbers[0]] {
        let reply = app
            .post(
                "/api/v1/conferences/join",
                &mallory,
                json!({"number": number.to_string()}),
            )
            .await;
        reply.problem(429, "rate_limited");
        assert!(reply.header("retry-after").is_some());
        refused = Some(reply);
    }
    assert!(refused.is_some());
    // Others are not affected, and a successful join does not count as a failure.
    let bob = token(T, "bob", false);
    for number in &numbers[..12] {
        app.post(
            "/api/v1/conferences/join",
            &bob,
            json!({"number": number.to_string()}),
        )
        .await
        .ok(200);
    }
}

/// Every free-text field refuses control characters with 422 naming the field, and nothing is
/// stored: the tenant's other commands go on.
#[tokio::test]
async fn control_characters_are_refused_in_every_text_field_and_nothing_is_stored() {
    let app = spawn_app().await;
    app.seed(T, 2).await;
    let (alice, admin) = (token(T, "alice", false), token(T, "admin", true));
    let created = app.schedule(T, "alice", 5, 6).await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    let store = app.event_store().await;
    let before = store.head_position().await.unwrap();

    let nul = "周会\u{0}";
    let cases: Vec<(Method, String, &str, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/conferences".into(),
            &alice,
            json!({"mode": "scheduled", "subject": nul, "start": later(8), "duration_minutes": 30}),
            "subject",
        ),
        (
            Method::POST,
            "/api/v1/conferences".into(),
            &alice,
            json!({"mode": "quick", "subject": "line\nbreak"}),
            "subject",
        ),
        (
            Method::POST,
            "/api/v1/conferences".into(),
            &alice,
            json!({"mode": "scheduled", "subject": "s", "start": later(8), "related_link": "https://oa.example.com/\u{0}"}),
            "related_link",
        ),
        (
            Method::PATCH,
            format!("/api/v1/conferences/{id}"),
            &alice,
            json!({"subject": "x\u{1b}[31m"}),
            "subject",
        ),
        (
            Method::POST,
            format!("/api/v1/conferences/{id}/cancel"),
            &alice,
            json!({"reason": "bye\u{0}"}),
            "reason",
        ),
        (
            Method::POST,
            "/api/v1/lines".into(),
            &admin,
            json!({"name": "L\u{0}", "provider": "builtin"}),
            "name",
        ),
        (
            Method::PATCH,
            "/api/v1/lines/line-1".into(),
            &admin,
            json!({"name": "L\u{7f}"}),
            "name",
        ),
        (
            Method::PUT,
            "/api/v1/directory/users/zoe".into(),
            &admin,
            json!({"name": "Zoe\u{0}"}),
            "name",
        ),
        (
            Method::PUT,
            "/api/v1/directory/users/zoe".into(),
            &admin,
            json!({"name": "Zoe", "email": "z\u{0}@x.cn"}),
            "email",
        ),
        (
            Method::PUT,
            "/api/v1/directory/chats/c9".into(),
            &admin,
            json!({"kind": "group", "name": "群\u{0}", "members": ["alice", "bob"]}),
            "name",
        ),
        (
            Method::PUT,
            "/api/v1/directory/meetings/m9".into(),
            &admin,
            json!({"subject": "评审\u{0}", "start": later(48), "end": later(49), "creator": "alice", "convener": "alice",
                "contact": "alice", "attendees": []}),
            "subject",
        ),
    ];
    for (method, path, who, body, field) in cases {
        let reply = app
            .send(app.request(method.clone(), &path, who).json(&body))
            .await;
        let problem = reply.problem(422, "invalid_input");
        assert_eq!(problem["field"], field, "{method} {path}: {}", reply.text);
    }
    assert_eq!(
        store.head_position().await.unwrap(),
        before,
        "nothing was stored"
    );
    // The tenant goes on: the same colleague's next command is decided at once.
    app.schedule(T, "bob", 9, 10).await.ok(201);
    let view = app.get(&format!("/api/v1/conferences/{id}"), &alice).await;
    assert_eq!(view.ok(200)["status"], "not_started");
}

#[tokio::test]
async fn bodies_over_the_limit_are_problem_json_on_every_route_and_far_starts_are_refused() {
    let app = spawn_app_with(&["--booking-horizon-days", "30"]).await;
    app.seed(T, 1).await;
    let alice = token(T, "alice", false);
    let id = app.schedule(T, "alice", 5, 6).await.ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let big = json!({"reason": "x".repeat(70 * 1024)});
    for path in [
        format!("/api/v1/conferences/{id}/cancel"),
        "/api/v1/chats/c1/conference".to_owned(),
        "/api/v1/meetings/m1/conference".to_owned(),
        "/api/v1/conferences".to_owned(),
        "/api/v1/providers/zoom/webhook".to_owned(),
    ] {
        let reply = app.post(&path, &alice, big.clone()).await;
        reply.problem(413, "payload_too_large");
    }
    // Year 9999, and anything past the configured horizon.
    for start in ["9999-12-31T23:00:00Z", &later(24 * 40)] {
        let reply = app
            .post(
                "/api/v1/conferences",
                &alice,
                json!({"mode": "scheduled", "subject": "far", "start": start, "duration_minutes": 60}),
            )
            .await;
        assert_eq!(reply.problem(422, "invalid_input")["field"], "start");
    }
    let moved = app
        .patch(
            &format!("/api/v1/conferences/{id}"),
            &alice,
            json!({"start": "9999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(moved.problem(422, "invalid_input")["field"], "start");
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in through the web form (as the browser does) and returns the session cookie.
async fn session_cookie(app: &TestApp, token: &str) -> String {
    let response = no_redirects()
        .post(app.url("/signin"))
        .header(ORIGIN, app.base.clone())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let cookie = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn cookie_authenticated_writes_must_come_from_our_own_pages_with_json() {
    let app = spawn_app().await;
    app.seed(T, 1).await;
    let alice = token(T, "alice", false);
    let cookie = session_cookie(&app, &alice).await;
    let id = app.schedule(T, "alice", 5, 6).await.ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancel = format!("/api/v1/conferences/{id}/cancel");
    let with_cookie = |origin: Option<&str>, site: Option<&str>, content_type: &str, body: &str| {
        let mut request = app
            .client
            .post(app.url(&cancel))
            .header(COOKIE, cookie.clone())
            .header(CONTENT_TYPE, content_type)
            .body(body.to_owned());
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        request
    };
    // The attack that worked: a cross-site text/plain POST carrying the cookie.
    for request in [
        with_cookie(Some("https://evil.example"), None, "text/plain", "{}"),
        with_cookie(
            Some("https://evil.example"),
            Some("cross-site"),
            "application/json",
            "{}",
        ),
        with_cookie(None, Some("same-site"), "application/json", "{}"),
        with_cookie(None, None, "application/json", "{}"),
        with_cookie(Some("null"), None, "application/json", "{}"),
    ] {
        let reply = Reply::from(request.send().await.unwrap()).await;
        reply.problem(403, "forbidden");
    }
    // From our own page, but not JSON (a form can only send these): refused too.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let reply = Reply::from(
            with_cookie(Some(&app.base), None, content_type, "{}")
                .send()
                .await
                .unwrap(),
        )
        .await;
        reply.problem(415, "unsupported_media_type");
    }
    let view = app.get(&format!("/api/v1/conferences/{id}"), &alice).await;
    assert_eq!(
        view.ok(200)["status"],
        "not_started",
        "nothing was cancelled"
    );
    // The web app's own request goes through.
    let reply = Reply::from(
        with_cookie(None, Some("same-origin"), "application/json", "{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.ok(200)["status"], "cancelled");
    // A bearer client is no browser: no origin needed, and an empty body still works.
    let other = app.schedule(T, "alice", 7, 8).await.ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app
        .send(app.request(
            Method::POST,
            &format!("/api/v1/conferences/{other}/cancel"),
            &alice,
        ))
        .await;
    assert_eq!(reply.ok(200)["status"], "cancelled");
    // Login CSRF: another site cannot sign the browser in as someone else.
    let reply = Reply::from(
        app.client
            .post(app.url("/signin"))
            .header(ORIGIN, "https://evil.example")
            .form(&[("token", token(T, "mallory", false))])
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.problem(403, "forbidden");
}

#[tokio::test]
async fn pages_carry_the_hardening_headers_and_https_gets_a_host_only_secure_cookie() {
    let app = spawn_app().await;
    for path in ["/app", "/signin", "/api/v1/openapi.json"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("object-src 'none'"),
            "{csp}"
        );
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(headers.get("strict-transport-security").is_none());
    }
    let embedded = spawn_app_with(&[
        "--public-url",
        "https://meet.acme.example",
        "--frame-ancestors",
        "https://oa.acme.example",
    ])
    .await;
    let response = embedded
        .client
        .get(embedded.url("/app"))
        .send()
        .await
        .unwrap();
    let headers = response.headers();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'self' https://oa.acme.example"),
        "{csp}"
    );
    assert!(headers.get("x-frame-options").is_none());
    assert!(
        headers["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    let response = no_redirects()
        .post(embedded.url("/signin"))
        .header(ORIGIN, "https://meet.acme.example")
        .form(&[("token", token(T, "alice", false))])
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-meetline_token="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly") && cookie.contains("Path=/")
    );
    assert!(!cookie.contains("Domain"));
    // Over https, the plain cookie name is not accepted (a sibling subdomain could set it).
    let plain = format!("meetline_token={}", token(T, "alice", false));
    let reply = Reply::from(
        embedded
            .client
            .get(embedded.url("/api/v1/conferences/recent"))
            .header(COOKIE, plain)
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.problem(401, "unauthorized");
}

#[tokio::test]
async fn the_sign_in_link_names_the_account_and_signs_in_only_when_confirmed() {
    let app = spawn_app().await;
    app.seed(T, 0).await;
    let alice = token(T, "alice", false);
    let response = no_redirects()
        .get(app.url(&format!("/signin?token={alice}")))
        .send()
        .await
        .unwrap();
    // A GET — which any other site can make a browser send — signs nobody in.
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().get("set-cookie").is_none());
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    let page = response.text().await.unwrap();
    assert!(page.contains("<strong>ALICE</strong>"), "{page}");
    assert!(page.contains("alice · acme"), "{page}");
    assert!(page.contains(r#"<form method="post" action="/signin" id="confirm-token">"#));
    assert!(page.contains(&format!(r#"name="token" value="{alice}""#)));
    assert!(page.contains(r#"<script src="/app/signin.js""#));
    let script = app
        .client
        .get(app.url("/app/signin.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains("history.replaceState"));
    assert!(!script.contains("submit"), "the page never posts by itself");
    // Confirming (the form's post, from our own page) signs in.
    let cookie = session_cookie(&app, &alice).await;
    assert!(cookie.starts_with("meetline_token="));
    // A bad token gets the sign-in page with its error; nothing can break out of the page.
    let hostile = no_redirects()
        .get(app.url("/signin?token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"))
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status().as_u16(), 401);
    let hostile = hostile.text().await.unwrap();
    assert!(!hostile.contains("<script>alert(1)"), "{hostile}");
    // Malformed sign-in requests are problem+json, like every other error.
    let reply = Reply::from(
        app.client
            .post(app.url("/signin"))
            .header(ORIGIN, app.base.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("token=%FF%FE%ZZ&&=")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(reply.status.is_client_error(), "{}", reply.text);
    let reply = Reply::from(
        app.client
            .delete(app.url("/api/v1/conferences/recent"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.problem(405, "method_not_allowed");
}

#[tokio::test]
async fn an_authorization_header_is_never_topped_up_by_the_cookie() {
    let app = spawn_app().await;
    app.seed(T, 1).await;
    let alice = token(T, "alice", false);
    let cookie = session_cookie(&app, &alice).await;
    for value in [
        &b"Basic YWxpY2U6eA=="[..],
        b"Bearer",
        b"Bearer not-a-token",
        b"\xff\xfe",
    ] {
        let value = reqwest::header::HeaderValue::from_bytes(value).unwrap();
        let reply = Reply::from(
            app.client
                .post(app.url("/api/v1/conferences/join"))
                .header(COOKIE, cookie.clone())
                .header("authorization", value)
                .header(ORIGIN, "https://evil.example")
                .json(&json!({"number": "123456789"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        reply.problem(401, "unauthorized");
    }
}

#[tokio::test]
async fn search_text_and_names_refuse_invisible_and_control_characters() {
    let app = spawn_app().await;
    app.seed(T, 1).await;
    let alice = token(T, "alice", false);
    let reply = app.get("/api/v1/conferences?q=%00", &alice).await;
    assert_eq!(reply.problem(422, "invalid_input")["field"], "q");
    let reply = app
        .post(
            "/api/v1/conferences",
            &alice,
            json!({"mode": "quick", "subject": "invoice\u{202E}fdp.exe"}),
        )
        .await;
    assert_eq!(reply.problem(422, "invalid_input")["field"], "subject");
}

#[tokio::test]
async fn a_short_token_secret_is_refused_at_start() {
    let data = fresh_data_dir();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meetline"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("MEETLINE_JWT_SECRET", "probe-secret")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 32 bytes"));
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn tokens_that_live_too_long_or_name_an_unlisted_tenant_are_refused() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let app = spawn_app_with(&["--tenants", "acme,globex"]).await;
    let sign = |claims: Value| {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let until_2100 = sign(json!({"sub": "alice", "tenant": T, "exp": 4_102_444_800_i64}));
    app.get("/api/v1/conferences/recent", &until_2100)
        .await
        .problem(401, "unauthorized");
    let a_day = sign(json!({"sub": "alice", "tenant": T, "iat": now, "exp": now + 24 * 3600}));
    app.get("/api/v1/conferences/recent", &a_day)
        .await
        .problem(401, "unauthorized");
    app.get(
        "/api/v1/conferences/recent",
        &token("invented", "alice", false),
    )
    .await
    .problem(401, "unauthorized");
    app.get(
        "/api/v1/conferences/recent",
        &token("globex", "alice", false),
    )
    .await
    .ok(200);
    // `meetline token` refuses to mint what the server would refuse.
    let minted = std::process::Command::new(env!("CARGO_BIN_EXE_meetline"))
        .args([
            "token", "--tenant", T, "--user", "alice", "--hours", "24", "--data",
        ])
        .arg(&app.data)
        .output()
        .unwrap();
    assert!(!minted.status.success());
    assert!(String::from_utf8_lossy(&minted.stderr).contains("--hours"));
}

#[tokio::test]
async fn invented_http_methods_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    for index in 0..20 {
        let method = Method::from_bytes(format!("X{index}").as_bytes()).unwrap();
        let _ = app
            .client
            .request(method, app.url("/api/v1/conferences"))
            .send()
            .await
            .unwrap();
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains(r#"method="X1""#), "{metrics}");
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_and_the_generated_secrets_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    if on_postgres() {
        return; // The data folder holds the SQLite database; PostgreSQL keeps none there.
    }
    let data = fresh_data_dir();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (mut child, _) = start_with_secret(&data, None, &[], None);
    let mode = |name: &str| {
        std::fs::metadata(data.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for file in ["jwt-secret", "jitsi-secret", "settings-key", "meetline.db"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn the_identity_providers_tokens_sign_in_and_hs256_can_be_refused() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let idp = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/tests/fixtures/idp");
    let jwks = idp.join("jwks.json");
    let app = spawn_app_with(&[
        "--oidc-jwks",
        jwks.to_str().unwrap(),
        "--oidc-issuer",
        "https://idp.acme.example",
        "--oidc-audience",
        "meetline",
        "--reject-hs256",
    ])
    .await;
    let now = chrono::Utc::now().timestamp();
    let claims = |issuer: &str, lifetime: i64| json!({"sub": "alice", "tenant": T, "iss": issuer, "aud": "meetline", "iat": now, "exp": now + lifetime});
    let rs256 = |claims: &Value| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".to_owned());
        let key = EncodingKey::from_rsa_der(&std::fs::read(idp.join("rsa.der")).unwrap());
        encode(&header, claims, &key).unwrap()
    };
    app.get(
        "/api/v1/me",
        &rs256(&claims("https://idp.acme.example", 3600)),
    )
    .await
    .ok(200);
    for refused in [
        rs256(&claims("https://evil.example", 3600)),
        rs256(&claims("https://idp.acme.example", 13 * 3600)),
        // The embedded secret's tokens are refused when only the identity provider may sign in.
        token(T, "alice", false),
    ] {
        app.get("/api/v1/me", &refused)
            .await
            .problem(401, "unauthorized");
    }
}
