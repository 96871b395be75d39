//! Graceful shutdown through the binary: on SIGTERM the server stops accepting, answers the
//! commands under way (each once durable), ends its event streams, stops the timer, the
//! provisioning process and the projector, and exits 0 — quickly, and within its grace period
//! even with an event stream open.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[tokio::test]
async fn sigterm_finishes_the_commands_under_way_stops_everything_and_exits_0() {
    let data = fresh_data_dir();
    let database = fresh_database().await;
    let log = data.join("server.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_meetline"));
    command
        .env("MEETLINE_JWT_SECRET", SECRET)
        .env("MEETLINE_SETTINGS_KEY", SETTINGS_KEY)
        .env("MEETLINE_JITSI_SECRET", JITSI_SECRET)
        .env("MEETLINE_LOG", "info,sqlx=warn")
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--rate-limit",
            "0",
            "--data",
        ])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    match &database {
        Some(database) => command.env("DATABASE_URL", &database.url),
        None => command.env_remove("DATABASE_URL"),
    };
    let mut child = command.spawn().unwrap();
    let base = listening_address(&mut child);
    let app = TestApp::attach(base.clone(), data.clone());
    app.seed("acme", 20).await;
    let alice = token("acme", "alice", false);

    // An event stream held open: it must not hold the shutdown up.
    let mut stream = app
        .request(reqwest::Method::GET, "/api/v1/events/stream", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.chunk().await.unwrap().is_some(), "the stream speaks");

    // Commands under way when the signal comes: eight clients creating one after another
    // until the server stops answering.
    let client = reqwest::Client::new();
    let mut sent = Vec::new();
    for worker in 0..8 {
        let (client, base, alice) = (client.clone(), base.clone(), alice.clone());
        sent.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for n in 0.. {
                let hour = 24 + worker * 1000 + n;
                let reply = client
                    .post(format!("{base}/api/v1/conferences"))
                    .bearer_auth(&alice)
                    .json(&json!({"subject": "s", "start": later(hour), "end": later(hour + 1)}))
                    .send()
                    .await;
                match reply {
                    Ok(reply) if reply.status() == 201 => {
                        let body: serde_json::Value = reply.json().await.unwrap();
                        answered.push((body["id"].as_str().unwrap().to_owned(), Instant::now()));
                    }
                    Ok(reply) => panic!("answered {}", reply.status()),
                    // Closed or refused: the server stopped accepting.
                    Err(_) => break,
                }
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Waited for a bounded time: a server that does not stop is killed and the test fails.
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if signalled.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the server did not stop within 20 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = signalled.elapsed();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");

    // Every command answered 201 is stored — those answered after the signal too.
    let mut acknowledged = Vec::new();
    let mut after_signal = 0;
    for task in sent {
        for (id, at) in task.await.unwrap() {
            after_signal += usize::from(at > signalled);
            acknowledged.push(id);
        }
    }
    assert!(!acknowledged.is_empty(), "commands were under way");
    println!(
        "stopped {took:?} after SIGTERM; {} commands acknowledged ({after_signal} after the signal), all stored",
        acknowledged.len()
    );
    let store = event_store(&data, database.as_ref()).await;
    let stored: Vec<String> = store
        .read_all(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter_map(|recorded| match &recorded.event {
            meetline_domain::event::Event::ConferenceScheduled { conference, .. } => {
                Some(conference.to_string())
            }
            _ => None,
        })
        .collect();
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged {id} was not stored");
    }
    // The stream ended, and each process said it stopped.
    let rest = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the event stream was not ended");
    let logged = std::fs::read_to_string(&log).unwrap();
    for said in [
        "shutting down",
        "timer stopped",
        "provisioning stopped",
        "projector stopped",
        "stopped",
    ] {
        assert!(
            logged.contains(said),
            "the log does not say {said:?}:\n{logged}"
        );
    }
    assert!(!logged.contains("aborted"), "{logged}");
    let _ = std::fs::remove_dir_all(data);
}
