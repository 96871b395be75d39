//! Small pieces both APIs need, once: reading a time a request names, and a conference's `ETag`.

use axum::http::HeaderValue;
use chrono::{DateTime, Utc};
use meetline_domain::DomainError;

/// An RFC 3339 time from the request's field `field` (422 `invalid_input` naming it otherwise).
///
/// # Errors
/// `DomainError::InvalidInput` for `field` when `text` is not an RFC 3339 time.
pub fn time(text: &str, field: &str) -> Result<DateTime<Utc>, DomainError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| DomainError::invalid_input(field))
}

/// As [`time`], for a field that may be absent.
///
/// # Errors
/// As [`time`].
pub fn optional_time(
    text: Option<&String>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, DomainError> {
    text.map(|text| time(text, field)).transpose()
}

/// The `ETag` of a conference at `version` (`"3"`).
pub fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits and quotes")
}
