//! A request id per HTTP request: the caller's `X-Request-Id` when it is a UUID, else a new one
//! (UUIDv7). It is in every log line of the request (the request's span), in the response's
//! `X-Request-Id`, and — for a command — the stored events' correlation id, so a log line, a
//! response and an event can be tied together.
//!
//! Only a UUID is taken from the caller: the id is stored in events and printed in logs, and any
//! other text is hostile input there.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

/// The header that carries it, both ways.
pub const HEADER: &str = "x-request-id";

/// The request's id (a request extension, set by [`request_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub Uuid);

impl RequestId {
    /// The caller's id if it is a UUID (not the nil one), else a new one.
    pub fn of(request: &Request) -> Self {
        let given = request
            .headers()
            .get(HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| Uuid::parse_str(text.trim()).ok())
            .filter(|id| !id.is_nil() && !id.is_max());
        Self(given.unwrap_or_else(Uuid::now_v7))
    }
}

/// The middleware: gives the request its id and the response its header. Outermost, so that
/// every answer carries it (a refusal by an inner layer too).
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = RequestId::of(&request);
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        HEADER,
        HeaderValue::from_str(&id.0.to_string()).expect("a UUID is a header value"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn with(header: Option<&str>) -> Request {
        let mut request = Request::new(Body::empty());
        if let Some(value) = header {
            request
                .headers_mut()
                .insert(HEADER, HeaderValue::from_str(value).unwrap());
        }
        request
    }

    #[test]
    fn a_callers_uuid_is_kept_and_anything_else_replaced() {
        let given = Uuid::now_v7();
        assert_eq!(RequestId::of(&with(Some(&given.to_string()))).0, given);
        for hostile in [
            "not-a-uuid",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "1; DROP TABLE events",
        ] {
            let id = RequestId::of(&with(Some(hostile))).0;
            assert_eq!(id.get_version_num(), 7, "{hostile}: a new id");
        }
        let fresh = RequestId::of(&with(None)).0;
        assert_ne!(fresh, RequestId::of(&with(None)).0);
    }
}
