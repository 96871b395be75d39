//! Browser-facing defences, as two middlewares the binary puts around every route:
//!
//! - [`csrf_guard`]: a state-changing request authenticated by the **session cookie** (not a
//!   bearer header, which no other site can make a browser send) must come from this site —
//!   `Sec-Fetch-Site: same-origin`, or else an `Origin` equal to our own — and, under `/api/`,
//!   carry `Content-Type: application/json`, which no HTML form can send. Sign-in and
//!   sign-out forms must come from this site too (no login CSRF). Refusals are
//!   problem+json: 403 `forbidden`, 415 `unsupported_media_type`.
//! - [`security_headers`]: CSP (scripts, styles and connections only from this origin; who may
//!   frame the app is configurable for the OA host that embeds it), `X-Frame-Options`,
//!   `nosniff`, `Referrer-Policy: no-referrer`, and HSTS when served over https.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The session cookie's name over plain http (the embedded default, a developer's machine).
pub const PLAIN_COOKIE: &str = "meetline_token";
/// Its name over https: the `__Host-` prefix makes browsers insist on `Secure`, `Path=/` and no
/// `Domain`, so a sibling subdomain cannot plant or overwrite it.
pub const HOST_COOKIE: &str = "__Host-meetline_token";

/// How the server is reached by browsers, and who may embed it.
#[derive(Debug, Clone, Default)]
pub struct WebSecurity {
    /// `scheme://host[:port]` of `--public-url`, when configured: the one origin accepted.
    /// Without it, the origin is the request's own `Host` over http.
    pub public_origin: Option<String>,
    /// Served over https (`--public-url https://…`): `Secure` `__Host-` cookie and HSTS.
    pub https: bool,
    /// Origins (besides our own) that may frame the web app, e.g. the OA system's.
    pub frame_ancestors: Vec<String>,
}

impl WebSecurity {
    /// From `--public-url` (an absolute http(s) URL; only its origin matters) and the
    /// `--frame-ancestors` origins.
    ///
    /// # Errors
    /// A message naming the value that is not an origin.
    pub fn new(public_url: Option<&str>, frame_ancestors: &[String]) -> Result<Self, String> {
        let public_origin = public_url.map(origin_of).transpose()?;
        let frame_ancestors = frame_ancestors
            .iter()
            .filter(|text| !text.trim().is_empty())
            .map(|text| origin_of(text))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            https: public_origin
                .as_deref()
                .is_some_and(|origin| origin.starts_with("https://")),
            public_origin,
            frame_ancestors,
        })
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &'static str {
        if self.https {
            HOST_COOKIE
        } else {
            PLAIN_COOKIE
        }
    }

    /// The `Set-Cookie` value for a session (`max_age` 0 clears it).
    ///
    /// `SameSite=Lax`, except when the app is framed by another site over https
    /// (`--frame-ancestors`): a framed page's requests are cross-site for the browser, which sends
    /// a Lax cookie with none of them, so there it is `SameSite=None; Secure` — and writes stay
    /// guarded by [`csrf_guard`], which checks where a request comes from, not the cookie.
    pub fn session_cookie(&self, token: &str, max_age: i64) -> HeaderValue {
        let secure = if self.https { "; Secure" } else { "" };
        let same_site = if self.https && !self.frame_ancestors.is_empty() {
            "None"
        } else {
            "Lax"
        };
        HeaderValue::from_str(&format!(
            "{}={token}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}",
            self.cookie_name()
        ))
        .expect("a token is header-safe")
    }

    /// The session token the request's cookies carry, if any.
    pub fn session_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(cookie, _)| *cookie == name)
            .map(|(_, token)| token)
    }

    /// Whether the request comes from a page of this site.
    fn same_origin(&self, headers: &HeaderMap) -> bool {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        if let Some(site) = text("sec-fetch-site") {
            return site == "same-origin";
        }
        let Some(origin) = text("origin") else {
            return false;
        };
        match &self.public_origin {
            Some(ours) => origin.eq_ignore_ascii_case(ours),
            None => text("host").is_some_and(|host| {
                origin.eq_ignore_ascii_case(&format!("http://{host}"))
                    || origin.eq_ignore_ascii_case(&format!("https://{host}"))
            }),
        }
    }

    fn content_security_policy(&self) -> String {
        let mut ancestors = String::from("'self'");
        for origin in &self.frame_ancestors {
            ancestors.push(' ');
            ancestors.push_str(origin);
        }
        format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors {ancestors}"
        )
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL, lower-cased.
fn origin_of(text: &str) -> Result<String, String> {
    let refused = || format!("not an http(s) origin: {text:?}");
    let text = text.trim().trim_end_matches('/');
    let (scheme, rest) = text.split_once("://").ok_or_else(refused)?;
    let authority = rest.split('/').next().unwrap_or_default();
    let scheme = scheme.to_ascii_lowercase();
    let clean = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !(scheme == "http" || scheme == "https") || !clean {
        return Err(refused());
    }
    Ok(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            let essence = essence.trim();
            essence.eq_ignore_ascii_case("application/json")
                || (essence.len() > 5
                    && essence[essence.len() - 5..].eq_ignore_ascii_case("+json")
                    && essence.to_ascii_lowercase().starts_with("application/"))
        })
}

/// Refuses cross-site requests that would ride on the session cookie (see the module docs).
pub async fn csrf_guard(
    State(security): State<Arc<WebSecurity>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method();
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let path = request.uri().path();
    let form = path == "/signin" || path == "/signout";
    let by_cookie =
        !headers.contains_key(header::AUTHORIZATION) && security.session_token(headers).is_some();
    if (by_cookie || form) && !security.same_origin(headers) {
        tracing::warn!(path, "refused a cross-site request");
        return ApiError::CrossSite.into_response();
    }
    if by_cookie && path.starts_with("/api/") && !is_json(headers) {
        return ApiError::UnsupportedMediaType.into_response();
    }
    next.run(request).await
}

/// Adds the browser hardening headers to every response (a handler's own values win).
pub async fn security_headers(
    State(security): State<Arc<WebSecurity>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if !headers.contains_key(name)
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            headers.insert(name, value);
        }
    };
    set(
        "content-security-policy",
        security.content_security_policy(),
    );
    set("x-content-type-options", "nosniff".to_owned());
    set("referrer-policy", "no-referrer".to_owned());
    if security.frame_ancestors.is_empty() {
        // Only for browsers without CSP's frame-ancestors; it cannot name another origin.
        set("x-frame-options", "SAMEORIGIN".to_owned());
    }
    if security.https {
        set(
            "strict-transport-security",
            "max-age=31536000; includeSubDomains".to_owned(),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_junk_refused() {
        assert_eq!(
            origin_of("https://Meet.Acme.example/app/").unwrap(),
            "https://meet.acme.example"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "meet.acme.example",
            "ftp://x",
            "https://",
            "https://a b",
            "https://a;frame-ancestors *",
            "https://'unsafe-inline'",
        ] {
            assert!(origin_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn https_gets_a_secure_host_prefixed_cookie() {
        let plain = WebSecurity::new(None, &[]).unwrap();
        assert_eq!(plain.cookie_name(), "meetline_token");
        assert!(
            !plain
                .session_cookie("t", 60)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        let https = WebSecurity::new(Some("https://meet.acme.example"), &[]).unwrap();
        let cookie = https.session_cookie("t", 60);
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.starts_with("__Host-meetline_token=t;"), "{cookie}");
        assert!(
            cookie.contains("; Secure") && cookie.contains("Path=/") && cookie.contains("HttpOnly")
        );
        assert!(!cookie.contains("Domain"));
    }

    #[test]
    fn the_origin_must_match_ours() {
        let security = WebSecurity::new(Some("https://meet.acme.example"), &[]).unwrap();
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(security.same_origin(&headers(&[("origin", "https://meet.acme.example")])));
        assert!(!security.same_origin(&headers(&[("origin", "https://evil.example")])));
        assert!(!security.same_origin(&headers(&[("origin", "null")])));
        assert!(!security.same_origin(&headers(&[])));
        assert!(security.same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!security.same_origin(&headers(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://meet.acme.example")
        ])));
        let local = WebSecurity::new(None, &[]).unwrap();
        assert!(local.same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!local.same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080")
        ])));
    }

    #[test]
    fn json_content_types() {
        let with = |value: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            map
        };
        assert!(is_json(&with("application/json")));
        assert!(is_json(&with("application/json; charset=utf-8")));
        assert!(is_json(&with("application/merge-patch+json")));
        assert!(!is_json(&with("text/plain")));
        assert!(!is_json(&with("application/x-www-form-urlencoded")));
        assert!(!is_json(&with("multipart/form-data; boundary=x")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
