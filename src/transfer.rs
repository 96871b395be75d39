//! `meetline export` and `meetline import`: a deployment's history — the event log with every
//! event's metadata, the directory, and the lines' settings (sealed, never in clear) — as NDJSON,
//! one record a line, so a team can move from one store to another (SQLite → PostgreSQL →
//! EventStoreDB) and keep everything.
//!
//! The file: a `header` record; the `event` records in log order; per tenant, its directory's
//! `user`, `meeting` and `chat` records; the `line_settings` records; and an `end` record with
//! the counts and a SHA-256 over every record between. Positions are in the file but not in the
//! checksum: a store numbers the events it is given, so the same history has the same checksum
//! in every store.
//!
//! `import` reads the whole file first (into a private temporary file) and checks it — its
//! form, dense versions per stream, the counts and the checksum, that the line settings open
//! with the target's key — and writes nothing unless all of it holds. It then appends each
//! stream's events in log order (consecutive events of one stream in one append), writes the
//! directory and the settings, rebuilds the read models, and checks the target by exporting it
//! again: the same counts and checksum, or it fails.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use meetline_adapters::db::Database;
use meetline_adapters::directory::{Directory, DirectoryChat, DirectoryUser, SqlDirectory};
use meetline_adapters::line_settings::{LineSettingsStore, SealedSettings, sealed_settings};
use meetline_command_api::provisioning::CHECKPOINT as PROVISIONING;
use meetline_domain::command::MeetingFacts;
use meetline_domain::event::{EVENT_SCHEMA_VERSION, Event};
use meetline_domain::ports::{
    EventMetadata, EventStore, NewEvent, Position, RecordedEvent, pool_stream,
};
use meetline_domain::types::TenantId;
use meetline_projections::ProcessState;
use meetline_projections::view::tenant_of_stream;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The version of the file's format.
pub const FORMAT: u32 = 1;
/// Events per read of the source and at most per append to the target.
const PAGE: usize = 1000;

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Header {
        format: u32,
        /// The kind of store it was exported from (`sqlite`, `postgres`, `esdb`).
        source: String,
        /// The one tenant exported, or all.
        tenant: Option<TenantId>,
        exported_at: DateTime<Utc>,
    },
    Event(EventRecord),
    User {
        tenant: TenantId,
        user: DirectoryUser,
    },
    Meeting {
        tenant: TenantId,
        meeting: MeetingFacts,
    },
    Chat {
        tenant: TenantId,
        chat: DirectoryChat,
    },
    LineSettings(SealedSettings),
    End(Totals),
}

/// An event with its metadata, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub event_id: Uuid,
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    /// The event's payload, as the store holds it.
    pub data: serde_json::Value,
}

impl EventRecord {
    fn of(recorded: &RecordedEvent) -> Self {
        let metadata = &recorded.metadata;
        Self {
            position: recorded.position,
            stream: recorded.stream.clone(),
            version: recorded.version,
            event_type: recorded.event.type_name().to_owned(),
            schema_version: metadata.schema_version,
            event_id: metadata.event_id,
            command_id: metadata.command_id,
            correlation_id: metadata.correlation_id,
            causation_id: metadata.causation_id,
            actor: metadata.actor.clone(),
            recorded_at: metadata.recorded_at,
            data: serde_json::to_value(&recorded.event).expect("events serialize"),
        }
    }

    /// The event as this version of meetline reads it (older schemas upcast).
    fn event(&self) -> anyhow::Result<Event> {
        let event = Event::from_stored(
            &self.event_type,
            self.schema_version,
            &self.data.to_string(),
        )?;
        ensure!(
            event.type_name() == self.event_type,
            "a {} record holds a {} event",
            self.event_type,
            event.type_name()
        );
        Ok(event)
    }

    fn new_event(&self) -> anyhow::Result<NewEvent> {
        Ok(NewEvent {
            event: self.event()?,
            metadata: EventMetadata {
                event_id: self.event_id,
                command_id: self.command_id,
                correlation_id: self.correlation_id,
                causation_id: self.causation_id,
                actor: self.actor.clone(),
                recorded_at: self.recorded_at,
                schema_version: EVENT_SCHEMA_VERSION,
            },
        })
    }
}

/// What the file holds, and its checksum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub events: u64,
    pub streams: u64,
    pub users: u64,
    pub meetings: u64,
    pub chats: u64,
    pub line_settings: u64,
    /// SHA-256 (hex) over the records between the header and the end, positions left out.
    pub checksum: String,
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events in {} streams, {} users, {} meetings, {} chats, {} line settings; checksum {}",
            self.events,
            self.streams,
            self.users,
            self.meetings,
            self.chats,
            self.line_settings,
            self.checksum
        )
    }
}

/// Counts records and hashes them in their canonical form.
#[derive(Default)]
struct Tally {
    totals: Totals,
    streams: BTreeSet<String>,
    hash: Sha256,
}

impl Tally {
    /// Counts `record` in today's shape (an event as this version reads it: `event`): what an
    /// export of the target will hold.
    fn add(&mut self, record: &Record, event: Option<&Event>) {
        match (record, event) {
            (Record::Event(stored), Some(event)) => {
                self.add_as_written(&Record::Event(EventRecord {
                    event_type: event.type_name().to_owned(),
                    schema_version: EVENT_SCHEMA_VERSION,
                    data: serde_json::to_value(event).expect("events serialize"),
                    ..stored.clone()
                }))
            }
            (record, _) => self.add_as_written(record),
        }
    }

    /// Counts `record` as the file has it (an older file's events in their older shape): what
    /// its end record's checksum was computed over.
    fn add_as_written(&mut self, record: &Record) {
        let written = match record {
            Record::Event(stored) => {
                self.totals.events += 1;
                self.streams.insert(stored.stream.clone());
                Record::Event(EventRecord {
                    position: 0,
                    ..stored.clone()
                })
            }
            Record::User { .. } => {
                self.totals.users += 1;
                record.clone()
            }
            Record::Meeting { .. } => {
                self.totals.meetings += 1;
                record.clone()
            }
            Record::Chat { .. } => {
                self.totals.chats += 1;
                record.clone()
            }
            Record::LineSettings(_) => {
                self.totals.line_settings += 1;
                record.clone()
            }
            Record::Header { .. } | Record::End(_) => record.clone(),
        };
        let mut line = serde_json::to_vec(&written).expect("records serialize");
        line.push(b'\n');
        self.hash.update(&line);
    }

    fn finish(self) -> Totals {
        let digest = self.hash.finalize();
        Totals {
            streams: self.streams.len() as u64,
            checksum: meetline_domain::types::hex(&digest),
            ..self.totals
        }
    }
}

/// Whether a record belongs to the tenant (all of them, for `None`).
fn belongs(record: &Record, tenant: Option<&TenantId>) -> bool {
    let Some(tenant) = tenant else { return true };
    match record {
        Record::Event(event) => tenant_of_stream(&event.stream).as_ref() == Some(tenant),
        Record::User { tenant: of, .. }
        | Record::Meeting { tenant: of, .. }
        | Record::Chat { tenant: of, .. } => of == tenant,
        Record::LineSettings(settings) => settings.tenant == tenant.as_str(),
        Record::Header { .. } | Record::End(_) => false,
    }
}

fn write_record(out: &mut impl Write, record: &Record) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes the history of `tenant` (or of every tenant) to `out`; returns what it wrote.
///
/// # Errors
/// When the store cannot be read or `out` written.
pub async fn export(
    store: &dyn EventStore,
    db: &Database,
    source: &str,
    tenant: Option<&TenantId>,
    out: &mut impl Write,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Totals> {
    write_record(
        out,
        &Record::Header {
            format: FORMAT,
            source: source.to_owned(),
            tenant: tenant.cloned(),
            exported_at: Utc::now(),
        },
    )?;
    let mut tally = Tally::default();
    let mut tenants: BTreeSet<TenantId> = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        progress.set_position(after);
        for recorded in &page {
            let record = Record::Event(EventRecord::of(recorded));
            if !belongs(&record, tenant) {
                continue;
            }
            if let Some(of) = tenant_of_stream(&recorded.stream) {
                tenants.insert(of);
            }
            tally.add(&record, Some(&recorded.event));
            write_record(out, &record)?;
        }
    }
    let directory = SqlDirectory::new(db.clone()).await?;
    match tenant {
        Some(tenant) => {
            tenants = BTreeSet::from([tenant.clone()]);
        }
        None => tenants.extend(directory.tenants().await?),
    }
    for tenant in &tenants {
        // In byte order of their ids, whatever the database's collation.
        let mut users = directory.users(tenant).await?;
        users.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        let mut meetings = directory.meetings(tenant).await?;
        meetings.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        let mut chats = directory.chats(tenant).await?;
        chats.sort_by(|a, b| a.facts.id.as_str().cmp(b.facts.id.as_str()));
        let mut records = Vec::new();
        for user in users {
            records.push(Record::User {
                tenant: tenant.clone(),
                user,
            });
        }
        for meeting in meetings {
            records.push(Record::Meeting {
                tenant: tenant.clone(),
                meeting,
            });
        }
        for chat in chats {
            records.push(Record::Chat {
                tenant: tenant.clone(),
                chat,
            });
        }
        for record in &records {
            tally.add(record, None);
            write_record(out, record)?;
        }
    }
    for settings in sealed_settings(db, tenant).await? {
        let record = Record::LineSettings(settings);
        tally.add(&record, None);
        write_record(out, &record)?;
    }
    let totals = tally.finish();
    write_record(out, &Record::End(totals.clone()))?;
    out.flush()?;
    Ok(totals)
}

/// A private temporary file (mode 0600, a fresh random name), unlinked as soon as it is open:
/// nothing is left behind however the import ends.
fn spool() -> anyhow::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!("meetline-import-{}.ndjson", Uuid::now_v7()));
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::fs::remove_file(&path).with_context(|| format!("unlinking {}", path.display()))?;
    Ok(file)
}

/// The longest line an import reads (a record is a few KB; this bounds the memory a hostile
/// file can take).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// The next line of `input` (without its newline), or `None` at the end.
fn next_line(input: &mut impl BufRead, number: usize) -> anyhow::Result<Option<String>> {
    let mut bytes = Vec::new();
    let read = input
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut bytes)
        .with_context(|| format!("reading line {number}"))?;
    if read == 0 {
        return Ok(None);
    }
    ensure!(
        bytes.len() <= MAX_LINE,
        "line {number} is longer than {MAX_LINE} bytes: not a record of a meetline export"
    );
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| anyhow::anyhow!("line {number} is not UTF-8"))
}

/// Where a record stands in an export's order: the events by position, then per tenant its
/// users, meetings and chats by id (bytes), then the line settings by tenant and line. An export
/// is strictly in this order — a record repeated or out of place is not one `export` wrote.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Event(u64),
    Directory(String, u8, String),
    Settings(String, String),
}

impl Place {
    fn of(record: &Record) -> Option<Self> {
        Some(match record {
            Record::Event(event) => Self::Event(event.position),
            Record::User { tenant, user } => {
                Self::Directory(tenant.to_string(), 0, user.id.to_string())
            }
            Record::Meeting { tenant, meeting } => {
                Self::Directory(tenant.to_string(), 1, meeting.id.as_str().to_owned())
            }
            Record::Chat { tenant, chat } => {
                Self::Directory(tenant.to_string(), 2, chat.facts.id.as_str().to_owned())
            }
            Record::LineSettings(settings) => {
                Self::Settings(settings.tenant.clone(), settings.line.clone())
            }
            Record::Header { .. } | Record::End(_) => return None,
        })
    }
}

/// What an import wrote.
#[derive(Debug)]
pub struct Imported {
    /// The tenant's (or all) records of the file, as written and verified in the target.
    pub totals: Totals,
    /// Whether the target was empty (then the read models were rebuilt).
    pub whole: bool,
}

/// Reads a file `export` wrote from `input` into the target store: into an empty store (every
/// record), or — `tenant` — one tenant's records into a store that does not have that tenant.
///
/// The file is read whole and checked before anything is written: its form and order, dense
/// versions per stream, unique event ids, the counts and checksum of its end record, every rule
/// of the log (the independent checker, `meetline-verify`), and that the line settings open with
/// `settings`'s key. The imported events are history to the provisioning process: it does not
/// call providers for them again.
///
/// # Errors
/// When the file is not sound or the target not fit (not empty, or already has the tenant):
/// then nothing is written. When a store fails while writing: the error says that the target
/// holds part of the import.
pub async fn import(
    store: &dyn EventStore,
    db: &Database,
    settings: &LineSettingsStore,
    tenant: Option<&TenantId>,
    mut input: impl BufRead,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Imported> {
    let directory = SqlDirectory::new(db.clone()).await?;
    meetline_projections::projector::migrate(db).await?;
    // The target first: refusing takes no reading.
    match tenant {
        None => {
            let head = store.head_position().await?;
            let tenants = directory.tenants().await?;
            let settings = sealed_settings(db, None).await?;
            ensure!(
                head == 0 && tenants.is_empty() && settings.is_empty(),
                "the target is not empty ({head} events, {} tenants in its directory, {} line settings): \
                 import into an empty store, or add one tenant it does not have with --tenant",
                tenants.len(),
                settings.len()
            );
        }
        Some(tenant) => {
            let events = store.read_stream(&pool_stream(tenant), 0, 1).await?;
            let known = directory.tenants().await?.contains(tenant);
            let settings = sealed_settings(db, Some(tenant)).await?;
            ensure!(
                events.is_empty() && !known && settings.is_empty(),
                "the target already has tenant {tenant}: --tenant adds a tenant it does not have"
            );
        }
    }

    // The whole file, checked and kept aside, before anything is written.
    let file = spool()?;
    let mut kept = BufWriter::new(&file);
    let (mut all, mut chosen) = (Tally::default(), Tally::default());
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut event_ids: HashSet<Uuid> = HashSet::new();
    let mut place: Option<Place> = None;
    // The chosen events, numbered as the target will (for the independent checker).
    let mut log: Vec<RecordedEvent> = Vec::new();
    let mut end: Option<Totals> = None;
    let mut header = false;
    let mut number = 0;
    while let Some(line) = next_line(&mut input, number + 1)? {
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line)
            .with_context(|| format!("line {number} is not a record of a meetline export"))?;
        ensure!(end.is_none(), "line {number}: records after the end record");
        match &record {
            Record::Header { format, .. } => {
                ensure!(!header, "line {number}: a second header");
                ensure!(
                    *format == FORMAT,
                    "line {number}: format {format}; this meetline reads format {FORMAT}"
                );
                header = true;
                continue;
            }
            _ if !header => {
                bail!("line {number} comes before the header: this is not a meetline export")
            }
            Record::End(totals) => {
                end = Some(totals.clone());
                continue;
            }
            _ => {}
        }
        let here = Place::of(&record).expect("a header or end record is handled above");
        ensure!(
            place.as_ref().is_none_or(|before| *before < here),
            "line {number}: a record repeated or out of the order export writes ({here:?})"
        );
        place = Some(here);
        let event = match &record {
            Record::Event(stored) => {
                ensure!(
                    tenant_of_stream(&stored.stream).is_some(),
                    "line {number}: {:?} is not a tenant's stream",
                    stored.stream
                );
                ensure!(
                    (1..=EVENT_SCHEMA_VERSION).contains(&stored.schema_version),
                    "line {number}: event schema {}; this meetline reads up to {EVENT_SCHEMA_VERSION}",
                    stored.schema_version
                );
                ensure!(
                    event_ids.insert(stored.event_id),
                    "line {number}: event id {} repeated",
                    stored.event_id
                );
                let event = stored
                    .event()
                    .with_context(|| format!("line {number}: event {}", stored.position))?;
                let version = versions.entry(stored.stream.clone()).or_default();
                ensure!(
                    stored.version == *version + 1,
                    "line {number}: {} version {} where {} was due",
                    stored.stream,
                    stored.version,
                    *version + 1
                );
                *version += 1;
                Some(event)
            }
            _ => None,
        };
        all.add_as_written(&record);
        if belongs(&record, tenant) {
            if let Record::LineSettings(sealed) = &record {
                settings.opens(sealed).with_context(|| {
                    format!(
                        "line {number}: the settings of {}/{} do not open with the target's settings key — \
                         give import (and the servers) the source's MEETLINE_SETTINGS_KEY",
                        sealed.tenant, sealed.line
                    )
                })?;
            }
            if let (Record::Event(stored), Some(event)) = (&record, &event) {
                let new = stored.new_event()?;
                log.push(RecordedEvent {
                    position: log.len() as u64 + 1,
                    stream: stored.stream.clone(),
                    version: stored.version,
                    event: event.clone(),
                    metadata: new.metadata,
                });
            }
            chosen.add(&record, event.as_ref());
            kept.write_all(line.as_bytes())?;
            kept.write_all(b"\n")?;
        }
    }
    ensure!(header, "the input is empty");
    let Some(end) = end else {
        bail!("the file ends before its end record: it was cut short")
    };
    let read = all.finish();
    ensure!(
        read == end,
        "the file does not match its end record: it holds {read}; its end record says {end}"
    );
    let expected = chosen.finish();
    if let Some(tenant) = tenant {
        ensure!(
            expected.events + expected.users + expected.meetings + expected.chats > 0,
            "the file holds nothing of tenant {tenant}"
        );
    }
    // The rules of the log, checked apart from the engine's code: a file that breaks one would
    // put a double booking (or worse) into the target.
    let report = meetline_verify::check(&log, &[]);
    if !report.passed() {
        let first: Vec<String> = report
            .violations
            .iter()
            .take(5)
            .map(|violation| format!("  {violation} (numbered as imported)"))
            .collect();
        bail!(
            "the file's events break {} rule(s) of the log:\n{}",
            report.violations.len(),
            first.join("\n")
        );
    }
    drop(log);
    kept.flush()?;
    drop(kept);

    // Writing. Nothing above wrote anything; from here a failure leaves part of the import.
    let process = ProcessState::new(db.clone());
    let partial = |what: String| {
        format!(
            "{what}; the target now holds part of the import: start again from an empty store \
             (or the target's backup)"
        )
    };
    if let Some(tenant) = tenant {
        // A running node's provisioning must not act on the tenant's history while it arrives.
        process
            .set_imported_through(tenant, Position::MAX)
            .await
            .context("marking the tenant's history")?;
    }
    progress.set_length(expected.events);
    let mut last = 0;
    let written = async {
        let mut reader = BufReader::new(&file);
        reader.seek(SeekFrom::Start(0))?;
        let mut run: Vec<NewEvent> = Vec::new();
        let mut run_stream = String::new();
        let mut run_base = 0;
        let mut written = 0;
        let mut number = 0;
        while let Some(line) = next_line(&mut reader, number + 1)? {
            number += 1;
            let record: Record = serde_json::from_str(&line)?;
            let is_event = matches!(record, Record::Event(_));
            // A run ends at another stream, at its length limit, or where the events end.
            if !is_event
                || matches!(&record, Record::Event(stored)
                    if stored.stream != run_stream || run.len() >= PAGE)
            {
                let (count, at) = flush_run(store, &run_stream, run_base, &mut run).await?;
                written += count;
                last = last.max(at);
                progress.set_position(written);
            }
            let stored = match record {
                Record::Event(stored) => stored,
                other => {
                    write_entry(&directory, settings, other).await?;
                    continue;
                }
            };
            if run.is_empty() {
                run_stream.clone_from(&stored.stream);
                run_base = stored.version - 1;
            }
            run.push(stored.new_event()?);
        }
        let (count, at) = flush_run(store, &run_stream, run_base, &mut run).await?;
        last = last.max(at);
        progress.set_position(written + count);
        anyhow::Ok(())
    }
    .await;
    // What was written is history to the provisioning process — all of it, or (after a
    // failure) what got in: the tenant's later events are provisioned as usual.
    let marked = match tenant {
        Some(tenant) => process.set_imported_through(tenant, last).await,
        None => match process.checkpoint(PROVISIONING).await {
            Ok(_) => process.save_checkpoint(PROVISIONING, last).await,
            Err(error) => Err(error),
        },
    };
    written.map_err(|error| anyhow::anyhow!(partial(format!("{error:#}"))))?;
    marked.map_err(|error| {
        anyhow::anyhow!(partial(format!("marking the imported history: {error}")))
    })?;
    Ok(Imported {
        totals: expected,
        whole: tenant.is_none(),
    })
}

/// Writes a directory entry or a line's settings.
async fn write_entry(
    directory: &SqlDirectory,
    settings: &LineSettingsStore,
    record: Record,
) -> anyhow::Result<()> {
    match record {
        Record::User { tenant, user } => directory.put_user(&tenant, &user).await?,
        Record::Meeting { tenant, meeting } => directory.put_meeting(&tenant, &meeting).await?,
        Record::Chat { tenant, chat } => directory.put_chat(&tenant, &chat).await?,
        Record::LineSettings(sealed) => settings.put_sealed(&sealed).await?,
        Record::Event(_) | Record::Header { .. } | Record::End(_) => {}
    }
    Ok(())
}

/// Appends `run` (events of `stream` that follow version `base`), if any; how many, and the
/// position of the last.
async fn flush_run(
    store: &dyn EventStore,
    stream: &str,
    base: u64,
    run: &mut Vec<NewEvent>,
) -> anyhow::Result<(u64, u64)> {
    if run.is_empty() {
        return Ok((0, 0));
    }
    let appended = store
        .append(stream, base, run)
        .await
        .with_context(|| format!("appending to {stream} after version {base}"))?;
    let count = run.len() as u64;
    run.clear();
    Ok((count, appended.positions.last().copied().unwrap_or(0)))
}
