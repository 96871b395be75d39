//! Line settings — a provider account's configuration (Jitsi base URL and signing secret, Zoom
//! credentials) — stored **apart from the events and encrypted at rest** (XChaCha20-Poly1305, the
//! tenant and line bound in as associated data so a ciphertext cannot be moved to another line).
//! The key comes from `MEETLINE_SETTINGS_KEY`, or a generated secret kept like the others.
//! Nothing here is ever returned by an API as stored.

use std::collections::HashMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use meetline_domain::ports::StoreError;
use meetline_domain::types::{LineId, TenantId, hex, unhex};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{Database, unavailable};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS line_settings (
    tenant TEXT NOT NULL, line_id TEXT NOT NULL, nonce TEXT NOT NULL, sealed TEXT NOT NULL,
    PRIMARY KEY (tenant, line_id));";

/// A line's settings as stored: sealed with the key of the store that wrote them (an export
/// carries them so, never in clear).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealedSettings {
    pub tenant: String,
    pub line: String,
    pub nonce: String,
    pub sealed: String,
}

/// Every line's settings as stored (of one tenant, or all), by tenant and line — no key needed.
///
/// # Errors
/// When the database cannot be read.
pub async fn sealed_settings(
    db: &Database,
    tenant: Option<&TenantId>,
) -> Result<Vec<SealedSettings>, StoreError> {
    db.migrate(SCHEMA, SCHEMA).await.map_err(unavailable)?;
    const ALL: &str = "SELECT tenant, line_id, nonce, sealed FROM line_settings";
    let rows = match tenant {
        Some(tenant) => {
            sqlx::query(db.sql(&format!("{ALL} WHERE tenant = ?")))
                .bind(tenant.as_str())
                .fetch_all(&db.reader)
                .await
        }
        None => sqlx::query(ALL).fetch_all(&db.reader).await,
    }
    .map_err(unavailable)?;
    let mut all: Vec<SealedSettings> = rows
        .iter()
        .map(|row| SealedSettings {
            tenant: row.get("tenant"),
            line: row.get("line_id"),
            nonce: row.get("nonce"),
            sealed: row.get("sealed"),
        })
        .collect();
    all.sort_by(|a, b| (&a.tenant, &a.line).cmp(&(&b.tenant, &b.line)));
    Ok(all)
}

#[derive(Clone)]
pub struct LineSettingsStore {
    db: Database,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for LineSettingsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineSettingsStore(..)")
    }
}

fn associated(tenant: &TenantId, line: &LineId) -> Vec<u8> {
    format!("meetline/line-settings/{tenant}/{line}").into_bytes()
}

impl LineSettingsStore {
    /// `key_secret` is any secret text; the cipher key is its SHA-256.
    ///
    /// # Errors
    /// When the table cannot be created.
    pub async fn new(db: Database, key_secret: &str) -> Result<Self, StoreError> {
        db.migrate(SCHEMA, SCHEMA).await.map_err(unavailable)?;
        let key: [u8; 32] = Sha256::digest(key_secret.as_bytes()).into();
        Ok(Self {
            db,
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// Replaces the line's settings.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn put(
        &self,
        tenant: &TenantId,
        line: &LineId,
        settings: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let plaintext = serde_json::to_vec(settings).expect("JSON values serialize");
        let aad = associated(tenant, line);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Corrupt("cannot encrypt line settings".to_owned()))?;
        sqlx::query(self.db.sql(
            "INSERT INTO line_settings (tenant, line_id, nonce, sealed) VALUES (?, ?, ?, ?) \
             ON CONFLICT (tenant, line_id) DO UPDATE SET nonce = excluded.nonce, sealed = excluded.sealed",
        ))
        .bind(tenant.as_str())
        .bind(line.as_str())
        .bind(hex(&nonce))
        .bind(hex(&sealed))
        .execute(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// The line's settings, decrypted.
    ///
    /// # Errors
    /// `StoreError::Corrupt` when the stored value does not decrypt (another key, or tampering).
    pub async fn get(
        &self,
        tenant: &TenantId,
        line: &LineId,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let row = sqlx::query(
            self.db
                .sql("SELECT nonce, sealed FROM line_settings WHERE tenant = ? AND line_id = ?"),
        )
        .bind(tenant.as_str())
        .bind(line.as_str())
        .fetch_optional(&self.db.reader)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        self.open(tenant, line, row.get("nonce"), row.get("sealed"))
            .map(Some)
    }

    /// Every line's settings, of every tenant, decrypted (webhook verification looks for the
    /// secret that signed a call). Rows that do not decrypt are skipped and logged.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn all(&self) -> Result<Vec<(TenantId, LineId, serde_json::Value)>, StoreError> {
        let rows = sqlx::query("SELECT tenant, line_id, nonce, sealed FROM line_settings")
            .fetch_all(&self.db.reader)
            .await
            .map_err(unavailable)?;
        let mut all = Vec::with_capacity(rows.len());
        for row in rows {
            let (Ok(tenant), Ok(line)) = (
                TenantId::parse(row.get("tenant")),
                LineId::parse(row.get("line_id")),
            ) else {
                continue;
            };
            match self.open(&tenant, &line, row.get("nonce"), row.get("sealed")) {
                Ok(settings) => all.push((tenant, line, settings)),
                Err(error) => tracing::error!(%error, "skipping line settings that do not decrypt"),
            }
        }
        Ok(all)
    }

    /// Whether settings sealed elsewhere open with this store's key; their tenant and line.
    ///
    /// # Errors
    /// `StoreError::Corrupt` when they do not.
    pub fn opens(&self, sealed: &SealedSettings) -> Result<(TenantId, LineId), StoreError> {
        let tenant = TenantId::parse(&sealed.tenant)
            .map_err(|error| StoreError::Corrupt(format!("tenant {:?}: {error}", sealed.tenant)))?;
        let line = LineId::parse(&sealed.line)
            .map_err(|error| StoreError::Corrupt(format!("line {:?}: {error}", sealed.line)))?;
        self.open(&tenant, &line, &sealed.nonce, &sealed.sealed)?;
        Ok((tenant, line))
    }

    /// Stores settings as another node sealed them (an import): refused unless they open with
    /// this store's key — settings that cannot be read are worse than none.
    ///
    /// # Errors
    /// `StoreError::Corrupt` when they do not open with this key; when the database cannot be
    /// written.
    pub async fn put_sealed(&self, sealed: &SealedSettings) -> Result<(), StoreError> {
        let (tenant, line) = self.opens(sealed)?;
        sqlx::query(self.db.sql(
            "INSERT INTO line_settings (tenant, line_id, nonce, sealed) VALUES (?, ?, ?, ?) \
             ON CONFLICT (tenant, line_id) DO UPDATE SET nonce = excluded.nonce, sealed = excluded.sealed",
        ))
        .bind(tenant.as_str())
        .bind(line.as_str())
        .bind(&sealed.nonce)
        .bind(&sealed.sealed)
        .execute(&self.db.writer)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// Which of the tenant's lines have settings.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn configured(&self, tenant: &TenantId) -> Result<HashMap<String, bool>, StoreError> {
        let rows = sqlx::query(
            self.db
                .sql("SELECT line_id FROM line_settings WHERE tenant = ?"),
        )
        .bind(tenant.as_str())
        .fetch_all(&self.db.reader)
        .await
        .map_err(unavailable)?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<String, _>("line_id"), true))
            .collect())
    }

    fn open(
        &self,
        tenant: &TenantId,
        line: &LineId,
        nonce: &str,
        sealed: &str,
    ) -> Result<serde_json::Value, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("settings of {tenant}/{line} do not decrypt"));
        let nonce: [u8; 24] = unhex(nonce)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(corrupt)?;
        let sealed = unhex(sealed).ok_or_else(corrupt)?;
        let aad = associated(tenant, line);
        let plaintext = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| corrupt())?;
        serde_json::from_slice(&plaintext).map_err(|_| corrupt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_round_trip_encrypted_and_only_under_their_key_and_line() {
        let db = Database::temporary().await.unwrap();
        let store = LineSettingsStore::new(db.clone(), "key one").await.unwrap();
        let (tenant, line) = (
            TenantId::parse("t").unwrap(),
            LineId::parse("line-1").unwrap(),
        );
        let settings = serde_json::json!({"app_id": "a", "secret": "s3cret-value"});
        store.put(&tenant, &line, &settings).await.unwrap();
        assert_eq!(store.get(&tenant, &line).await.unwrap(), Some(settings));
        // At rest it is not readable.
        let sealed: String = sqlx::query_scalar("SELECT sealed FROM line_settings")
            .fetch_one(&db.reader)
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&unhex(&sealed).unwrap()).contains("s3cret"));
        // Another key cannot open it; a row copied to another line cannot be opened either.
        let other = LineSettingsStore::new(db.clone(), "key two").await.unwrap();
        assert!(other.get(&tenant, &line).await.is_err());
        sqlx::query(
            "INSERT INTO line_settings SELECT tenant, 'line-2', nonce, sealed FROM line_settings",
        )
        .execute(&db.writer)
        .await
        .unwrap();
        assert!(
            store
                .get(&tenant, &LineId::parse("line-2").unwrap())
                .await
                .is_err()
        );
    }
}

/// Keys whose values are secret: stored encrypted, never shown.
pub const SECRET_KEYS: [&str; 4] = ["secret", "client_secret", "webhook_secret", "secret_key"];

#[cfg(test)]
#[test]
fn every_providers_secret_keys_are_redacted() {
    for key in crate::tencent::TENCENT_SECRET_KEYS
        .iter()
        .chain(["client_secret", "webhook_secret"].iter())
        .chain(["secret"].iter())
    {
        assert!(SECRET_KEYS.contains(key), "{key} would be shown to admins");
    }
}
/// Keys a `zoom` line's settings may hold; the first four are required.
/// Where Zoom is (`api_base_url`, `oauth_base_url`) is the operator's to say, not a tenant's:
/// see `zoom::ZoomEndpoints`.
pub const ZOOM_KEYS: [&str; 5] = [
    "account_id",
    "client_id",
    "client_secret",
    "user_id",
    "webhook_secret",
];

/// Checks a line's settings for its provider. `Err` names the offending key.
///
/// # Errors
/// The key that is unknown, missing or malformed.
pub fn validate(
    provider: meetline_domain::types::ProviderKind,
    settings: &serde_json::Value,
) -> Result<(), String> {
    use meetline_domain::types::ProviderKind;
    let object = settings.as_object().ok_or_else(|| "settings".to_owned())?;
    if serde_json::to_vec(settings).map_or(true, |bytes| bytes.len() > 16 * 1024) {
        return Err("settings".to_owned());
    }
    match provider {
        ProviderKind::Builtin => {
            let probe = crate::links::JitsiSettings::new(
                "https://meet.invalid",
                "probe",
                b"probe-secret-0000",
            );
            crate::links::JitsiSettings::for_line(settings, &probe)
                .map(|_| ())
                .map_err(|error| error.0)
        }
        ProviderKind::Zoom => {
            if let Some(unknown) = object.keys().find(|key| !ZOOM_KEYS.contains(&key.as_str())) {
                return Err(unknown.clone());
            }
            for key in ZOOM_KEYS {
                let value = object
                    .get(key)
                    .and_then(serde_json::Value::as_str)
                    .map(str::trim);
                let required = ZOOM_KEYS[..4].contains(&key);
                match value {
                    None if object.get(key).is_none_or(serde_json::Value::is_null) && !required => {
                    }
                    Some(text)
                        if !text.is_empty()
                            && text.len() <= 500
                            && !text.chars().any(char::is_control) => {}
                    _ => return Err(key.to_owned()),
                }
            }
            Ok(())
        }
        ProviderKind::Tencent => crate::tencent::validate(settings),
    }
}

/// The settings without their secret values, and which secrets are set: what an admin may see.
pub fn redact(settings: &serde_json::Value) -> serde_json::Value {
    let mut shown = serde_json::Map::new();
    let mut secrets = Vec::new();
    if let Some(object) = settings.as_object() {
        for (key, value) in object {
            if SECRET_KEYS.contains(&key.as_str()) {
                secrets.push(serde_json::Value::String(key.clone()));
            } else {
                shown.insert(key.clone(), value.clone());
            }
        }
    }
    shown.insert("secrets_set".to_owned(), serde_json::Value::Array(secrets));
    serde_json::Value::Object(shown)
}

#[cfg(test)]
mod validation {
    use super::*;
    use meetline_domain::types::ProviderKind;
    use serde_json::json;

    #[test]
    fn zoom_settings_need_their_account_and_builtin_ones_are_checked_too() {
        let zoom =
            json!({"account_id": "a", "client_id": "c", "client_secret": "s", "user_id": "u@x.cn"});
        assert_eq!(validate(ProviderKind::Zoom, &zoom), Ok(()));
        assert_eq!(
            validate(ProviderKind::Zoom, &json!({"account_id": "a"})),
            Err("client_id".to_owned())
        );
        assert_eq!(
            validate(
                ProviderKind::Zoom,
                &json!({"account_id": "a", "client_id": "c", "client_secret": "s", "user_id": "u", "api_base_url": "https://api.zoom.us/v2"})
            ),
            Err("api_base_url".to_owned())
        );
        assert_eq!(
            validate(
                ProviderKind::Zoom,
                &json!({"account_id": "a", "client_id": "c", "client_secret": "s", "user_id": "u", "oauth_base_url": "http://169.254.169.254"})
            ),
            Err("oauth_base_url".to_owned())
        );
        assert_eq!(
            validate(
                ProviderKind::Zoom,
                &json!({"account_id": "a\u{0}", "client_id": "c", "client_secret": "s", "user_id": "u"})
            ),
            Err("account_id".to_owned())
        );
        assert_eq!(
            validate(ProviderKind::Builtin, &json!({"nope": 1})),
            Err("nope".to_owned())
        );
        assert_eq!(
            validate(
                ProviderKind::Builtin,
                &json!({"base_url": "https://meet.acme.cn", "app_id": "acme", "secret": "a-long-line-secret"})
            ),
            Ok(())
        );
        let shown = redact(&zoom);
        assert!(shown.get("client_secret").is_none());
        assert_eq!(shown["secrets_set"], json!(["client_secret"]));
        assert_eq!(shown["account_id"], "a");
    }
}

#[async_trait::async_trait]
impl meetline_domain::ports::LineSettings for LineSettingsStore {
    async fn put(
        &self,
        tenant: &TenantId,
        line: &LineId,
        settings: &serde_json::Value,
    ) -> Result<(), StoreError> {
        LineSettingsStore::put(self, tenant, line, settings).await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        line: &LineId,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        LineSettingsStore::get(self, tenant, line).await
    }

    async fn all(&self) -> Result<Vec<(TenantId, LineId, serde_json::Value)>, StoreError> {
        LineSettingsStore::all(self).await
    }
}
