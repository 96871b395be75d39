//! What a signed-in user reads from the tenant's directory: who they are, the tenant's users
//! (for attendee pickers), and the meetings and chats they take part in. Served by every node,
//! whatever its role (the web app needs them on each).

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use meetline_api_common::dto::DirectoryChatDto;
use meetline_api_common::{ApiContext, ApiError, ApiQuery, Caller};
use meetline_domain::DomainError;
use meetline_domain::ports::Directory;
use meetline_domain::types::UserId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The directory reads' state.
#[derive(Clone)]
pub struct DirectoryState {
    pub context: ApiContext,
    pub directory: Arc<dyn Directory>,
}

impl FromRef<DirectoryState> for ApiContext {
    fn from_ref(state: &DirectoryState) -> Self {
        state.context.clone()
    }
}

pub fn router() -> Router<DirectoryState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/directory/users", get(directory_users))
        .route("/api/v1/my/meetings", get(my_meetings))
        .route("/api/v1/my/chats", get(my_chats))
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeDto {
    pub user: String,
    /// From the directory; the user id when the directory does not know the user.
    pub name: String,
    pub tenant: String,
    pub admin: bool,
    /// IANA name, from the directory.
    pub timezone: Option<String>,
}

/// A user of the tenant's directory, for attendee pickers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryUserSummary {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryUsersResponse {
    pub items: Vec<DirectoryUserSummary>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A directory search: who to find, how many, from where.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// Matches the name, the user id, and the name's pinyin in full or by initials (张伟:
    /// `zhangwei`, `zw`, `张`); any case. Absent or empty: everyone.
    #[param(nullable = false, max_length = 100)]
    pub q: Option<String>,
    /// 1–200; 50 by default.
    #[param(nullable = false, minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    #[param(nullable = false)]
    pub cursor: Option<String>,
    /// Instead of a search: these users exactly (comma-separated ids, at most 100), for showing
    /// names; ids not in the directory are left out. Not with `q` or `cursor`.
    /// At most 4,000 characters (a URI must stay within what the server reads, whatever the
    /// characters' encoding).
    #[param(nullable = false, max_length = 4000)]
    pub ids: Option<String>,
}

/// How many users `ids` may name.
const MAX_IDS: usize = 100;
/// How long `ids` may be, in characters.
const MAX_IDS_CHARS: usize = 4000;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// A meeting the caller takes part in.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyMeetingDto {
    pub id: String,
    pub subject: String,
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    pub creator: String,
    pub convener: String,
    pub contact: String,
    pub attendees: Vec<String>,
    pub url: Option<String>,
    /// Whether the caller may launch its conference (creator, convener or contact).
    pub can_launch: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MyMeetingsResponse {
    pub items: Vec<MyMeetingDto>,
}

/// The chats the caller is a member of.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyChatsResponse {
    pub items: Vec<DirectoryChatDto>,
}

/// Who the caller is, for the app: id, name, tenant, admin, time zone.
#[utoipa::path(get, path = "/api/v1/me", tag = "web", responses((status = 200, body = MeDto)))]
async fn me(
    State(state): State<DirectoryState>,
    Caller(principal): Caller,
) -> Result<Json<MeDto>, ApiError> {
    let entry = state
        .directory
        .user(&principal.tenant, &principal.actor.user)
        .await?;
    Ok(Json(MeDto {
        user: principal.actor.user.to_string(),
        name: entry.as_ref().map_or_else(
            || principal.actor.user.to_string(),
            |user| user.name.clone(),
        ),
        tenant: principal.tenant.to_string(),
        admin: principal.actor.admin,
        timezone: entry
            .and_then(|user| user.timezone)
            .map(|zone| zone.as_str().to_owned()),
    }))
}

/// The tenant's users (id and name) matching `q`, a page at a time by id: for attendee and
/// member pickers; or, with `ids`, those users exactly (for showing names).
#[utoipa::path(get, path = "/api/v1/directory/users", tag = "directory", params(UserSearch),
    responses((status = 200, body = DirectoryUsersResponse),
        (status = 422, description = "invalid_input: q, limit, cursor or ids", content_type = "application/problem+json", body = meetline_api_common::error::Problem)))]
async fn directory_users(
    State(state): State<DirectoryState>,
    Caller(principal): Caller,
    ApiQuery(search): ApiQuery<UserSearch>,
) -> Result<Json<DirectoryUsersResponse>, ApiError> {
    if let Some(ids) = &search.ids {
        if search.q.is_some() || search.cursor.is_some() {
            return Err(DomainError::invalid_input("ids").into());
        }
        if ids.chars().count() > MAX_IDS_CHARS {
            return Err(DomainError::invalid_input("ids").into());
        }
        // The count first: a long list is refused before it is parsed.
        let listed: Vec<&str> = ids
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .take(MAX_IDS * 2 + 1)
            .collect();
        let mut wanted: Vec<UserId> = listed
            .iter()
            .map(|id| UserId::parse(id).map_err(|_| DomainError::invalid_input("ids")))
            .collect::<Result<_, _>>()?;
        wanted.sort();
        wanted.dedup();
        if wanted.len() > MAX_IDS || listed.len() > MAX_IDS * 2 {
            return Err(DomainError::invalid_input("ids").into());
        }
        let items = state
            .directory
            .names(&principal.tenant, &wanted)
            .await?
            .into_iter()
            .map(|(id, name)| DirectoryUserSummary {
                id: id.to_string(),
                name,
            })
            .collect();
        return Ok(Json(DirectoryUsersResponse {
            items,
            next_cursor: None,
        }));
    }
    let query = search.q.unwrap_or_default();
    if query.chars().count() > 100 || query.chars().any(char::is_control) {
        return Err(DomainError::invalid_input("q").into());
    }
    let limit = match search.limit {
        None => DEFAULT_PAGE,
        Some(limit @ 1..) if limit as usize <= MAX_PAGE => limit as usize,
        Some(_) => return Err(DomainError::invalid_input("limit").into()),
    };
    let after = search
        .cursor
        .as_deref()
        .filter(|cursor| !cursor.is_empty())
        .map(|cursor| UserId::parse(cursor).map_err(|_| DomainError::invalid_input("cursor")))
        .transpose()?;
    // One more than the page: whether there is a next one.
    let mut found = state
        .directory
        .search_users(&principal.tenant, &query, after.as_ref(), limit + 1)
        .await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let next_cursor = more
        .then(|| found.last().map(|(id, _)| id.to_string()))
        .flatten();
    let items = found
        .into_iter()
        .map(|(id, name)| DirectoryUserSummary {
            id: id.to_string(),
            name,
        })
        .collect();
    Ok(Json(DirectoryUsersResponse { items, next_cursor }))
}

fn my_meeting(meeting: &meetline_domain::command::MeetingFacts, user: &UserId) -> MyMeetingDto {
    MyMeetingDto {
        id: meeting.id.to_string(),
        subject: meeting.subject.clone(),
        start: meeting.start,
        end: meeting.end,
        creator: meeting.creator.to_string(),
        convener: meeting.convener.to_string(),
        contact: meeting.contact.to_string(),
        attendees: meeting.attendees.iter().map(ToString::to_string).collect(),
        url: meeting.url.as_ref().map(|url| url.as_str().to_owned()),
        can_launch: [&meeting.creator, &meeting.convener, &meeting.contact].contains(&user),
    }
}

/// The meetings the caller takes part in (any role), with whether they may launch its conference.
#[utoipa::path(get, path = "/api/v1/my/meetings", tag = "web",
    responses((status = 200, body = MyMeetingsResponse)))]
async fn my_meetings(
    State(state): State<DirectoryState>,
    Caller(principal): Caller,
) -> Result<Json<MyMeetingsResponse>, ApiError> {
    let user = &principal.actor.user;
    let meetings = state.directory.meetings(&principal.tenant).await?;
    let items = meetings
        .iter()
        .filter(|meeting| {
            [&meeting.creator, &meeting.convener, &meeting.contact].contains(&user)
                || meeting.attendees.contains(user)
        })
        .map(|meeting| my_meeting(meeting, user))
        .collect();
    Ok(Json(MyMeetingsResponse { items }))
}

/// The chats the caller is a member of, with their members.
#[utoipa::path(get, path = "/api/v1/my/chats", tag = "web",
    responses((status = 200, body = MyChatsResponse)))]
async fn my_chats(
    State(state): State<DirectoryState>,
    Caller(principal): Caller,
) -> Result<Json<MyChatsResponse>, ApiError> {
    let user = &principal.actor.user;
    let chats = state.directory.chats(&principal.tenant).await?;
    let items = chats
        .iter()
        .filter(|chat| chat.facts.members.contains(user))
        .map(DirectoryChatDto::from)
        .collect();
    Ok(Json(MyChatsResponse { items }))
}

/// The directory reads' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(me, directory_users, my_meetings, my_chats),
    components(schemas(
        MeDto,
        DirectoryUserSummary,
        DirectoryUsersResponse,
        MyMeetingDto,
        MyMeetingsResponse,
        MyChatsResponse
    ))
)]
pub struct DirectoryApiDoc;
