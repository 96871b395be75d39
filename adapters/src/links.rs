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

/// `context.user`: JaaS reads `moderator: "true"`; community token plugins read `affiliation`
/// (`owner` / `member`). Both are emitted, so either kind of deployment sees the host's rights.
#[derive(Serialize)]
struct JitsiUser<'a> {
    id: &'a str,
    name: &'a str,
    moderator: &'static str,
    affiliation: &'static str,
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
pub use meetline_domain::ports::MeetingLinks as ConferenceLinks;

/// Why a line's builtin settings were refused: the name of the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid builtin line setting: {0}")]
pub struct InvalidSetting(pub String);

/// The keys a builtin line's settings may hold; `secret` is the only secret one.
pub const BUILTIN_KEYS: [&str; 4] = ["base_url", "app_id", "secret", "audience"];

impl JitsiSettings {
    /// A line's own Jitsi deployment: an https `base_url` with its own `app_id` and `secret`
    /// (never the installation's secret for a host the operator did not choose); a line with
    /// only its own `app_id` and `secret` uses the installation's deployment.
    ///
    /// # Errors
    /// `InvalidSetting` naming an unknown key or a value that does not fit.
    pub fn for_line(settings: &serde_json::Value, default: &Self) -> Result<Self, InvalidSetting> {
        let object = settings
            .as_object()
            .ok_or_else(|| InvalidSetting("settings".to_owned()))?;
        if let Some(unknown) = object
            .keys()
            .find(|key| !BUILTIN_KEYS.contains(&key.as_str()))
        {
            return Err(InvalidSetting(unknown.clone()));
        }
        let text = |key: &str, max: usize| -> Result<Option<&str>, InvalidSetting> {
            match object.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(value))
                    if !value.trim().is_empty() && value.len() <= max =>
                {
                    Ok(Some(value.trim()))
                }
                Some(_) => Err(InvalidSetting(key.to_owned())),
            }
        };
        let base_url = text("base_url", 500)?;
        // A tenant admin's deployment: https, and nothing that could break out of a link.
        if base_url.is_some_and(|url| meetline_domain::types::provider_url(url).is_err()) {
            return Err(InvalidSetting("base_url".to_owned()));
        }
        let (app_id, secret, audience) = (
            text("app_id", 100)?,
            text("secret", 500)?,
            text("audience", 100)?,
        );
        for (key, value) in [
            ("app_id", app_id),
            ("secret", secret),
            ("audience", audience),
        ] {
            if value.is_some_and(|value| value.chars().any(char::is_control)) {
                return Err(InvalidSetting(key.to_owned()));
            }
        }
        // Another deployment signs with its own key: tokens signed with the installation's
        // secret never go to a host the operator did not choose.
        if base_url.is_some() && secret.is_none() {
            return Err(InvalidSetting("secret".to_owned()));
        }
        if secret.is_some_and(|secret| secret.len() < 16) {
            return Err(InvalidSetting("secret".to_owned()));
        }
        if secret.is_some() != app_id.is_some() {
            return Err(InvalidSetting(
                if secret.is_some() { "app_id" } else { "secret" }.to_owned(),
            ));
        }
        let base_url = base_url.unwrap_or(&default.base_url);
        let mut line = match (app_id, secret) {
            (Some(app_id), Some(secret)) => Self::new(base_url, app_id, secret.as_bytes()),
            _ => Self {
                base_url: base_url.trim_end_matches('/').to_owned(),
                ..default.clone()
            },
        };
        if let Some(audience) = audience {
            audience.clone_into(&mut line.audience);
        }
        Ok(line)
    }

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
                    affiliation: if moderator { "owner" } else { "member" },
                },
            },
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.secret).expect("HS256 signing")
    }

    /// The host link (a moderator token for the host; only `with_host`) and the attendee link (a
    /// participant token for `viewer`, the person the links are shown to) of `room`.
    pub fn links(
        &self,
        room: &str,
        host: &str,
        viewer: &str,
        with_host: bool,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> ConferenceLinks {
        let host = with_host.then(|| {
            let host_token = self.token(room, (host, host), true, start, end);
            format!("{}/{room}?jwt={host_token}", self.base_url)
        });
        let attendee_token = self.token(room, (viewer, viewer), false, start, end);
        ConferenceLinks {
            host,
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
        let links = settings.links(
            "mlroom",
            "alice",
            "bob",
            true,
            start,
            start + Duration::hours(1),
        );
        let host = links.host.clone().unwrap();
        assert_ne!(host, links.attendee);
        // Not asked for (the viewer may not see it): no moderator token is signed at all.
        let without = settings.links(
            "mlroom",
            "alice",
            "bob",
            false,
            start,
            start + Duration::hours(1),
        );
        assert_eq!(without.host, None);
        assert!(without.attendee.contains("?jwt="));
        let claims = |link: &str| {
            let token = link.split("jwt=").nth(1).unwrap();
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_audience(&["jitsi"]);
            decode::<serde_json::Value>(token, &DecodingKey::from_secret(b"s3cret"), &validation)
                .unwrap()
                .claims
        };
        assert_eq!(claims(&host)["context"]["user"]["moderator"], "true");
        assert_eq!(
            claims(&links.attendee)["context"]["user"]["moderator"],
            "false"
        );
        assert_eq!(claims(&host)["room"], "mlroom");
        assert_eq!(claims(&host)["context"]["user"]["affiliation"], "owner");
        assert_eq!(claims(&links.attendee)["context"]["user"]["id"], "bob");
        assert_eq!(claims(&host)["iss"], "meetline");
        assert_eq!(claims(&host)["sub"], "*");
        assert!(host.starts_with("https://meet.example.com/mlroom?jwt="));
    }

    #[test]
    fn a_line_may_bring_its_own_deployment_and_bad_settings_are_named() {
        let default = JitsiSettings::new(
            "https://meet.example.com",
            "meetline",
            b"installation-secret",
        );
        let own = JitsiSettings::for_line(
            &serde_json::json!({"base_url": "https://jitsi.acme.cn/", "app_id": "acme", "secret": "a-long-line-secret"}),
            &default,
        )
        .unwrap();
        assert_eq!(own.base_url, "https://jitsi.acme.cn");
        assert_eq!(own.app_id, "acme");
        let own_key_only = JitsiSettings::for_line(
            &serde_json::json!({"app_id": "acme", "secret": "a-long-line-secret"}),
            &default,
        )
        .unwrap();
        assert_eq!(own_key_only.base_url, "https://meet.example.com");
        let refused =
            |value: serde_json::Value| JitsiSettings::for_line(&value, &default).unwrap_err().0;
        // Another host would get tokens signed with the installation's secret.
        assert_eq!(
            refused(serde_json::json!({"base_url": "https://other.example"})),
            "secret"
        );
        for bad in [
            "http://jitsi.acme.cn",
            "javascript:alert(1)",
            "https://evil.example/a\u{0}\u{7}\"<b>",
        ] {
            assert_eq!(
                refused(
                    serde_json::json!({"base_url": bad, "app_id": "a", "secret": "a-long-line-secret"})
                ),
                "base_url",
                "{bad:?}"
            );
        }
        assert_eq!(refused(serde_json::json!({"colour": "red"})), "colour");
        assert_eq!(
            refused(serde_json::json!({"base_url": "ftp://x"})),
            "base_url"
        );
        assert_eq!(
            refused(serde_json::json!({"secret": "a-long-line-secret"})),
            "app_id"
        );
        assert_eq!(
            refused(serde_json::json!({"app_id": "a", "secret": "short"})),
            "secret"
        );
    }
}
