//! Outbound HTTP: one client configuration for calls to providers and identity providers, the
//! one check for URLs an operator configures, and what every provider adapter's calls share
//! (how they are retried, `Retry-After`, percent-encoding).

use std::time::Duration;

/// An HTTP client for outbound calls: bounded connect and request times, and **no redirects**
/// (a redirect could carry credentials, or a request, somewhere the operator never named).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("meetline/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a TLS backend is compiled in")
}

/// How failed provider calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retries: 4,
        }
    }
}

impl RetryPolicy {
    /// The delays between the retries of one call: exponential, with jitter (`backon`).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        use backon::{BackoffBuilder, ExponentialBuilder};
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
            .build()
    }
}

/// The wait an answer's `Retry-After` asks for (seconds), if any.
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Percent-encoding for a query value or path segment (everything but RFC 3986's unreserved
/// characters).
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An operator-configured endpoint (a provider's API, an identity provider's keys): `https://`,
/// or plain `http://` only on a loopback host (a local test double, where nothing crosses a
/// network); no credentials or query in it; returned without a trailing slash.
///
/// # Errors
/// The URL itself when it is neither.
pub fn operator_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(url).map_err(|_| url.to_owned())?;
    let loopback = parsed.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    let ok = parsed.host_str().is_some_and(|host| !host.is_empty())
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.query().is_none()
        && (parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback));
    if ok {
        Ok(url.to_owned())
    } else {
        Err(url.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_urls_are_https_or_loopback_http() {
        assert_eq!(
            operator_url("https://api.zoom.us/v2/").unwrap(),
            "https://api.zoom.us/v2"
        );
        assert!(operator_url("http://127.0.0.1:9999").is_ok());
        assert!(operator_url("http://[::1]:9999").is_ok());
        assert!(operator_url("http://localhost:1").is_ok());
        for bad in [
            "http://169.254.169.254/latest",
            "http://10.0.0.1",
            "ftp://example.com",
            "https://user:pw@example.com",
            "https://example.com/?x=1",
            "javascript:alert(1)",
            "not a url",
        ] {
            assert!(operator_url(bad).is_err(), "{bad}");
        }
    }
}
