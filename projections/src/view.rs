//! `ConferenceView`: a conference as the read side keeps it. It is the domain's
//! [`Conference`] — the one fold of a conference's events, used by the pool, the projector,
//! `?as_of=` replays and command responses alike — with its line named by a [`LineRef`].

use meetline_domain::conference::{Conference, LineLabel};
use meetline_domain::pool::Line;
use meetline_domain::types::{LineId, ProviderKind, TenantId};
use serde::{Deserialize, Serialize};

/// The line a conference is on, with the name and provider it had when last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRef {
    pub id: LineId,
    pub name: String,
    pub provider: ProviderKind,
}

impl LineRef {
    /// A line the read side has not seen (removed, or not yet projected).
    pub fn unknown(id: &LineId) -> Self {
        Self {
            id: id.clone(),
            name: id.to_string(),
            provider: ProviderKind::Builtin,
        }
    }

    pub fn of(line: &Line) -> Self {
        Self {
            id: line.id.clone(),
            name: line.name.as_str().to_owned(),
            provider: line.provider,
        }
    }
}

impl LineLabel for LineRef {
    fn id(&self) -> &LineId {
        &self.id
    }

    fn is_external(&self) -> bool {
        self.provider.is_external()
    }
}

/// A conference as the read side keeps it: the domain's one fold, its line named with the name
/// and provider it had when last seen. (Stored as JSON in `rm_conferences.data`; rows written
/// before the view lost its `tenant` field read the same — the row has the tenant.)
pub type ConferenceView = Conference<LineRef>;

/// The tenant a pool stream belongs to (`pool-{tenant}`).
pub fn tenant_of_stream(stream: &str) -> Option<TenantId> {
    stream
        .strip_prefix("pool-")
        .and_then(|tenant| TenantId::parse(tenant).ok())
}
