//! `Providers`: the provider registry port on the adapters this crate has — Jitsi links for
//! builtin lines, Zoom and Tencent Meeting accounts for external ones.
//!
//! A line's provider is built from its settings (decrypted from [`LineSettingsStore`]) and the
//! operator's endpoints, and kept until the settings change. A builtin line's Jitsi settings are
//! read through a short cache, so a change made on another node shows within seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use meetline_domain::ports::providers::{LineProvider, LinkRequest, WebhookReader};
use meetline_domain::ports::{MeetingLinks, ProviderRegistry, StoreError, VideoProvider};
use meetline_domain::types::{LineId, ProviderKind, TenantId};
use serde_json::Value;

use crate::line_settings::LineSettingsStore;
use crate::links::JitsiSettings;
use crate::tencent::{TencentEndpoints, TencentProvider, TencentSettings};
use crate::zoom::{RetryPolicy, ZoomEndpoints, ZoomProvider, ZoomSettings};

/// How long a builtin line's Jitsi settings are kept before they are read again.
const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// When a line's Jitsi settings were read, and what they were (`None`: unusable).
type CachedJitsi = (Instant, Option<Arc<JitsiSettings>>);

/// A line's settings and the provider built from them.
type CachedProvider = (Value, Arc<dyn VideoProvider>);

/// Where the external providers are: the operator's configuration, never a tenant's.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub zoom: ZoomEndpoints,
    pub tencent: TencentEndpoints,
}

/// The provider registry.
pub struct Providers {
    settings: LineSettingsStore,
    /// The installation's Jitsi deployment (builtin lines without their own).
    builtin: Arc<JitsiSettings>,
    endpoints: Endpoints,
    retry: RetryPolicy,
    http: reqwest::Client,
    jitsi: Mutex<HashMap<(TenantId, LineId), CachedJitsi>>,
    providers: tokio::sync::Mutex<HashMap<(TenantId, LineId), CachedProvider>>,
    zoom_webhooks: Arc<crate::zoom::webhook::ZoomWebhooks>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Providers {
    pub fn new(
        settings: LineSettingsStore,
        builtin: JitsiSettings,
        endpoints: Endpoints,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            settings,
            builtin: Arc::new(builtin),
            endpoints,
            retry,
            http: crate::net::http_client(),
            jitsi: Mutex::new(HashMap::new()),
            providers: tokio::sync::Mutex::new(HashMap::new()),
            zoom_webhooks: Arc::new(crate::zoom::webhook::ZoomWebhooks),
        }
    }

    /// The Jitsi deployment of a builtin line: its own settings, else the installation's.
    /// `None` when its stored settings cannot be read.
    async fn jitsi_for(&self, tenant: &TenantId, line: &LineId) -> Option<Arc<JitsiSettings>> {
        let key = (tenant.clone(), line.clone());
        if let Some((at, cached)) = self.jitsi.lock().expect("cache lock").get(&key)
            && at.elapsed() < SETTINGS_TTL
        {
            return cached.clone();
        }
        let resolved = match self.settings.get(tenant, line).await {
            Ok(None) => Some(self.builtin.clone()),
            Ok(Some(settings)) => match JitsiSettings::for_line(&settings, &self.builtin) {
                Ok(own) => Some(Arc::new(own)),
                Err(error) => {
                    tracing::error!(%tenant, %line, %error, "stored line settings are not usable");
                    None
                }
            },
            Err(error) => {
                tracing::error!(%tenant, %line, %error, "cannot read line settings");
                None
            }
        };
        self.jitsi
            .lock()
            .expect("cache lock")
            .insert(key, (Instant::now(), resolved.clone()));
        resolved
    }

    /// A provider of `kind` built from `settings`; `None` when they are not usable for it.
    fn build(&self, kind: ProviderKind, settings: &Value) -> Option<Arc<dyn VideoProvider>> {
        match kind {
            ProviderKind::Builtin => None,
            ProviderKind::Zoom => {
                let zoom = ZoomSettings::from_line(settings, &self.endpoints.zoom).ok()?;
                Some(Arc::new(
                    ZoomProvider::new(zoom, self.http.clone()).with_retry(self.retry),
                ))
            }
            ProviderKind::Tencent => {
                let tencent = TencentSettings::from_line(settings, &self.endpoints.tencent).ok()?;
                Some(Arc::new(
                    TencentProvider::new(tencent, self.http.clone()).with_retry(self.retry),
                ))
            }
        }
    }
}

/// Zoom's start link for a meeting: the join link's host with `/s/{id}`.
fn zoom_start_link(join_url: &str, meeting_id: &str) -> String {
    let origin = join_url
        .split("/j/")
        .next()
        .filter(|origin| origin.starts_with("https://"))
        .unwrap_or("https://zoom.us");
    format!("{origin}/s/{meeting_id}")
}

#[async_trait]
impl ProviderRegistry for Providers {
    fn check_settings(&self, kind: ProviderKind, settings: &Value) -> Result<(), String> {
        crate::line_settings::validate(kind, settings)
    }

    fn redact(&self, _kind: ProviderKind, settings: &Value) -> Value {
        crate::line_settings::redact(settings)
    }

    async fn for_line(
        &self,
        tenant: &TenantId,
        line: &LineId,
        kind: ProviderKind,
    ) -> Result<LineProvider, StoreError> {
        if !kind.is_external() {
            return Ok(LineProvider::Builtin);
        }
        // No settings yet (an add whose settings write failed, to be put again) and settings
        // that do not decrypt (a node started with another settings key) are the operator's to
        // mend: worth trying again, never a reason to fail conferences for good.
        let settings = match self.settings.get(tenant, line).await {
            Ok(Some(settings)) => settings,
            Ok(None) => {
                return Err(StoreError::Unavailable(format!(
                    "external line {tenant}/{line} has no settings yet"
                )));
            }
            Err(error) => return Err(error),
        };
        let mut providers = self.providers.lock().await;
        let key = (tenant.clone(), line.clone());
        if let Some((known, provider)) = providers.get(&key)
            && *known == settings
        {
            return Ok(LineProvider::Ready(provider.clone()));
        }
        let Some(provider) = self.build(kind, &settings) else {
            return Ok(LineProvider::Unusable);
        };
        providers.insert(key, (settings, provider.clone()));
        Ok(LineProvider::Ready(provider))
    }

    async fn builtin_links(
        &self,
        tenant: &TenantId,
        line: &LineId,
        request: &LinkRequest<'_>,
    ) -> Option<MeetingLinks> {
        let jitsi = self.jitsi_for(tenant, line).await?;
        Some(jitsi.links(
            request.room,
            request.host,
            request.viewer,
            request.with_host,
            request.start,
            request.end,
        ))
    }

    fn meeting_links(&self, kind: ProviderKind, meeting_id: &str, join_url: &str) -> MeetingLinks {
        let host = match kind {
            // Zoom's start link asks the host to sign in to the line's account.
            ProviderKind::Zoom => zoom_start_link(join_url, meeting_id),
            // Tencent Meeting has one link: whoever signs in as the line's user hosts.
            ProviderKind::Tencent | ProviderKind::Builtin => join_url.to_owned(),
        };
        MeetingLinks {
            host: Some(host),
            attendee: join_url.to_owned(),
        }
    }

    fn forget(&self, tenant: &TenantId, line: &LineId) {
        self.jitsi
            .lock()
            .expect("cache lock")
            .remove(&(tenant.clone(), line.clone()));
    }

    fn webhooks(&self, kind: ProviderKind) -> Option<Arc<dyn WebhookReader>> {
        match kind {
            ProviderKind::Zoom => Some(self.zoom_webhooks.clone()),
            // Tencent Meeting's event subscription is signed by a scheme its public
            // documentation does not give in full (PROVIDERS.md): not taken until it can be
            // checked. Meetings still start and end by meetline's own timer.
            ProviderKind::Tencent | ProviderKind::Builtin => None,
        }
    }
}
