//! `EsdbEventStore`: the event store port on EventStoreDB / KurrentDB (the official `eventstore`
//! gRPC client), for deployments that already run that cluster. Read models stay in SQLite or
//! PostgreSQL.
//!
//! Mapping:
//! - a pool stream is an EventStoreDB stream of the same name; meetline's 1-based stream version is
//!   the stream revision + 1, so `expected_version` 0 is `NoStream` and `n` is `Exact(n - 1)`;
//! - meetline's global position is the event's **prepare** position in `$all`: unique per event
//!   (the events of one append share a commit position, not a prepare position) and increasing in
//!   `$all` order. `read_all(after)` starts at `(after, after)` and skips what is not after it;
//! - metadata (ids, actor, recorded-at, schema, conference tag) travels as the event's custom JSON
//!   metadata;
//! - snapshots are the last event of `snapshot-{stream}`;
//! - EventStoreDB has no secondary index here, so `read_tagged` filters the pool stream, and
//!   `find_command` scans it backwards until events are older than the idempotency window;
//! - stream reads carry no log position (only `$all` reads do), so events from `read_stream` and
//!   `read_tagged` may report position 0, `append` finds its events' positions by id near the end
//!   of `$all`, and a replayed command reports the head.
//!
//! No EventStoreDB server runs on our machines: the conformance suite runs against one when
//! `MEETLINE_ESDB_URL` is set (see `docs/deploy/`), and says loudly that it did not otherwise.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventstore::{
    AppendToStreamOptions, Client, ClientSettings, EventData, ExpectedRevision, ReadAllOptions,
    ReadStreamOptions, StreamPosition, SubscribeToAllOptions, SubscriptionEvent,
    SubscriptionFilter,
};
use meetline_domain::event::Event;
use meetline_domain::ports::{
    Appended, CommandRecord, EventMetadata, EventStore, NewEvent, Position, RecordedEvent,
    Snapshot, StoreError,
};
use meetline_domain::types::ConferenceId;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

/// Only meetline's pool streams are read from `$all`.
pub const STREAM_PREFIX: &str = "pool-";
const SNAPSHOT_TYPE: &str = "PoolSnapshot";
/// How far back `find_command` looks (the command service honours keys for 24 h).
const COMMAND_WINDOW: chrono::Duration = chrono::Duration::hours(25);

/// The custom metadata stored with every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMetadata {
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    pub schema_version: u32,
    pub conference_id: Option<Uuid>,
}

impl StoredMetadata {
    pub fn of(new: &NewEvent) -> Self {
        let meta = &new.metadata;
        Self {
            command_id: meta.command_id,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            actor: meta.actor.clone(),
            recorded_at: meta.recorded_at,
            schema_version: meta.schema_version,
            conference_id: new.event.conference().map(|id| id.0),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotHeader {
    version: u64,
    schema: u32,
}

/// The EventStoreDB expected revision for meetline's expected version.
pub fn expected_revision(expected_version: u64) -> ExpectedRevision {
    match expected_version {
        0 => ExpectedRevision::NoStream,
        version => ExpectedRevision::Exact(version - 1),
    }
}

fn unavailable(error: eventstore::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// The event's global position, when the read carried one: `ReadAll` does; `ReadStream` answers
/// from the index, which has no log positions (older servers send `u64::MAX`).
fn position_of(recorded: &eventstore::RecordedEvent) -> Option<Position> {
    let eventstore::Position { commit, prepare } = recorded.position;
    (commit != u64::MAX && prepare != u64::MAX).then_some(prepare)
}

/// Decodes a stored event; its position is 0 when the read did not carry one (stream reads).
fn decode(recorded: &eventstore::RecordedEvent) -> Result<RecordedEvent, StoreError> {
    let meta: StoredMetadata = serde_json::from_slice(&recorded.custom_metadata)
        .map_err(|error| StoreError::Corrupt(format!("metadata of {}: {error}", recorded.id)))?;
    let data = std::str::from_utf8(&recorded.data)
        .map_err(|error| StoreError::Corrupt(format!("data of {}: {error}", recorded.id)))?;
    let event = Event::from_stored(&recorded.event_type, meta.schema_version, data)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    Ok(RecordedEvent {
        position: position_of(recorded).unwrap_or(0),
        stream: recorded.stream_id.clone(),
        version: recorded.revision + 1,
        event,
        metadata: EventMetadata {
            event_id: recorded.id,
            command_id: meta.command_id,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            actor: meta.actor,
            recorded_at: meta.recorded_at,
            schema_version: meta.schema_version,
        },
    })
}

pub struct EsdbEventStore {
    client: Client,
    head: watch::Sender<Position>,
    alive: std::sync::Arc<()>,
}

impl std::fmt::Debug for EsdbEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsdbEventStore").finish_non_exhaustive()
    }
}

impl EsdbEventStore {
    /// Connects to `url` (`esdb://host:2113?tls=false`, or `kurrentdb://…`), reads the head and
    /// subscribes to `$all` for wake-ups.
    ///
    /// # Errors
    /// When the URL does not parse or the server cannot be read.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let url = url
            .replacen("kurrentdb://", "esdb://", 1)
            .replacen("kurrent://", "esdb://", 1);
        let settings: ClientSettings = url
            .parse()
            .map_err(|error| StoreError::Unavailable(format!("EventStoreDB URL: {error}")))?;
        let client =
            Client::new(settings).map_err(|error| StoreError::Unavailable(error.to_string()))?;
        let store = Self {
            client,
            head: watch::Sender::new(0),
            alive: std::sync::Arc::new(()),
        };
        let head = store.head_position().await?;
        store.head.send_replace(head);
        store.follow();
        Ok(store)
    }

    /// Follows `$all` from the end in the background, moving the head as events appear.
    fn follow(&self) {
        let client = self.client.clone();
        let head = self.head.clone();
        let alive = std::sync::Arc::downgrade(&self.alive);
        tokio::spawn(async move {
            while alive.strong_count() > 0 {
                let options = SubscribeToAllOptions::default()
                    .position(StreamPosition::End)
                    .filter(SubscriptionFilter::on_stream_name().add_prefix(STREAM_PREFIX));
                let mut subscription = client.subscribe_to_all(&options).await;
                loop {
                    match subscription.next_subscription_event().await {
                        Ok(SubscriptionEvent::EventAppeared(resolved)) => {
                            let position = resolved.get_original_event().position.prepare;
                            head.send_if_modified(|current| {
                                let moved = position > *current;
                                *current = (*current).max(position);
                                moved
                            });
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, "EventStoreDB subscription dropped; resubscribing");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            break;
                        }
                    }
                    if alive.strong_count() == 0 {
                        return;
                    }
                }
            }
        });
    }

    /// The `$all` positions of events just appended, found by id near the end of `$all` (stream
    /// reads carry no log positions). Under a write load so heavy that they are not among the
    /// last few thousand events, the write's own position stands in for the missing ones: an
    /// upper bound, so read-your-writes waits still end.
    async fn positions_of(
        &self,
        events: &[NewEvent],
        written: eventstore::Position,
    ) -> Result<Vec<Position>, StoreError> {
        let mut found: std::collections::HashMap<Uuid, Position> = std::collections::HashMap::new();
        let options = ReadAllOptions::default()
            .backwards()
            .position(StreamPosition::End)
            .max_count(4096);
        let mut read = self.client.read_all(&options).await.map_err(unavailable)?;
        while found.len() < events.len() {
            let Some(resolved) = read.next().await.map_err(unavailable)? else {
                break;
            };
            let recorded = resolved.get_original_event();
            if events
                .iter()
                .any(|new| new.metadata.event_id == recorded.id)
                && let Some(position) = position_of(recorded)
            {
                found.insert(recorded.id, position);
            }
        }
        let fallback = written.commit.max(written.prepare);
        Ok(events
            .iter()
            .map(|new| {
                found
                    .get(&new.metadata.event_id)
                    .copied()
                    .unwrap_or(fallback)
            })
            .collect())
    }

    async fn read_stream_page(
        &self,
        stream: &str,
        options: &ReadStreamOptions,
    ) -> Result<Vec<eventstore::ResolvedEvent>, StoreError> {
        let mut read = match self.client.read_stream(stream, options).await {
            Ok(read) => read,
            Err(eventstore::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(error) => return Err(unavailable(error)),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(event)) => events.push(event),
                Ok(None) => return Ok(events),
                Err(eventstore::Error::ResourceNotFound) => return Ok(events),
                Err(error) => return Err(unavailable(error)),
            }
        }
    }
}

#[async_trait]
impl EventStore for EsdbEventStore {
    async fn append(
        &self,
        stream: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, StoreError> {
        if events.is_empty() {
            let current = self.read_stream(stream, expected_version, 1).await?;
            if current.is_empty() {
                return Ok(Appended {
                    positions: Vec::new(),
                    version: expected_version,
                });
            }
            return Err(StoreError::Conflict {
                stream: stream.to_owned(),
                expected: expected_version,
                actual: current[0].version,
            });
        }
        let mut data = Vec::with_capacity(events.len());
        for new in events {
            let event = EventData::json(new.event.type_name(), &new.event)
                .and_then(|event| {
                    event
                        .id(new.metadata.event_id)
                        .metadata_as_json(&StoredMetadata::of(new))
                })
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            data.push(event);
        }
        let options =
            AppendToStreamOptions::default().expected_revision(expected_revision(expected_version));
        let written = match self.client.append_to_stream(stream, &options, data).await {
            Ok(written) => written,
            Err(eventstore::Error::WrongExpectedVersion { current, .. }) => {
                let actual = match current {
                    eventstore::CurrentRevision::Current(revision) => revision + 1,
                    eventstore::CurrentRevision::NoStream => 0,
                };
                return Err(StoreError::Conflict {
                    stream: stream.to_owned(),
                    expected: expected_version,
                    actual,
                });
            }
            Err(error) => return Err(unavailable(error)),
        };
        let positions = self.positions_of(events, written.position).await?;
        if let Some(last) = positions.last().copied() {
            self.head.send_if_modified(|current| {
                let moved = last > *current;
                *current = (*current).max(last);
                moved
            });
        }
        Ok(Appended {
            positions,
            version: expected_version + events.len() as u64,
        })
    }

    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Version v (1-based) is revision v - 1; the first event after `after_version` is at
        // revision `after_version`.
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(after_version))
            .max_count(limit);
        self.read_stream_page(stream, &options)
            .await?
            .iter()
            .map(|resolved| decode(resolved.get_original_event()))
            .collect()
    }

    async fn read_tagged(
        &self,
        stream: &str,
        conference: ConferenceId,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut tagged = Vec::new();
        let mut after = 0;
        loop {
            let page = self.read_stream(stream, after, 4096).await?;
            let Some(last) = page.last().map(|event| event.version) else {
                return Ok(tagged);
            };
            tagged.extend(
                page.into_iter()
                    .filter(|event| event.event.conference() == Some(conference)),
            );
            after = last;
        }
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(4096));
        let mut from = eventstore::Position {
            commit: after,
            prepare: after,
        };
        let mut previous = after;
        while out.len() < limit {
            let options = ReadAllOptions::default()
                .forwards()
                .position(StreamPosition::Position(from))
                .max_count(limit * 2);
            let mut read = self.client.read_all(&options).await.map_err(unavailable)?;
            let mut seen_any = false;
            while let Some(resolved) = read.next().await.map_err(unavailable)? {
                seen_any = true;
                let recorded = resolved.get_original_event();
                from = recorded.position;
                if recorded.position.prepare <= previous
                    || !recorded.stream_id.starts_with(STREAM_PREFIX)
                {
                    continue;
                }
                previous = recorded.position.prepare;
                out.push(decode(recorded)?);
                if out.len() == limit {
                    break;
                }
            }
            if !seen_any || out.len() == limit {
                break;
            }
            // The page held only other streams' events: go on from where it stopped.
            if from.prepare <= previous && from.commit <= previous {
                break;
            }
        }
        Ok(out)
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let options = ReadAllOptions::default()
            .backwards()
            .position(StreamPosition::End)
            .max_count(256);
        let mut read = self.client.read_all(&options).await.map_err(unavailable)?;
        while let Some(resolved) = read.next().await.map_err(unavailable)? {
            let recorded = resolved.get_original_event();
            if recorded.stream_id.starts_with(STREAM_PREFIX) {
                return Ok(recorded.position.prepare);
            }
        }
        Ok(*self.head.borrow())
    }

    async fn wait_for_events(&self, after: Position) {
        let mut receiver = self.head.subscribe();
        let _ = receiver.wait_for(|head| *head > after).await;
    }

    async fn find_command(
        &self,
        stream: &str,
        command_id: Uuid,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let options = ReadStreamOptions::default()
            .backwards()
            .position(StreamPosition::End)
            .max_count(usize::MAX);
        let mut read = match self.client.read_stream(stream, &options).await {
            Ok(read) => read,
            Err(eventstore::Error::ResourceNotFound) => return Ok(None),
            Err(error) => return Err(unavailable(error)),
        };
        let mut newest: Option<DateTime<Utc>> = None;
        let mut found: Option<CommandRecord> = None;
        loop {
            let resolved = match read.next().await {
                Ok(Some(resolved)) => resolved,
                Ok(None) | Err(eventstore::Error::ResourceNotFound) => break,
                Err(error) => return Err(unavailable(error)),
            };
            let event = decode(resolved.get_original_event())?;
            let at = event.metadata.recorded_at;
            let newest_at = *newest.get_or_insert(at);
            if event.metadata.command_id == command_id {
                let record = found.get_or_insert(CommandRecord {
                    conference: event.event.conference(),
                    line: None,
                    last_position: event.position,
                    recorded_at: at,
                    refused: Vec::new(),
                });
                record.recorded_at = record.recorded_at.min(at);
                record.last_position = record.last_position.max(event.position);
                // Read backwards: the earliest event that names a conference names the answer.
                record.conference = event.event.conference().or(record.conference);
                match &event.event {
                    Event::LineAdded { line, .. } => record.line = Some(line.clone()),
                    // Read backwards: each earlier refusal goes first.
                    Event::DemandRefused { slot, .. } => record.refused.insert(0, *slot),
                    _ => {}
                }
            } else if found.is_some() || at < newest_at - COMMAND_WINDOW {
                break;
            }
        }
        // Stream reads carry no log position: the head bounds the command's last event.
        if let Some(record) = &mut found
            && record.last_position == 0
        {
            record.last_position = self.head_position().await?;
        }
        Ok(found)
    }

    async fn save_snapshot(&self, stream: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        if self
            .load_snapshot(stream)
            .await?
            .is_some_and(|stored| stored.version >= snapshot.version)
        {
            return Ok(());
        }
        // The state as the event's binary data; its version and format in the metadata.
        let header = SnapshotHeader {
            version: snapshot.version,
            schema: snapshot.schema,
        };
        let event = EventData::binary(SNAPSHOT_TYPE, snapshot.data.clone().into())
            .metadata_as_json(&header)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        self.client
            .append_to_stream(
                format!("snapshot-{stream}"),
                &AppendToStreamOptions::default(),
                event,
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        let options = ReadStreamOptions::default()
            .backwards()
            .position(StreamPosition::End)
            .max_count(1);
        let page = self
            .read_stream_page(&format!("snapshot-{stream}"), &options)
            .await?;
        let Some(resolved) = page.first() else {
            return Ok(None);
        };
        let recorded = resolved.get_original_event();
        // A snapshot written before they were binary has no header: as good as none (replay).
        let Ok(header) = serde_json::from_slice::<SnapshotHeader>(&recorded.custom_metadata) else {
            tracing::warn!(stream, "ignoring a snapshot without a header");
            return Ok(None);
        };
        Ok(Some(Snapshot {
            version: header.version,
            schema: header.schema,
            data: recorded.data.to_vec(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meetline_domain::types::UserId;

    #[test]
    fn versions_map_to_revisions() {
        assert_eq!(expected_revision(0), ExpectedRevision::NoStream);
        assert_eq!(expected_revision(1), ExpectedRevision::Exact(0));
        assert_eq!(expected_revision(42), ExpectedRevision::Exact(41));
    }

    #[test]
    fn metadata_round_trips_through_json() {
        let new = NewEvent {
            event: Event::ParticipantJoined {
                conference: ConferenceId(Uuid::from_u128(9)),
                user: UserId::parse("u").unwrap(),
            },
            metadata: EventMetadata {
                event_id: Uuid::new_v4(),
                command_id: Uuid::new_v4(),
                correlation_id: Uuid::new_v4(),
                causation_id: None,
                actor: "alice".into(),
                recorded_at: DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
                schema_version: 1,
            },
        };
        let stored = StoredMetadata::of(&new);
        let json = serde_json::to_vec(&stored).unwrap();
        let back: StoredMetadata = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, stored);
        assert_eq!(back.conference_id, Some(Uuid::from_u128(9)));
    }
}
