//! The caller: a verified bearer token (header `Authorization: Bearer …`, or the web app's
//! session cookie — `meetline_token`, or `__Host-meetline_token` over https), checked against
//! its rate limit. Cookie-authenticated writes pass [`crate::security::csrf_guard`] first.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use meetline_domain::types::Principal;

use crate::ApiContext;
use crate::error::ApiError;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// An authenticated admin of the tenant.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Principal);

/// The token: from `Authorization` when the request has that header at all (never the cookie
/// then — the CSRF guard lets such requests through as not cookie-authenticated), else from
/// the session cookie.
fn bearer(parts: &Parts, context: &ApiContext) -> Option<String> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    context.web.session_token(&parts.headers).map(str::to_owned)
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    ApiContext: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let context = ApiContext::from_ref(state);
        let token = bearer(parts, &context).ok_or(ApiError::Unauthorized)?;
        let principal = context
            .keys
            .verify(&token)
            .map_err(|_| ApiError::Unauthorized)?;
        if let Some(limits) = &context.limits {
            limits.check(&principal)?;
        }
        Ok(Self(principal))
    }
}

impl<S> FromRequestParts<S> for AdminCaller
where
    S: Send + Sync,
    ApiContext: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        if !principal.actor.admin {
            return Err(ApiError::Domain(meetline_domain::DomainError::Forbidden));
        }
        Ok(Self(principal))
    }
}
