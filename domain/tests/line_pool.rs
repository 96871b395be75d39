//! `LinePool` rules as given / when / then.

use chrono::{DateTime, Duration, Utc};
use meetline_domain::command::{ChatFacts, ConferenceChanges, EndSpec, MeetingFacts};
use meetline_domain::conference::LineTag;
use meetline_domain::pool::Provisioning;
use meetline_domain::pool::minutes;
use meetline_domain::*;
use uuid::Uuid;

fn t(hours: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap() + Duration::hours(hours)
}

fn id(n: u128) -> ConferenceId {
    ConferenceId(Uuid::from_u128(n))
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn line(n: u64) -> LineId {
    LineId::parse(&format!("line-{n}")).unwrap()
}

/// A pool and the log it was folded from: what the writer has (the pool warm, the events in the
/// store). Derefs to the pool.
#[derive(Debug, Clone, PartialEq)]
struct Logged {
    pool: LinePool,
    log: Vec<Event>,
}

impl std::ops::Deref for Logged {
    type Target = LinePool;

    fn deref(&self) -> &LinePool {
        &self.pool
    }
}

impl Logged {
    fn apply(&mut self, event: &Event) {
        self.pool.apply(event);
        self.log.push(event.clone());
    }

    /// A conference folded from its logged events: how the writer recalls one the pool let go.
    fn folded(&self, id: ConferenceId) -> Option<Conference> {
        Conference::fold(
            self.log
                .iter()
                .filter(|event| event.conference() == Some(id)),
            |line| LineTag {
                id: line.clone(),
                provider: self
                    .pool
                    .line(line)
                    .map_or(ProviderKind::Builtin, |known| known.provider),
            },
        )
    }

    /// Decides as the writer does: a command naming a conference the pool does not hold is
    /// decided on that conference as recalled from the log.
    fn decide(
        &self,
        actor: &Actor,
        command: &Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, DomainError> {
        let recalled = command
            .conference()
            .filter(|id| self.pool.conference(id).is_none())
            .and_then(|id| self.folded(id));
        self.pool.decide(actor, command, now, recalled.as_ref())
    }
}

struct Given {
    pool: Logged,
    now: DateTime<Utc>,
}

fn given(events: Vec<Event>) -> Given {
    Given {
        pool: Logged {
            pool: LinePool::from_events(&events),
            log: events,
        },
        now: t(0),
    }
}

fn given_lines(count: u64) -> Given {
    given(lines(count))
}

fn lines(count: u64) -> Vec<Event> {
    (1..=count)
        .map(|n| Event::LineAdded {
            line: line(n),
            name: LineName::parse(&format!("Line {n}")).unwrap(),
            provider: ProviderKind::Builtin,
        })
        .collect()
}

impl Given {
    fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// Runs `command` for a precondition, applying its events.
    fn and(mut self, actor: &Actor, command: Command) -> Self {
        let events = self
            .pool
            .decide(actor, &command, self.now)
            .expect("precondition accepted");
        for event in &events {
            self.pool.apply(event);
        }
        self
    }

    fn when(self, actor: &Actor, command: Command) -> Then {
        let result = self.pool.decide(actor, &command, self.now);
        Then {
            pool: self.pool,
            result,
        }
    }
}

struct Then {
    pool: Logged,
    result: Result<Vec<Event>, DomainError>,
}

impl Then {
    fn then_expect_error(self, expected: DomainError) -> Logged {
        assert_eq!(self.result, Err(expected));
        self.pool
    }

    /// As [`Then::then_expect_error`], and the error reads exactly `text` (the seed's wording).
    fn then_expect_error_saying(self, expected: DomainError, text: &str) -> Logged {
        let error = self.result.as_ref().expect_err("command rejected").clone();
        assert_eq!(error.to_string(), text);
        self.then_expect_error(expected)
    }

    fn then_expect_events(self, check: impl FnOnce(&[Event])) -> Logged {
        let events = self.result.expect("command accepted");
        check(&events);
        let mut pool = self.pool;
        for event in &events {
            pool.apply(event);
        }
        assert!(pool.overlapping_bookings().is_empty());
        pool
    }

    fn then_expect_no_events(self) {
        assert_eq!(self.result, Ok(vec![]));
    }
}

fn alice() -> Actor {
    Actor::user("alice")
}

fn admin() -> Actor {
    Actor::admin("root")
}

fn schedule(n: u128, start: i64, end: i64) -> Command {
    Command::ScheduleConference(ScheduleConference {
        conference: id(n),
        mode: Mode::Scheduled,
        subject: Subject::parse("周会").unwrap(),
        start: Some(t(start)),
        end: EndSpec::At(t(end)),
        timezone: TimeZoneName::default(),
        host: None,
        attendees: vec![user("bob")],
        related_link: None,
        rooms: RoomNonce::fixed(n),
        numbers: NumberDraw::fixed(n),
    })
}

fn quick(n: u128) -> Command {
    Command::ScheduleConference(ScheduleConference {
        conference: id(n),
        mode: Mode::Quick,
        subject: Subject::parse("quick").unwrap(),
        start: None,
        end: minutes(60),
        timezone: TimeZoneName::default(),
        host: None,
        attendees: vec![user("bob")],
        related_link: None,
        rooms: RoomNonce::fixed(n),
        numbers: NumberDraw::fixed(n),
    })
}

fn edit(n: u128, changes: ConferenceChanges) -> Command {
    Command::EditConference {
        conference: id(n),
        changes,
        expected_version: None,
        rooms: RoomNonce::fixed(1000 + n),
    }
}

fn move_to(start: i64, end: i64) -> ConferenceChanges {
    ConferenceChanges {
        start: Some(t(start)),
        end: Some(EndSpec::At(t(end))),
        ..ConferenceChanges::default()
    }
}

fn scheduled_line(events: &[Event]) -> LineId {
    match &events[0] {
        Event::ConferenceScheduled { line, .. } => line.clone(),
        other => panic!("expected ConferenceScheduled, got {other:?}"),
    }
}

#[test]
fn scheduling_takes_the_first_free_line() {
    given_lines(2)
        .and(&alice(), schedule(1, 1, 2))
        .when(&alice(), schedule(2, 1, 2))
        .then_expect_events(|events| assert_eq!(scheduled_line(events), line(2)));
}

#[test]
fn scheduling_when_every_line_is_busy_is_rejected_with_no_free_line() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 3))
        .when(&alice(), schedule(2, 2, 4))
        .then_expect_error_saying(
            DomainError::no_free_line(TimeSlot::new(t(2), t(4)).unwrap()),
            "找不到空闲线路，请检查线路维护是否正常，或者重新选择会议时间",
        );
}

#[test]
fn back_to_back_conferences_share_a_line() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 2))
        .when(&alice(), schedule(2, 2, 3))
        .then_expect_events(|events| assert_eq!(scheduled_line(events), line(1)));
}

#[test]
fn a_conference_longer_than_24_hours_is_an_invalid_duration() {
    given_lines(1)
        .when(&alice(), schedule(1, 1, 26))
        .then_expect_error_saying(DomainError::InvalidDuration, "无效的输入参数： duration");
}

#[test]
fn an_end_before_the_start_is_an_invalid_duration() {
    given_lines(1)
        .when(&alice(), schedule(1, 3, 2))
        .then_expect_error_saying(DomainError::InvalidDuration, "无效的输入参数： duration");
}

#[test]
fn exactly_24_hours_is_allowed() {
    given_lines(1)
        .when(&alice(), schedule(1, 1, 25))
        .then_expect_events(|events| {
            assert_eq!(events.len(), 1);
        });
}

#[test]
fn a_scheduled_start_in_the_past_is_invalid() {
    given_lines(1)
        .at(t(5))
        .when(&alice(), schedule(1, 1, 2))
        .then_expect_error(DomainError::invalid_input("start"));
}

#[test]
fn a_quick_conference_starts_now_and_is_in_progress() {
    let pool = given_lines(1)
        .at(t(3))
        .when(&alice(), quick(1))
        .then_expect_events(|events| {
            let Event::ConferenceScheduled { slot, mode, .. } = &events[0] else {
                panic!()
            };
            assert_eq!(slot.start, t(3));
            assert_eq!(slot.end, t(4));
            assert_eq!(*mode, Mode::Quick);
        });
    assert_eq!(
        pool.conference(&id(1)).unwrap().status_at(t(3)),
        Status::InProgress
    );
}

#[test]
fn no_line_at_all_means_no_free_line() {
    given(vec![])
        .when(&alice(), schedule(1, 1, 2))
        .then_expect_error(DomainError::no_free_line(
            TimeSlot::new(t(1), t(2)).unwrap(),
        ));
}

#[test]
fn conference_numbers_are_unique_within_the_pool() {
    let pool = given_lines(3)
        .and(&alice(), schedule(1, 1, 2))
        .and(&alice(), schedule(2, 1, 2))
        .and(&alice(), schedule(3, 1, 2))
        .pool;
    let numbers: std::collections::HashSet<_> = pool
        .conferences
        .values()
        .map(|c| c.number.clone())
        .collect();
    assert_eq!(numbers.len(), 3);
}

#[test]
fn editing_into_a_free_slot_keeps_the_line_and_the_links() {
    given_lines(2)
        .and(&alice(), schedule(1, 1, 2))
        .when(&alice(), edit(1, move_to(3, 4)))
        .then_expect_events(|events| {
            let Event::ConferenceEdited {
                line: l,
                links_changed,
                slot,
                ..
            } = &events[0]
            else {
                panic!()
            };
            assert_eq!(*l, line(1));
            assert!(!links_changed);
            assert_eq!(slot.start, t(3));
        });
}

#[test]
fn editing_into_a_slot_busy_on_its_line_moves_it_to_another_line_and_flags_new_links() {
    given_lines(2)
        .and(&alice(), schedule(1, 1, 2))
        .and(&alice(), schedule(2, 3, 4))
        .when(&alice(), edit(1, move_to(3, 4)))
        .then_expect_events(|events| {
            let Event::ConferenceEdited {
                line: l,
                links_changed,
                ..
            } = &events[0]
            else {
                panic!()
            };
            assert_eq!(*l, line(2));
            assert!(links_changed);
        });
}

#[test]
fn editing_into_a_busy_slot_is_rejected_and_changes_nothing() {
    let given = given_lines(1)
        .and(&alice(), schedule(1, 1, 2))
        .and(&alice(), schedule(2, 3, 4));
    let before = given.pool.clone();
    let after = given
        .when(&alice(), edit(1, move_to(3, 5)))
        .then_expect_error(DomainError::no_free_line(
            TimeSlot::new(t(3), t(5)).unwrap(),
        ));
    assert_eq!(before, after);
}

#[test]
fn editing_the_start_alone_keeps_the_length() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 3))
        .when(
            &alice(),
            edit(
                1,
                ConferenceChanges {
                    start: Some(t(5)),
                    ..Default::default()
                },
            ),
        )
        .then_expect_events(|events| {
            let Event::ConferenceEdited { slot, .. } = &events[0] else {
                panic!()
            };
            assert_eq!((slot.start, slot.end), (t(5), t(7)));
        });
}

#[test]
fn editing_into_more_than_24_hours_is_an_invalid_duration() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 2))
        .when(&alice(), edit(1, move_to(1, 30)))
        .then_expect_error_saying(DomainError::InvalidDuration, "无效的输入参数： duration");
}

#[test]
fn editing_an_in_progress_conference_is_an_invalid_state() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 3))
        .at(t(2))
        .when(&alice(), edit(1, move_to(4, 5)))
        .then_expect_error(DomainError::invalid_state(Status::InProgress));
}

#[test]
fn editing_with_a_stale_version_is_a_version_mismatch() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 2))
        .when(
            &alice(),
            Command::EditConference {
                conference: id(1),
                changes: move_to(3, 4),
                expected_version: Some(7),
                rooms: RoomNonce::fixed(9),
            },
        )
        .then_expect_error(DomainError::VersionMismatch {
            expected: 7,
            actual: 1,
        });
}

#[test]
fn an_attendee_may_not_edit_and_a_stranger_may_not_know_the_conference() {
    let given = given_lines(1).and(&alice(), schedule(1, 1, 2));
    let pool = given.pool.clone();
    given
        .when(&Actor::user("bob"), edit(1, move_to(3, 4)))
        .then_expect_error(DomainError::Forbidden);
    Given { pool, now: t(0) }
        .when(&Actor::user("mallory"), edit(1, move_to(3, 4)))
        .then_expect_error(DomainError::NotFound);
}

#[test]
fn an_admin_may_edit_any_conference() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 2))
        .when(&admin(), edit(1, move_to(3, 4)))
        .then_expect_events(|events| assert_eq!(events.len(), 1));
}

#[test]
fn an_edit_that_changes_nothing_records_nothing() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 2))
        .when(&alice(), edit(1, move_to(1, 2)))
        .then_expect_no_events();
}

#[test]
fn cancelling_frees_the_whole_slot() {
    let pool = given_lines(1)
        .and(&alice(), schedule(1, 1, 3))
        .when(
            &alice(),
            Command::CancelConference {
                conference: id(1),
                reason: Some("不需要".into()),
            },
        )
        .then_expect_events(|events| {
            assert!(matches!(events[0], Event::ConferenceCancelled { .. }))
        });
    assert!(
        pool.conference(&id(1)).is_none(),
        "a cancelled conference leaves the pool"
    );
    assert_eq!(
        pool.folded(id(1)).unwrap().status_at(t(0)),
        Status::Cancelled
    );
    Given { pool, now: t(0) }
        .when(&alice(), schedule(2, 1, 3))
        .then_expect_events(|events| assert_eq!(scheduled_line(events), line(1)));
}

#[test]
fn cancelling_an_in_progress_conference_is_an_invalid_state() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 3))
        .at(t(2))
        .when(
            &alice(),
            Command::CancelConference {
                conference: id(1),
                reason: None,
            },
        )
        .then_expect_error(DomainError::invalid_state(Status::InProgress));
}

#[test]
fn ending_early_frees_the_rest_of_the_slot_and_shows_manually_ended() {
    let pool = given_lines(1)
        .and(&alice(), schedule(1, 1, 5))
        .at(t(2))
        .when(&alice(), Command::EndConferenceEarly { conference: id(1) })
        .then_expect_events(|events| {
            assert!(matches!(events[0], Event::ConferenceEndedEarly { .. }))
        });
    assert!(pool.conference(&id(1)).is_none(), "closed");
    let conference = pool.folded(id(1)).unwrap();
    assert_eq!(conference.status_at(t(2)), Status::ManuallyEnded);
    assert_eq!(conference.status_at(t(9)), Status::ManuallyEnded);
    let given = Given { pool, now: t(2) };
    let pool = given.pool.clone();
    // The rest of the slot is free again…
    given
        .when(&alice(), schedule(2, 2, 5))
        .then_expect_events(|events| {
            assert_eq!(scheduled_line(events), line(1));
        });
    // …the part already used is not.
    assert!(!pool.lines[0].is_free(&TimeSlot::new(t(1), t(2)).unwrap(), None));
}

#[test]
fn ending_a_not_started_conference_early_is_an_invalid_state() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 3))
        .when(&alice(), Command::EndConferenceEarly { conference: id(1) })
        .then_expect_error(DomainError::invalid_state(Status::NotStarted));
}

#[test]
fn a_conference_past_its_end_shows_ended_and_accepts_no_action() {
    let given = given_lines(1).and(&alice(), schedule(1, 1, 2)).at(t(3));
    assert_eq!(
        given.pool.conference(&id(1)).unwrap().status_at(t(3)),
        Status::Ended
    );
    given
        .when(
            &alice(),
            Command::InviteAttendees {
                conference: id(1),
                attendees: vec![user("carol")],
            },
        )
        .then_expect_error(DomainError::invalid_state(Status::Ended));
}

#[test]
fn inviting_adds_only_new_attendees_and_is_allowed_in_progress() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 3))
        .at(t(2))
        .when(
            &alice(),
            Command::InviteAttendees {
                conference: id(1),
                attendees: vec![user("bob"), user("carol")],
            },
        )
        .then_expect_events(|events| {
            let Event::AttendeesInvited { attendees, .. } = &events[0] else {
                panic!()
            };
            assert_eq!(attendees, &vec![user("carol")]);
        });
}

#[test]
fn an_attendee_may_not_invite_cancel_or_end() {
    let given = given_lines(1).and(&alice(), schedule(1, 1, 3));
    let bob = Actor::user("bob");
    let pool = given.pool.clone();
    given
        .when(
            &bob,
            Command::InviteAttendees {
                conference: id(1),
                attendees: vec![user("carol")],
            },
        )
        .then_expect_error(DomainError::Forbidden);
    Given {
        pool: pool.clone(),
        now: t(0),
    }
    .when(
        &bob,
        Command::CancelConference {
            conference: id(1),
            reason: None,
        },
    )
    .then_expect_error(DomainError::Forbidden);
    Given { pool, now: t(2) }
        .when(&bob, Command::EndConferenceEarly { conference: id(1) })
        .then_expect_error(DomainError::Forbidden);
}

#[test]
fn joining_by_number_makes_the_caller_a_participant() {
    let given = given_lines(1).and(&alice(), schedule(1, 1, 3));
    let number = given.pool.conference(&id(1)).unwrap().number.clone();
    let pool = given
        .when(
            &Actor::user("dave"),
            Command::JoinConference {
                number: number.clone(),
            },
        )
        .then_expect_events(|events| assert!(matches!(events[0], Event::ParticipantJoined { .. })));
    assert!(
        pool.conference(&id(1))
            .unwrap()
            .is_participant(&user("dave"))
    );
    Given { pool, now: t(0) }
        .when(&Actor::user("dave"), Command::JoinConference { number })
        .then_expect_no_events();
}

#[test]
fn joining_an_unknown_or_finished_number_fails_and_only_participants_learn_it_ended() {
    let given = given_lines(1).and(&alice(), schedule(1, 1, 3));
    let number = given.pool.conference(&id(1)).unwrap().number.clone();
    let pool = given.pool.clone();
    given
        .when(
            &alice(),
            Command::JoinConference {
                number: ConferenceNumber::parse("000000000").unwrap(),
            },
        )
        .then_expect_error(DomainError::NotFound);
    // A stranger cannot tell a past conference's number from an unknown one.
    Given {
        pool: pool.clone(),
        now: t(4),
    }
    .when(
        &Actor::user("dave"),
        Command::JoinConference {
            number: number.clone(),
        },
    )
    .then_expect_error(DomainError::NotFound);
    // Its attendee is told why.
    Given { pool, now: t(4) }
        .when(&Actor::user("bob"), Command::JoinConference { number })
        .then_expect_error(DomainError::invalid_state(Status::Ended));
}

fn meeting() -> MeetingFacts {
    MeetingFacts {
        id: MeetingId::parse("m1").unwrap(),
        subject: "季度评审".into(),
        start: t(1),
        end: t(2),
        creator: user("alice"),
        convener: user("bob"),
        contact: user("carol"),
        attendees: vec![user("dave"), user("erin")],
        url: Some(RelatedLink::parse("https://oa.example.com/meetings/m1").unwrap()),
    }
}

fn launch(n: u128) -> Command {
    Command::LaunchFromMeeting {
        conference: id(n),
        meeting: meeting(),
        subject: None,
        start: None,
        end: None,
        timezone: TimeZoneName::default(),
        rooms: RoomNonce::fixed(n),
        numbers: NumberDraw::fixed(n),
    }
}

#[test]
fn the_creator_convener_or_contact_may_launch_from_a_meeting() {
    for (n, who) in ["alice", "bob", "carol"].into_iter().enumerate() {
        given_lines(1)
            .when(&Actor::user(who), launch(n as u128))
            .then_expect_events(|events| {
                let Event::ConferenceScheduled {
                    source,
                    subject,
                    related_link,
                    attendees,
                    ..
                } = &events[0]
                else {
                    panic!()
                };
                assert_eq!(
                    *source,
                    Source::Meeting {
                        id: MeetingId::parse("m1").unwrap()
                    }
                );
                assert_eq!(subject.as_str(), "季度评审");
                assert!(related_link.is_some());
                assert!(attendees.contains(&user("dave")));
            });
    }
}

#[test]
fn a_plain_attendee_or_an_admin_may_not_launch_from_a_meeting() {
    given_lines(1)
        .when(&Actor::user("dave"), launch(1))
        .then_expect_error(DomainError::Forbidden);
    given_lines(1)
        .when(&admin(), launch(1))
        .then_expect_error(DomainError::Forbidden);
}

#[test]
fn a_meeting_has_at_most_one_active_conference() {
    given_lines(2)
        .and(&alice(), launch(1))
        .when(&Actor::user("bob"), launch(2))
        .then_expect_error(DomainError::ConferenceExists {
            conference_id: id(1),
        });
}

#[test]
fn after_cancelling_a_meeting_may_launch_again() {
    given_lines(1)
        .and(&alice(), launch(1))
        .and(
            &alice(),
            Command::CancelConference {
                conference: id(1),
                reason: None,
            },
        )
        .when(&Actor::user("bob"), launch(2))
        .then_expect_events(|events| assert_eq!(events.len(), 1));
}

fn chat() -> ChatFacts {
    ChatFacts {
        id: ChatId::parse("c1").unwrap(),
        name: "项目群".into(),
        members: vec![user("alice"), user("bob"), user("carol")],
    }
}

fn from_chat(n: u128, who: Option<Vec<UserId>>) -> Command {
    Command::LaunchFromChat {
        conference: id(n),
        chat: chat(),
        subject: None,
        attendees: who,
        timezone: TimeZoneName::default(),
        rooms: RoomNonce::fixed(n),
        numbers: NumberDraw::fixed(n),
    }
}

#[test]
fn a_chat_member_starts_a_quick_conference_with_the_picked_members() {
    given_lines(1)
        .when(&alice(), from_chat(1, Some(vec![user("bob")])))
        .then_expect_events(|events| {
            let Event::ConferenceScheduled {
                mode,
                attendees,
                source,
                ..
            } = &events[0]
            else {
                panic!()
            };
            assert_eq!(*mode, Mode::Quick);
            assert_eq!(attendees, &vec![user("bob")]);
            assert_eq!(
                *source,
                Source::Chat {
                    id: ChatId::parse("c1").unwrap()
                }
            );
        });
}

#[test]
fn a_chat_conference_by_default_invites_every_other_member() {
    given_lines(1)
        .when(&alice(), from_chat(1, None))
        .then_expect_events(|events| {
            let Event::ConferenceScheduled { attendees, .. } = &events[0] else {
                panic!()
            };
            assert_eq!(attendees, &vec![user("bob"), user("carol")]);
        });
}

#[test]
fn only_members_may_start_or_be_picked_in_a_chat_conference() {
    given_lines(1)
        .when(&Actor::user("mallory"), from_chat(1, None))
        .then_expect_error(DomainError::Forbidden);
    given_lines(1)
        .when(&alice(), from_chat(1, Some(vec![user("mallory")])))
        .then_expect_error_saying(
            DomainError::invalid_input("attendees"),
            "无效的输入参数： attendees",
        );
}

#[test]
fn only_admins_manage_lines() {
    given(vec![])
        .when(
            &alice(),
            Command::AddLine {
                name: LineName::parse("Zoom 1").unwrap(),
                provider: ProviderKind::Zoom,
            },
        )
        .then_expect_error(DomainError::Forbidden);
}

#[test]
fn lines_get_sequential_ids() {
    given_lines(2)
        .when(
            &admin(),
            Command::AddLine {
                name: LineName::parse("Zoom 3").unwrap(),
                provider: ProviderKind::Zoom,
            },
        )
        .then_expect_events(|events| {
            assert!(matches!(&events[0], Event::LineAdded { line: l, .. } if *l == line(3)));
        });
}

fn maintenance(n: u64) -> Command {
    Command::StartLineMaintenance {
        line: line(n),
        rooms: RoomNonce::fixed(77),
    }
}

#[test]
fn maintenance_moves_future_conferences_to_free_lines_and_strands_the_rest() {
    let pool = given_lines(2)
        .and(&alice(), schedule(1, 1, 2)) // line 1
        .and(&alice(), schedule(2, 1, 2)) // line 2
        .and(&alice(), schedule(3, 3, 4)) // line 1
        .when(&admin(), maintenance(1))
        .then_expect_events(|events| {
            assert!(matches!(&events[0], Event::LineMaintenanceStarted { .. }));
            assert!(matches!(&events[1], Event::ConferenceStranded { conference, .. } if *conference == id(1)));
            assert!(matches!(&events[2], Event::ConferenceMovedToLine { conference, to, .. }
                if *conference == id(3) && *to == line(2)));
        });
    assert!(pool.conference(&id(1)).unwrap().stranded);
    assert_eq!(pool.conference(&id(3)).unwrap().line.id, line(2));
    // A line in maintenance gets no new conferences.
    Given { pool, now: t(0) }
        .when(&alice(), schedule(4, 5, 6))
        .then_expect_events(|events| {
            assert_eq!(scheduled_line(events), line(2));
        });
}

#[test]
fn a_line_back_in_service_takes_conferences_again() {
    given_lines(1)
        .and(&admin(), maintenance(1))
        .and(&admin(), Command::EndLineMaintenance { line: line(1) })
        .when(&alice(), schedule(1, 1, 2))
        .then_expect_events(|events| assert_eq!(scheduled_line(events), line(1)));
}

#[test]
fn removing_a_line_with_future_conferences_is_refused() {
    given_lines(1)
        .and(&alice(), schedule(1, 1, 2))
        .when(&admin(), Command::RemoveLine { line: line(1) })
        .then_expect_error(DomainError::InvalidState(
            meetline_domain::error::Conflict::LineHoldsConferences,
        ));
}

#[test]
fn removing_an_idle_line_succeeds() {
    let pool = given_lines(2)
        .and(&alice(), schedule(1, 1, 2))
        .at(t(3))
        .when(&admin(), Command::RemoveLine { line: line(1) })
        .then_expect_events(|events| assert!(matches!(events[0], Event::LineRemoved { .. })));
    assert!(pool.line(&line(1)).is_none());
}

#[test]
fn the_timer_records_start_and_end_once() {
    let given = given_lines(1).and(&alice(), schedule(1, 1, 2)).at(t(3));
    let pool = given
        .when(&admin(), Command::RecordElapsedTime { conference: id(1) })
        .then_expect_events(|events| {
            assert!(matches!(events[0], Event::ConferenceStarted { .. }));
            assert!(matches!(events[1], Event::ConferenceEnded { .. }));
        });
    Given { pool, now: t(3) }
        .when(&admin(), Command::RecordElapsedTime { conference: id(1) })
        .then_expect_no_events();
}

#[test]
fn the_snapshot_round_trips_in_binary_and_in_json() {
    let pool = given_lines(2)
        .and(&alice(), schedule(1, 1, 2))
        .and(&alice(), launch(2))
        .and(&admin(), maintenance(1))
        .and(&alice(), schedule(3, 5, 6))
        .and(&alice(), schedule(4, 7, 8))
        .pool;
    let bytes = pool.to_snapshot().unwrap();
    assert_eq!(LinePool::from_snapshot(&bytes).unwrap(), pool.pool);
    // Sources and provisioning states are tagged maps in JSON (events, read models) and
    // variant indexes in the snapshot; each reads back what it wrote.
    let json = serde_json::to_string(&pool.pool).unwrap();
    assert!(
        json.contains(r#""source":{"type":"meeting","id":"m1"}"#),
        "{json}"
    );
    let back: LinePool = serde_json::from_str(&json).unwrap();
    assert_eq!(back, pool.pool);
    // Truncated or foreign bytes are an error, not a pool.
    assert!(LinePool::from_snapshot(&bytes[..bytes.len() / 2]).is_err());
    assert!(LinePool::from_snapshot(json.as_bytes()).is_err());
}

fn zoom_line() -> Vec<Event> {
    vec![Event::LineAdded {
        line: line(1),
        name: LineName::parse("Zoom").unwrap(),
        provider: ProviderKind::Zoom,
    }]
}

fn provisioned(n: u128, meeting: &str) -> Command {
    Command::RecordProvisioning {
        conference: id(n),
        line: line(1),
        meeting_id: meeting.into(),
        join_url: format!("https://zoom.us/j/{meeting}"),
        password: None,
        meeting_code: None,
    }
}

#[test]
fn a_conference_on_an_external_line_waits_for_provisioning() {
    let pool = given(zoom_line()).and(&alice(), schedule(1, 1, 2)).pool;
    assert_eq!(
        pool.conference(&id(1)).unwrap().provisioning,
        Provisioning::Pending
    );
    let pool = given_lines(1).and(&alice(), schedule(1, 1, 2)).pool;
    assert_eq!(
        pool.conference(&id(1)).unwrap().provisioning,
        Provisioning::NotNeeded
    );
}

#[test]
fn provisioning_is_recorded_once_and_only_by_the_system() {
    let given = given(zoom_line()).and(&alice(), schedule(1, 1, 2));
    let pool = given.pool.clone();
    given
        .when(&alice(), provisioned(1, "123"))
        .then_expect_error(DomainError::Forbidden);
    let pool = Given { pool, now: t(0) }.when(&admin(), provisioned(1, "123")).then_expect_events(|events| {
        assert!(matches!(&events[0], Event::ConferenceProvisioned { meeting_id, .. } if meeting_id == "123"));
    });
    assert!(matches!(
        pool.conference(&id(1)).unwrap().provisioning,
        Provisioning::Done { .. }
    ));
    Given { pool, now: t(0) }
        .when(&admin(), provisioned(1, "123"))
        .then_expect_no_events();
}

#[test]
fn a_provisioning_failure_cancels_the_conference_and_frees_its_line() {
    let pool = given(zoom_line())
        .and(&alice(), schedule(1, 1, 2))
        .when(
            &admin(),
            Command::RecordProvisioningFailure {
                conference: id(1),
                line: line(1),
                reason: "Zoom 500".into(),
            },
        )
        .then_expect_events(|events| {
            assert!(matches!(events[0], Event::ProvisioningFailed { .. }))
        });
    assert!(pool.conference(&id(1)).is_none(), "closed");
    let conference = pool.folded(id(1)).unwrap();
    assert_eq!(conference.status_at(t(0)), Status::Cancelled);
    assert_eq!(
        conference.provisioning,
        Provisioning::Failed {
            reason: "Zoom 500".into()
        }
    );
    Given {
        pool: pool.clone(),
        now: t(0),
    }
    .when(&alice(), schedule(2, 1, 2))
    .then_expect_events(|events| assert_eq!(scheduled_line(events), line(1)));
    // A failure reported after success, or twice, records nothing.
    Given { pool, now: t(0) }
        .when(
            &admin(),
            Command::RecordProvisioningFailure {
                conference: id(1),
                line: line(1),
                reason: "again".into(),
            },
        )
        .then_expect_no_events();
}

fn with_numbers(command: Command, numbers: Vec<ConferenceNumber>) -> Command {
    let Command::ScheduleConference(mut schedule) = command else {
        unreachable!()
    };
    schedule.numbers = NumberDraw::new(numbers).unwrap();
    Command::ScheduleConference(schedule)
}

#[test]
fn a_candidate_number_another_conference_holds_is_passed_over_and_all_taken_is_refused() {
    let given = given_lines(2).and(&alice(), schedule(1, 1, 2));
    let taken = given.pool.conference(&id(1)).unwrap().number.clone();
    let free = ConferenceNumber::parse("555000111").unwrap();
    let pool = given
        .when(
            &alice(),
            with_numbers(schedule(2, 1, 2), vec![taken.clone(), free.clone()]),
        )
        .then_expect_events(|events| {
            assert!(
                matches!(&events[0], Event::ConferenceScheduled { number, .. } if *number == free)
            );
        });
    Given { pool, now: t(0) }
        .when(&alice(), with_numbers(schedule(3, 5, 6), vec![taken, free]))
        .then_expect_error(DomainError::NumbersExhausted);
}

#[test]
fn a_provider_answer_with_an_unsafe_join_url_is_not_recorded() {
    for join_url in [
        "javascript:alert(1)",
        "http://zoom.us/j/1",
        "https://zoom.us/j/1\r\nURL:https://evil.example",
    ] {
        let command = Command::RecordProvisioning {
            conference: id(1),
            line: line(1),
            meeting_id: "1".into(),
            join_url: join_url.into(),
            password: None,
            meeting_code: None,
        };
        given_lines(1)
            .and(&alice(), schedule(1, 1, 2))
            .when(&admin(), command)
            .then_expect_error(DomainError::invalid_input("join_url"));
    }
}

// Found by mutation testing (docs/testing.md): rules whose boundary no test pinned.

#[test]
fn a_start_exactly_five_minutes_ago_is_allowed_and_a_second_more_is_not() {
    let now = t(5);
    let at = |seconds: i64| {
        Command::ScheduleConference(ScheduleConference {
            conference: id(1),
            mode: Mode::Scheduled,
            subject: Subject::parse("s").unwrap(),
            start: Some(now - Duration::seconds(seconds)),
            end: EndSpec::After(Duration::minutes(30)),
            timezone: TimeZoneName::default(),
            host: None,
            attendees: vec![],
            related_link: None,
            rooms: RoomNonce::fixed(1),
            numbers: NumberDraw::fixed(1),
        })
    };
    given_lines(1)
        .at(now)
        .when(&alice(), at(300))
        .then_expect_events(|events| assert_eq!(events.len(), 1));
    given_lines(1)
        .at(now)
        .when(&alice(), at(301))
        .then_expect_error(DomainError::invalid_input("start"));
}

#[test]
fn each_event_of_a_conference_counts_in_its_version() {
    let pool = given_lines(1)
        .and(&alice(), schedule(1, 2, 3))
        .when(&alice(), edit(1, move_to(4, 5)))
        .then_expect_events(|_| {});
    assert_eq!(pool.conference(&id(1)).unwrap().version, 2);
    let pool = Given { pool, now: t(0) }
        .when(
            &alice(),
            Command::InviteAttendees {
                conference: id(1),
                attendees: vec![user("carol")],
            },
        )
        .then_expect_events(|_| {});
    assert_eq!(pool.conference(&id(1)).unwrap().version, 3);
}

#[test]
fn pools_that_differ_in_any_state_are_not_equal() {
    let base = given_lines(2).and(&alice(), schedule(1, 2, 3)).pool.pool;
    assert_eq!(base, base.clone());
    let changed = [
        given_lines(2).and(&alice(), schedule(1, 2, 4)).pool.pool, // a booking's end, a conference
        given_lines(3).and(&alice(), schedule(1, 2, 3)).pool.pool, // the lines, the version
        given_lines(2).and(&alice(), schedule(2, 2, 3)).pool.pool, // the conference's id, number
        LinePool::from_events(&lines(2)),                          // no conference at all
    ];
    for other in &changed {
        assert_ne!(&base, other);
    }
    let mut counted = base.clone();
    counted.lines_added += 1;
    assert_ne!(base, counted);
    let mut numbered = base.clone();
    numbered.numbers.clear();
    assert_ne!(base, numbered);
    let mut clashed = base.clone();
    clashed.clashes.push((line(1), id(1), id(2)));
    assert_ne!(base, clashed);
    let mut later = base.clone();
    later.latest = later.latest.map(|at| at + Duration::seconds(1));
    assert_ne!(base, later);
    let mut launched = base.clone();
    launched
        .meeting_conferences
        .insert(MeetingId::parse("m").unwrap(), id(1));
    assert_ne!(base, launched);
}

#[test]
fn an_edit_that_moves_in_time_keeps_its_line_when_free_even_if_a_lower_line_is_free() {
    // Conference 1 on line 1, conference 2 on line 2 at the same hour; conference 1 ends, then 2
    // moves to an hour where both lines are free: it stays on line 2 (its links stay valid).
    let pool = given_lines(2)
        .and(&alice(), schedule(1, 2, 3))
        .and(&alice(), schedule(2, 2, 3))
        .when(&alice(), edit(2, move_to(6, 7)))
        .then_expect_events(|events| match &events[0] {
            Event::ConferenceEdited { line: moved_to, .. } => assert_eq!(*moved_to, line(2)),
            other => panic!("{other:?}"),
        });
    assert_eq!(pool.conference(&id(2)).unwrap().line.id, line(2));
}

#[test]
fn a_provider_end_is_an_early_end_only_while_running_and_before_the_slot_ends() {
    let running = || given_lines(1).and(&alice(), schedule(1, 2, 4)).at(t(3));
    let ended_at = |at: DateTime<Utc>| Command::RecordProviderMeeting {
        conference: id(1),
        started: false,
        at,
    };
    // Within the slot, while running: ended early.
    running()
        .when(&admin(), ended_at(t(3)))
        .then_expect_events(|events| {
            assert!(matches!(
                events.last(),
                Some(Event::ConferenceEndedEarly { .. })
            ))
        });
    // Exactly at the slot's end: a normal end, nothing early.
    given_lines(1)
        .and(&alice(), schedule(1, 2, 4))
        .at(t(5))
        .when(&admin(), ended_at(t(4)))
        .then_expect_events(|events| {
            assert!(
                !events
                    .iter()
                    .any(|event| matches!(event, Event::ConferenceEndedEarly { .. }))
            )
        });
    // Already ended early: a second report within the slot ends nothing again.
    running()
        .and(&admin(), ended_at(t(3)))
        .at(t(3) + Duration::minutes(30))
        .when(&admin(), ended_at(t(3) + Duration::minutes(20)))
        .then_expect_events(|events| {
            assert!(
                !events
                    .iter()
                    .any(|event| matches!(event, Event::ConferenceEndedEarly { .. }))
            )
        });
}

#[test]
fn a_host_who_is_not_the_creator_and_the_creator_both_see_and_manage_the_conference() {
    let command = Command::ScheduleConference(ScheduleConference {
        conference: id(1),
        mode: Mode::Scheduled,
        subject: Subject::parse("s").unwrap(),
        start: Some(t(2)),
        end: EndSpec::At(t(3)),
        timezone: TimeZoneName::default(),
        host: Some(user("carol")),
        attendees: vec![user("bob")],
        related_link: None,
        rooms: RoomNonce::fixed(1),
        numbers: NumberDraw::fixed(1),
    });
    let pool = given_lines(1).and(&alice(), command).pool;
    let conference = pool.conference(&id(1)).unwrap();
    for (who, participant, manager) in [
        ("alice", true, true),
        ("carol", true, true),
        ("bob", true, false),
        ("mallory", false, false),
    ] {
        assert_eq!(conference.is_participant(&user(who)), participant, "{who}");
        assert_eq!(conference.may_manage(&Actor::user(who)), manager, "{who}");
    }
}

#[test]
fn renaming_a_line_to_its_own_name_records_nothing() {
    let rename = |name: &str| Command::RenameLine {
        line: line(1),
        name: LineName::parse(name).unwrap(),
    };
    given_lines(1)
        .when(&admin(), rename("Line 1"))
        .then_expect_no_events();
    given_lines(1)
        .when(&admin(), rename("Board room"))
        .then_expect_events(|events| {
            assert!(matches!(&events[0], Event::LineRenamed { name, .. } if name.as_str() == "Board room"))
        });
}

#[test]
fn a_blank_cancel_reason_is_no_reason() {
    let cancel = |reason: &str| Command::CancelConference {
        conference: id(1),
        reason: Some(reason.to_owned()),
    };
    given_lines(1)
        .and(&alice(), schedule(1, 2, 3))
        .when(&alice(), cancel("  "))
        .then_expect_events(|events| {
            assert!(matches!(
                &events[0],
                Event::ConferenceCancelled { reason: None, .. }
            ))
        });
    given_lines(1)
        .and(&alice(), schedule(1, 2, 3))
        .when(&alice(), cancel("改期"))
        .then_expect_events(|events| {
            assert!(matches!(&events[0], Event::ConferenceCancelled { reason: Some(text), .. } if text == "改期"))
        });
}

#[test]
fn an_edit_in_place_keeps_the_meeting_and_a_move_waits_for_a_new_one() {
    let zoom_lines = vec![
        Event::LineAdded {
            line: line(1),
            name: LineName::parse("Zoom 1").unwrap(),
            provider: ProviderKind::Zoom,
        },
        Event::LineAdded {
            line: line(2),
            name: LineName::parse("Zoom 2").unwrap(),
            provider: ProviderKind::Zoom,
        },
    ];
    let done = |pool: &LinePool| {
        matches!(
            pool.conference(&id(1)).unwrap().provisioning,
            Provisioning::Done { .. }
        )
    };
    let pool = given(zoom_lines.clone())
        .and(&alice(), schedule(1, 2, 3))
        .and(&admin(), provisioned(1, "111"))
        .when(
            &alice(),
            edit(
                1,
                ConferenceChanges {
                    subject: Some(Subject::parse("renamed").unwrap()),
                    ..ConferenceChanges::default()
                },
            ),
        )
        .then_expect_events(|_| {});
    assert!(done(&pool), "an edit on its own line keeps its meeting");
    // Another conference takes line 1 at 5–6; moving conference 1 there puts it on line 2.
    let pool = given(zoom_lines)
        .and(&alice(), schedule(1, 2, 3))
        .and(&admin(), provisioned(1, "111"))
        .and(&alice(), schedule(2, 5, 6))
        .when(&alice(), edit(1, move_to(5, 6)))
        .then_expect_events(|_| {});
    assert_eq!(pool.conference(&id(1)).unwrap().line.id, line(2));
    assert_eq!(
        pool.conference(&id(1)).unwrap().provisioning,
        Provisioning::Pending,
        "a move to another line waits for its new meeting"
    );
}

#[test]
fn a_provisioning_failure_counts_only_for_the_line_and_the_time_it_was_for() {
    let failure = |on: u64| Command::RecordProvisioningFailure {
        conference: id(1),
        line: line(on),
        reason: "Zoom 500".into(),
    };
    let two_zoom_lines = || {
        let mut events = zoom_line();
        events.push(Event::LineAdded {
            line: line(2),
            name: LineName::parse("Zoom 2").unwrap(),
            provider: ProviderKind::Zoom,
        });
        given(events).and(&alice(), schedule(1, 2, 3))
    };
    // Reported for a line the conference is not on (it was moved): nothing.
    two_zoom_lines()
        .when(&admin(), failure(2))
        .then_expect_no_events();
    // Reported after the conference is over: nothing.
    two_zoom_lines()
        .at(t(4))
        .when(&admin(), failure(1))
        .then_expect_no_events();
    // For its line, while it is live: recorded.
    two_zoom_lines()
        .when(&admin(), failure(1))
        .then_expect_events(|events| {
            assert!(matches!(events[0], Event::ProvisioningFailed { .. }))
        });
}

// Closing the books

fn elapse(n: u128) -> Command {
    Command::RecordElapsedTime { conference: id(n) }
}

fn bookings_on(pool: &LinePool, n: u64) -> Vec<ConferenceId> {
    pool.line(&line(n))
        .unwrap()
        .bookings
        .values()
        .map(|booking| booking.conference)
        .collect()
}

#[test]
fn an_ended_conference_leaves_the_pool_and_its_booking_leaves_a_day_after_its_end() {
    let pool = given_lines(1)
        .and(&alice(), schedule(1, 1, 2))
        .at(t(3))
        .when(&admin(), elapse(1))
        .then_expect_events(|events| {
            assert!(matches!(events.last(), Some(Event::ConferenceEnded { .. })))
        });
    assert!(pool.conference(&id(1)).is_none(), "closed: not held");
    assert!(pool.numbers.is_empty());
    // Its booking stays while a decision could still reach it (a start a few minutes back, a
    // node whose clock is behind)…
    assert_eq!(bookings_on(&pool, 1), vec![id(1)]);
    let pool = Given { pool, now: t(25) }
        .when(&alice(), schedule(2, 26, 27))
        .then_expect_events(|_| {});
    assert_eq!(bookings_on(&pool, 1), vec![id(1), id(2)]);
    // …and goes once the log's clock is a day past its end.
    let pool = Given { pool, now: t(27) }
        .when(&alice(), schedule(3, 28, 29))
        .then_expect_events(|_| {});
    assert_eq!(bookings_on(&pool, 1), vec![id(2), id(3)]);
    assert_eq!(pool.latest, Some(t(27)));
    // The pool is what replaying the log gives.
    assert_eq!(LinePool::from_events(&pool.log), pool.pool);
}

#[test]
fn a_live_conference_keeps_its_booking_however_old_the_log() {
    // Past its end but not yet recorded as ended (the timer was away): not closed, kept.
    let pool = given_lines(1)
        .and(&alice(), schedule(1, 1, 2))
        .at(t(40))
        .when(&alice(), schedule(2, 41, 42))
        .then_expect_events(|_| {});
    assert!(pool.conference(&id(1)).is_some());
    assert_eq!(bookings_on(&pool, 1), vec![id(1), id(2)]);
}

#[test]
fn a_closed_conference_number_and_meeting_are_free_for_live_ones() {
    let given = given_lines(2).and(&alice(), schedule(1, 1, 2));
    let number = given.pool.conference(&id(1)).unwrap().number.clone();
    let pool = given
        .when(
            &alice(),
            Command::CancelConference {
                conference: id(1),
                reason: None,
            },
        )
        .then_expect_events(|_| {});
    // Live numbers are unique; a closed conference's number may be drawn again.
    let pool = Given { pool, now: t(0) }
        .when(
            &alice(),
            with_numbers(schedule(2, 3, 4), vec![number.clone()]),
        )
        .then_expect_events(|events| {
            assert!(
                matches!(&events[0], Event::ConferenceScheduled { number: drawn, .. } if *drawn == number)
            );
        });
    // Joining by the number reaches the live conference that holds it now.
    Given { pool, now: t(0) }
        .when(&Actor::user("dave"), Command::JoinConference { number })
        .then_expect_events(|events| {
            assert!(
                matches!(&events[0], Event::ParticipantJoined { conference, .. } if *conference == id(2))
            );
        });
}

#[test]
fn commands_on_a_closed_conference_are_answered_as_before_from_what_is_stored() {
    let pool = given_lines(1)
        .and(&alice(), schedule(1, 1, 2))
        .at(t(3))
        .and(&admin(), elapse(1))
        .pool;
    assert!(pool.conference(&id(1)).is_none());
    let at = |now| Given {
        pool: pool.clone(),
        now,
    };
    let cancel = || Command::CancelConference {
        conference: id(1),
        reason: None,
    };
    at(t(3))
        .when(&alice(), cancel())
        .then_expect_error(DomainError::invalid_state(Status::Ended));
    // Those who may not see it cannot tell it from an unknown one; an attendee may not manage it.
    at(t(3))
        .when(&Actor::user("mallory"), cancel())
        .then_expect_error(DomainError::NotFound);
    at(t(3))
        .when(&Actor::user("bob"), cancel())
        .then_expect_error(DomainError::Forbidden);
    at(t(3))
        .when(
            &alice(),
            Command::EditConference {
                conference: id(1),
                changes: ConferenceChanges::default(),
                expected_version: None,
                rooms: RoomNonce::fixed(9),
            },
        )
        .then_expect_error(DomainError::invalid_state(Status::Ended));
    at(t(3)).when(&admin(), elapse(1)).then_expect_no_events();
    // A late provider report is recorded, so the meeting it made is cleaned up, not orphaned.
    at(t(3))
        .when(&admin(), provisioned(1, "123"))
        .then_expect_events(|events| {
            assert!(matches!(events[0], Event::ConferenceProvisioned { .. }))
        });
    // Without the recalled conference the pool alone knows nothing of it.
    assert_eq!(
        pool.handle(&alice(), &cancel(), t(3)),
        Err(DomainError::NotFound)
    );
}

#[test]
fn a_batch_that_closed_conferences_rolls_back_to_the_pool_it_started_from() {
    let mut pool = given_lines(2)
        .and(&alice(), schedule(1, 1, 2))
        .and(&alice(), schedule(2, 1, 2))
        .pool
        .pool;
    let before = pool.clone();
    pool.begin();
    for command in [
        Command::CancelConference {
            conference: id(1),
            reason: None,
        },
        schedule(3, 30, 31),
    ] {
        for event in pool.handle(&alice(), &command, t(0)).unwrap() {
            pool.apply(&event);
        }
    }
    for event in pool.handle(&admin(), &elapse(2), t(29)).unwrap() {
        pool.apply(&event);
    }
    for event in pool.handle(&alice(), &schedule(4, 30, 31), t(29)).unwrap() {
        pool.apply(&event);
    }
    assert!(pool.conference(&id(2)).is_none());
    assert_eq!(bookings_on(&pool, 2), vec![id(4)], "2's booking pruned");
    pool.rollback();
    assert_eq!(pool, before);
    assert_eq!(bookings_on(&pool, 2), vec![id(2)]);
}
