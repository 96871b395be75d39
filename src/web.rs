//! The web app's server side: sign-in (a demo user picker with `--demo`; otherwise a token from
//! the host OA system, e.g. `/signin?token=…`), the session cookie, and the app's files — plain ES
//! modules and CSS under `web/`, embedded at build time so `cargo build` alone makes the binary.
//!
//! The cookie is HttpOnly and SameSite=Lax (and `Secure` with the `__Host-` prefix over https):
//! scripts cannot read it, and `meetline_api_common::security::csrf_guard` refuses
//! cookie-authenticated writes that do not come from this site with a JSON body.
//!
//! A token in the sign-in link (`/signin?token=…`) is not acted on by the GET (any site could make
//! a browser send one, signing it into someone else's account): the page it gets names the
//! account and posts the token when the person confirms; its script drops the token from the
//! address bar and browser history (`history.replaceState`). It reaches no `Referer`
//! (`Referrer-Policy: no-referrer`) and none of our request logs (they leave the query out).

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{FromRef, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::Duration;
use meetline_adapters::auth::{JwtKeys, Principal};
use meetline_adapters::directory::Directory;
use meetline_api_common::{ApiContext, ApiError, Lang};
use meetline_domain::types::{TenantId, UserId};
use serde::Deserialize;

/// How long a browser session lasts.
const SESSION_HOURS: i64 = 12;

#[derive(Clone)]
pub struct WebState {
    pub context: ApiContext,
    pub keys: Arc<JwtKeys>,
    pub directory: Arc<dyn Directory>,
    /// The demo tenant, when the server runs with `--demo`: its users can sign in by picking.
    pub demo_tenant: Option<TenantId>,
}

impl FromRef<WebState> for ApiContext {
    fn from_ref(state: &WebState) -> Self {
        state.context.clone()
    }
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", axum::routing::post(signout))
        .route(
            "/app",
            get(|| async { Html(include_str!("../web/app.html")) }),
        )
        .route(
            "/app/app.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../web/app.js"),
                )
            }),
        )
        .route(
            "/app/signin.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../web/signin.js"),
                )
            }),
        )
        .route(
            "/app/app.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("../web/app.css")) }),
        )
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn has_session(state: &WebState, headers: &HeaderMap) -> bool {
    state
        .context
        .web
        .session_token(headers)
        .is_some_and(|token| state.keys.verify(token).is_ok())
}

async fn home(State(state): State<WebState>, headers: HeaderMap) -> Redirect {
    if has_session(&state, &headers) {
        Redirect::to("/app")
    } else {
        Redirect::to("/signin")
    }
}

fn signed_in(state: &WebState, token: &str) -> Response {
    let mut response = Redirect::to("/app").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        state
            .context
            .web
            .session_cookie(token, SESSION_HOURS * 3600),
    );
    response
}

#[derive(Debug, Deserialize)]
struct SigninQuery {
    token: Option<String>,
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SigninForm {
    user: Option<String>,
    token: Option<String>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn signin_page(
    State(state): State<WebState>,
    lang: Lang,
    query: Result<Query<SigninQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError::Malformed("the sign-in link's query".to_owned()).into_response();
    };
    // From the host OA system: a token in the link. A GET, which any page can make a browser
    // send, signs nobody in: the page says whose account it is and asks (see the module docs).
    if let Some(token) = query.token.as_deref().filter(|token| !token.is_empty()) {
        let en = query
            .lang
            .as_deref()
            .map_or(lang.is_english(), |forced| forced == "en");
        return match state.keys.verify(token) {
            Ok(principal) => confirm_token(&state, token, &principal, en).await,
            Err(_) => (
                StatusCode::UNAUTHORIZED,
                page(lang, query.lang.as_deref(), &state, Some(false)).await,
            )
                .into_response(),
        };
    }
    page(lang, query.lang.as_deref(), &state, None).await
}

/// "Sign in as 张伟 (zhangwei) · acme?": the token in a form, posted only when the person
/// clicks — so another site's link cannot sign a browser into someone else's account unseen.
/// The page's script removes the token from the address bar and history. Never cached.
async fn confirm_token(state: &WebState, token: &str, principal: &Principal, en: bool) -> Response {
    let name = state
        .directory
        .user(&principal.tenant, &principal.actor.user)
        .await
        .ok()
        .flatten()
        .map_or_else(|| principal.actor.user.to_string(), |user| user.name);
    let html = format!(
        r#"<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/app/app.css"><script src="/app/signin.js" defer></script></head>
<body class="signin"><main><h1>{title}</h1><p class="who">{prompt} <strong>{name}</strong> <span class="id">{user} · {tenant}</span></p>
<form method="post" action="/signin" id="confirm-token"><input type="hidden" name="token" value="{token}">
<button type="submit">{sign_in}</button></form><p class="lang"><a href="/signin">{other}</a></p></main></body></html>"#,
        lang = if en { "en" } else { "zh-CN" },
        title = if en {
            "My video conferences · Sign in"
        } else {
            "我的视频会议 · 登录"
        },
        prompt = if en { "Sign in as" } else { "登录为" },
        sign_in = if en { "Sign in" } else { "登录" },
        other = if en {
            "Not you? Sign in otherwise"
        } else {
            "不是您？使用其他方式登录"
        },
        name = escape(&name),
        user = escape(principal.actor.user.as_str()),
        tenant = escape(principal.tenant.as_str()),
        token = escape(token),
    );
    let mut response = Html(html).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn page(
    lang: Lang,
    forced: Option<&str>,
    state: &WebState,
    token_ok: Option<bool>,
) -> Response {
    let en = forced.map_or(lang.is_english(), |forced| forced == "en");
    let t = |zh: &'static str, english: &'static str| if en { english } else { zh };
    let mut users = String::new();
    if let Some(tenant) = &state.demo_tenant
        && let Ok(list) = state.directory.users(tenant).await
    {
        for user in list {
            users.push_str(&format!(
                r#"<li><form method="post" action="/signin"><input type="hidden" name="user" value="{id}"><button type="submit">{name}<span class="id">{id}</span></button></form></li>"#,
                id = escape(user.id.as_str()),
                name = escape(&user.name)
            ));
        }
    }
    let demo = if users.is_empty() {
        String::new()
    } else {
        format!(
            r#"<section><h2>{}</h2><ul class="users">{users}</ul></section>"#,
            t("选择演示用户登录", "Sign in as a demo user")
        )
    };
    let error = if token_ok == Some(false) {
        format!(
            r#"<p class="error" role="alert">{}</p>"#,
            t(
                "登录凭证无效或已过期",
                "The sign-in token is invalid or expired"
            )
        )
    } else {
        String::new()
    };
    let html = format!(
        r#"<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/app/app.css"></head>
<body class="signin"><main><h1>{title}</h1>{error}{demo}
<section><h2>{token_title}</h2><form method="post" action="/signin" class="token-form">
<label for="token">{token_label}</label><textarea id="token" name="token" rows="3" required></textarea>
<button type="submit">{submit}</button></form></section>
<p class="lang"><a href="/signin?lang={other}">{other_label}</a></p></main></body></html>"#,
        lang = if en { "en" } else { "zh-CN" },
        title = t("我的视频会议 · 登录", "My video conferences · Sign in"),
        token_title = t("使用登录凭证", "Use a sign-in token"),
        token_label = t(
            "来自办公系统的登录凭证（JWT）",
            "Token from your office system (JWT)"
        ),
        submit = t("登录", "Sign in"),
        other = if en { "zh" } else { "en" },
        other_label = if en { "中文" } else { "English" },
    );
    Html(html).into_response()
}

async fn signin(
    State(state): State<WebState>,
    lang: Lang,
    form: Result<Form<SigninForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::PayloadTooLarge.into_response();
        }
        Err(rejection) => return ApiError::Malformed(rejection.body_text()).into_response(),
    };
    if let Some(token) = form
        .token
        .as_deref()
        .map(str::trim)
        .filter(|token| !token.is_empty())
    {
        return match state.keys.verify(token) {
            Ok(_) => signed_in(&state, token),
            Err(_) => refused(lang, &state).await,
        };
    }
    // Picking a demo user works only with `--demo`, and only for that tenant's directory users.
    let (Some(tenant), Some(Ok(user))) =
        (&state.demo_tenant, form.user.as_deref().map(UserId::parse))
    else {
        return refused(lang, &state).await;
    };
    let known = state
        .directory
        .unknown_users(tenant, std::slice::from_ref(&user))
        .await
        .is_ok_and(|unknown| unknown.is_empty());
    if !known {
        return refused(lang, &state).await;
    }
    let admin = user.as_str() == crate::demo::ADMIN;
    let token = state
        .keys
        .mint(tenant, &user, admin, Duration::hours(SESSION_HOURS));
    signed_in(&state, &token)
}

/// The sign-in page again, with its error, as a 401.
async fn refused(lang: Lang, state: &WebState) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        page(lang, None, state, Some(false)).await,
    )
        .into_response()
}

async fn signout(State(state): State<WebState>) -> Response {
    let mut response = Redirect::to("/signin").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, state.context.web.session_cookie("", 0));
    response
}
