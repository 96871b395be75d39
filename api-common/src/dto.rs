//! The conference view of API.md, as JSON. Only this layer knows the JSON shapes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use meetline_adapters::auth::Principal;
use meetline_adapters::line_settings::LineSettingsStore;
use meetline_adapters::links::{ConferenceLinks, JitsiSettings};
use meetline_domain::pool::Provisioning;
use meetline_domain::types::{LineId, TenantId};
use meetline_domain::types::{Source, Status};
use meetline_projections::ConferenceView;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Lang;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LineDto {
    pub id: String,
    pub name: String,
    pub provider: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinksDto {
    /// Only for the host, the creator and admins; otherwise null.
    pub host: Option<String>,
    pub attendee: Option<String>,
    pub related: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceDto {
    /// `app`, `meeting` or `chat`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConferenceDto {
    pub id: String,
    /// The nine-digit conference number (会议号).
    pub number: String,
    pub subject: String,
    /// `quick` or `scheduled`.
    pub mode: String,
    /// `not_started`, `in_progress`, `ended`, `manually_ended` or `cancelled`, exact at read time.
    pub status: String,
    pub status_label: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub timezone: String,
    pub host: String,
    pub creator: String,
    pub attendees: Vec<String>,
    /// Who joined by number.
    pub joined: Vec<String>,
    pub line: LineDto,
    pub links: LinksDto,
    pub source: SourceDto,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The line went into maintenance and no free line could take the conference.
    pub stranded: bool,
    /// The last change moved the conference to another line: its links are new.
    pub links_changed: bool,
    /// The meeting at the line's provider: `not_needed` (builtin), `pending`, `done` or `failed`.
    pub provisioning: String,
}

/// Zoom's start link for a meeting: the join link's host with `/s/{id}`.
fn start_link(join_url: &str, meeting_id: &str) -> String {
    let origin = join_url
        .split("/j/")
        .next()
        .filter(|origin| origin.starts_with("https://"))
        .unwrap_or("https://zoom.us");
    format!("{origin}/s/{meeting_id}")
}

/// Renders links for a conference's line. Only the builtin provider signs links itself; other
/// providers' links arrive with provisioning. A builtin line may bring its own Jitsi deployment in
/// its settings; those are read through a short cache, so a change made on another node shows
/// within seconds.
#[derive(Debug)]
pub struct LinkRenderer {
    builtin: Arc<JitsiSettings>,
    line_settings: Option<LineSettingsStore>,
    cache: Mutex<HashMap<(TenantId, LineId), CachedSettings>>,
}

const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// When a line's Jitsi settings were read, and what they were (`None`: unusable).
type CachedSettings = (Instant, Option<Arc<JitsiSettings>>);

impl LinkRenderer {
    pub fn new(builtin: JitsiSettings, line_settings: Option<LineSettingsStore>) -> Self {
        Self {
            builtin: Arc::new(builtin),
            line_settings,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The Jitsi deployment of a builtin line: its own settings, else the installation's. `None`
    /// when its stored settings cannot be read (no links rather than wrong links).
    pub async fn jitsi_for(&self, tenant: &TenantId, line: &LineId) -> Option<Arc<JitsiSettings>> {
        let Some(store) = &self.line_settings else {
            return Some(self.builtin.clone());
        };
        let key = (tenant.clone(), line.clone());
        if let Some((at, cached)) = self.cache.lock().expect("cache lock").get(&key)
            && at.elapsed() < SETTINGS_TTL
        {
            return cached.clone();
        }
        let resolved = match store.get(tenant, line).await {
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
        self.cache
            .lock()
            .expect("cache lock")
            .insert(key, (Instant::now(), resolved.clone()));
        resolved
    }

    /// Forgets a line's cached settings (after they change on this node).
    pub fn forget(&self, tenant: &TenantId, line: &LineId) {
        self.cache
            .lock()
            .expect("cache lock")
            .remove(&(tenant.clone(), line.clone()));
    }

    /// The view as the viewer sees it, with its line's links.
    pub async fn present(
        &self,
        view: &ConferenceView,
        viewer: &Principal,
        now: DateTime<Utc>,
        lang: Lang,
    ) -> ConferenceDto {
        let jitsi = if view.line.provider == "builtin" {
            self.jitsi_for(&viewer.tenant, &view.line.id).await
        } else {
            None
        };
        ConferenceDto::present(view, viewer, now, lang, jitsi.as_deref())
    }

    pub async fn present_all(
        &self,
        views: &[ConferenceView],
        viewer: &Principal,
        now: DateTime<Utc>,
        lang: Lang,
    ) -> Vec<ConferenceDto> {
        let mut all = Vec::with_capacity(views.len());
        for view in views {
            all.push(self.present(view, viewer, now, lang).await);
        }
        all
    }
}

impl ConferenceDto {
    /// The view as `viewer` sees it at `now`; `jitsi` signs a builtin line's links.
    pub fn present(
        view: &ConferenceView,
        viewer: &Principal,
        now: DateTime<Utc>,
        lang: Lang,
        jitsi: Option<&JitsiSettings>,
    ) -> Self {
        let status = view.status_at(now);
        let rendered = if status == Status::Cancelled {
            None
        } else if let Provisioning::Done {
            meeting_id,
            join_url,
            ..
        } = &view.provisioning
        {
            // An external provider's meeting: its join link, and its start link for the host
            // (which asks the host to sign in to the line's account). A link stored before
            // provider answers were checked is shown only if it is a clean https URL.
            meetline_domain::types::provider_url(join_url)
                .ok()
                .map(|join_url| ConferenceLinks {
                    host: start_link(join_url, meeting_id),
                    attendee: join_url.to_owned(),
                })
        } else {
            jitsi
                .filter(|_| view.line.provider == "builtin")
                .map(|jitsi| {
                    jitsi.links(
                        view.room.as_str(),
                        view.host.as_str(),
                        viewer.actor.user.as_str(),
                        view.slot.start,
                        view.slot.end,
                    )
                })
        };
        let sees_host = view.sees_host_link(&viewer.actor.user, viewer.actor.admin);
        Self {
            id: view.id.to_string(),
            number: view.number.to_string(),
            subject: view.subject.as_str().to_owned(),
            mode: view.mode.as_str().to_owned(),
            status: status.as_str().to_owned(),
            status_label: status.label(lang.is_english()).to_owned(),
            start: view.slot.start,
            end: view.slot.end,
            timezone: view.timezone.as_str().to_owned(),
            host: view.host.to_string(),
            creator: view.creator.to_string(),
            attendees: view.attendees.iter().map(ToString::to_string).collect(),
            joined: view.joined.iter().map(ToString::to_string).collect(),
            line: LineDto {
                id: view.line.id.to_string(),
                name: view.line.name.clone(),
                provider: view.line.provider.clone(),
            },
            links: LinksDto {
                host: rendered
                    .as_ref()
                    .filter(|_| sees_host)
                    .map(|links| links.host.clone()),
                attendee: rendered.map(|links| links.attendee),
                related: view
                    .related_link
                    .as_ref()
                    .map(|link| link.as_str().to_owned()),
            },
            source: match &view.source {
                Source::App => SourceDto {
                    kind: "app".to_owned(),
                    id: None,
                },
                Source::Meeting { id } => SourceDto {
                    kind: "meeting".to_owned(),
                    id: Some(id.to_string()),
                },
                Source::Chat { id } => SourceDto {
                    kind: "chat".to_owned(),
                    id: Some(id.to_string()),
                },
            },
            version: view.version,
            created_at: view.created_at,
            ended_at: view.ended_at,
            cancelled_at: view.cancelled_at,
            stranded: view.stranded,
            links_changed: view.links_changed,
            provisioning: match view.provisioning {
                Provisioning::NotNeeded => "not_needed",
                Provisioning::Pending => "pending",
                Provisioning::Done { .. } => "done",
                Provisioning::Failed { .. } => "failed",
            }
            .to_owned(),
        }
    }
}
