//! The read side: read models built by projections from the global log.
//!
//! # Layout
//! - [`view`]: `ConferenceView` and the one fold (projector, `as_of` replays, command responses).
//! - [`projector`]: follows the log; applies each batch and its checkpoint in one transaction.
//! - [`read`]: queries — recent, all (keyset-paged), lines, line schedule, ops summary.
//!
//! **Architecture Invariant:** read models are disposable: dropping them and replaying from
//! position 0 (`meetline rebuild`) gives the same rows.

mod apply;
pub mod projector;
pub mod read;
pub mod schema;
pub mod view;

pub use projector::Projector;
pub use read::ReadModels;
pub use view::{ConferenceView, LineRef};
