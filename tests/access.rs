//! The access matrix: every endpoint × every kind of caller → the status they get, and no host
//! link or provider secret in any body, event or log line for those not entitled to it.
//!
//! Callers: anonymous; an **admin of another tenant**; a plain colleague; the conference's
//! attendee, host and creator; the tenant's admin; a meeting's convener, contact and attendee; a
//! chat's member and non-member. Writes act on a fresh conference (or line, meeting) per cell, so
//! one cell's success never changes another's answer.

mod common;

use std::fmt::Write as _;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const T: &str = "acme";
const OTHER: &str = "globex";
const LINE_SECRET: &str = "line-one-jitsi-secret-never-shown";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Anonymous,
    OtherTenantAdmin,
    Colleague,
    Attendee,
    Host,
    Creator,
    Admin,
    Convener,
    Contact,
    MeetingAttendee,
    ChatMember,
    ChatNonMember,
}

use Role::*;

/// The roles every conference-scoped and tenant-wide row is tried with.
const PEOPLE: [Role; 7] = [
    Anonymous,
    OtherTenantAdmin,
    Colleague,
    Attendee,
    Host,
    Creator,
    Admin,
];

fn mint_for(role: Role) -> Option<String> {
    let (tenant, user, admin) = match role {
        Anonymous => return None,
        // The same user id as the creator, and an admin — of another tenant.
        OtherTenantAdmin => (OTHER, "alice", true),
        Colleague => (T, "mallory", false),
        Attendee => (T, "bob", false),
        Host => (T, "carol", false),
        Creator => (T, "alice", false),
        Admin => (T, "admin", true),
        Convener => (T, "frank", false),
        Contact => (T, "grace", false),
        MeetingAttendee => (T, "heidi", false),
        ChatMember => (T, "ivan", false),
        ChatNonMember => (T, "judy", false),
    };
    Some(token(tenant, user, admin))
}

/// Whether the role may see the conference's host link.
fn entitled_to_host_link(role: Role) -> bool {
    matches!(role, Host | Creator | Admin)
}

struct Matrix {
    app: TestApp,
    /// One token per role, minted once (so the log check below looks for the very tokens sent).
    tokens: std::collections::HashMap<Role, String>,
    admin: String,
    hour: std::sync::atomic::AtomicI64,
    failures: String,
    replies: Vec<(Role, String)>,
}

impl Matrix {
    async fn call(&mut self, role: Role, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.app.client.request(method, self.app.url(path));
        if let Some(token) = self.tokens.get(&role) {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = self.app.send(request).await;
        self.replies.push((role, reply.text.clone()));
        reply
    }

    fn check(&mut self, row: &str, role: Role, reply: &Reply, expected: u16) {
        if reply.status.as_u16() != expected {
            let _ = writeln!(
                self.failures,
                "{row} as {role:?}: expected {expected}, got {} {}",
                reply.status.as_u16(),
                reply.text.chars().take(200).collect::<String>()
            );
        } else if expected >= 400
            && reply.header("content-type") != Some("application/problem+json")
        {
            let _ = writeln!(
                self.failures,
                "{row} as {role:?}: {expected} is not problem+json"
            );
        }
    }

    /// A new conference by alice with host carol and attendee bob: `quick` starts now.
    async fn conference(&self, quick: bool) -> (String, String) {
        let hour = self.hour.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let body = if quick {
            json!({"mode": "quick", "subject": "站会", "host": "carol", "attendees": ["bob"]})
        } else {
            json!({"mode": "scheduled", "subject": "周会", "start": later(hour), "duration_minutes": 60,
                   "host": "carol", "attendees": ["bob"]})
        };
        let reply = self
            .app
            .post("/api/v1/conferences", &token(T, "alice", false), body)
            .await;
        let view = reply.ok(201);
        (
            view["id"].as_str().unwrap().to_owned(),
            view["number"].as_str().unwrap().to_owned(),
        )
    }
}

/// Expected statuses in the order of [`PEOPLE`].
type Row = [u16; 7];

const READ: Row = [401, 404, 404, 200, 200, 200, 200];
const MANAGE: Row = [401, 404, 404, 403, 200, 200, 200];
const END_NOT_STARTED: Row = [401, 404, 404, 403, 409, 409, 409];
const JOIN: Row = [401, 404, 200, 200, 200, 200, 200];
const SIGNED_IN: Row = [401, 200, 200, 200, 200, 200, 200];
const ADMIN_READ: Row = [401, 200, 403, 403, 403, 403, 200];

#[tokio::test]
async fn every_endpoint_answers_every_kind_of_caller_as_it_should() {
    let (app, log) = spawn_app_logged(&["--rate-limit", "0"]).await;
    app.seed(T, 12).await;
    let admin = token(T, "admin", true);
    for user in ["frank", "grace", "heidi", "ivan", "judy"] {
        app.put(
            &format!("/api/v1/directory/users/{user}"),
            &admin,
            json!({"name": user.to_uppercase()}),
        )
        .await
        .ok(200);
    }
    app.put(
        "/api/v1/directory/chats/team",
        &admin,
        json!({"kind": "group", "name": "团队", "members": ["ivan", "frank"]}),
    )
    .await
    .ok(200);
    app.send(
        app.request(Method::PUT, "/api/v1/lines/line-1/settings", &admin)
            .json(&json!({"base_url": "https://meet.acme.example", "app_id": "acme-meet", "secret": LINE_SECRET})),
    )
    .await
    .ok(204);
    let tokens = [
        Anonymous,
        OtherTenantAdmin,
        Colleague,
        Attendee,
        Host,
        Creator,
        Admin,
        Convener,
        Contact,
        MeetingAttendee,
        ChatMember,
        ChatNonMember,
    ]
    .into_iter()
    .filter_map(|role| mint_for(role).map(|token| (role, token)))
    .collect();
    let mut m = Matrix {
        app,
        tokens,
        admin: admin.clone(),
        hour: std::sync::atomic::AtomicI64::new(3),
        failures: String::new(),
        replies: Vec::new(),
    };

    // The conference every read is tried on, and its host link (creator's view).
    let (shared, shared_number) = m.conference(false).await;
    let creator_view = m
        .call(
            Creator,
            Method::GET,
            &format!("/api/v1/conferences/{shared}"),
            None,
        )
        .await;
    let host_link = creator_view.body["links"]["host"]
        .as_str()
        .expect("the creator sees the host link")
        .to_owned();
    assert_eq!(creator_view.body["line"]["id"], "line-1");
    let as_of = later(1);

    for (index, role) in PEOPLE.into_iter().enumerate() {
        for (row, path) in [
            ("view", format!("/api/v1/conferences/{shared}")),
            (
                "view as_of",
                format!(
                    "/api/v1/conferences/{shared}?as_of={}",
                    as_of.replace('+', "%2B")
                ),
            ),
            ("history", format!("/api/v1/conferences/{shared}/history")),
            (
                "calendar",
                format!("/api/v1/conferences/{shared}/calendar.ics"),
            ),
        ] {
            let reply = m.call(role, Method::GET, &path, None).await;
            m.check(row, role, &reply, READ[index]);
            if row == "view" && reply.status.as_u16() == 200 {
                let shown = reply.body["links"]["host"].as_str();
                if entitled_to_host_link(role) != shown.is_some() {
                    let _ = writeln!(m.failures, "view as {role:?}: host link {shown:?}");
                }
            }
        }

        // Writes, each on a fresh conference.
        let (id, _) = m.conference(false).await;
        let reply = m
            .call(
                role,
                Method::PATCH,
                &format!("/api/v1/conferences/{id}"),
                Some(json!({"subject": "改"})),
            )
            .await;
        m.check("edit", role, &reply, MANAGE[index]);
        let (id, _) = m.conference(false).await;
        let reply = m
            .call(
                role,
                Method::POST,
                &format!("/api/v1/conferences/{id}/invitations"),
                Some(json!({"attendees": ["dave"]})),
            )
            .await;
        m.check("invite", role, &reply, MANAGE[index]);
        let (id, _) = m.conference(false).await;
        let reply = m
            .call(
                role,
                Method::POST,
                &format!("/api/v1/conferences/{id}/cancel"),
                Some(json!({})),
            )
            .await;
        m.check("cancel", role, &reply, MANAGE[index]);
        let (id, _) = m.conference(false).await;
        let reply = m
            .call(
                role,
                Method::POST,
                &format!("/api/v1/conferences/{id}/end"),
                None,
            )
            .await;
        m.check("end (not started)", role, &reply, END_NOT_STARTED[index]);
        let (id, _) = m.conference(true).await;
        let reply = m
            .call(
                role,
                Method::POST,
                &format!("/api/v1/conferences/{id}/end"),
                None,
            )
            .await;
        m.check("end (in progress)", role, &reply, MANAGE[index]);
        if reply.status.as_u16() != 200 {
            // Free its line for the next cells.
            m.app
                .post(
                    &format!("/api/v1/conferences/{id}/end"),
                    &m.admin,
                    json!({}),
                )
                .await
                .ok(200);
        }
        let (_, number) = m.conference(false).await;
        let reply = m
            .call(
                role,
                Method::POST,
                "/api/v1/conferences/join",
                Some(json!({"number": number})),
            )
            .await;
        m.check("join", role, &reply, JOIN[index]);

        // Listings: everyone signed in gets one, with the shared conference only if they take
        // part in it.
        let window = format!(
            "/api/v1/conferences?from={}&to={}",
            later(3).replace('+', "%2B"),
            later(4).replace('+', "%2B")
        );
        for path in ["/api/v1/conferences/recent", window.as_str()] {
            let reply = m.call(role, Method::GET, path, None).await;
            m.check(path, role, &reply, SIGNED_IN[index]);
            if reply.status.as_u16() == 200 {
                let listed = reply.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|item| item["id"] == shared.as_str());
                if listed != matches!(role, Attendee | Host | Creator) {
                    let _ = writeln!(m.failures, "{path} as {role:?}: listed {listed}");
                }
            }
        }
        for path in [
            "/api/v1/me",
            "/api/v1/my/meetings",
            "/api/v1/my/chats",
            "/api/v1/directory/users",
        ] {
            let reply = m.call(role, Method::GET, path, None).await;
            m.check(path, role, &reply, SIGNED_IN[index]);
            if role == OtherTenantAdmin && reply.text.contains("MALLORY") {
                let _ = writeln!(
                    m.failures,
                    "{path} as {role:?} shows another tenant's directory"
                );
            }
        }

        // Tenant administration: the other tenant's admin acts on their own (empty) tenant.
        for path in [
            "/api/v1/lines",
            "/api/v1/ops/summary",
            "/api/v1/ops/timeline",
        ] {
            let reply = m.call(role, Method::GET, path, None).await;
            m.check(path, role, &reply, ADMIN_READ[index]);
            if role == OtherTenantAdmin
                && (reply.text.contains("Line 1") || reply.text.contains(&shared))
            {
                let _ = writeln!(m.failures, "{path} as {role:?} shows another tenant's data");
            }
        }
        let reply = m
            .call(
                role,
                Method::POST,
                "/api/v1/lines",
                Some(json!({"name": "Extra", "provider": "builtin"})),
            )
            .await;
        m.check(
            "add line",
            role,
            &reply,
            [401, 201, 403, 403, 403, 403, 201][index],
        );
        let reply = m
            .call(
                role,
                Method::PATCH,
                "/api/v1/lines/line-2",
                Some(json!({"name": "Line 2"})),
            )
            .await;
        m.check(
            "rename line",
            role,
            &reply,
            [401, 404, 403, 403, 403, 403, 200][index],
        );
        let reply = m
            .call(role, Method::PUT, "/api/v1/lines/line-12/settings",
                Some(json!({"base_url": "https://meet.acme.example", "app_id": "acme-meet", "secret": LINE_SECRET})))
            .await;
        m.check(
            "line settings",
            role,
            &reply,
            [401, 404, 403, 403, 403, 403, 204][index],
        );
        let spare = m
            .app
            .post(
                "/api/v1/lines",
                &admin,
                json!({"name": format!("Spare {index}"), "provider": "builtin"}),
            )
            .await;
        let spare = spare.ok(201)["id"].as_str().unwrap().to_owned();
        let reply = m
            .call(
                role,
                Method::DELETE,
                &format!("/api/v1/lines/{spare}"),
                None,
            )
            .await;
        m.check(
            "remove line",
            role,
            &reply,
            [401, 404, 403, 403, 403, 403, 204][index],
        );
        let reply = m
            .call(
                role,
                Method::PUT,
                &format!("/api/v1/directory/users/new-{index}"),
                Some(json!({"name": "New"})),
            )
            .await;
        m.check(
            "directory user",
            role,
            &reply,
            [401, 200, 403, 403, 403, 403, 200][index],
        );
        let reply = m
            .call(
                role,
                Method::PUT,
                &format!("/api/v1/directory/chats/chat-{index}"),
                Some(json!({"kind": "group", "name": "群", "members": ["alice", "bob"]})),
            )
            .await;
        // The other tenant has no alice or bob: its own directory refuses them.
        m.check(
            "directory chat",
            role,
            &reply,
            [401, 422, 403, 403, 403, 403, 200][index],
        );
        let reply = m
            .call(role, Method::PUT, &format!("/api/v1/directory/meetings/meeting-{index}"),
                Some(json!({"subject": "会", "start": later(200), "end": later(201), "creator": "alice",
                            "convener": "frank", "contact": "grace", "attendees": ["heidi"]})))
            .await;
        m.check(
            "directory meeting",
            role,
            &reply,
            [401, 422, 403, 403, 403, 403, 200][index],
        );
    }

    // A meeting's video conference: its creator, convener and contact only (each cell on a
    // meeting of its own, as a launch makes the next one `conference_exists`).
    for (index, (role, expected)) in [
        (Anonymous, 401),
        (OtherTenantAdmin, 404),
        (Colleague, 403),
        (MeetingAttendee, 403),
        (Admin, 403),
        (Creator, 201),
        (Convener, 201),
        (Contact, 201),
    ]
    .into_iter()
    .enumerate()
    {
        let meeting = format!("launch-{index}");
        m.app
            .put(
                &format!("/api/v1/directory/meetings/{meeting}"),
                &admin,
                json!({"subject": "评审", "start": later(300 + index as i64), "end": later(301 + index as i64),
                       "creator": "alice", "convener": "frank", "contact": "grace", "attendees": ["heidi"]}),
            )
            .await
            .ok(200);
        let reply = m
            .call(
                role,
                Method::POST,
                &format!("/api/v1/meetings/{meeting}/conference"),
                Some(json!({})),
            )
            .await;
        m.check("launch from meeting", role, &reply, expected);
    }
    // A chat's video conference: members only; others may not learn the chat exists.
    for (role, expected) in [
        (Anonymous, 401),
        (OtherTenantAdmin, 404),
        (ChatNonMember, 404),
        (Admin, 404),
        (ChatMember, 201),
    ] {
        let reply = m
            .call(
                role,
                Method::POST,
                "/api/v1/chats/team/conference",
                Some(json!({})),
            )
            .await;
        m.check("launch from chat", role, &reply, expected);
    }
    // The provider webhook takes no bearer token: unsigned is 401 for anyone.
    for role in [Anonymous, Admin] {
        let reply = m
            .call(
                role,
                Method::POST,
                "/api/v1/providers/zoom/webhook",
                Some(json!({"event": "meeting.started"})),
            )
            .await;
        m.check("webhook", role, &reply, 401);
    }

    // No host link for those not entitled, and no provider secret for anyone — in any body…
    for (role, text) in &m.replies {
        if text.contains(LINE_SECRET) {
            let _ = writeln!(m.failures, "a reply to {role:?} carries the line's secret");
        }
        if !entitled_to_host_link(*role) && text.contains(&host_link) {
            let _ = writeln!(m.failures, "a reply to {role:?} carries the host link");
        }
    }
    // …in any event…
    let store = m.app.event_store().await;
    let events = serde_json::to_string(
        &store
            .read_all(0, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|recorded| serde_json::to_value(&recorded.event).unwrap())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(
        !events.contains(LINE_SECRET),
        "an event carries the line's secret"
    );
    assert!(!events.contains(&host_link), "an event carries a host link");
    assert!(events.contains(&shared_number));
    // …or in the server's log (at debug level), which also never shows a bearer token — not
    // even one sent in a sign-in link's query.
    let creator_token = m.tokens[&Creator].clone();
    m.app
        .client
        .get(m.app.url(&format!("/signin?token={creator_token}")))
        .send()
        .await
        .unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.is_empty());
    assert!(
        !log.contains(LINE_SECRET),
        "the log shows the line's secret"
    );
    assert!(!log.contains(&host_link), "the log shows a host link");
    for (role, token) in &m.tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "the log shows {role:?}'s token");
    }

    assert!(m.failures.is_empty(), "access matrix:\n{}", m.failures);
}
