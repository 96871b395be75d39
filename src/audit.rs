//! For auditors and operators, straight from the raw log (no read model involved):
//! `meetline history` — one conference's events as a readable timeline, in the viewer's time
//! zone — and `meetline verify` — every invariant re-checked by the independent checker
//! (`meetline-verify`).

use std::fmt::Write as _;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use meetline_domain::conference::{Conference, LineTag};
use meetline_domain::event::Event;
use meetline_domain::ports::{EventStore, RecordedEvent, pool_stream};
use meetline_domain::types::{
    ConferenceId, ConferenceNumber, LineId, ProviderKind, Source, TenantId, TimeSlot, UserId,
};
use serde_json::json;

/// Which conference the auditor asks about.
pub enum Wanted {
    Id(ConferenceId),
    Number(ConferenceNumber),
}

impl Wanted {
    /// A conference id (a UUID) or a conference number.
    ///
    /// # Errors
    /// When the text is neither.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        if let Ok(id) = uuid::Uuid::parse_str(text.trim()) {
            return Ok(Self::Id(ConferenceId(id)));
        }
        ConferenceNumber::parse(text.trim())
            .map(Self::Number)
            .map_err(|_| {
                anyhow::anyhow!("{text:?} is neither a conference id nor a conference number")
            })
    }
}

/// The conferences of `tenant` that `wanted` names: the id, or every conference that has
/// carried the number (a number is unique among live conferences only), oldest first.
async fn find(
    store: &dyn EventStore,
    tenant: &TenantId,
    wanted: &Wanted,
) -> anyhow::Result<Vec<ConferenceId>> {
    let number = match wanted {
        Wanted::Id(id) => return Ok(vec![*id]),
        Wanted::Number(number) => number,
    };
    let stream = pool_stream(tenant);
    let mut found = Vec::new();
    let mut version = 0;
    loop {
        let page = store.read_stream(&stream, version, 5000).await?;
        let Some(last) = page.last() else { break };
        version = last.version;
        for recorded in &page {
            if let Event::ConferenceScheduled {
                conference,
                number: scheduled,
                ..
            } = &recorded.event
                && scheduled == number
            {
                found.push(*conference);
            }
        }
    }
    Ok(found)
}

/// How times are shown: in `zone`.
struct Clock {
    zone: Tz,
}

impl Clock {
    fn at(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.zone)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string()
    }

    fn slot(&self, slot: &TimeSlot) -> String {
        let (start, end) = (
            slot.start.with_timezone(&self.zone),
            slot.end.with_timezone(&self.zone),
        );
        if start.date_naive() == end.date_naive() {
            format!("{}–{}", start.format("%Y-%m-%d %H:%M"), end.format("%H:%M"))
        } else {
            format!(
                "{} – {}",
                start.format("%Y-%m-%d %H:%M"),
                end.format("%Y-%m-%d %H:%M")
            )
        }
    }
}

/// `text` safe to print on a terminal: control characters (a newline that would forge a line,
/// an escape sequence) and the bidirectional overrides that reorder what is shown are written
/// as `\u{…}`. What is in the log is anybody's input; the auditor reads it.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let reorders = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || reorders {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

fn users(list: &[UserId]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.iter()
            .map(UserId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What an event did, in words; `before`: the conference as the events before it left it.
fn describe(event: &Event, before: Option<&Conference<LineTag>>, clock: &Clock) -> String {
    match event {
        Event::ConferenceScheduled {
            number,
            mode,
            subject,
            slot,
            timezone,
            host,
            creator,
            attendees,
            related_link,
            source,
            line,
            ..
        } => {
            let mut text = format!(
                "scheduled {:?} ({}), number {number}, {} ({}) on {line}; host {host}",
                subject.as_str(),
                mode.as_str(),
                clock.slot(slot),
                timezone.as_str(),
            );
            if creator != host {
                let _ = write!(text, " (booked by {creator})");
            }
            let _ = write!(text, "; attendees {}", users(attendees));
            match source {
                Source::App => {}
                Source::Meeting { id } => {
                    let _ = write!(text, "; from meeting {}", id.as_str());
                }
                Source::Chat { id } => {
                    let _ = write!(text, "; from chat {}", id.as_str());
                }
            }
            if let Some(link) = related_link {
                let _ = write!(text, "; related link {}", link.as_str());
            }
            text
        }
        Event::ConferenceEdited {
            subject,
            slot,
            timezone,
            attendees,
            related_link,
            line,
            links_changed,
            ..
        } => {
            let mut changes = Vec::new();
            if let Some(before) = before {
                if before.subject != *subject {
                    changes.push(format!(
                        "subject {:?} → {:?}",
                        before.subject.as_str(),
                        subject.as_str()
                    ));
                }
                if before.slot != *slot {
                    changes.push(format!(
                        "time {} → {}",
                        clock.slot(&before.slot),
                        clock.slot(slot)
                    ));
                }
                if before.timezone != *timezone {
                    changes.push(format!(
                        "time zone {} → {}",
                        before.timezone.as_str(),
                        timezone.as_str()
                    ));
                }
                let added: Vec<UserId> = attendees
                    .iter()
                    .filter(|user| !before.attendees.contains(user))
                    .cloned()
                    .collect();
                let removed: Vec<UserId> = before
                    .attendees
                    .iter()
                    .filter(|user| !attendees.contains(user))
                    .cloned()
                    .collect();
                if !added.is_empty() {
                    changes.push(format!("attendees added {}", users(&added)));
                }
                if !removed.is_empty() {
                    changes.push(format!("attendees removed {}", users(&removed)));
                }
                if before.related_link != *related_link {
                    changes.push(match related_link {
                        Some(link) => format!("related link {}", link.as_str()),
                        None => "related link removed".to_owned(),
                    });
                }
                if before.line.id != *line {
                    changes.push(format!("line {} → {line}", before.line.id));
                }
            }
            if *links_changed {
                changes.push("new links".to_owned());
            }
            if changes.is_empty() {
                "edited (nothing visible changed)".to_owned()
            } else {
                format!("edited: {}", changes.join("; "))
            }
        }
        Event::AttendeesInvited { attendees, .. } => format!("invited {}", users(attendees)),
        Event::ParticipantJoined { user, .. } => format!("{user} joined, by the conference number"),
        Event::ConferenceCancelled { reason, .. } => match reason {
            Some(reason) => format!("cancelled: {reason:?}"),
            None => "cancelled".to_owned(),
        },
        Event::ConferenceEndedEarly { at, .. } => format!("ended early, at {}", clock.at(*at)),
        Event::ConferenceStarted { at, .. } => format!("started, at {}", clock.at(*at)),
        Event::ConferenceEnded { at, .. } => format!("ended, at {}", clock.at(*at)),
        Event::ConferenceMovedToLine { from, to, .. } => {
            format!("moved from {from} to {to} ({from} went into maintenance); new links")
        }
        Event::ConferenceStranded { line, .. } => {
            format!("stranded: {line} went into maintenance and no other line was free")
        }
        Event::ConferenceProvisioned {
            line,
            meeting_id,
            password,
            ..
        } => format!(
            "the provider of {line} created meeting {meeting_id}{}",
            if password.is_some() {
                " (with a password)"
            } else {
                ""
            }
        ),
        Event::ProvisioningFailed { line, reason, .. } => {
            format!("the provider of {line} could not host it: {reason}")
        }
        Event::ProviderMeetingStarted { at, .. } => {
            format!(
                "the provider reports the meeting started at {}",
                clock.at(*at)
            )
        }
        Event::ProviderMeetingEnded { at, .. } => {
            format!(
                "the provider reports the meeting ended at {}",
                clock.at(*at)
            )
        }
        other => other.type_name().to_owned(),
    }
}

fn tag(line: &LineId) -> LineTag {
    LineTag {
        id: line.clone(),
        provider: ProviderKind::Builtin,
    }
}

/// One conference's timeline: text, or (`json`) a JSON document.
fn timeline(
    tenant: &TenantId,
    id: ConferenceId,
    events: &[RecordedEvent],
    clock: &Clock,
    as_of: Option<DateTime<Utc>>,
    json: bool,
) -> String {
    let mut conference: Option<Conference<LineTag>> = None;
    let width = events
        .iter()
        .map(|recorded| recorded.metadata.actor.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines = Vec::new();
    let mut items = Vec::new();
    for (index, recorded) in events.iter().enumerate() {
        let summary = printable(&describe(&recorded.event, conference.as_ref(), clock));
        match &mut conference {
            Some(conference) => conference.apply(&recorded.event, tag),
            None => {
                if let Event::ConferenceScheduled { line, .. } = &recorded.event {
                    conference = Conference::scheduled(&recorded.event, tag(line));
                }
            }
        }
        let at = clock.at(recorded.metadata.recorded_at);
        lines.push(format!(
            "{at}  #{:<3} {:<width$}  {summary}",
            index + 1,
            printable(&recorded.metadata.actor)
        ));
        let mut data = serde_json::to_value(&recorded.event).expect("events serialize");
        // A provider meeting's password is not the auditor's to see.
        if let Some(password) = data.get_mut("password").filter(|value| !value.is_null()) {
            *password = json!("(hidden)");
        }
        items.push(json!({
            "position": recorded.position,
            "type": recorded.event.type_name(),
            "recorded_at": recorded.metadata.recorded_at,
            "at": at,
            "actor": recorded.metadata.actor,
            "summary": summary,
            "data": data,
        }));
    }
    let now = as_of.unwrap_or_else(Utc::now);
    let status = conference.as_ref().map(|c| c.status_at(now).as_str());
    if json {
        let document = json!({
            "tenant": tenant,
            "conference": id,
            "number": conference.as_ref().map(|c| c.number.as_str()),
            "subject": conference.as_ref().map(|c| c.subject.as_str()),
            "time_zone": clock.zone.name(),
            "as_of": as_of,
            "status": status,
            "events": items,
        });
        return serde_json::to_string_pretty(&document).expect("JSON values serialize");
    }
    let mut text = String::new();
    match &conference {
        Some(c) => {
            let _ = writeln!(
                text,
                "Conference {id} {}, number {}, tenant {tenant}",
                printable(&format!("{:?}", c.subject.as_str())),
                printable(c.number.as_str())
            );
        }
        None => {
            let _ = writeln!(text, "Conference {id}, tenant {tenant}");
        }
    }
    let _ = writeln!(
        text,
        "Times in {}{}.",
        clock.zone.name(),
        as_of.map_or(String::new(), |at| format!("; as of {}", clock.at(at)))
    );
    text.push('\n');
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    if let Some(status) = status {
        let _ = writeln!(
            text,
            "\n{} {status}.",
            if as_of.is_some() {
                "Status then:"
            } else {
                "Status now:"
            }
        );
    }
    text
}

/// The timelines of the conferences `wanted` names, as the log shows them up to `as_of`.
///
/// # Errors
/// When no conference matches, or the store cannot be read.
pub async fn history(
    store: &dyn EventStore,
    tenant: &TenantId,
    wanted: &Wanted,
    zone: Tz,
    as_of: Option<DateTime<Utc>>,
    json: bool,
) -> anyhow::Result<String> {
    let clock = Clock { zone };
    let stream = pool_stream(tenant);
    let mut out = Vec::new();
    for id in find(store, tenant, wanted).await? {
        let events: Vec<RecordedEvent> = store
            .read_tagged(&stream, id)
            .await
            .with_context(|| format!("reading the events of {id}"))?
            .into_iter()
            // In log order up to the first event recorded after `as_of` (nodes' clocks may
            // differ a little: what the log shows after that is not history as of then).
            .take_while(|recorded| as_of.is_none_or(|at| recorded.metadata.recorded_at <= at))
            .collect();
        if events.is_empty() {
            continue;
        }
        out.push(timeline(tenant, id, &events, &clock, as_of, json));
    }
    if out.is_empty() {
        bail!(
            "tenant {tenant} has no such conference{}",
            as_of.map_or(String::new(), |at| format!(" as of {}", clock.at(at)))
        );
    }
    Ok(if json {
        if out.len() == 1 {
            out.remove(0)
        } else {
            format!("[{}]", out.join(",\n"))
        }
    } else {
        out.join("\n")
    })
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn what_could_forge_or_recolour_a_line_is_escaped() {
        assert_eq!(
            printable("ok\n2026-01-01 forged\u{1b}[31mred\u{202e}txt\tend"),
            "ok\\u{a}2026-01-01 forged\\u{1b}[31mred\\u{202e}txt\\u{9}end"
        );
        assert_eq!(printable("张伟 (moved) – ok"), "张伟 (moved) – ok");
    }
}
