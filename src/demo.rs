//! The demo tenant `demo`, loaded by `serve --demo` on first start: a dozen users with Chinese
//! and English names, five builtin lines, meetings with their roles, a one-to-one and a group
//! chat, and conferences in every status. Everything goes through the same command service as
//! real traffic; past conferences are decided with a past `now`, so their history is truthful.

use anyhow::Context;
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use meetline_adapters::directory::{ChatKind, DirectoryChat, DirectoryUser};
use meetline_command_api::Submission;
use meetline_command_api::draws::{numbers, rooms};
use meetline_domain::command::{ChatFacts, EndSpec, MeetingFacts, ScheduleConference};
use meetline_domain::types::*;
use meetline_domain::{Command, Event};
use uuid::Uuid;

use crate::app::App;

pub const TENANT: &str = "demo";
pub const ADMIN: &str = "admin";

const USERS: [(&str, &str, &str); 13] = [
    ("admin", "管理员", "admin@demo.example"),
    ("zhangwei", "张伟", "zhangwei@demo.example"),
    ("lina", "李娜", "lina@demo.example"),
    ("wangfang", "王芳", "wangfang@demo.example"),
    ("liuyang", "刘洋", "liuyang@demo.example"),
    ("chenjing", "陈静", "chenjing@demo.example"),
    ("zhaolei", "赵磊", "zhaolei@demo.example"),
    ("alice", "Alice Chen", "alice@demo.example"),
    ("bob", "Bob Smith", "bob@demo.example"),
    ("carol", "Carol Wang", "carol@demo.example"),
    ("david", "David Li", "david@demo.example"),
    ("emma", "Emma Zhou", "emma@demo.example"),
    ("frank", "Frank Wu", "frank@demo.example"),
];

fn uid(id: &str) -> UserId {
    UserId::parse(id).expect("demo ids are valid")
}

fn uids(ids: &[&str]) -> Vec<UserId> {
    ids.iter().map(|id| uid(id)).collect()
}

/// A local (Asia/Shanghai) wall-clock time `days` from today.
fn local(now: DateTime<Utc>, days: i64, hour: u32, minute: u32) -> DateTime<Utc> {
    let date = (now.with_timezone(&Shanghai) + Duration::days(days)).date_naive();
    Shanghai
        .from_local_datetime(&date.and_hms_opt(hour, minute, 0).expect("valid time"))
        .single()
        .expect("Shanghai has no DST")
        .with_timezone(&Utc)
}

/// Loads the demo tenant unless its pool already has events.
///
/// # Errors
/// When a command is rejected or the store fails.
pub async fn load(app: &App, now: DateTime<Utc>) -> anyhow::Result<()> {
    let tenant = TenantId::parse(TENANT)?;
    let stream = meetline_domain::ports::pool_stream(&tenant);
    if !app.store.read_stream(&stream, 0, 1).await?.is_empty() {
        return Ok(());
    }
    for (id, name, email) in USERS {
        let user = DirectoryUser {
            id: uid(id),
            name: name.to_owned(),
            email: Some(email.to_owned()),
            timezone: Some(TimeZoneName::parse("Asia/Shanghai")?),
        };
        app.directory.put_user(&tenant, &user).await?;
    }
    let meetings = [
        (
            "weekly",
            "研发周例会",
            1,
            10,
            "zhangwei",
            "lina",
            "wangfang",
            &["liuyang", "chenjing", "alice", "bob"][..],
        ),
        (
            "review",
            "Q4 季度评审",
            3,
            14,
            "alice",
            "bob",
            "carol",
            &["zhangwei", "david", "emma"][..],
        ),
        (
            "kickoff",
            "Project kickoff",
            5,
            9,
            "david",
            "david",
            "emma",
            &["frank", "alice", "lina"][..],
        ),
    ];
    let mut meeting_facts = Vec::new();
    for (id, subject, days, hour, creator, convener, contact, attendees) in meetings {
        let facts = MeetingFacts {
            id: MeetingId::parse(id)?,
            subject: subject.to_owned(),
            start: local(now, days, hour, 0),
            end: local(now, days, hour + 1, 0),
            creator: uid(creator),
            convener: uid(convener),
            contact: uid(contact),
            attendees: uids(attendees),
            url: Some(RelatedLink::parse(&format!(
                "https://oa.demo.example/meetings/{id}"
            ))?),
        };
        app.directory.put_meeting(&tenant, &facts).await?;
        meeting_facts.push(facts);
    }
    let chats = [
        (
            "zhangwei-lina",
            ChatKind::Single,
            "张伟 / 李娜",
            &["zhangwei", "lina"][..],
        ),
        (
            "product",
            ChatKind::Group,
            "产品研发群",
            &["zhangwei", "lina", "wangfang", "liuyang", "alice", "bob"][..],
        ),
        (
            "design",
            ChatKind::Group,
            "Design crew",
            &["carol", "david", "emma", "frank", "chenjing"][..],
        ),
    ];
    let mut chat_facts = Vec::new();
    for (id, kind, name, members) in chats {
        let chat = DirectoryChat {
            kind,
            facts: ChatFacts {
                id: ChatId::parse(id)?,
                name: name.to_owned(),
                members: uids(members),
            },
        };
        app.directory.put_chat(&tenant, &chat).await?;
        chat_facts.push(chat.facts);
    }

    let admin = Actor::admin(ADMIN);
    let run = |actor: Actor, command: Command, at: DateTime<Utc>| {
        let service = app.service.clone();
        let tenant = tenant.clone();
        async move {
            let kind = command.kind();
            service
                .execute(Submission::new(tenant, actor, command, at))
                .await
                .with_context(|| format!("demo command {kind}"))
        }
    };
    // Lines exist from a week ago, so the past conferences below had lines to use.
    let week_ago = now - Duration::days(7);
    for n in 1..=5 {
        let name = LineName::parse(&format!("线路 {n}"))?;
        run(
            admin.clone(),
            Command::AddLine {
                name,
                provider: ProviderKind::Builtin,
            },
            week_ago,
        )
        .await?;
    }
    let schedule = |host: &str,
                    subject: &str,
                    start: DateTime<Utc>,
                    end: DateTime<Utc>,
                    attendees: &[&str]| {
        (
            Actor::user(host),
            Command::ScheduleConference(ScheduleConference {
                conference: ConferenceId(Uuid::new_v4()),
                mode: Mode::Scheduled,
                subject: Subject::parse(subject).expect("demo subject"),
                start: Some(start),
                end: EndSpec::At(end),
                timezone: TimeZoneName::default(),
                host: None,
                attendees: uids(attendees),
                related_link: None,
                rooms: rooms(),
                numbers: numbers(),
            }),
        )
    };
    let conference_of = |outcome: &meetline_command_api::Outcome| {
        outcome
            .events
            .iter()
            .find_map(Event::conference)
            .context("a conference was created")
    };

    // Ended by itself: two days ago.
    let (who, command) = schedule(
        "zhangwei",
        "需求评审会",
        local(now, -2, 10, 0),
        local(now, -2, 11, 0),
        &["lina", "wangfang", "alice"],
    );
    run(who, command, local(now, -3, 9, 0)).await?;
    // Ended early by its host yesterday.
    let (who, command) = schedule(
        "alice",
        "Design sync",
        local(now, -1, 15, 0),
        local(now, -1, 16, 30),
        &["bob", "carol", "zhangwei"],
    );
    let ended = conference_of(&run(who, command, local(now, -2, 18, 0)).await?)?;
    run(
        Actor::user("alice"),
        Command::EndConferenceEarly { conference: ended },
        local(now, -1, 15, 40),
    )
    .await?;
    // In progress: a quick conference started a few minutes ago.
    let quick = Command::ScheduleConference(ScheduleConference {
        conference: ConferenceId(Uuid::new_v4()),
        mode: Mode::Quick,
        subject: Subject::parse("线上故障排查")?,
        start: None,
        end: EndSpec::After(Duration::minutes(60)),
        timezone: TimeZoneName::default(),
        host: None,
        attendees: uids(&["zhaolei", "liuyang", "lina"]),
        related_link: None,
        rooms: rooms(),
        numbers: numbers(),
    });
    run(Actor::user("zhangwei"), quick, now - Duration::minutes(5)).await?;
    // Not started: tomorrow and next week.
    let (who, command) = schedule(
        "lina",
        "产品路线图讨论",
        local(now, 1, 15, 0),
        local(now, 1, 16, 0),
        &["zhangwei", "wangfang", "bob"],
    );
    run(who, command, now).await?;
    let (who, command) = schedule(
        "bob",
        "Weekly 1:1",
        local(now, 2, 11, 0),
        local(now, 2, 11, 30),
        &["alice"],
    );
    run(who, command, now).await?;
    let (who, command) = schedule(
        "chenjing",
        "培训：视频会议使用指南",
        local(now, 6, 14, 0),
        local(now, 6, 16, 0),
        &[
            "zhangwei", "lina", "wangfang", "liuyang", "zhaolei", "alice", "bob", "carol", "david",
            "emma", "frank",
        ],
    );
    run(who, command, now).await?;
    // Cancelled.
    let (who, command) = schedule(
        "wangfang",
        "团建筹备会",
        local(now, 4, 16, 0),
        local(now, 4, 17, 0),
        &["zhangwei", "lina"],
    );
    let cancelled = conference_of(&run(who, command, now).await?)?;
    run(
        Actor::user("wangfang"),
        Command::CancelConference {
            conference: cancelled,
            reason: Some("改为线下".to_owned()),
        },
        now,
    )
    .await?;
    // From a meeting's card and from a group chat.
    let weekly = meeting_facts.remove(0);
    let launch = Command::LaunchFromMeeting {
        conference: ConferenceId(Uuid::new_v4()),
        subject: None,
        start: None,
        end: None,
        timezone: TimeZoneName::default(),
        meeting: weekly,
        rooms: rooms(),
        numbers: numbers(),
    };
    run(Actor::user("zhangwei"), launch, now).await?;
    let from_chat = Command::LaunchFromChat {
        conference: ConferenceId(Uuid::new_v4()),
        subject: Some(Subject::parse("设计稿快速过一下")?),
        attendees: Some(uids(&["carol", "emma"])),
        timezone: TimeZoneName::default(),
        chat: chat_facts.remove(2),
        rooms: rooms(),
        numbers: numbers(),
    };
    run(Actor::user("david"), from_chat, now).await?;
    tracing::info!("demo tenant loaded");
    Ok(())
}
