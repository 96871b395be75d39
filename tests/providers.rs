//! Lines with provider settings, and the builtin provider's Jitsi links verified as tokens.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use reqwest::Method;
use serde_json::{Value, json};

const T: &str = "acme";
const LINE_SECRET: &str = "this-line-has-its-own-jitsi-secret";

fn claims(link: &str, secret: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    let token = link.split("jwt=").nth(1).expect("a token in the link");
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["jitsi"]);
    decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map(|data| data.claims)
}

fn room(link: &str) -> &str {
    link.split('?').next().unwrap().rsplit('/').next().unwrap()
}

#[tokio::test]
async fn builtin_links_are_jitsi_tokens_signed_with_the_lines_own_secret() {
    let app = spawn_app().await;
    app.seed(T, 0).await;
    let admin = token(T, "admin", true);
    let line = app
        .post("/api/v1/lines", &admin, json!({"name": "Jitsi", "provider": "builtin",
            "settings": {"base_url": "https://meet.acme.example/", "app_id": "acme-meet", "secret": LINE_SECRET}}))
        .await;
    assert_eq!(line.ok(201)["id"], "line-1");
    assert!(
        line.body.get("settings").is_none(),
        "a create never echoes settings"
    );

    let created = app.schedule(T, "alice", 5, 6).await;
    let view = created.ok(201);
    let host_link = view["links"]["host"].as_str().unwrap();
    assert!(
        host_link.starts_with("https://meet.acme.example/ml"),
        "{host_link}"
    );
    let host =
        claims(host_link, LINE_SECRET).expect("the host link verifies with the line's secret");
    assert_eq!(host["moderator"], true);
    assert_eq!(host["context"]["user"]["moderator"], "true");
    assert_eq!(host["context"]["user"]["id"], "alice");
    assert_eq!(host["iss"], "acme-meet");
    assert_eq!(host["aud"], "jitsi");
    assert_eq!(host["room"], room(host_link));
    let end = chrono::DateTime::parse_from_rfc3339(view["end"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!(
        host["exp"].as_i64().unwrap() > end,
        "valid until after the end"
    );

    // Bob, an attendee, sees only the attendee link: the same room, a participant token for him.
    let bob_view = app
        .get(
            &format!("/api/v1/conferences/{}", view["id"].as_str().unwrap()),
            &token(T, "bob", false),
        )
        .await;
    assert!(bob_view.ok(200)["links"]["host"].is_null());
    let attendee_link = bob_view.body["links"]["attendee"].as_str().unwrap();
    assert_eq!(room(attendee_link), room(host_link));
    let attendee = claims(attendee_link, LINE_SECRET).unwrap();
    assert_eq!(attendee["moderator"], false);
    assert_eq!(attendee["context"]["user"]["moderator"], "false");
    assert_eq!(attendee["context"]["user"]["id"], "bob");
    // A wrong secret fails verification.
    assert!(claims(host_link, "not-the-secret-of-this-line").is_err());
    assert!(claims(attendee_link, "not-the-secret-of-this-line").is_err());

    // Admins see the settings without the secret.
    let lines = app.get("/api/v1/lines", &admin).await;
    let settings = &lines.ok(200)["items"][0]["settings"];
    assert_eq!(settings["app_id"], "acme-meet");
    assert_eq!(settings["secrets_set"], json!(["secret"]));
    assert!(!lines.text.contains(LINE_SECRET));

    // Rotating the secret re-signs the links.
    let rotated = "a-rotated-secret-for-this-line-0001";
    let reply = app
        .send(app.request(Method::PUT, "/api/v1/lines/line-1/settings", &admin).json(&json!({"base_url": "https://meet.acme.example", "app_id": "acme-meet", "secret": rotated})))
        .await;
    assert_eq!(reply.status.as_u16(), 204, "{}", reply.text);
    let again = app
        .get(
            &format!("/api/v1/conferences/{}", view["id"].as_str().unwrap()),
            &token(T, "alice", false),
        )
        .await;
    let link = again.ok(200)["links"]["host"].as_str().unwrap();
    assert!(claims(link, rotated).is_ok());
    assert!(claims(link, LINE_SECRET).is_err());
}

#[tokio::test]
async fn line_settings_are_validated_per_provider_and_never_stored_in_events() {
    let app = spawn_app().await;
    app.seed(T, 0).await;
    let admin = token(T, "admin", true);
    let zoom_without = app
        .post(
            "/api/v1/lines",
            &admin,
            json!({"name": "Zoom", "provider": "zoom"}),
        )
        .await;
    assert_eq!(
        zoom_without.problem(422, "invalid_input")["field"],
        "settings"
    );
    let zoom_partial = app
        .post(
            "/api/v1/lines",
            &admin,
            json!({"name": "Zoom", "provider": "zoom", "settings": {"account_id": "a"}}),
        )
        .await;
    assert_eq!(
        zoom_partial.problem(422, "invalid_input")["field"],
        "settings.client_id"
    );
    let builtin_bad = app.post("/api/v1/lines", &admin, json!({"name": "J", "provider": "builtin", "settings": {"secret": "a-secret-without-app-id"}})).await;
    assert_eq!(
        builtin_bad.problem(422, "invalid_input")["field"],
        "settings.app_id"
    );
    let zoom_secret = "zoom-client-secret-value";
    let zoom = app
        .post("/api/v1/lines", &admin, json!({"name": "Zoom", "provider": "zoom",
            "settings": {"account_id": "acc", "client_id": "cid", "client_secret": zoom_secret, "user_id": "host@acme.example"}}))
        .await;
    zoom.ok(201);
    let missing = app
        .send(
            app.request(Method::PUT, "/api/v1/lines/line-9/settings", &admin)
                .json(&json!({})),
        )
        .await;
    missing.problem(404, "not_found");
    let not_admin = app
        .send(
            app.request(
                Method::PUT,
                "/api/v1/lines/line-1/settings",
                &token(T, "alice", false),
            )
            .json(&json!({})),
        )
        .await;
    not_admin.problem(403, "forbidden");
    // No secret in any event.
    let store = app.event_store().await;
    for event in store.read_all(0, 10_000).await.unwrap() {
        assert!(!format!("{:?}", event.event).contains(zoom_secret));
    }
    let lines = app.get("/api/v1/lines", &admin).await;
    assert!(!lines.text.contains(zoom_secret));
    assert_eq!(
        lines.ok(200)["items"][0]["settings"]["secrets_set"],
        json!(["client_secret"])
    );
}
