//! iCalendar (RFC 5545) for one conference: times in UTC, text escaped, lines folded at 75
//! octets on character boundaries, CRLF line ends.

use chrono::{DateTime, Utc};
use meetline_api_common::ConferenceDto;
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

pub fn calendar(view: &ConferenceView, dto: &ConferenceDto, now: DateTime<Utc>) -> String {
    let mut description = format!("会议号 / Number: {}", view.number);
    if let Some(link) = &dto.links.attendee {
        description.push_str(&format!("\n参会人链接 / Join: {link}"));
    }
    if let Some(link) = &dto.links.related {
        description.push_str(&format!("\n相关链接 / Related: {link}"));
    }
    let status = match view.status_at(now) {
        Status::Cancelled => "CANCELLED",
        _ => "CONFIRMED",
    };
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//meetline//video conferences//ZH".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}@meetline", view.id),
        format!("DTSTAMP:{}", stamp(now)),
        format!("DTSTART:{}", stamp(view.slot.start)),
        format!("DTEND:{}", stamp(view.slot.end)),
        format!("SUMMARY:{}", text(view.subject.as_str())),
        format!("DESCRIPTION:{}", text(&description)),
        format!("SEQUENCE:{}", view.version.saturating_sub(1)),
        format!("STATUS:{status}"),
        format!("X-WR-TIMEZONE:{}", text(view.timezone.as_str())),
    ];
    if let Some(link) = dto.links.attendee.as_deref().and_then(uri) {
        lines.push(format!("URL:{link}"));
        lines.push(format!("LOCATION:{}", text(link)));
    }
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    let mut out = String::new();
    for line in lines {
        fold(&line, &mut out);
    }
    out
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
