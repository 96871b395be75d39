//! The ports of a line's provider beyond its meetings ([`super::VideoProvider`]): the lines'
//! settings, the registry that turns a line into its provider, the builtin provider's signed
//! links, and the notifications (webhooks) a provider sends.
//!
//! The API crates and the provisioning process see only these traits; which providers exist
//! (Jitsi links, Zoom, Tencent Meeting) is the adapters' business, wired by the binary.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{StoreError, VideoProvider};
use crate::types::{LineId, ProviderKind, TenantId};

/// A line's provider settings (account credentials, a Jitsi deployment…), a JSON object whose
/// keys the provider defines. Stored encrypted at rest; never returned to clients as they are.
#[async_trait]
pub trait LineSettings: Send + Sync + std::fmt::Debug + 'static {
    async fn put(
        &self,
        tenant: &TenantId,
        line: &LineId,
        settings: &Value,
    ) -> Result<(), StoreError>;
    async fn get(&self, tenant: &TenantId, line: &LineId) -> Result<Option<Value>, StoreError>;
    /// Every line's settings (a notification that names no line is checked against them all).
    async fn all(&self) -> Result<Vec<(TenantId, LineId, Value)>, StoreError>;
}

/// The links of a conference's meeting: the host's (may be a secret, and may ask the host to
/// sign in to the line's account) and the attendees'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingLinks {
    /// The host's link; `None` when it was not made for this viewer (it is not theirs to see).
    pub host: Option<String>,
    pub attendee: String,
}

/// What the builtin provider signs a viewer's links for.
#[derive(Debug, Clone, Copy)]
pub struct LinkRequest<'a> {
    /// The conference's room (unguessable).
    pub room: &'a str,
    /// The host's user id (the host's link is the moderator's).
    pub host: &'a str,
    /// Who the links are for.
    pub viewer: &'a str,
    /// Whether the viewer may see the host's link: its moderator token is signed only then.
    pub with_host: bool,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What hosts a line's meetings.
#[derive(Clone)]
pub enum LineProvider {
    /// A builtin line: links are signed locally, there is nothing to call.
    Builtin,
    /// An external line's provider, ready to call.
    Ready(Arc<dyn VideoProvider>),
    /// An external line whose stored settings cannot work for its provider: nothing can be
    /// done on it until an admin stores new ones (trying again will not help).
    Unusable,
}

impl std::fmt::Debug for LineProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Builtin => "Builtin",
            Self::Ready(_) => "Ready(..)",
            Self::Unusable => "Unusable",
        })
    }
}

/// Turns a line into its provider.
#[async_trait]
pub trait ProviderRegistry: Send + Sync + std::fmt::Debug + 'static {
    /// Checks settings for a line of `kind`.
    ///
    /// # Errors
    /// The key that is unknown, missing or malformed (`settings` for the whole object).
    fn check_settings(&self, kind: ProviderKind, settings: &Value) -> Result<(), String>;

    /// The settings as an admin may see them: without their secret values, with the list of
    /// the secrets that are set.
    fn redact(&self, kind: ProviderKind, settings: &Value) -> Value;

    /// The provider that hosts the meetings of line `line` (of `kind`), built from its settings.
    ///
    /// # Errors
    /// When the settings cannot be read now, are missing, or do not decrypt: worth trying again
    /// once the operator mends it. Settings that are there and can never work for the
    /// provider are [`LineProvider::Unusable`].
    async fn for_line(
        &self,
        tenant: &TenantId,
        line: &LineId,
        kind: ProviderKind,
    ) -> Result<LineProvider, StoreError>;

    /// A builtin line's links for one viewer, signed with the line's own deployment settings or
    /// the installation's; `None` when the line's stored settings cannot be used (no links
    /// rather than wrong links).
    async fn builtin_links(
        &self,
        tenant: &TenantId,
        line: &LineId,
        request: &LinkRequest<'_>,
    ) -> Option<MeetingLinks>;

    /// The links of a meeting an external provider of `kind` made (`join_url` already checked).
    fn meeting_links(&self, kind: ProviderKind, meeting_id: &str, join_url: &str) -> MeetingLinks;

    /// Forgets what is cached of a line's settings (after they change on this node).
    fn forget(&self, tenant: &TenantId, line: &LineId);

    /// The reader of the notifications providers of `kind` send, if meetline takes them.
    fn webhooks(&self, kind: ProviderKind) -> Option<Arc<dyn WebhookReader>>;
}

/// A notification as it arrived: its headers (names in lower case) and raw body.
#[derive(Debug, Clone)]
pub struct WebhookCall<'a> {
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

impl WebhookCall<'_> {
    /// The value of header `name` (lower case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
    }
}

/// Why a notification is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRefusal {
    /// Missing, stale or unverified signature.
    #[error("unauthorized")]
    Unauthorized,
    /// Verified, but it lacks what it needs (the field or part named).
    #[error("malformed: {0}")]
    Malformed(String),
}

/// What a notification is about, before its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookSubject {
    /// The provider checks the endpoint (it names no meeting): whichever line's secret verifies
    /// it answers.
    Challenge,
    /// A meeting, by the provider's id (letters, digits, `-`, `_`; at most 64).
    Meeting(String),
    /// Something meetline does not act on.
    Other,
}

/// What a verified notification asks of meetline.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookMeaning {
    /// Answer the provider with this JSON (an endpoint challenge).
    Answer(Value),
    /// The provider's meeting started or ended at `at`. `delivery` names the notification, so
    /// a delivery repeated by the provider is one command.
    Meeting {
        meeting_id: String,
        started: bool,
        at: DateTime<Utc>,
        delivery: String,
    },
    /// Nothing to do.
    Ignored,
}

/// A notification read by its provider's adapter.
pub trait Notification: Send + Sync {
    fn subject(&self) -> WebhookSubject;
    /// Whether the secret in a line's `settings` signed it.
    fn verified_by(&self, settings: &Value) -> bool;
    /// What it asks, once `settings` verified it.
    ///
    /// # Errors
    /// [`WebhookRefusal::Malformed`] when it lacks what its kind needs.
    fn meaning(
        &self,
        settings: &Value,
        now: DateTime<Utc>,
    ) -> Result<WebhookMeaning, WebhookRefusal>;
}

/// Reads one provider's notifications.
pub trait WebhookReader: Send + Sync + 'static {
    /// Reads a call, refusing a stale or malformed one before any secret is looked at.
    ///
    /// # Errors
    /// [`WebhookRefusal::Unauthorized`] for a call that could not be verified at all.
    fn read(&self, call: &WebhookCall<'_>) -> Result<Box<dyn Notification>, WebhookRefusal>;
}
