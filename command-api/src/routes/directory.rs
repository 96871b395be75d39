//! The directory (admin): users, meetings with their roles, chats with their members — facts the
//! OA suite owns, written here so meetline can check and look them up. They append no event.

use meetline_api_common::dto::{ChatKindName, DirectoryChatDto};

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutUserRequest {
    pub name: String,
    pub email: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutMeetingRequest {
    pub subject: String,
    pub start: String,
    pub end: String,
    pub creator: String,
    pub convener: String,
    pub contact: String,
    #[schema(max_items = 1000)]
    pub attendees: Vec<String>,
    pub url: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutChatRequest {
    /// `single` (exactly two members) or `group`.
    #[schema(value_type = ChatKindName)]
    pub kind: String,
    pub name: String,
    #[schema(min_items = 2, max_items = 1000)]
    pub members: Vec<String>,
}

/// A directory user as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryUserDto {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    /// IANA name.
    pub timezone: Option<String>,
}

impl From<&DirectoryUser> for DirectoryUserDto {
    fn from(user: &DirectoryUser) -> Self {
        Self {
            id: user.id.to_string(),
            name: user.name.clone(),
            email: user.email.clone(),
            timezone: user.timezone.as_ref().map(|zone| zone.as_str().to_owned()),
        }
    }
}

/// A directory meeting as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryMeetingDto {
    pub id: String,
    pub subject: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub creator: String,
    pub convener: String,
    pub contact: String,
    pub attendees: Vec<String>,
    pub url: Option<String>,
}

impl From<&MeetingFacts> for DirectoryMeetingDto {
    fn from(meeting: &MeetingFacts) -> Self {
        Self {
            id: meeting.id.to_string(),
            subject: meeting.subject.clone(),
            start: meeting.start,
            end: meeting.end,
            creator: meeting.creator.to_string(),
            convener: meeting.convener.to_string(),
            contact: meeting.contact.to_string(),
            attendees: meeting.attendees.iter().map(ToString::to_string).collect(),
            url: meeting.url.as_ref().map(|url| url.as_str().to_owned()),
        }
    }
}

/// Directory writes append no event; `X-Position` is the head, so every command response has one.
async fn directory_response<T: Serialize>(
    state: &CommandState,
    entry: &T,
) -> Result<Response, ApiError> {
    let head = state.service.store().head_position().await?;
    let mut response = axum::Json(entry).into_response();
    position_header(&mut response, head);
    Ok(response)
}

/// Add or replace a user of the tenant's directory.
#[utoipa::path(put, path = "/api/v1/directory/users/{id}", tag = "directory", request_body = PutUserRequest,
    params(("id" = String, Path)),
    responses(
        (status = 200, body = DirectoryUserDto, headers(("X-Position" = u64, description = "the head (directory writes append no event)"))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn put_user(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<PutUserRequest>,
) -> Result<Response, ApiError> {
    let entry = directory_user(&id, &request)?;
    state.directory.put_user(&principal.tenant, &entry).await?;
    directory_response(&state, &DirectoryUserDto::from(&entry)).await
}

/// A user as the directory keeps it, each field checked (422 naming it).
fn directory_user(id: &str, request: &PutUserRequest) -> Result<DirectoryUser, DomainError> {
    let id = user(id, "id")?;
    let name = free_text(&request.name, "name", 100)?;
    let email = request
        .email
        .as_deref()
        .filter(|email| !email.trim().is_empty())
        .map(|email| free_text(email, "email", 254))
        .transpose()?;
    if email
        .as_deref()
        .is_some_and(|email| !email.contains('@') || email.contains(char::is_whitespace))
    {
        return Err(DomainError::invalid_input("email"));
    }
    Ok(DirectoryUser {
        id,
        name,
        email,
        timezone: request
            .timezone
            .as_deref()
            .map(TimeZoneName::parse)
            .transpose()?,
    })
}

/// Users a bulk sync takes in one call.
const MAX_BULK_USERS: usize = 1000;

/// One user of a bulk sync: its id and what `PUT …/users/{id}` takes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkUser {
    pub id: String,
    #[serde(flatten)]
    pub user: PutUserRequest,
}

/// How many users a bulk sync stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpsertedResponse {
    pub upserted: usize,
}

/// Sync the directory in bulk: up to 1,000 users added or replaced in one transaction — all
/// of them, or (on any invalid entry, named `users[i].<field>`) none.
#[utoipa::path(put, path = "/api/v1/directory/users", tag = "directory", request_body = Vec<BulkUser>,
    responses(
        (status = 200, body = UpsertedResponse, headers(("X-Position" = u64, description = "the head (directory writes append no event)"))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input: users (empty or over 1,000), users[i].<field>", content_type = "application/problem+json", body = Problem)))]
pub async fn put_users(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    ApiJson(request): ApiJson<Vec<BulkUser>>,
) -> Result<Response, ApiError> {
    if request.is_empty() || request.len() > MAX_BULK_USERS {
        return Err(DomainError::invalid_input("users").into());
    }
    let users = request
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            directory_user(&entry.id, &entry.user).map_err(|error| match error {
                DomainError::InvalidInput { field } => {
                    DomainError::invalid_input(&format!("users[{index}].{field}"))
                }
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    state.directory.put_users(&principal.tenant, &users).await?;
    // An id given twice is one user (the last entry wins).
    let upserted = users
        .iter()
        .map(|user| &user.id)
        .collect::<std::collections::HashSet<_>>()
        .len();
    directory_response(&state, &UpsertedResponse { upserted }).await
}

/// Add or replace a meeting with its roles and attendees.
#[utoipa::path(put, path = "/api/v1/directory/meetings/{id}", tag = "directory", request_body = PutMeetingRequest,
    params(("id" = String, Path)),
    responses(
        (status = 200, body = DirectoryMeetingDto, headers(("X-Position" = u64, description = "the head (directory writes append no event)"))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn put_meeting(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<PutMeetingRequest>,
) -> Result<Response, ApiError> {
    let id = MeetingId::parse(&id).map_err(|_| DomainError::invalid_input("id"))?;
    let subject = Subject::parse(&request.subject)?;
    let start = time(&request.start, "start")?;
    let end = time(&request.end, "end")?;
    if end <= start {
        return Err(DomainError::invalid_input("end").into());
    }
    state.within_horizon(Some(start), "start")?;
    state.within_horizon(Some(end), "end")?;
    let directory = state.directory.as_ref();
    let tenant = &principal.tenant;
    let creator = user(&request.creator, "creator")?;
    let convener = user(&request.convener, "convener")?;
    let contact = user(&request.contact, "contact")?;
    for (who, field) in [
        (&creator, "creator"),
        (&convener, "convener"),
        (&contact, "contact"),
    ] {
        known(directory, tenant, std::slice::from_ref(who), field).await?;
    }
    let attendees = users(&request.attendees, "attendees")?;
    known(directory, tenant, &attendees, "attendees").await?;
    let meeting = MeetingFacts {
        id,
        subject: subject.as_str().to_owned(),
        start,
        end,
        creator,
        convener,
        contact,
        attendees,
        url: request
            .url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
            .map(|url| RelatedLink::parse(url).map_err(|_| DomainError::invalid_input("url")))
            .transpose()?,
    };
    directory.put_meeting(tenant, &meeting).await?;
    directory_response(&state, &DirectoryMeetingDto::from(&meeting)).await
}

/// Add or replace a chat with its members.
#[utoipa::path(put, path = "/api/v1/directory/chats/{id}", tag = "directory", request_body = PutChatRequest,
    params(("id" = String, Path)),
    responses(
        (status = 200, body = DirectoryChatDto, headers(("X-Position" = u64, description = "the head (directory writes append no event)"))),
        (status = 403, description = "forbidden: admins only", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "invalid_input", content_type = "application/problem+json", body = Problem)))]
pub async fn put_chat(
    State(state): State<CommandState>,
    AdminCaller(principal): AdminCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<PutChatRequest>,
) -> Result<Response, ApiError> {
    let id = ChatId::parse(&id).map_err(|_| DomainError::invalid_input("id"))?;
    let kind = match request.kind.as_str() {
        "single" => ChatKind::Single,
        "group" => ChatKind::Group,
        _ => return Err(DomainError::invalid_input("kind").into()),
    };
    let name = free_text(&request.name, "name", 200)?;
    let members = users(&request.members, "members")?;
    let expected = if kind == ChatKind::Single {
        2..=2
    } else {
        2..=1000
    };
    if !expected.contains(&members.len()) {
        return Err(DomainError::invalid_input("members").into());
    }
    known(
        state.directory.as_ref(),
        &principal.tenant,
        &members,
        "members",
    )
    .await?;
    let chat = DirectoryChat {
        kind,
        facts: ChatFacts { id, name, members },
    };
    state.directory.put_chat(&principal.tenant, &chat).await?;
    directory_response(&state, &DirectoryChatDto::from(&chat)).await
}
