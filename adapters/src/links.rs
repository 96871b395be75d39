//! Links for the `builtin` provider: rooms on a self-hosted Jitsi Meet deployment, entered with
//! a JWT (lib-jitsi-meet `doc/tokens.md`): `iss` app id, `aud`, `sub`, `room`, `exp`, and
//! `context.user`; the host's token carries the moderator flag.
//!
//! Links are rendered when a conference is shown, not stored in events: a signed host link is a
//! secret and expires, while the room name (random) is the lasting fact. See
//! `docs/decisions/0003-links-rendered-at-read-time.md`.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;

/// Settings of the builtin provider (from configuration, never from events).
#[derive(Clone)]
pub struct JitsiSettings {
    pub base_url: String,
    pub app_id: String,
    pub audience: String,
    secret: EncodingKey,
}

impl std::fmt::Debug for JitsiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitsiSettings")
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// How long after the conference's end a link still opens the room.
pub const LINK_GRACE: Duration = Duration::hours(2);

#[derive(Serialize)]
struct JitsiUser<'a> {
    id: &'a str,
    name: &'a str,
    moderator: &'static str,
}

#[derive(Serialize)]
struct JitsiContext<'a> {
    user: JitsiUser<'a>,
}

#[derive(Serialize)]
struct JitsiClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    room: &'a str,
    nbf: i64,
    exp: i64,
    moderator: bool,
    context: JitsiContext<'a>,
}

/// The two links of a conference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceLinks {
    pub host: String,
    pub attendee: String,
}

impl JitsiSettings {
    pub fn new(base_url: &str, app_id: &str, secret: &[u8]) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            audience: "jitsi".to_owned(),
            secret: EncodingKey::from_secret(secret),
        }
    }

    fn token(
        &self,
        room: &str,
        user: (&str, &str),
        moderator: bool,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> String {
        let claims = JitsiClaims {
            iss: &self.app_id,
            aud: &self.audience,
            sub: "*",
            room,
            nbf: (start - Duration::minutes(15)).timestamp(),
            exp: (end + LINK_GRACE).timestamp(),
            moderator,
            context: JitsiContext {
                user: JitsiUser {
                    id: user.0,
                    name: user.1,
                    moderator: if moderator { "true" } else { "false" },
                },
            },
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.secret).expect("HS256 signing")
    }

    /// The host link (moderator token) and the attendee link (participant token) of `room`.
    pub fn links(
        &self,
        room: &str,
        host: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> ConferenceLinks {
        let host_token = self.token(room, (host, host), true, start, end);
        let attendee_token = self.token(room, ("attendee", "attendee"), false, start, end);
        ConferenceLinks {
            host: format!("{}/{room}?jwt={host_token}", self.base_url),
            attendee: format!("{}/{room}?jwt={attendee_token}", self.base_url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    #[test]
    fn host_and_attendee_links_differ_and_only_the_host_is_moderator() {
        let settings = JitsiSettings::new("https://meet.example.com/", "meetline", b"s3cret");
        let start = Utc::now();
        let links = settings.links("mlroom", "alice", start, start + Duration::hours(1));
        assert_ne!(links.host, links.attendee);
        let claims = |link: &str| {
            let token = link.split("jwt=").nth(1).unwrap();
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_audience(&["jitsi"]);
            decode::<serde_json::Value>(token, &DecodingKey::from_secret(b"s3cret"), &validation)
                .unwrap()
                .claims
        };
        assert_eq!(claims(&links.host)["context"]["user"]["moderator"], "true");
        assert_eq!(
            claims(&links.attendee)["context"]["user"]["moderator"],
            "false"
        );
        assert_eq!(claims(&links.host)["room"], "mlroom");
        assert!(
            links
                .host
                .starts_with("https://meet.example.com/mlroom?jwt=")
        );
    }
}
