//! The embedded SQLite store on a full disk: commands are refused with a clear `503
//! unavailable` (no panic, the server stays up, reads go on), nothing stored is lost or
//! corrupted, and commands are taken again once space returns. And a start on a read-only store:
//! a clear error, nothing changed. The store lives on a small tmpfs the test mounts (root only;
//! skipped, and said so, elsewhere).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::json;

/// A tmpfs of `megabytes` mounted at a fresh folder, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<Self> {
        let folder = fresh_data_dir();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&folder)
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            let _ = std::fs::remove_dir_all(&folder);
            return None;
        }
        Some(Self(folder))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fills the file system of `folder` with `filler` until no byte is left.
fn fill(filler: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let mut byte = [0u8; 1];
    while file.write_all(&byte[..]).is_ok() {
        byte[0] = byte[0].wrapping_add(1);
    }
    let _ = file.sync_all();
}

async fn create(app: &TestApp, hour: i64) -> Reply {
    app.post(
        "/api/v1/conferences",
        &token("acme", "alice", false),
        json!({"subject": "s", "start": later(hour), "end": later(hour + 1)}),
    )
    .await
}

/// The integrity check of the stopped store, and the independent checker on its log.
fn sound(data: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_meetline"))
        .args(["verify", "--data"])
        .arg(data)
        .env("MEETLINE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "meetline verify: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let integrity = Command::new("sqlite3")
        .arg(data.join("meetline.db"))
        .arg("PRAGMA integrity_check;")
        .output();
    if let Ok(integrity) = integrity {
        assert_eq!(String::from_utf8_lossy(&integrity.stdout).trim(), "ok");
    }
}

#[tokio::test]
async fn a_full_disk_refuses_commands_clearly_loses_nothing_and_resumes_when_space_returns() {
    let Some(disk) = SmallDisk::mount(16) else {
        meetline_adapters::testing::note_skip("cannot mount a tmpfs (not root)");
        return;
    };
    let data = disk.0.join("data");
    let (child, base) = start(&data, None, &[]);
    let mut app = TestApp::attach(base, data.clone());
    let mut child = Some(child);
    app.seed("acme", 2).await;
    let mut acknowledged = Vec::new();
    for hour in 24..34 {
        let reply = create(&app, hour).await;
        reply.ok(201);
        acknowledged.push(reply.body["id"].as_str().unwrap().to_owned());
    }

    let filler = disk.0.join("filler");
    fill(&filler);
    let mut refused = 0;
    for hour in 40..60 {
        let reply = create(&app, hour).await;
        match reply.status.as_u16() {
            201 => acknowledged.push(reply.body["id"].as_str().unwrap().to_owned()),
            503 => {
                assert_eq!(reply.body["code"], "unavailable", "{:?}", reply.body);
                assert!(reply.header("retry-after").is_some());
                refused += 1;
            }
            other => panic!("a full disk answered {other}: {:?}", reply.body),
        }
    }
    assert!(refused > 0, "the disk was never full");
    // Reads go on.
    app.get("/api/v1/conferences", &token("acme", "alice", false))
        .await
        .ok(200);

    // Space returns: so do commands.
    std::fs::remove_file(&filler).unwrap();
    let mut resumed = None;
    for attempt in 0..50 {
        let reply = create(&app, 100 + attempt).await;
        if reply.status == 201 {
            acknowledged.push(reply.body["id"].as_str().unwrap().to_owned());
            resumed = Some(attempt);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let resumed = resumed.expect("commands did not resume when space returned");
    println!(
        "full disk: {refused} of 20 creates refused with 503; resumed after {resumed} retries"
    );

    // Nothing acknowledged lost, nothing corrupted.
    let store = app.event_store().await;
    let log = store.read_all(0, 10_000).await.unwrap();
    for (index, id) in acknowledged.iter().enumerate() {
        assert!(
            log.iter()
                .any(|e| e.event.conference().map(|c| c.to_string()).as_deref() == Some(id)),
            "acknowledged {id} (the {index}th of {}) was lost; the log holds {} events: {:?}",
            acknowledged.len(),
            log.len(),
            log.iter()
                .map(|e| (e.position, e.event.type_name()))
                .collect::<Vec<_>>()
        );
    }
    drop(store);
    let mut child = child.take().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    app.stop();
    sound(&data);
}

#[tokio::test]
async fn a_start_on_a_read_only_store_says_why_and_changes_nothing() {
    let Some(disk) = SmallDisk::mount(16) else {
        meetline_adapters::testing::note_skip("cannot mount a tmpfs (not root)");
        return;
    };
    let data = disk.0.join("data");
    let (mut child, base) = start(&data, None, &[]);
    let app = TestApp::attach(base, data.clone());
    app.seed("acme", 2).await;
    create(&app, 24).await.ok(201);
    let _ = child.kill();
    let _ = child.wait();
    let before = std::fs::read(data.join("meetline.db")).unwrap();

    // The same folder, read-only (a bind mount: root's writes are refused there too).
    let read_only = fresh_data_dir();
    let bound = Command::new("mount")
        .arg("--bind")
        .arg(&disk.0)
        .arg(&read_only)
        .status()
        .unwrap();
    assert!(bound.success());
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro,bind"])
        .arg(&read_only)
        .status()
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_meetline"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(read_only.join("data"))
        .env("MEETLINE_LOG", "warn")
        .env("MEETLINE_JWT_SECRET", SECRET)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let _ = Command::new("umount").arg(&read_only).status();
    let _ = std::fs::remove_dir_all(&read_only);
    assert!(remounted.success(), "remount read-only");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a start on a read-only store succeeded"
    );
    assert!(!said.contains("panicked"), "{said}");
    assert!(said.contains("Read-only file system"), "{said}");
    println!(
        "a start on a read-only store says: {}",
        said.trim().replace('\n', " / ")
    );
    assert_eq!(
        std::fs::read(data.join("meetline.db")).unwrap(),
        before,
        "the store changed"
    );
    sound(&data);
}
