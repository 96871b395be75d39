//! Bearer tokens: HS256 JWTs with `sub` (user), `tenant`, `exp` and optional `roles: ["admin"]`.
//! The secret is `MEETLINE_JWT_SECRET` when set, otherwise one generated once and kept in the
//! data folder, so `meetline token` and the server agree without configuration.

use std::path::Path;

use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use meetline_domain::types::{Actor, TenantId, UserId};
use rand::RngCore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// Who a valid token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub actor: Actor,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid token")]
    Invalid,
    #[error("cannot read or write the token secret: {0}")]
    Secret(#[from] std::io::Error),
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

pub const SECRET_FILE: &str = "jwt-secret";

impl JwtKeys {
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
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

    pub fn mint(
        &self,
        tenant: &TenantId,
        user: &UserId,
        admin: bool,
        lifetime: Duration,
    ) -> String {
        let claims = Claims {
            sub: user.to_string(),
            tenant: tenant.to_string(),
            exp: (Utc::now() + lifetime).timestamp(),
            roles: if admin {
                vec!["admin".to_owned()]
            } else {
                vec![]
            },
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing")
    }

    /// # Errors
    /// `AuthError::Invalid` for a bad signature, an expired token or ids that do not parse.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        let claims = decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| AuthError::Invalid)?
            .claims;
        let tenant = TenantId::parse(&claims.tenant).map_err(|_| AuthError::Invalid)?;
        let user = UserId::parse(&claims.sub).map_err(|_| AuthError::Invalid)?;
        let admin = claims.roles.iter().any(|role| role == "admin");
        Ok(Principal {
            tenant,
            actor: Actor { user, admin },
        })
    }
}

/// The secret kept in the file at `path`; 32 random bytes (hex) written there first if absent,
/// readable by the owner only.
///
/// # Errors
/// When the file cannot be read or created.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing.trim().to_owned());
    }
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match write_private(path, &secret) {
        Ok(()) => Ok(secret),
        // Another process created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().to_owned())
        }
        Err(error) => Err(error),
    }
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

    #[test]
    fn a_minted_token_verifies_and_a_foreign_one_does_not() {
        let keys = JwtKeys::from_secret(b"one");
        let token = keys.mint(
            &TenantId::parse("t1").unwrap(),
            &UserId::parse("alice").unwrap(),
            true,
            Duration::hours(1),
        );
        let principal = keys.verify(&token).unwrap();
        assert_eq!(principal.actor, Actor::admin("alice"));
        assert!(JwtKeys::from_secret(b"two").verify(&token).is_err());
        let expired = keys.mint(
            &TenantId::parse("t1").unwrap(),
            &UserId::parse("alice").unwrap(),
            false,
            Duration::hours(-2),
        );
        assert!(keys.verify(&expired).is_err());
    }

    #[test]
    fn the_generated_secret_is_kept_in_the_data_folder() {
        let dir = std::env::temp_dir().join(format!("meetline-auth-{}", uuid::Uuid::new_v4()));
        let first = JwtKeys::load_or_create(&dir, None).unwrap();
        let token = first.mint(
            &TenantId::parse("t").unwrap(),
            &UserId::parse("u").unwrap(),
            false,
            Duration::hours(1),
        );
        let second = JwtKeys::load_or_create(&dir, None).unwrap();
        assert!(second.verify(&token).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
