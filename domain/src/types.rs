//! Identifiers and value types. Every type that carries a rule has a validating constructor
//! (`parse`), so a value that exists is a valid one.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Accepts 1–128 characters of letters, digits, `-`, `_`, `.`, `@`.
            ///
            /// # Errors
            /// `DomainError::InvalidInput` naming the field when the text does not fit.
            pub fn parse(text: &str) -> Result<Self, DomainError> {
                let ok = !text.is_empty()
                    && text.len() <= 128
                    && text
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
                if ok {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(DomainError::invalid_input($field))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A tenant (a company). Every stream, read model row and directory entry belongs to one.
    TenantId,
    "tenant"
);
string_id!(
    /// A person in the tenant's directory.
    UserId,
    "user"
);
string_id!(
    /// A line: one licensed provider account that hosts one conference at a time.
    LineId,
    "line"
);
string_id!(
    /// A meeting (会议) of the OA suite, known from the directory.
    MeetingId,
    "meeting"
);
string_id!(
    /// A one-to-one or group chat, known from the directory.
    ChatId,
    "chat"
);

/// A conference's identity. Chosen by the caller of the aggregate (a random UUID), so a retried
/// command can name the conference it meant to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConferenceId(pub Uuid);

impl ConferenceId {
    /// # Errors
    /// `DomainError::NotFound` when the text is not a UUID: such an id can name no conference.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        Uuid::parse_str(text)
            .map(Self)
            .map_err(|_| DomainError::NotFound)
    }
}

impl fmt::Display for ConferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The conference number (会议号): nine digits, unique within a tenant, issued by the pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConferenceNumber(String);

impl ConferenceNumber {
    /// # Errors
    /// `DomainError::InvalidInput` (field `number`) unless the text is nine ASCII digits.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let trimmed: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if trimmed.len() == 9 && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(trimmed))
        } else {
            Err(DomainError::invalid_input("number"))
        }
    }

    /// The number `value` stands for in the nine-digit space: `100_000_000 + value % 900_000_000`.
    /// The command service passes uniformly random values drawn from a CSPRNG
    /// ([`NumberDraw`]), so a number says nothing about any other conference's.
    pub fn from_draw(value: u64) -> Self {
        Self((100_000_000 + value % NUMBER_SPACE).to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many nine-digit conference numbers there are.
pub const NUMBER_SPACE: u64 = 900_000_000;

/// Candidate conference numbers, drawn at random by the caller of the aggregate (which itself
/// draws no randomness, as for [`RoomNonce`]): the pool issues the first candidate that no
/// conference of the tenant holds. Several candidates make a collision with a number in use —
/// about `live / 900,000,000` per candidate — practically never exhaust them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberDraw(Vec<ConferenceNumber>);

impl NumberDraw {
    /// How many candidates the command service draws per conference.
    pub const CANDIDATES: usize = 4;

    /// # Errors
    /// `DomainError::InvalidInput` (field `number`) for no candidate or more than 64.
    pub fn new(candidates: Vec<ConferenceNumber>) -> Result<Self, DomainError> {
        if candidates.is_empty() || candidates.len() > 64 {
            return Err(DomainError::invalid_input("number"));
        }
        Ok(Self(candidates))
    }

    /// Deterministic candidates for tests and benchmarks: distinct seeds give distinct first
    /// candidates (an affine bijection of the number space). Never use it to serve users: such
    /// numbers can be predicted from one another.
    pub fn fixed(seed: u128) -> Self {
        const MULTIPLIER: u64 = 282_475_249; // 7^10: coprime with NUMBER_SPACE = 2^8·3^2·5^8
        let seed = (seed % u128::from(NUMBER_SPACE)) as u64;
        let candidates = (0..Self::CANDIDATES as u64)
            .map(|index| {
                let sequence = (seed + index * 7_919_993) % NUMBER_SPACE;
                ConferenceNumber::from_draw(sequence * MULTIPLIER % NUMBER_SPACE + 31_415_926)
            })
            .collect();
        Self(candidates)
    }

    pub fn candidates(&self) -> &[ConferenceNumber] {
        &self.0
    }
}

impl fmt::Display for ConferenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Free text a person typed (a subject, a name, a reason): trimmed, at most `max_chars`
/// characters, with no control characters (U+0000–U+001F, U+007F–U+009F) and no invisible
/// formatting characters (bidi overrides, zero-width characters). Control characters have no
/// place in these fields, break calendar files and logs, and PostgreSQL's `jsonb` refuses
/// U+0000 outright.
///
/// # Errors
/// `DomainError::InvalidInput` naming `field` when the text is empty, too long or has a
/// control character.
pub fn free_text(text: &str, field: &str, max_chars: usize) -> Result<String, DomainError> {
    let trimmed = text.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > max_chars
        || trimmed
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c))
    {
        return Err(DomainError::invalid_input(field));
    }
    Ok(trimmed.to_owned())
}

/// Invisible formatting characters that reorder or hide text (bidirectional overrides and
/// isolates, zero-width characters, line and paragraph separators, the byte-order mark): in a
/// subject or a name they only serve to make one thing look like another.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// A URL a provider gave for joining its meeting: `https://` only (never `javascript:` or
/// plain http), at most 2,000 characters, with no white space or control characters (it goes
/// into `href`s and calendar files).
///
/// # Errors
/// `DomainError::InvalidInput` (field `join_url`) otherwise.
pub fn provider_url(text: &str) -> Result<&str, DomainError> {
    let host_ok = text
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if host_ok
        && text.len() <= 2000
        && !text
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '"' | '<' | '>' | '\\'))
    {
        Ok(text)
    } else {
        Err(DomainError::invalid_input("join_url"))
    }
}

/// A conference's subject: 1–200 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Subject(String);

impl Subject {
    /// # Errors
    /// `DomainError::InvalidInput` (field `subject`) when empty, longer than 200 characters or
    /// holding a control character.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        free_text(text, "subject", 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone name, used for display and calendar files (times are stored in UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// # Errors
    /// `DomainError::InvalidInput` (field `timezone`) for a name the IANA database does not know.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        text.parse::<chrono_tz::Tz>()
            .map(|tz| Self(tz.name().to_owned()))
            .map_err(|_| DomainError::invalid_input("timezone"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TimeZoneName {
    fn default() -> Self {
        Self("Asia/Shanghai".to_owned())
    }
}

/// A link back to where the conference came from (a meeting, a chat, a workflow): an absolute
/// `http(s)` URL of at most 2,000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RelatedLink(String);

impl RelatedLink {
    /// # Errors
    /// `DomainError::InvalidInput` (field `related_link`) unless it is an absolute http(s) URL.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let text = text.trim();
        let scheme_ok = text.starts_with("https://") || text.starts_with("http://");
        let rest_ok = text.split_once("://").is_some_and(|(_, rest)| {
            !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
        });
        if scheme_ok && rest_ok && text.len() <= 2000 {
            Ok(Self(text.to_owned()))
        } else {
            Err(DomainError::invalid_input("related_link"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest a conference may last (as Zoom).
pub const MAX_DURATION_HOURS: i64 = 24;

/// A half-open time slot `[start, end)` with `0 < end - start <= 24 h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSlot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl TimeSlot {
    /// # Errors
    /// `DomainError::InvalidDuration` when the end is not after the start or more than 24 h later:
    /// the seed's `无效的输入参数： duration`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, DomainError> {
        let length = end - start;
        if length <= Duration::zero() || length > Duration::hours(MAX_DURATION_HOURS) {
            return Err(DomainError::InvalidDuration);
        }
        Ok(Self { start, end })
    }

    pub fn overlaps(&self, other: &TimeSlot) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Who a valid token says the caller is: a user of a tenant, possibly its admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub actor: Actor,
}

/// Who asks: a user of the tenant, possibly an admin. The writer fills it from the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: UserId,
    pub admin: bool,
}

impl Actor {
    pub fn user(id: &str) -> Self {
        Self {
            user: UserId::parse(id).expect("valid user id"),
            admin: false,
        }
    }
    pub fn admin(id: &str) -> Self {
        Self {
            user: UserId::parse(id).expect("valid user id"),
            admin: true,
        }
    }
    /// A background process acting on its own (`system.timer`, `system.provisioning`, a
    /// provider's webhook): admin rights, its name in the events it records.
    pub fn system(name: &str) -> Self {
        Self::admin(name)
    }
}

/// The bytes of hex text (either case, two digits each); `None` for anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `bytes` as lower-case hex, two digits each.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// The name of a room on the provider: random, so a link cannot be guessed from the number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomName(String);

impl RoomName {
    /// Room names come from the command service's random nonce; the aggregate only appends a
    /// counter so that one command can open several rooms (a maintenance move).
    pub fn derive(nonce: &RoomNonce, index: usize) -> Self {
        Self(format!("ml{}{:x}", nonce.0, index))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// At least 16 random bytes in hex, drawn by the caller of the aggregate (which itself draws no
/// randomness), from which the rooms a command opens are named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomNonce(String);

impl RoomNonce {
    /// # Errors
    /// `DomainError::InvalidInput` (field `room_nonce`) unless 32–64 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if (32..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(text.to_owned()))
        } else {
            Err(DomainError::invalid_input("room_nonce"))
        }
    }
    /// A fixed nonce for tests and deterministic benchmarks.
    pub fn fixed(seed: u128) -> Self {
        Self(format!("{seed:032x}"))
    }
}

/// The kinds of provider a line can be an account of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Builtin,
    Zoom,
    /// Tencent Meeting (腾讯会议).
    Tencent,
}

impl ProviderKind {
    /// Every kind, in the order API documents list them.
    pub const ALL: [Self; 3] = [Self::Builtin, Self::Zoom, Self::Tencent];

    /// Whether meetings on such a line are made at an outside provider (the provisioning
    /// process's work), rather than links signed by meetline.
    pub fn is_external(self) -> bool {
        self != Self::Builtin
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Builtin => "builtin",
            Self::Zoom => "zoom",
            Self::Tencent => "tencent",
        }
    }
    /// # Errors
    /// `DomainError::InvalidInput` (field `provider`) for an unknown provider.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        match text {
            "builtin" => Ok(Self::Builtin),
            "zoom" => Ok(Self::Zoom),
            "tencent" => Ok(Self::Tencent),
            _ => Err(DomainError::invalid_input("provider")),
        }
    }
}

/// A line's name: 1–100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LineName(String);

impl LineName {
    /// # Errors
    /// `DomainError::InvalidInput` (field `name`) when empty or longer than 100 characters.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        free_text(text, "name", 100).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    Active,
    Maintenance,
}

impl LineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Maintenance => "maintenance",
        }
    }
}

/// How the conference was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Starts now; only a subject is needed.
    Quick,
    /// Full information, usually in the future.
    Scheduled,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quick => "quick",
            Self::Scheduled => "scheduled",
        }
    }
}

tagged_in_text! {
    /// Where a conference came from (the three entry points of the seed).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Source (tag = "type") {
        App,
        Meeting { id: MeetingId },
        Chat { id: ChatId },
    }
}

/// The life-cycle statuses of SPEC.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    NotStarted,
    InProgress,
    Ended,
    ManuallyEnded,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "not_started",
            Self::InProgress => "in_progress",
            Self::Ended => "ended",
            Self::ManuallyEnded => "manually_ended",
            Self::Cancelled => "cancelled",
        }
    }

    /// # Errors
    /// `DomainError::InvalidInput` (field `status`) for an unknown status name.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        Ok(match text {
            "not_started" => Self::NotStarted,
            "in_progress" => Self::InProgress,
            "ended" => Self::Ended,
            "manually_ended" => Self::ManuallyEnded,
            "cancelled" => Self::Cancelled,
            _ => return Err(DomainError::invalid_input("status")),
        })
    }

    /// The label users see (SPEC.md), in Chinese or English.
    pub fn label(self, english: bool) -> &'static str {
        match (self, english) {
            (Self::NotStarted, false) => "未开始",
            (Self::InProgress, false) => "进行中",
            (Self::Ended, false) => "结束",
            (Self::ManuallyEnded, false) => "手动结束",
            (Self::Cancelled, false) => "已取消",
            (Self::NotStarted, true) => "Not started",
            (Self::InProgress, true) => "In progress",
            (Self::Ended, true) => "Ended",
            (Self::ManuallyEnded, true) => "Ended early",
            (Self::Cancelled, true) => "Cancelled",
        }
    }

    /// Statuses that time alone cannot change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Ended | Self::ManuallyEnded | Self::Cancelled)
    }

    /// The status a conference shows at `now`: `not_started` and `in_progress` follow the clock
    /// even before the timer's event lands, so reads are exact at any instant.
    pub fn at(self, slot: &TimeSlot, now: DateTime<Utc>) -> Status {
        match self {
            Self::NotStarted | Self::InProgress if now >= slot.end => Self::Ended,
            Self::NotStarted | Self::InProgress if now >= slot.start => Self::InProgress,
            Self::NotStarted | Self::InProgress => Self::NotStarted,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn conference_numbers_are_nine_digits_and_fixed_draws_are_distinct() {
        let numbers: HashSet<_> = (1..=20_000)
            .map(|seed| NumberDraw::fixed(seed).candidates()[0].clone())
            .collect();
        assert_eq!(numbers.len(), 20_000);
        assert!(numbers.iter().all(|n| n.as_str().len() == 9));
        assert_eq!(ConferenceNumber::from_draw(0).as_str(), "100000000");
        assert_eq!(ConferenceNumber::from_draw(u64::MAX).as_str().len(), 9);
    }

    #[test]
    fn free_text_refuses_control_characters_and_trims() {
        assert_eq!(free_text("  周会 ", "subject", 10).unwrap(), "周会");
        for bad in [
            "a\u{0}b",
            "line\nbreak",
            "tab\there",
            "bell\u{7}",
            "c1\u{85}x",
            "",
            "   ",
            "gpj.\u{202E}exe",
            "ad\u{200B}min",
            "a\u{2066}b",
            "x\u{FEFF}y",
        ] {
            assert_eq!(
                free_text(bad, "subject", 10),
                Err(DomainError::invalid_input("subject")),
                "{bad:?}"
            );
        }
        assert!(free_text("abcdefghijk", "subject", 10).is_err());
    }

    #[test]
    fn provider_urls_are_https_without_control_characters() {
        assert!(provider_url("https://zoom.us/j/123?pwd=abc").is_ok());
        for bad in [
            "javascript:alert(1)",
            "http://zoom.us/j/1",
            "https://",
            "https:///path",
            "https://zoom.us/j/1\r\nURL:https://evil",
            "https://zoom.us/j/1 x",
            "https://zoom.us/\"onmouseover=\"x",
        ] {
            assert!(provider_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_slot_longer_than_a_day_or_empty_is_an_invalid_duration() {
        let start = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        assert!(TimeSlot::new(start, start + Duration::hours(24)).is_ok());
        assert_eq!(
            TimeSlot::new(start, start + Duration::hours(24) + Duration::seconds(1)),
            Err(DomainError::InvalidDuration)
        );
        assert_eq!(
            TimeSlot::new(start, start),
            Err(DomainError::InvalidDuration)
        );
    }

    #[test]
    fn ids_reject_empty_and_odd_characters() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(TimeZoneName::parse("Asia/Shanghai").is_ok());
        assert!(TimeZoneName::parse("Mars/Olympus").is_err());
        assert!(RelatedLink::parse("https://oa.example.com/m/1").is_ok());
        assert!(RelatedLink::parse("javascript:alert(1)").is_err());
        assert_eq!(
            ConferenceNumber::parse("482 913 057").unwrap().as_str(),
            "482913057"
        );
    }
}
