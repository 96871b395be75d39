//! Ports: the traits the outside world implements for the application (hexagonal style).
//! They are `async` but name no runtime; adapters bring tokio, sqlx, HTTP.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod access;
pub mod directory;
pub mod providers;

pub use access::{InvalidToken, TokenVerifier};
pub use directory::Directory;
pub use providers::{LineSettings, MeetingLinks, ProviderRegistry};

use crate::event::Event;
use crate::types::{ConferenceId, LineId, TenantId, TimeSlot};

/// A global position in the log of all streams: 1, 2, 3… with no gaps as read.
pub type Position = u64;

/// The stream of a tenant's line pool.
pub fn pool_stream(tenant: &TenantId) -> String {
    format!("pool-{tenant}")
}

/// Recorded with every event: who, when, why, and which command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub event_id: Uuid,
    /// The command that produced the event; for a command with an `Idempotency-Key` it is derived
    /// from the key, so a retry finds the first outcome.
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// The user id, or `system:<process>` for the engine's own processes.
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    pub schema_version: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event: Event,
    pub metadata: EventMetadata,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: Position,
    pub stream: String,
    /// 1-based version within the stream.
    pub version: u64,
    pub event: Event,
    pub metadata: EventMetadata,
}

/// Where an append landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The global position of each appended event, in order.
    pub positions: Vec<Position>,
    /// The stream version after the append.
    pub version: u64,
}

impl Appended {
    pub fn last_position(&self) -> Option<Position> {
        self.positions.last().copied()
    }
}

/// What a command with a known command id left in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    pub conference: Option<ConferenceId>,
    /// The line it added (`LineAdded`), so a replayed `AddLine` can answer with it.
    pub line: Option<LineId>,
    pub last_position: Position,
    pub recorded_at: DateTime<Utc>,
    /// The slots it recorded as refused for want of a line (`DemandRefused`), in order: a retry
    /// of a refused command gets the same refusal (a series: each occurrence no line took).
    pub refused: Vec<TimeSlot>,
}

/// A pool's state at `version`, in the format numbered `schema` (the command service's
/// `SNAPSHOT_SCHEMA`; a snapshot of another schema is ignored and the stream replayed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    pub schema: u32,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else appended first: the stream is at `actual`, not `expected`.
    #[error("version conflict on {stream}: expected {expected}, actual {actual}")]
    Conflict {
        stream: String,
        expected: u64,
        actual: u64,
    },
    /// The store could not be reached or failed; the operation may be retried.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// A stored row could not be read back: never silently skipped.
    #[error("corrupt event store data: {0}")]
    Corrupt(String),
}

/// The event store port (DESIGN.md). Every adapter passes one conformance suite.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` atomically if the stream is at `expected_version` (0: new stream).
    ///
    /// # Errors
    /// `StoreError::Conflict` when the stream moved on; nothing is written then.
    async fn append(
        &self,
        stream: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, StoreError>;

    /// Up to `limit` of the stream's events with version > `after_version`, in order.
    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// As [`Self::read_stream`], the events alone, without their envelopes: what replaying a
    /// pool needs. A store may serve it cheaper (SQLite: one row per page instead of one per
    /// event).
    async fn read_stream_events(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .read_stream(stream, after_version, limit)
            .await?
            .into_iter()
            .map(|recorded| recorded.event)
            .collect())
    }

    /// One conference's events in order (an indexed read by tag).
    async fn read_tagged(
        &self,
        stream: &str,
        conference: ConferenceId,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events of all streams with position > `after`, in position order, never
    /// skipping an event that commits later with a lower position.
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The highest position readable now.
    async fn head_position(&self) -> Result<Position, StoreError>;

    /// Resolves once the head may have moved past `after` (spurious wake-ups allowed; callers
    /// bound the wait themselves).
    async fn wait_for_events(&self, after: Position);

    /// What the command with `command_id` appended to `stream`, if anything.
    async fn find_command(
        &self,
        stream: &str,
        command_id: Uuid,
    ) -> Result<Option<CommandRecord>, StoreError>;

    async fn save_snapshot(&self, stream: &str, snapshot: &Snapshot) -> Result<(), StoreError>;

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError>;
}

/// What a provider is asked to host: a conference's subject and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingRequest {
    /// What the meeting is for (the conference id): lets a retried create find a meeting that an
    /// earlier attempt created although its answer was lost.
    pub reference: String,
    pub topic: String,
    pub start: DateTime<Utc>,
    pub duration_minutes: i64,
    /// IANA name, for the provider's display.
    pub timezone: String,
}

/// A meeting as the provider created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedMeeting {
    /// The provider's id of the meeting (Zoom: the meeting id).
    pub meeting_id: String,
    /// The link attendees open.
    pub join_url: String,
    /// The link the host opens; may expire (Zoom: 2 hours) and is a secret.
    pub start_url: Option<String>,
    pub password: Option<String>,
    /// The number people dial or type to join, when the provider has one apart from its id
    /// (Tencent Meeting's nine-digit `meeting_code`).
    pub meeting_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Worth retrying later (rate limit, provider outage, network); `retry_after` when the
    /// provider said so.
    #[error("provider unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    /// The provider refused the request; retrying the same request will not help.
    #[error("provider refused the request ({status}): {message}")]
    Refused {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    /// The provider has no such meeting (already deleted).
    #[error("the provider has no such meeting")]
    NotFound,
    /// The provider answered with something unusable (e.g. a join URL that is not https).
    #[error("the provider's answer is unusable")]
    InvalidAnswer,
    /// The line's provider settings are missing, unusable for its provider, or do not decrypt:
    /// no call can be made until an admin stores working ones.
    #[error("the line's provider settings are missing or unusable")]
    NotConfigured,
}

impl ProviderError {
    /// What is recorded in `ProvisioningFailed.reason` (readable in history): a code and a fixed
    /// text, never the provider's own words — a reply's body is the remote side's to choose.
    pub fn recorded_reason(&self) -> String {
        match self {
            Self::Unavailable { .. } => {
                "provider_unavailable: the provider could not be reached or kept failing".to_owned()
            }
            Self::Refused {
                status,
                code: Some(code),
                ..
            } => format!(
                "provider_refused: the provider refused the request (HTTP {status}, code {code})"
            ),
            Self::Refused { status, .. } => {
                format!("provider_refused: the provider refused the request (HTTP {status})")
            }
            Self::NotFound => "provider_not_found: the provider has no such meeting".to_owned(),
            Self::InvalidAnswer => {
                "provider_invalid_answer: the provider's answer was unusable".to_owned()
            }
            Self::NotConfigured => {
                "provider_not_configured: the line's provider settings are missing or unusable"
                    .to_owned()
            }
        }
    }
}

/// The video provider port: a line's account at Zoom, Tencent Meeting, …
#[async_trait]
pub trait VideoProvider: Send + Sync + 'static {
    /// Creates a meeting. Callers make this idempotent (a create is never retried blindly).
    async fn create(&self, request: &MeetingRequest) -> Result<ProvisionedMeeting, ProviderError>;
    /// Moves or renames a meeting.
    async fn update(&self, meeting_id: &str, request: &MeetingRequest)
    -> Result<(), ProviderError>;
    /// Deletes a meeting (a cancelled conference). `NotFound` counts as done.
    async fn delete(&self, meeting_id: &str) -> Result<(), ProviderError>;
    /// Ends a running meeting (ended early).
    async fn end(&self, meeting_id: &str) -> Result<(), ProviderError>;
    /// The meeting an earlier `create` for `reference` made, if the provider has it (a create
    /// whose answer was lost, e.g. to a crash).
    async fn find_created(
        &self,
        reference: &str,
    ) -> Result<Option<ProvisionedMeeting>, ProviderError>;
}
