//! The conference view of API.md, as JSON. Only this layer knows the JSON shapes.

use chrono::{DateTime, Utc};
use meetline_adapters::auth::Principal;
use meetline_adapters::links::JitsiSettings;
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
}

/// Renders links for a conference's line. Only the builtin provider signs links itself; other
/// providers' links arrive with provisioning.
#[derive(Debug, Clone)]
pub struct LinkRenderer {
    pub builtin: JitsiSettings,
}

impl ConferenceDto {
    pub fn present(
        view: &ConferenceView,
        viewer: &Principal,
        now: DateTime<Utc>,
        lang: Lang,
        links: &LinkRenderer,
    ) -> Self {
        let status = view.status_at(now);
        let rendered =
            (view.line.provider == "builtin" && status != Status::Cancelled).then(|| {
                links.builtin.links(
                    view.room.as_str(),
                    view.host.as_str(),
                    view.slot.start,
                    view.slot.end,
                )
            });
        let sees_host = view.sees_host_link(&viewer.actor.user, viewer.actor.admin);
        Self {
            id: view.id.to_string(),
            number: view.number.to_string(),
            subject: view.subject.as_str().to_owned(),
            mode: match view.mode {
                meetline_domain::Mode::Quick => "quick".to_owned(),
                meetline_domain::Mode::Scheduled => "scheduled".to_owned(),
            },
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
        }
    }
}
