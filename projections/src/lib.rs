//! The read side: read models built by projections from the global log.
//!
//! # Layout
//! - [`view`]: `ConferenceView` and the one fold (projector, `as_of` replays, command responses).
//! - [`projector`]: follows the log; applies each batch and its checkpoint in one transaction.
//! - [`read`]: queries — recent, all (keyset-paged), lines, line schedule, ops summary.
//! - [`lookup`]: the timer's due list and the webhooks' meeting lookup.
//! - [`process`]: the background processes' own state (checkpoints, attempts, counters).
//! - [`schema`]: the tables, in generations behind views (decision 0018).
//!
//! **Architecture Invariant:** read models are disposable: dropping them and replaying from
//! position 0 (`meetline rebuild`) gives the same rows.

mod apply;
pub mod lookup;
pub mod process;
pub mod projector;
pub mod read;
pub mod schema;
pub mod view;

pub use lookup::{ProviderMeetings, Timetable};
pub use process::ProcessState;
pub use projector::Projector;
pub use read::ReadModels;
pub use view::{ConferenceView, LineRef};
