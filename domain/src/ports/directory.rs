//! The directory port: facts the OA suite owns and meetline only looks up — users, meetings
//! with their roles, chats with their members (not events: meetline is not their source of
//! truth).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::command::{ChatFacts, MeetingFacts};
use crate::ports::StoreError;
use crate::types::{ChatId, MeetingId, TenantId, TimeZoneName, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    pub id: UserId,
    pub name: String,
    pub email: Option<String>,
    pub timezone: Option<TimeZoneName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    Single,
    Group,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryChat {
    pub kind: ChatKind,
    #[serde(flatten)]
    pub facts: ChatFacts,
}

/// The directory port.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    async fn put_user(&self, tenant: &TenantId, user: &DirectoryUser) -> Result<(), StoreError>;
    async fn user(
        &self,
        tenant: &TenantId,
        id: &UserId,
    ) -> Result<Option<DirectoryUser>, StoreError>;
    async fn users(&self, tenant: &TenantId) -> Result<Vec<DirectoryUser>, StoreError>;
    /// Adds or replaces `users` all at once (one transaction): all are stored or none. Returns
    /// how many.
    async fn put_users(
        &self,
        tenant: &TenantId,
        users: &[DirectoryUser],
    ) -> Result<usize, StoreError>;
    /// Up to `limit` users whose id, name, or name's pinyin (in full, or its initials) contains
    /// `query` (any case; empty: everyone), by id, after `after`.
    async fn search_users(
        &self,
        tenant: &TenantId,
        query: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, String)>, StoreError>;
    /// The names of those of `ids` that are users of the tenant, in `ids`' order.
    async fn names(
        &self,
        tenant: &TenantId,
        ids: &[UserId],
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(user) = self.user(tenant, id).await? {
                found.push((id.clone(), user.name));
            }
        }
        Ok(found)
    }
    /// Which of `ids` are not users of the tenant.
    async fn unknown_users(
        &self,
        tenant: &TenantId,
        ids: &[UserId],
    ) -> Result<Vec<UserId>, StoreError>;
    async fn put_meeting(
        &self,
        tenant: &TenantId,
        meeting: &MeetingFacts,
    ) -> Result<(), StoreError>;
    async fn meeting(
        &self,
        tenant: &TenantId,
        id: &MeetingId,
    ) -> Result<Option<MeetingFacts>, StoreError>;
    async fn meetings(&self, tenant: &TenantId) -> Result<Vec<MeetingFacts>, StoreError>;
    async fn put_chat(&self, tenant: &TenantId, chat: &DirectoryChat) -> Result<(), StoreError>;
    async fn chat(
        &self,
        tenant: &TenantId,
        id: &ChatId,
    ) -> Result<Option<DirectoryChat>, StoreError>;
    async fn chats(&self, tenant: &TenantId) -> Result<Vec<DirectoryChat>, StoreError>;
}
