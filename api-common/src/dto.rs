//! The conference view of API.md, as JSON. Only this layer knows the JSON shapes.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use meetline_domain::pool::Provisioning;
use meetline_domain::ports::directory::{ChatKind, DirectoryChat};
use meetline_domain::ports::providers::LinkRequest;
use meetline_domain::ports::{MeetingLinks, ProviderRegistry};
use meetline_domain::recurrence::{RecurrenceEnd, SeriesLink, WEEKDAY_CODES};
use meetline_domain::types::Principal;
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
    /// The code people type to join the provider's meeting, when the provider has one apart
    /// from its links (Tencent Meeting's nine digits); null otherwise, and once cancelled.
    pub provider_meeting_code: Option<String>,
    /// The series this conference is an occurrence of; null for a conference of its own.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub series_id: Option<String>,
    /// The rule of its series, as it was booked (null outside a series).
    pub recurrence: Option<RecurrenceDto>,
}

/// How a series repeats, in the shape it is asked for (`count` is always given: an end date
/// asked for is the number of occurrences it allowed).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecurrenceDto {
    /// `daily`, `weekly` or `monthly`.
    pub frequency: String,
    pub interval: u32,
    /// Weekly: `MO` … `SU`.
    pub weekdays: Vec<String>,
    pub count: Option<u32>,
    /// `YYYY-MM-DD`, when the series was asked to end on a date.
    pub until: Option<String>,
    /// This occurrence's start by the rule (edits may have moved it since).
    pub occurrence: DateTime<Utc>,
}

impl From<&SeriesLink> for RecurrenceDto {
    fn from(link: &SeriesLink) -> Self {
        let rule = &link.recurrence;
        let (count, until) = match rule.end {
            RecurrenceEnd::Count(count) => (Some(count), None),
            RecurrenceEnd::Until(date) => (None, Some(date.format("%Y-%m-%d").to_string())),
        };
        Self {
            frequency: rule.frequency.as_str().to_owned(),
            interval: rule.interval,
            weekdays: rule
                .weekdays
                .iter()
                .map(|day| WEEKDAY_CODES[usize::from(*day) % 7].to_owned())
                .collect(),
            count,
            until,
            occurrence: link.occurrence,
        }
    }
}

/// Renders a conference's links as its viewer sees them. Only the builtin provider signs links
/// itself (through the provider registry, with the line's own deployment settings if it has
/// any); other providers' links arrive with provisioning.
#[derive(Debug)]
pub struct LinkRenderer {
    providers: Arc<dyn ProviderRegistry>,
}

impl LinkRenderer {
    pub fn new(providers: Arc<dyn ProviderRegistry>) -> Self {
        Self { providers }
    }

    /// The provider registry the links come from.
    pub fn providers(&self) -> &Arc<dyn ProviderRegistry> {
        &self.providers
    }

    /// The conference's links for `viewer` at `now`: none once it is cancelled; an external
    /// provider's meeting links once provisioned (a link stored before provider answers were
    /// checked only if it is a clean https URL); else a builtin line's signed links.
    async fn links(
        &self,
        view: &ConferenceView,
        viewer: &Principal,
        status: Status,
    ) -> Option<MeetingLinks> {
        if status == Status::Cancelled {
            return None;
        }
        if let Provisioning::Done {
            meeting_id,
            join_url,
            ..
        } = &view.provisioning
        {
            return meetline_domain::types::provider_url(join_url)
                .ok()
                .map(|join_url| {
                    self.providers
                        .meeting_links(view.line.provider, meeting_id, join_url)
                });
        }
        if view.line.provider.is_external() {
            return None;
        }
        let request = LinkRequest {
            room: view.room.as_str(),
            host: view.host.as_str(),
            viewer: viewer.actor.user.as_str(),
            with_host: view.sees_host_link(&viewer.actor.user, viewer.actor.admin),
            start: view.slot.start,
            end: view.slot.end,
        };
        self.providers
            .builtin_links(&viewer.tenant, &view.line.id, &request)
            .await
    }

    /// The view as the viewer sees it, with its line's links.
    pub async fn present(
        &self,
        view: &ConferenceView,
        viewer: &Principal,
        now: DateTime<Utc>,
        lang: Lang,
    ) -> ConferenceDto {
        let links = self.links(view, viewer, view.status_at(now)).await;
        ConferenceDto::present(view, viewer, now, lang, links)
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
    /// The view as `viewer` sees it at `now`, with its meeting's `links` (the host's shown only
    /// to those who may see it).
    pub fn present(
        view: &ConferenceView,
        viewer: &Principal,
        now: DateTime<Utc>,
        lang: Lang,
        rendered: Option<MeetingLinks>,
    ) -> Self {
        let status = view.status_at(now);
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
                provider: view.line.provider.as_str().to_owned(),
            },
            links: LinksDto {
                host: rendered
                    .as_ref()
                    .filter(|_| sees_host)
                    .and_then(|links| links.host.clone()),
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
            // Only while the meeting can be joined: an ended meeting's code may be given to
            // another meeting by the provider.
            provider_meeting_code: match &view.provisioning {
                Provisioning::Done { meeting_code, .. }
                    if matches!(status, Status::NotStarted | Status::InProgress) =>
                {
                    meeting_code.clone()
                }
                _ => None,
            },
            series_id: view.series.as_ref().map(|link| link.id.to_string()),
            recurrence: view.series.as_deref().map(RecurrenceDto::from),
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

/// A chat's kind.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ChatKindName {
    Single,
    Group,
}

/// A directory chat as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryChatDto {
    #[schema(value_type = ChatKindName)]
    pub kind: String,
    pub id: String,
    pub name: String,
    pub members: Vec<String>,
}

impl From<&DirectoryChat> for DirectoryChatDto {
    fn from(chat: &DirectoryChat) -> Self {
        Self {
            kind: match chat.kind {
                ChatKind::Single => "single",
                ChatKind::Group => "group",
            }
            .to_owned(),
            id: chat.facts.id.to_string(),
            name: chat.facts.name.clone(),
            members: chat.facts.members.iter().map(ToString::to_string).collect(),
        }
    }
}
