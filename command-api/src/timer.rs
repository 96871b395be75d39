//! The timer process: records `ConferenceStarted` and `ConferenceEnded` when their time comes.
//!
//! Every tick it asks the read models which conferences are due and submits the aggregate's
//! `RecordElapsedTime` for each. That command is idempotent — the pool emits an event only if it
//! has not recorded that transition yet — and the pool's writer decides it under optimistic
//! concurrency, so each transition is recorded **exactly once** however many nodes run a timer,
//! and a node that was down catches up on its first tick. Status shown to users never waits for
//! this: reads compute it from the clock.

use std::time::Duration;

use meetline_api_common::Clock;
use meetline_domain::Command;
use meetline_domain::ports::StoreError;
use meetline_domain::types::Actor;
use meetline_projections::Timetable;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::service::{CommandService, Submission};

/// The actor recorded on the timer's events.
pub const TIMER_ACTOR: &str = "system.timer";
/// How many due conferences one tick handles.
const PER_TICK: u32 = 500;

pub struct TimerProcess {
    service: CommandService,
    timetable: Timetable,
    clock: Clock,
    interval: Duration,
}

impl TimerProcess {
    pub fn new(
        service: CommandService,
        timetable: Timetable,
        clock: Clock,
        interval: Duration,
    ) -> Self {
        Self {
            service,
            timetable,
            clock,
            interval,
        }
    }

    /// Submits `RecordElapsedTime` for every conference due now. Returns how many it submitted.
    ///
    /// # Errors
    /// When the read models cannot be read.
    #[tracing::instrument(level = "debug", name = "timer", skip(self))]
    pub async fn tick(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let due = self.timetable.due_conferences(now, PER_TICK).await?;
        let count = due.len();
        let actor = Actor::system(TIMER_ACTOR);
        // Submitted together, so the pool's writer decides them in a few batches.
        let mut submitted = JoinSet::new();
        for (tenant, conference) in due {
            let submission = Submission::new(
                tenant,
                actor.clone(),
                Command::RecordElapsedTime { conference },
                now,
            );
            let service = self.service.clone();
            submitted.spawn(async move { service.execute(submission).await });
        }
        while let Some(result) = submitted.join_next().await {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "timer command failed; retried next tick"),
                Err(error) => tracing::error!(%error, "timer task panicked"),
            }
        }
        Ok(count)
    }

    /// Ticks until `stop` is cancelled; a tick under way is finished first.
    pub async fn run(self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            match self.tick().await {
                // A full page: more may be due right away.
                Ok(count) if count == PER_TICK as usize => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "timer could not read due conferences"),
            }
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(self.interval) => {}
            }
        }
        tracing::info!("timer stopped");
    }
}
