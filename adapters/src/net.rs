//! Outbound HTTP: one client configuration for calls to providers and identity providers, and
//! the one check for URLs an operator configures.

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
