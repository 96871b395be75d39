//! iCalendar (RFC 5545) for one conference (times in UTC) or a whole series (a repeating event
//! in its time zone, with exceptions and overrides): text escaped, lines folded at 75 octets on
//! character boundaries, CRLF line ends.

use chrono::{DateTime, Duration, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, Tz};
use meetline_api_common::ConferenceDto;
use meetline_domain::recurrence::SeriesLink;
use meetline_domain::types::Status;
use meetline_projections::ConferenceView;

/// A UTC date-time. iCalendar has four-digit years: an instant outside years 1–9999 (only
/// data stored before the booking horizon was enforced) is clamped to that range.
fn stamp(at: DateTime<Utc>) -> String {
    let first = DateTime::from_timestamp(-62_135_596_800, 0).expect("0001-01-01");
    let last = DateTime::from_timestamp(253_402_300_799, 0).expect("9999-12-31T23:59:59");
    at.clamp(first, last).format("%Y%m%dT%H%M%SZ").to_string()
}

/// Escapes a TEXT value: backslash, semicolon, comma and newlines; every other control
/// character (a stored value that predates validation, or a provider's) is dropped, so no value
/// can end a property or start another.
fn text(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            ';' => escaped.push_str("\\;"),
            ',' => escaped.push_str("\\,"),
            '\n' => escaped.push_str("\\n"),
            other if other.is_control() => {}
            other => escaped.push(other),
        }
    }
    escaped
}

/// A URI value (`URL:`), or `None` unless it is a plain http(s) URL: URI values are not
/// escaped in iCalendar, so anything else is left out rather than written.
fn uri(value: &str) -> Option<&str> {
    let scheme_ok = value.starts_with("https://") || value.starts_with("http://");
    let clean = !value
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '"');
    (scheme_ok && clean).then_some(value)
}

/// Folds a content line: at most 75 octets per line, continuation lines start with a space.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        let size = c.len_utf8();
        if width + size > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += size;
    }
    out.push_str("\r\n");
}

/// The description of a conference: its number and links.
fn description(view: &ConferenceView, dto: &ConferenceDto) -> String {
    let mut description = format!("会议号 / Number: {}", view.number);
    if let Some(link) = &dto.links.attendee {
        description.push_str(&format!("\n参会人链接 / Join: {link}"));
    }
    if let Some(link) = &dto.links.related {
        description.push_str(&format!("\n相关链接 / Related: {link}"));
    }
    description
}

/// The lines of a calendar around its components, folded.
fn wrap(components: Vec<String>) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//meetline//video conferences//ZH".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
    ];
    lines.extend(components);
    lines.push("END:VCALENDAR".to_owned());
    let mut out = String::new();
    for line in lines {
        fold(&line, &mut out);
    }
    out
}

/// A local date-time in `tz`, as `DTSTART;TZID=…` writes it.
fn local(at: DateTime<Utc>, tz: &Tz) -> String {
    at.with_timezone(tz).format("%Y%m%dT%H%M%S").to_string()
}

/// `+hhmm` / `-hhmm`.
fn utc_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.abs() / 60;
    format!("{sign}{:02}{:02}", minutes / 60, minutes % 60)
}

/// A `VTIMEZONE` for `tz` that covers `from`..`to`: its offset at `from`, and every change of
/// offset in between (found hour by hour, then to the second), each as an observance of its own.
fn vtimezone(tz: &Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    let offset = |at: DateTime<Utc>| tz.offset_from_utc_datetime(&at.naive_utc());
    let seconds = |at: DateTime<Utc>| offset(at).fix().local_minus_utc();
    let kind = |at: DateTime<Utc>| {
        if offset(at).dst_offset().is_zero() {
            "STANDARD"
        } else {
            "DAYLIGHT"
        }
    };
    let mut lines = vec![
        "BEGIN:VTIMEZONE".to_owned(),
        format!("TZID:{}", text(tz.name())),
    ];
    let mut observance = |onset: String, before: i32, at: DateTime<Utc>| {
        let kind = kind(at);
        lines.push(format!("BEGIN:{kind}"));
        lines.push(format!("DTSTART:{onset}"));
        lines.push(format!("TZOFFSETFROM:{}", utc_offset(before)));
        lines.push(format!("TZOFFSETTO:{}", utc_offset(seconds(at))));
        lines.push(format!("END:{kind}"));
    };
    let start = from - Duration::days(1);
    observance(
        (start + Duration::seconds(i64::from(seconds(start))))
            .format("%Y%m%dT%H%M%S")
            .to_string(),
        seconds(start),
        start,
    );
    let mut at = start;
    let end = to + Duration::days(1);
    while at < end {
        let next = at + Duration::hours(1);
        if seconds(next) != seconds(at) {
            // The change lies in (at, next]: find its second.
            let (mut low, mut high) = (at, next);
            while high - low > Duration::seconds(1) {
                let middle = low + (high - low) / 2;
                if seconds(middle) == seconds(low) {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            let before = seconds(low);
            // The onset in local time as it was before the change.
            let onset = (high + Duration::seconds(i64::from(before)))
                .format("%Y%m%dT%H%M%S")
                .to_string();
            observance(onset, before, high);
        }
        at = next;
    }
    lines.push("END:VTIMEZONE".to_owned());
    lines
}

/// An occurrence of a series as a calendar shows it: its view and what its viewer sees of it.
pub struct Occurrence<'a> {
    pub view: &'a ConferenceView,
    pub dto: &'a ConferenceDto,
}

/// iCalendar for a whole series: one event that repeats by the series' rule (`RRULE`, local
/// times in its zone, with that zone's `VTIMEZONE`), `EXDATE` for each occurrence of the rule
/// that does not take place (left out when the series was booked, cancelled, or not the
/// viewer's), and an override (`RECURRENCE-ID`) for each one that differs from the rule — moved,
/// renamed, on other links. `occurrences` are the series' conferences the viewer may see; the
/// first in the rule's order gives the repeating event its subject and links. `None` when no
/// occurrence takes place any more.
pub fn series_calendar(
    link: &SeriesLink,
    occurrences: &[Occurrence<'_>],
    now: DateTime<Utc>,
) -> Option<String> {
    let tz: Tz = link.timezone.as_str().parse().unwrap_or(chrono_tz::UTC);
    let rule = link
        .recurrence
        .occurrences(&link.first, &link.timezone)
        .unwrap_or_else(|_| vec![link.first]);
    let live: Vec<&Occurrence<'_>> = occurrences
        .iter()
        .filter(|occurrence| occurrence.view.status_at(now) != Status::Cancelled)
        .collect();
    let by_start = |start: DateTime<Utc>| {
        live.iter().find(|occurrence| {
            occurrence
                .view
                .series
                .as_ref()
                .is_some_and(|own| own.occurrence == start)
        })
    };
    let master = rule.iter().find_map(|slot| by_start(slot.start))?;
    let uid = format!("UID:{}@meetline", link.id);
    let tzid = text(tz.name());
    let last = rule.last().map_or(link.first.end, |slot| slot.end);
    let mut components = vtimezone(&tz, link.first.start, last);
    let mut event = vec![
        "BEGIN:VEVENT".to_owned(),
        uid.clone(),
        format!("DTSTAMP:{}", stamp(now)),
        format!("DTSTART;TZID={tzid}:{}", local(link.first.start, &tz)),
        format!("DTEND;TZID={tzid}:{}", local(link.first.end, &tz)),
        format!(
            "RRULE:{}",
            link.recurrence
                .rrule(&link.first, &link.timezone, rule.len())
        ),
    ];
    for slot in &rule {
        if by_start(slot.start).is_none() {
            event.push(format!("EXDATE;TZID={tzid}:{}", local(slot.start, &tz)));
        }
    }
    event.extend(details(master.view, master.dto, "CONFIRMED"));
    event.push("END:VEVENT".to_owned());
    components.extend(event);
    for slot in &rule {
        let Some(occurrence) = by_start(slot.start) else {
            continue;
        };
        let (view, dto) = (occurrence.view, occurrence.dto);
        let same = view.slot == *slot
            && view.subject == master.view.subject
            && dto.links.attendee == master.dto.links.attendee
            && view.number == master.view.number;
        if same {
            continue;
        }
        components.push("BEGIN:VEVENT".to_owned());
        components.push(uid.clone());
        components.push(format!("DTSTAMP:{}", stamp(now)));
        components.push(format!(
            "RECURRENCE-ID;TZID={tzid}:{}",
            local(slot.start, &tz)
        ));
        components.push(format!("DTSTART:{}", stamp(view.slot.start)));
        components.push(format!("DTEND:{}", stamp(view.slot.end)));
        components.extend(details(view, dto, "CONFIRMED"));
        components.push("END:VEVENT".to_owned());
    }
    Some(wrap(components))
}

/// The properties that describe a conference: subject, number and links, version, status.
fn details(view: &ConferenceView, dto: &ConferenceDto, status: &str) -> Vec<String> {
    let mut lines = vec![
        format!("SUMMARY:{}", text(view.subject.as_str())),
        format!("DESCRIPTION:{}", text(&description(view, dto))),
        format!("SEQUENCE:{}", view.version.saturating_sub(1)),
        format!("STATUS:{status}"),
    ];
    if let Some(link) = dto.links.attendee.as_deref().and_then(uri) {
        lines.push(format!("URL:{link}"));
        lines.push(format!("LOCATION:{}", text(link)));
    }
    lines
}

pub fn calendar(view: &ConferenceView, dto: &ConferenceDto, now: DateTime<Utc>) -> String {
    let status = match view.status_at(now) {
        Status::Cancelled => "CANCELLED",
        _ => "CONFIRMED",
    };
    let mut event = vec![
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}@meetline", view.id),
        format!("DTSTAMP:{}", stamp(now)),
        format!("DTSTART:{}", stamp(view.slot.start)),
        format!("DTEND:{}", stamp(view.slot.end)),
    ];
    event.extend(details(view, dto, status));
    event.push(format!("X-WR-TIMEZONE:{}", text(view.timezone.as_str())));
    event.push("END:VEVENT".to_owned());
    wrap(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_lines_within_75_octets_and_characters_whole() {
        let mut out = String::new();
        fold(&format!("SUMMARY:{}", "周会".repeat(40)), &mut out);
        for line in out.split("\r\n").filter(|line| !line.is_empty()) {
            assert!(line.len() <= 75, "{} octets", line.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("SUMMARY:{}\r\n", "周会".repeat(40)));
    }

    #[test]
    fn a_zone_with_summer_time_has_each_change_as_an_observance() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let from = DateTime::parse_from_rfc3339("2027-03-22T08:20:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let lines = vtimezone(&tz, from, from + Duration::days(14)).join("\n");
        assert!(
            lines.contains(
                "BEGIN:DAYLIGHT\nDTSTART:20270328T020000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nEND:DAYLIGHT"
            ),
            "{lines}"
        );
        assert!(
            lines.contains("BEGIN:STANDARD\nDTSTART:20270321"),
            "the offset before the change: {lines}"
        );
        assert_eq!(lines.matches("BEGIN:DAYLIGHT").count(), 1);
        // A zone without changes: its one offset.
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let lines = vtimezone(&shanghai, from, from + Duration::days(300)).join("\n");
        assert_eq!(lines.matches("BEGIN:STANDARD").count(), 1);
        assert!(lines.contains("TZOFFSETFROM:+0800\nTZOFFSETTO:+0800"));
    }

    #[test]
    fn text_escapes_separators() {
        assert_eq!(text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }

    #[test]
    fn stamps_have_four_digit_years() {
        let far = DateTime::from_timestamp(300_000_000_000, 0).unwrap();
        assert_eq!(stamp(far), "99991231T235959Z");
        let start = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        assert_eq!(stamp(start), "20260101T000000Z");
    }

    #[test]
    fn no_value_can_start_another_property() {
        assert_eq!(text("x\r\nURL:evil\u{0}\u{7}"), "x\\nURL:evil");
        assert_eq!(
            uri("https://zoom.us/j/1?pwd=a"),
            Some("https://zoom.us/j/1?pwd=a")
        );
        for bad in [
            "javascript:alert(1)",
            "https://zoom.us/j/1\r\nATTACH:https://evil",
            "https://a b",
            "data:text/html,x",
        ] {
            assert_eq!(uri(bad), None, "{bad:?}");
        }
    }
}
