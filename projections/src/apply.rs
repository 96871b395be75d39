//! Applying a batch of events to one generation of the read models, **set-based**: every row the
//! batch touches is loaded with one query per table, the events are folded in memory, and the
//! rows are written back with multi-row upserts. The cost of a batch is a handful of statements,
//! whatever its length.

use std::collections::{BTreeSet, HashMap, HashSet};

use meetline_db::{Backend, Database, timestamp};
use meetline_domain::event::Event;
use meetline_domain::ports::{Position, RecordedEvent};
use meetline_domain::types::{ConferenceId, LineId, ProviderKind, TenantId, UserId};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row, Transaction};

use crate::process::hour_of;
use crate::schema::Tables;
use crate::view::{ConferenceView, LineRef, tenant_of_stream};

/// A line as `rm_lines` keeps it.
#[derive(Debug, Clone)]
struct LineRow {
    ord: i64,
    name: String,
    provider: ProviderKind,
    status: &'static str,
    removed: bool,
}

/// A conference the batch touches: its view, the position of the last event applied to it, and
/// who was listed as a participant before the batch (`None`: no row yet).
struct Touched {
    view: ConferenceView,
    position: Position,
    listed: Option<Vec<UserId>>,
}

/// A line by its tenant and id as stored (ids in events are not re-validated: a stored row is
/// kept whatever its text).
type LineKey = (String, String);
type ConferenceKey = (TenantId, ConferenceId);

/// Everything a batch changes, folded in memory.
#[derive(Default)]
struct Fold {
    lines: HashMap<LineKey, LineRow>,
    changed_lines: BTreeSet<LineKey>,
    conferences: HashMap<ConferenceKey, Touched>,
    /// Provider meeting (tenant, line, meeting id) → conference, for webhooks.
    meetings: HashMap<(TenantId, LineId, String), ConferenceId>,
    /// Refusals for want of a line, by (tenant, hour).
    refusals: HashMap<(TenantId, String), i64>,
    /// Occurrences of series: (tenant, series, conference).
    series: Vec<(TenantId, String, String)>,
}

/// Applies `batch` to `tables` inside the caller's transaction.
///
/// # Errors
/// When the database fails or a stored row does not decode.
pub(crate) async fn apply_events(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    tables: &Tables,
    batch: &[RecordedEvent],
) -> Result<(), sqlx::Error> {
    let events: Vec<(TenantId, &RecordedEvent)> = batch
        .iter()
        .filter_map(|recorded| tenant_of_stream(&recorded.stream).map(|t| (t, recorded)))
        .collect();
    if events.is_empty() {
        return Ok(());
    }
    let mut fold = Fold::default();
    load(db, transaction, tables, &events, &mut fold).await?;
    for (tenant, recorded) in &events {
        fold.apply(tenant, recorded);
    }
    write(db, transaction, tables, fold).await
}

/// Loads the lines of every tenant whose events name a line, and the conferences the batch names
/// but does not schedule.
async fn load(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    tables: &Tables,
    events: &[(TenantId, &RecordedEvent)],
    fold: &mut Fold,
) -> Result<(), sqlx::Error> {
    let mut tenants: BTreeSet<&str> = BTreeSet::new();
    let mut scheduled: HashSet<(&TenantId, ConferenceId)> = HashSet::new();
    let mut wanted: BTreeSet<(&str, String)> = BTreeSet::new();
    for (tenant, recorded) in events {
        let event = &recorded.event;
        if names_a_line(event) {
            tenants.insert(tenant.as_str());
        }
        // Every conference the batch names, unless it was scheduled earlier in the batch —
        // including one it schedules: a row under that id (never in a sound log) lists
        // participants the new one may not have.
        if let Some(conference) = event.conference()
            && !scheduled.contains(&(tenant, conference))
        {
            wanted.insert((tenant.as_str(), conference.to_string()));
        }
        if let Event::ConferenceScheduled { conference, .. } = event {
            scheduled.insert((tenant, *conference));
        }
    }
    if !tenants.is_empty() {
        let keys = serde_json::to_string(&tenants).expect("strings serialize");
        let among = db.json_texts();
        let rows = sqlx::query(db.sql(&format!(
            "SELECT tenant, line_id, ord, name, provider, status, removed FROM {} \
             WHERE tenant IN ({among})",
            tables.lines
        )))
        .bind(keys)
        .fetch_all(&mut **transaction)
        .await?;
        for row in rows {
            let (tenant, line): (String, String) = (row.get("tenant"), row.get("line_id"));
            let status = if row.get::<&str, _>("status") == "maintenance" {
                "maintenance"
            } else {
                "active"
            };
            fold.lines.insert(
                (tenant, line),
                LineRow {
                    ord: row.get("ord"),
                    name: row.get("name"),
                    provider: ProviderKind::parse(row.get("provider"))
                        .map_err(|_| sqlx::Error::Decode("rm_lines: an unknown provider".into()))?,
                    status,
                    removed: row.get::<i64, _>("removed") != 0,
                },
            );
        }
    }
    if !wanted.is_empty() {
        let keys = serde_json::to_string(&wanted).expect("strings serialize");
        let among = match db.backend {
            Backend::Sqlite => {
                "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)"
            }
            Backend::Postgres => "SELECT k->>0, k->>1 FROM json_array_elements(?::json) AS k",
        };
        let rows = sqlx::query(db.sql(&format!(
            "SELECT tenant, data FROM {} WHERE (tenant, id) IN ({among})",
            tables.conferences
        )))
        .bind(keys)
        .fetch_all(&mut **transaction)
        .await?;
        for row in rows {
            let Ok(tenant) = TenantId::parse(row.get::<&str, _>("tenant")) else {
                continue;
            };
            let view: ConferenceView = serde_json::from_str(row.get::<&str, _>("data"))
                .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
            let listed = Some(view.participants());
            fold.conferences.insert(
                (tenant, view.id),
                Touched {
                    position: 0,
                    view,
                    listed,
                },
            );
        }
    }
    Ok(())
}

fn line_key(tenant: &TenantId, line: &LineId) -> LineKey {
    (tenant.as_str().to_owned(), line.as_str().to_owned())
}

/// Whether the projection of `event` needs its tenant's lines.
fn names_a_line(event: &Event) -> bool {
    matches!(
        event,
        Event::LineAdded { .. }
            | Event::LineRenamed { .. }
            | Event::LineMaintenanceStarted { .. }
            | Event::LineReturnedToService { .. }
            | Event::LineRemoved { .. }
            | Event::ConferenceScheduled { .. }
            | Event::ConferenceEdited { .. }
            | Event::ConferenceMovedToLine { .. }
    )
}

impl Fold {
    /// The line as the read side names it now.
    fn line_ref(&self, tenant: &TenantId, line: &LineId) -> LineRef {
        self.lines.get(&line_key(tenant, line)).map_or_else(
            || LineRef::unknown(line),
            |row| LineRef {
                id: line.clone(),
                name: row.name.clone(),
                provider: row.provider,
            },
        )
    }

    /// Changes an existing line's row (no row: nothing, as an `UPDATE` would).
    fn change_line(&mut self, tenant: &TenantId, line: &LineId, change: impl FnOnce(&mut LineRow)) {
        let key = line_key(tenant, line);
        if let Some(row) = self.lines.get_mut(&key) {
            change(row);
            self.changed_lines.insert(key);
        }
    }

    fn apply(&mut self, tenant: &TenantId, recorded: &RecordedEvent) {
        let event = &recorded.event;
        match event {
            Event::LineAdded {
                line,
                name,
                provider,
            } => {
                let key = line_key(tenant, line);
                let ord = self
                    .lines
                    .get(&key)
                    .map_or(recorded.position as i64, |row| row.ord);
                self.lines.insert(
                    key.clone(),
                    LineRow {
                        ord,
                        name: name.as_str().to_owned(),
                        provider: *provider,
                        status: "active",
                        removed: false,
                    },
                );
                self.changed_lines.insert(key);
            }
            Event::LineRenamed { line, name } => {
                self.change_line(tenant, line, |row| row.name = name.as_str().to_owned());
            }
            Event::LineMaintenanceStarted { line } => {
                self.change_line(tenant, line, |row| row.status = "maintenance");
            }
            Event::LineReturnedToService { line } => {
                self.change_line(tenant, line, |row| row.status = "active");
            }
            Event::LineRemoved { line } => {
                self.change_line(tenant, line, |row| row.removed = true);
            }
            Event::ConferenceScheduled {
                conference,
                line,
                series,
                ..
            } => {
                if let Some(link) = series {
                    self.series
                        .push((tenant.clone(), link.id.to_string(), conference.to_string()));
                }
                let line = self.line_ref(tenant, line);
                if let Some(view) = ConferenceView::scheduled(event, line) {
                    let key = (tenant.clone(), *conference);
                    // Scheduled again under a known id (never in a sound log): the old row's
                    // participants are still removed where they are no longer listed.
                    let listed = self.conferences.remove(&key).and_then(|old| old.listed);
                    self.conferences.insert(
                        key,
                        Touched {
                            view,
                            position: recorded.position,
                            listed,
                        },
                    );
                }
            }
            Event::DemandRefused { at, .. } => {
                *self
                    .refusals
                    .entry((tenant.clone(), hour_of(*at)))
                    .or_default() += 1;
            }
            _ => {
                if let Event::ConferenceProvisioned {
                    conference,
                    line,
                    meeting_id,
                    ..
                } = event
                {
                    // The provider's meeting id → conference, for its webhooks: per tenant and
                    // line (the account that created it), so no tenant can claim another's.
                    self.meetings.insert(
                        (tenant.clone(), line.clone(), meeting_id.as_str().to_owned()),
                        *conference,
                    );
                }
                let Some(conference) = event.conference() else {
                    return;
                };
                let target = match event {
                    Event::ConferenceEdited { line, .. } => Some(self.line_ref(tenant, line)),
                    Event::ConferenceMovedToLine { to, .. } => Some(self.line_ref(tenant, to)),
                    _ => None,
                };
                let Some(touched) = self.conferences.get_mut(&(tenant.clone(), conference)) else {
                    tracing::warn!(%conference, position = recorded.position, "event for an unknown conference");
                    return;
                };
                touched.view.apply(event, |id| {
                    target
                        .filter(|found| found.id == *id)
                        .unwrap_or_else(|| LineRef::unknown(id))
                });
                touched.position = recorded.position;
            }
        }
    }
}

/// A view as `rm_conferences.data` stores it: with its tenant, as rows always had it (a query
/// node of an earlier version reads rows this one writes; this one ignores the field).
#[derive(serde::Serialize)]
struct StoredView<'a> {
    tenant: &'a TenantId,
    #[serde(flatten)]
    view: &'a ConferenceView,
}

/// One conference row, ready to bind.
struct ConferenceRow<'a> {
    tenant: &'a str,
    id: String,
    number: &'a str,
    subject: &'a str,
    start: String,
    end: String,
    status: &'static str,
    line: &'a str,
    position: i64,
    data: String,
}

/// One participants row, ready to bind.
struct ParticipantRow<'a> {
    tenant: &'a str,
    user: &'a str,
    conference: &'a str,
    start: &'a str,
    end: &'a str,
    status: &'static str,
    subject: &'a str,
}

async fn write(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    tables: &Tables,
    fold: Fold,
) -> Result<(), sqlx::Error> {
    let lines: Vec<(&LineKey, &LineRow)> = fold
        .changed_lines
        .iter()
        .filter_map(|key| fold.lines.get(key).map(|row| (key, row)))
        .collect();
    insert_many(
        db,
        transaction,
        &format!(
            "INSERT INTO {} (tenant, line_id, ord, name, provider, status, removed) VALUES",
            tables.lines
        ),
        "ON CONFLICT (tenant, line_id) DO UPDATE SET ord = excluded.ord, name = excluded.name, \
         provider = excluded.provider, status = excluded.status, removed = excluded.removed",
        7,
        &lines,
        |query, ((tenant, line), row)| {
            query
                .bind(tenant.as_str())
                .bind(line.as_str())
                .bind(row.ord)
                .bind(row.name.as_str())
                .bind(row.provider.as_str())
                .bind(row.status)
                .bind(i64::from(row.removed))
        },
    )
    .await?;

    let mut conferences = Vec::with_capacity(fold.conferences.len());
    for ((tenant, _), touched) in &fold.conferences {
        let view = &touched.view;
        conferences.push(ConferenceRow {
            tenant: tenant.as_str(),
            id: view.id.to_string(),
            number: view.number.as_str(),
            subject: view.subject.as_str(),
            start: timestamp(view.slot.start),
            end: timestamp(view.slot.end),
            status: view.status.as_str(),
            line: view.line.id.as_str(),
            position: touched.position as i64,
            data: serde_json::to_string(&StoredView { tenant, view }).expect("views serialize"),
        });
    }
    insert_many(
        db,
        transaction,
        &format!(
            r#"INSERT INTO {} (id, tenant, number, subject, start, "end", status, line_id, position, data) VALUES"#,
            tables.conferences
        ),
        r#"ON CONFLICT (tenant, id) DO UPDATE SET subject = excluded.subject, start = excluded.start,
           "end" = excluded."end", status = excluded.status, line_id = excluded.line_id,
           position = excluded.position, data = excluded.data"#,
        10,
        &conferences,
        |query, row| {
            query
                .bind(row.id.as_str())
                .bind(row.tenant)
                .bind(row.number)
                .bind(row.subject)
                .bind(row.start.as_str())
                .bind(row.end.as_str())
                .bind(row.status)
                .bind(row.line)
                .bind(row.position)
                .bind(row.data.as_str())
        },
    )
    .await?;

    // Participants: every one listed now is written; one listed before and no longer is removed.
    let listed_now: Vec<Vec<UserId>> = fold
        .conferences
        .values()
        .map(|touched| touched.view.participants())
        .collect();
    let mut participants = Vec::new();
    let mut unlisted: Vec<(&str, &UserId, &str)> = Vec::new();
    for ((touched, row), now) in fold.conferences.values().zip(&conferences).zip(&listed_now) {
        for user in now {
            participants.push(ParticipantRow {
                tenant: row.tenant,
                user: user.as_str(),
                conference: row.id.as_str(),
                start: row.start.as_str(),
                end: row.end.as_str(),
                status: row.status,
                subject: row.subject,
            });
        }
        for user in touched.listed.iter().flatten() {
            if !now.contains(user) {
                unlisted.push((row.tenant, user, row.id.as_str()));
            }
        }
    }
    for (tenant, user, conference) in unlisted {
        sqlx::query(db.sql(&format!(
            "DELETE FROM {} WHERE tenant = ? AND user_id = ? AND conference_id = ?",
            tables.participants
        )))
        .bind(tenant)
        .bind(user.as_str())
        .bind(conference)
        .execute(&mut **transaction)
        .await?;
    }
    insert_many(
        db,
        transaction,
        &format!(
            r#"INSERT INTO {} (tenant, user_id, conference_id, start, "end", status, subject) VALUES"#,
            tables.participants
        ),
        r#"ON CONFLICT (tenant, user_id, conference_id) DO UPDATE SET start = excluded.start,
           "end" = excluded."end", status = excluded.status, subject = excluded.subject"#,
        7,
        &participants,
        |query, row| {
            query
                .bind(row.tenant)
                .bind(row.user)
                .bind(row.conference)
                .bind(row.start)
                .bind(row.end)
                .bind(row.status)
                .bind(row.subject)
        },
    )
    .await?;

    let refusals: Vec<_> = fold.refusals.iter().collect();
    insert_many(
        db,
        transaction,
        &format!(
            "INSERT INTO {} (tenant, hour, count) VALUES",
            tables.refusals
        ),
        &format!(
            "ON CONFLICT (tenant, hour) DO UPDATE SET count = {}.count + excluded.count",
            tables.refusals
        ),
        3,
        &refusals,
        |query, ((tenant, hour), count)| {
            query
                .bind(tenant.as_str())
                .bind(hour.as_str())
                .bind(**count)
        },
    )
    .await?;

    insert_many(
        db,
        transaction,
        &format!(
            "INSERT INTO {} (tenant, series_id, conference_id) VALUES",
            tables.series
        ),
        "ON CONFLICT (tenant, series_id, conference_id) DO NOTHING",
        3,
        &fold.series,
        |query, (tenant, series, conference)| {
            query
                .bind(tenant.as_str())
                .bind(series.as_str())
                .bind(conference.as_str())
        },
    )
    .await?;

    let meetings: Vec<_> = fold.meetings.iter().collect();
    insert_many(
        db,
        transaction,
        &format!(
            "INSERT INTO {} (tenant, line_id, meeting_id, conference_id) VALUES",
            tables.meetings
        ),
        "ON CONFLICT (tenant, line_id, meeting_id) DO UPDATE SET conference_id = excluded.conference_id",
        4,
        &meetings,
        |query, ((tenant, line, meeting), conference)| {
            query
                .bind(tenant.as_str())
                .bind(line.as_str())
                .bind(meeting.as_str())
                .bind(conference.to_string())
        },
    )
    .await
}

/// Parameters per statement: well under SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_PARAMETERS: usize = 8_000;

/// `INSERT … VALUES (…), (…), … {tail}` for `rows`, as few statements as the parameter limit
/// allows. Full-length statements are prepared once per connection; the last, shorter one is
/// not kept.
async fn insert_many<'r, T>(
    db: &Database,
    transaction: &mut Transaction<'_, Any>,
    head: &str,
    tail: &str,
    width: usize,
    rows: &'r [T],
    bind: impl Fn(Query<'r, Any, AnyArguments>, &'r T) -> Query<'r, Any, AnyArguments>,
) -> Result<(), sqlx::Error> {
    let per_statement = (MAX_PARAMETERS / width).max(1);
    let tuple = format!("({})", vec!["?"; width].join(", "));
    for chunk in rows.chunks(per_statement) {
        let values = vec![tuple.as_str(); chunk.len()].join(", ");
        let mut query = sqlx::query(db.sql(&format!("{head} {values} {tail}")))
            .persistent(chunk.len() == per_statement);
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut **transaction).await?;
    }
    Ok(())
}
