//! Bearer tokens. Two kinds are accepted, each checked against one [`TokenPolicy`]:
//!
//! - **HS256** with `sub` (user), `tenant`, `exp` and optional `roles: ["admin"]`, signed with the
//!   embedded default's secret (`MEETLINE_JWT_SECRET`, or one generated once and kept in the
//!   data folder), so `meetline token` and the server agree without configuration.
//! - **The OA identity provider's** RS256/RS384/RS512/PS256/ES256/ES384/EdDSA tokens, verified
//!   against the keys of a JWKS file or URL ([`Enterprise`]) and required to carry the
//!   configured `iss` and `aud`. Their `sub`, `tenant` and `roles` claims mean the same.
//!
//! Whatever signed it, a token must expire: one that lives longer than the policy's maximum
//! (12 h by default; `exp − iat`, and `exp − now`) is refused, and when the operator lists the
//! tenants that exist, a token naming another tenant is refused too.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{Duration, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use meetline_domain::types::{Actor, TenantId, UserId};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

pub use meetline_domain::types::Principal;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid token")]
    Invalid,
    #[error("cannot read or write the token secret: {0}")]
    Secret(#[from] std::io::Error),
    #[error("cannot load the identity provider's keys: {0}")]
    Keys(String),
}

/// Seconds of clock difference tolerated between the token's issuer and this server.
const LEEWAY_SECONDS: u64 = 30;

/// What every accepted token must satisfy, whoever signed it.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// The longest a token may live.
    pub max_lifetime: Duration,
    /// When set, the only tenants there are: a token naming another is refused.
    pub tenants: Option<HashSet<TenantId>>,
    /// Whether HS256 tokens signed with the shared secret are accepted (off: only the identity
    /// provider's tokens).
    pub accept_hs256: bool,
    /// When set, HS256 tokens must carry this `iss` (and `meetline token` writes it).
    pub hs256_issuer: Option<String>,
    /// When set, HS256 tokens must carry this `aud` (and `meetline token` writes it).
    pub hs256_audience: Option<String>,
}

/// Twelve hours: a working day, and the web app's session.
pub const DEFAULT_MAX_LIFETIME_HOURS: i64 = 12;

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            max_lifetime: Duration::hours(DEFAULT_MAX_LIFETIME_HOURS),
            tenants: None,
            accept_hs256: true,
            hs256_issuer: None,
            hs256_audience: None,
        }
    }
}

/// Where the identity provider's keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// `https://…` (or `http://` on a loopback host).
    Url(String),
}

impl JwksSource {
    /// A URL for `http(s)://…`, a file path otherwise.
    ///
    /// # Errors
    /// `Keys` for a URL that is not https (or loopback http).
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        if text.starts_with("http://") || text.starts_with("https://") {
            crate::net::operator_url(text)
                .map(Self::Url)
                .map_err(|url| AuthError::Keys(format!("the JWKS URL must be https: {url}")))
        } else {
            Ok(Self::File(PathBuf::from(text)))
        }
    }
}

struct EnterpriseKey {
    kid: Option<String>,
    algorithm: Option<Algorithm>,
    key: DecodingKey,
}

/// The OA identity provider: its keys (a JWKS), and the issuer and audience its tokens carry.
/// The keys are re-read every [`Enterprise::REFRESH`] and, at most every
/// [`Enterprise::MIN_REFRESH`], when a token names a key id not seen yet (a key rotation).
pub struct Enterprise {
    source: JwksSource,
    issuer: String,
    audience: String,
    keys: RwLock<Vec<EnterpriseKey>>,
    wanted: Notify,
}

impl std::fmt::Debug for Enterprise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enterprise")
            .field("source", &self.source)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// The asymmetric algorithms identity providers sign with; never HS* (a public key must not
/// become an HMAC secret).
const ENTERPRISE_ALGORITHMS: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Enterprise {
    pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(600);
    pub const MIN_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

    /// Loads the keys once.
    ///
    /// # Errors
    /// `Keys` when the JWKS cannot be read, parsed, or holds no usable signing key.
    pub async fn load(
        source: JwksSource,
        issuer: &str,
        audience: &str,
    ) -> Result<Arc<Self>, AuthError> {
        if issuer.trim().is_empty() || audience.trim().is_empty() {
            return Err(AuthError::Keys(
                "an identity provider needs both an issuer and an audience".to_owned(),
            ));
        }
        let enterprise = Arc::new(Self {
            source,
            issuer: issuer.trim().to_owned(),
            audience: audience.trim().to_owned(),
            keys: RwLock::new(Vec::new()),
            wanted: Notify::new(),
        });
        enterprise.refresh().await?;
        Ok(enterprise)
    }

    /// Re-reads the JWKS and replaces the keys (the old ones stay on failure).
    ///
    /// # Errors
    /// `Keys` when it cannot be read or parsed, or holds no usable key.
    pub async fn refresh(&self) -> Result<usize, AuthError> {
        let text = match &self.source {
            JwksSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|error| AuthError::Keys(format!("{}: {error}", path.display())))?,
            JwksSource::Url(url) => {
                let response = crate::net::http_client()
                    .get(url)
                    .send()
                    .await
                    .map_err(|error| AuthError::Keys(error.without_url().to_string()))?;
                if !response.status().is_success() {
                    return Err(AuthError::Keys(format!("HTTP {}", response.status())));
                }
                response
                    .text()
                    .await
                    .map_err(|error| AuthError::Keys(error.without_url().to_string()))?
            }
        };
        let keys = parse_jwks(&text)?;
        let count = keys.len();
        *self.keys.write().expect("keys lock") = keys;
        Ok(count)
    }

    /// Keeps the keys fresh until the process ends.
    pub async fn run_refresh(self: Arc<Self>) {
        let mut last = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(Self::REFRESH) => {},
                () = self.wanted.notified() => {
                    let since = last.elapsed();
                    if since < Self::MIN_REFRESH {
                        tokio::time::sleep(Self::MIN_REFRESH - since).await;
                    }
                },
            }
            last = Instant::now();
            match self.refresh().await {
                Ok(count) => tracing::debug!(count, "identity provider keys refreshed"),
                Err(error) => {
                    tracing::warn!(%error, "could not refresh the identity provider keys")
                }
            }
        }
    }

    fn verify(&self, token: &str, header: &Header) -> Result<Claims, AuthError> {
        let keys = self.keys.read().expect("keys lock");
        let candidates: Vec<&EnterpriseKey> = keys
            .iter()
            .filter(|key| header.kid.is_none() || key.kid == header.kid)
            .filter(|key| {
                key.algorithm
                    .is_none_or(|algorithm| algorithm == header.alg)
            })
            .collect();
        if candidates.is_empty() {
            if header.kid.is_some() {
                // Perhaps the provider rotated its keys: look again (rate-limited).
                self.wanted.notify_one();
            }
            return Err(AuthError::Invalid);
        }
        let mut validation = Validation::new(header.alg);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.leeway = LEEWAY_SECONDS;
        candidates
            .iter()
            .find_map(|key| decode::<Claims>(token, &key.key, &validation).ok())
            .map(|data| data.claims)
            .ok_or(AuthError::Invalid)
    }
}

/// The signing keys of a JWKS document: RSA, EC and OKP keys not meant for encryption.
fn parse_jwks(text: &str) -> Result<Vec<EnterpriseKey>, AuthError> {
    let set: JwkSet =
        serde_json::from_str(text).map_err(|error| AuthError::Keys(format!("JWKS: {error}")))?;
    let keys: Vec<EnterpriseKey> = set
        .keys
        .iter()
        .filter(|jwk| usable(jwk))
        .filter_map(|jwk| {
            let algorithm = match &jwk.common.key_algorithm {
                Some(algorithm) => Some(
                    Algorithm::from_str(&algorithm.to_string())
                        .ok()
                        .filter(|algorithm| ENTERPRISE_ALGORITHMS.contains(algorithm))?,
                ),
                None => None,
            };
            Some(EnterpriseKey {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key: DecodingKey::from_jwk(jwk).ok()?,
            })
        })
        .collect();
    if keys.is_empty() {
        return Err(AuthError::Keys(
            "the JWKS holds no usable signing key".to_owned(),
        ));
    }
    Ok(keys)
}

fn usable(jwk: &Jwk) -> bool {
    !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
        && !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    policy: TokenPolicy,
    enterprise: Option<Arc<Enterprise>>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

pub const SECRET_FILE: &str = "jwt-secret";

impl meetline_domain::ports::TokenVerifier for JwtKeys {
    fn verify(&self, token: &str) -> Result<Principal, meetline_domain::ports::InvalidToken> {
        JwtKeys::verify(self, token).map_err(|_| meetline_domain::ports::InvalidToken)
    }
}

impl JwtKeys {
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            policy: TokenPolicy::default(),
            enterprise: None,
        }
    }

    #[must_use]
    pub fn with_policy(mut self, policy: TokenPolicy) -> Self {
        self.policy = policy;
        self
    }

    #[must_use]
    pub fn with_enterprise(mut self, enterprise: Arc<Enterprise>) -> Self {
        self.enterprise = Some(enterprise);
        self
    }

    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// `env_secret` when given, else the secret file in `data_dir`, created (mode 0600) if absent.
    ///
    /// # Errors
    /// When the data folder cannot be read or written.
    pub fn load_or_create(data_dir: &Path, env_secret: Option<&str>) -> Result<Self, AuthError> {
        if let Some(secret) = env_secret.filter(|secret| !secret.is_empty()) {
            return Ok(Self::from_secret(secret.as_bytes()));
        }
        let secret = load_or_create_secret(&data_dir.join(SECRET_FILE))?;
        Ok(Self::from_secret(secret.as_bytes()))
    }

    /// An HS256 token (with `iat`, and the policy's `iss`/`aud` when it sets them).
    pub fn mint(
        &self,
        tenant: &TenantId,
        user: &UserId,
        admin: bool,
        lifetime: Duration,
    ) -> String {
        let now = Utc::now();
        let mut claims = serde_json::to_value(Claims {
            sub: user.to_string(),
            tenant: tenant.to_string(),
            exp: (now + lifetime).timestamp(),
            iat: Some(now.timestamp()),
            roles: if admin {
                vec!["admin".to_owned()]
            } else {
                vec![]
            },
        })
        .expect("claims serialize");
        if let Some(issuer) = &self.policy.hs256_issuer {
            claims["iss"] = issuer.clone().into();
        }
        if let Some(audience) = &self.policy.hs256_audience {
            claims["aud"] = audience.clone().into();
        }
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing")
    }

    /// # Errors
    /// `AuthError::Invalid` for a bad signature, an expired token, one that lives too long, a
    /// missing issuer or audience, a tenant the operator did not list, or ids that do not parse.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Invalid)?;
        let claims = match header.alg {
            Algorithm::HS256 if self.policy.accept_hs256 => self.verify_hs256(token)?,
            algorithm if ENTERPRISE_ALGORITHMS.contains(&algorithm) => self
                .enterprise
                .as_ref()
                .ok_or(AuthError::Invalid)?
                .verify(token, &header)?,
            _ => return Err(AuthError::Invalid),
        };
        self.accept(&claims)
    }

    fn verify_hs256(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.policy.hs256_issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.policy.hs256_audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation.leeway = LEEWAY_SECONDS;
        decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| AuthError::Invalid)
    }

    /// The policy's checks common to every kind of token, then the principal.
    fn accept(&self, claims: &Claims) -> Result<Principal, AuthError> {
        let longest = self.policy.max_lifetime.num_seconds() + LEEWAY_SECONDS as i64;
        let now = Utc::now().timestamp();
        if claims.exp.saturating_sub(now) > longest {
            return Err(AuthError::Invalid);
        }
        if let Some(issued) = claims.iat
            && (claims.exp.saturating_sub(issued) > longest || issued > now + LEEWAY_SECONDS as i64)
        {
            return Err(AuthError::Invalid);
        }
        let tenant = TenantId::parse(&claims.tenant).map_err(|_| AuthError::Invalid)?;
        if let Some(tenants) = &self.policy.tenants
            && !tenants.contains(&tenant)
        {
            return Err(AuthError::Invalid);
        }
        let user = UserId::parse(&claims.sub).map_err(|_| AuthError::Invalid)?;
        let admin = claims.roles.iter().any(|role| role == "admin");
        Ok(Principal {
            tenant,
            actor: Actor { user, admin },
        })
    }
}

/// The secret kept in the file at `path`; 32 random bytes (hex) written there first if absent,
/// readable by the owner only (and its folder, when created here, by the owner only).
///
/// # Errors
/// When the file cannot be read or created.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing.trim().to_owned());
    }
    if let Some(folder) = path.parent() {
        private_folder(folder)?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = meetline_domain::types::hex(&bytes);
    match write_private(path, &secret) {
        Ok(()) => Ok(secret),
        // Another process created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().to_owned())
        }
        Err(error) => Err(error),
    }
}

/// Creates `folder` (and its parents) if absent, and makes it readable by its owner only: it
/// holds the database and the secrets.
///
/// # Errors
/// When it cannot be created or its mode changed.
pub fn private_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    #[test]
    fn a_minted_token_verifies_and_a_foreign_one_does_not() {
        let keys = JwtKeys::from_secret(b"one");
        let token = keys.mint(&tenant("t1"), &user("alice"), true, Duration::hours(1));
        let principal = keys.verify(&token).unwrap();
        assert_eq!(principal.actor, Actor::admin("alice"));
        assert!(JwtKeys::from_secret(b"two").verify(&token).is_err());
        let expired = keys.mint(&tenant("t1"), &user("alice"), false, Duration::hours(-2));
        assert!(keys.verify(&expired).is_err());
    }

    fn hs256(secret: &[u8], claims: &serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn a_token_living_longer_than_the_policy_allows_is_refused() {
        let keys = JwtKeys::from_secret(b"s");
        let now = Utc::now().timestamp();
        let until_2100 = hs256(
            b"s",
            &serde_json::json!({"sub": "alice", "tenant": "t", "exp": 4_102_444_800_i64}),
        );
        assert!(keys.verify(&until_2100).is_err());
        let thirteen_hours = hs256(
            b"s",
            &serde_json::json!({"sub": "alice", "tenant": "t", "exp": now + 13 * 3600}),
        );
        assert!(keys.verify(&thirteen_hours).is_err());
        // Issued long ago for a long time: refused even if it expires soon.
        let old_and_long = hs256(
            b"s",
            &serde_json::json!({"sub": "alice", "tenant": "t", "iat": now - 30 * 3600, "exp": now + 60}),
        );
        assert!(keys.verify(&old_and_long).is_err());
        let eleven_hours = hs256(
            b"s",
            &serde_json::json!({"sub": "alice", "tenant": "t", "iat": now, "exp": now + 11 * 3600}),
        );
        assert!(keys.verify(&eleven_hours).is_ok());
        let longer_policy = JwtKeys::from_secret(b"s").with_policy(TokenPolicy {
            max_lifetime: Duration::hours(24),
            ..TokenPolicy::default()
        });
        assert!(longer_policy.verify(&thirteen_hours).is_ok());
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let keys = JwtKeys::from_secret(b"s");
        let now = Utc::now().timestamp();
        let later = hs256(
            b"s",
            &serde_json::json!({"sub": "alice", "tenant": "t", "nbf": now + 3000, "exp": now + 3600}),
        );
        assert!(keys.verify(&later).is_err());
    }

    #[test]
    fn tenants_outside_the_configured_set_are_refused() {
        let keys = JwtKeys::from_secret(b"s").with_policy(TokenPolicy {
            tenants: Some(HashSet::from([tenant("acme")])),
            ..TokenPolicy::default()
        });
        assert!(
            keys.verify(&keys.mint(&tenant("acme"), &user("a"), false, Duration::hours(1)))
                .is_ok()
        );
        assert!(
            keys.verify(&keys.mint(&tenant("invented"), &user("a"), false, Duration::hours(1)))
                .is_err()
        );
    }

    #[test]
    fn hs256_issuer_and_audience_are_required_when_configured_and_hs256_can_be_turned_off() {
        let policy = TokenPolicy {
            hs256_issuer: Some("meetline".to_owned()),
            hs256_audience: Some("acme-oa".to_owned()),
            ..TokenPolicy::default()
        };
        let keys = JwtKeys::from_secret(b"s").with_policy(policy.clone());
        let minted = keys.mint(&tenant("t"), &user("a"), false, Duration::hours(1));
        assert!(keys.verify(&minted).is_ok());
        let bare =
            JwtKeys::from_secret(b"s").mint(&tenant("t"), &user("a"), false, Duration::hours(1));
        assert!(keys.verify(&bare).is_err());
        let off = JwtKeys::from_secret(b"s").with_policy(TokenPolicy {
            accept_hs256: false,
            ..TokenPolicy::default()
        });
        assert!(off.verify(&bare).is_err());
    }

    #[test]
    fn an_enterprise_token_without_an_identity_provider_or_with_alg_none_is_refused() {
        let keys = JwtKeys::from_secret(b"s");
        // alg "none" and RS256 with no JWKS configured.
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwidGVuYW50IjoidCIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(keys.verify(none).is_err());
        let rs =
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIiwidGVuYW50IjoidCIsImV4cCI6OTk5OTk5OTk5OX0.c2ln";
        assert!(keys.verify(rs).is_err());
    }

    #[test]
    fn a_jwks_with_only_symmetric_or_encryption_keys_is_refused() {
        let oct = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x"}]}"#;
        assert!(parse_jwks(oct).is_err());
        assert!(parse_jwks("not json").is_err());
    }

    #[test]
    fn the_generated_secret_is_kept_in_a_private_data_folder() {
        let dir = std::env::temp_dir().join(format!("meetline-auth-{}", uuid::Uuid::new_v4()));
        let first = JwtKeys::load_or_create(&dir, None).unwrap();
        let token = first.mint(&tenant("t"), &user("u"), false, Duration::hours(1));
        let second = JwtKeys::load_or_create(&dir, None).unwrap();
        assert!(second.verify(&token).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(SECRET_FILE)), 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
