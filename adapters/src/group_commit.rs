//! Group commit across streams, shared by the SQL event stores (decision 0010).
//!
//! A store's `append` hands its request to one committer task per store. The committer takes
//! every append waiting (up to [`MAX_GROUP`]) and asks the store's [`CommitGroup`] to write them
//! in **one** transaction, each append with its own version check, so the pools of many tenants
//! share one commit. It then moves the store's head and answers every caller. When the group's
//! transaction fails, each of its appends is committed alone, so one append the database refuses
//! fails only itself. The committer stops when the store (the last [`Appends`]) is dropped.

use std::collections::HashMap;
use std::future::Future;

use meetline_domain::ports::{Appended, NewEvent, Position, StoreError};
use tokio::sync::{mpsc, oneshot, watch};

/// The most appends one transaction of the committer takes.
pub(crate) const MAX_GROUP: usize = 64;

/// One append waiting for the committer.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub stream: String,
    pub expected_version: u64,
    pub events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// A store's way of writing a group of appends in one transaction.
pub(crate) trait CommitGroup: Send + Sync + 'static {
    /// `Err` when the transaction failed (nothing of the group was written); otherwise each
    /// append's own outcome, in the group's order, a conflict refusing only its append.
    fn commit(
        &self,
        group: &[AppendRequest],
    ) -> impl Future<Output = Result<Vec<Result<Appended, StoreError>>, sqlx::Error>> + Send;
}

/// Where a store's `append` sends its requests.
#[derive(Debug)]
pub(crate) struct Appends(mpsc::Sender<AppendRequest>);

impl Appends {
    /// Starts the committer of a store that writes with `committer` and publishes its head
    /// through `head`.
    pub(crate) fn start(committer: impl CommitGroup, head: watch::Sender<Position>) -> Self {
        let (sender, requests) = mpsc::channel(1024);
        tokio::spawn(run(committer, head, requests));
        Self(sender)
    }

    /// Appends through the committer and waits for the group's commit.
    pub(crate) async fn append(
        &self,
        stream: &str,
        expected_version: u64,
        events: &[NewEvent],
    ) -> Result<Appended, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            stream: stream.to_owned(),
            expected_version,
            events: events.to_vec(),
            reply,
        };
        let stopped = || StoreError::Unavailable("the append committer stopped".to_owned());
        self.0.send(request).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(
    committer: impl CommitGroup,
    head: watch::Sender<Position>,
    mut requests: mpsc::Receiver<AppendRequest>,
) {
    while let Some(first) = requests.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let outcomes = match committer.commit(&group).await {
            Ok(outcomes) => outcomes,
            Err(error) if group.len() > 1 => {
                // One append's data may be what the database refused (say, a value its JSON
                // type cannot hold): commit each alone, so only that append fails and the
                // others — often other tenants' — are stored.
                tracing::warn!(%error, appends = group.len(), "a group commit failed; committing its appends one by one");
                let mut outcomes = Vec::with_capacity(group.len());
                for request in &group {
                    outcomes.push(
                        match committer.commit(std::slice::from_ref(request)).await {
                            Ok(mut alone) => alone.pop().unwrap_or_else(|| {
                                Err(StoreError::Unavailable(
                                    "an append without an outcome".to_owned(),
                                ))
                            }),
                            Err(error) => Err(StoreError::Unavailable(error.to_string())),
                        },
                    );
                }
                outcomes
            }
            Err(error) => {
                let reason = error.to_string();
                group
                    .iter()
                    .map(|_| Err(StoreError::Unavailable(reason.clone())))
                    .collect()
            }
        };
        let last = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok()?.positions.last().copied())
            .max();
        if let Some(last) = last {
            head.send_if_modified(|current| advance(current, last));
        }
        for (request, outcome) in group.into_iter().zip(outcomes) {
            let _ = request.reply.send(outcome);
        }
    }
}

/// Moves a head forward to `seen` (never back); whether it moved.
pub(crate) fn advance(current: &mut Position, seen: Position) -> bool {
    let moved = seen > *current;
    *current = (*current).max(seen);
    moved
}

/// The versions a group's transaction leaves its streams at: two appends of one group may be to
/// the same stream, and the second must be checked against the first.
#[derive(Debug, Default)]
pub(crate) struct GroupVersions<'a>(HashMap<&'a str, u64>);

impl<'a> GroupVersions<'a> {
    /// The stream's version as this transaction left it, if it touched the stream already.
    pub(crate) fn get(&self, stream: &str) -> Option<u64> {
        self.0.get(stream).copied()
    }

    /// Checks `request` against its stream's version `actual`: the version to write after, or
    /// the conflict. Remembers the version the request leaves the stream at.
    pub(crate) fn check(
        &mut self,
        request: &'a AppendRequest,
        actual: u64,
    ) -> Result<u64, StoreError> {
        let stream = request.stream.as_str();
        if actual != request.expected_version {
            self.0.insert(stream, actual);
            return Err(StoreError::Conflict {
                stream: stream.to_owned(),
                expected: request.expected_version,
                actual,
            });
        }
        self.0.insert(stream, actual + request.events.len() as u64);
        Ok(actual)
    }
}
