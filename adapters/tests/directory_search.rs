//! The directory's search: from the rows in memory and from the database, the same pages; and
//! rows written by an older `search_key` are given today's key when a node starts, the users'
//! own data untouched.

use meetline_adapters::db::Database;
use meetline_adapters::directory::{Directory, DirectoryUser, SqlDirectory};
use meetline_domain::types::{TenantId, UserId};

fn user(id: &str, name: &str) -> DirectoryUser {
    DirectoryUser {
        id: UserId::parse(id).unwrap(),
        name: name.to_owned(),
        email: None,
        timezone: None,
    }
}

/// Every page of `q`, `limit` at a time, by cursor.
async fn pages(
    directory: &SqlDirectory,
    tenant: &TenantId,
    q: &str,
    limit: usize,
) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut after: Option<UserId> = None;
    loop {
        let page = directory
            .search_users(tenant, q, after.as_ref(), limit)
            .await
            .unwrap();
        if page.is_empty() {
            return all;
        }
        after = page.last().map(|(id, _)| id.clone());
        all.push(
            page.into_iter()
                .map(|(id, name)| format!("{id}={name}"))
                .collect(),
        );
    }
}

async fn memory_and_database_answer_alike(db: Database) {
    let tenant = TenantId::parse("acme").unwrap();
    let memory = SqlDirectory::new(db.clone()).await.unwrap();
    let database = SqlDirectory::new(db).await.unwrap().without_memory();
    let names = [
        "张伟",
        "王芳",
        "李娜",
        "张三",
        "Emma Zhou",
        "单芳",
        "zhang wei",
    ];
    let users: Vec<DirectoryUser> = (0..60)
        .map(|n| {
            user(
                &format!("{}{n}", ["Z", "a", "b_", "zz", "A"][n % 5]),
                names[n % names.len()],
            )
        })
        .collect();
    memory.put_users(&tenant, &users).await.unwrap();
    for q in ["zw", "张", "zhang wei", "", "sf", "a", "_", "%", "nobody"] {
        let from_memory = pages(&memory, &tenant, q, 7).await;
        assert_eq!(from_memory, pages(&database, &tenant, q, 7).await, "{q:?}");
        if q == "zw" {
            assert!(!from_memory.is_empty());
        }
    }
    // A write is seen at once by the search from memory.
    memory
        .put_users(&tenant, &[user("Z0", "刘洋")])
        .await
        .unwrap();
    assert_eq!(pages(&memory, &tenant, "liuyang", 10).await, [["Z0=刘洋"]]);
    assert_eq!(
        pages(&database, &tenant, "liuyang", 10).await,
        [["Z0=刘洋"]]
    );
    // Names by id, in the order asked, unknown ones left out.
    let ids: Vec<UserId> = ["b_2", "nobody", "Z0"]
        .iter()
        .map(|id| UserId::parse(id).unwrap())
        .collect();
    let expected = vec![
        (ids[0].clone(), names[2].to_owned()),
        (ids[2].clone(), "刘洋".to_owned()),
    ];
    assert_eq!(memory.names(&tenant, &ids).await.unwrap(), expected);
    assert_eq!(database.names(&tenant, &ids).await.unwrap(), expected);
}

#[tokio::test]
async fn on_sqlite_memory_and_database_answer_alike() {
    memory_and_database_answer_alike(Database::temporary().await.unwrap()).await;
}

#[tokio::test]
async fn on_postgres_memory_and_database_answer_alike() {
    let Some(database) = meetline_adapters::testing::TestDatabase::create().await else {
        return;
    };
    memory_and_database_answer_alike(Database::connect_postgres(&database.url, 4).await.unwrap())
        .await;
}

#[tokio::test]
async fn rows_of_an_older_search_key_are_given_todays_at_start() {
    let dir = std::env::temp_dir().join(format!("meetline-dir-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("directory.db");
    let tenant = TenantId::parse("acme").unwrap();
    let data_before: String;
    {
        let db = Database::open_sqlite(&path).await.unwrap();
        let directory = SqlDirectory::new(db.clone()).await.unwrap();
        directory
            .put_users(&tenant, &[user("u1", "单芳")])
            .await
            .unwrap();
        // As version 1 left it: the surname's common reading only.
        sqlx::query(
            "UPDATE directory_user_search SET search = 'u1\u{1f}单芳\u{1f}danfang\u{1f}df'; \
             UPDATE directory_search_version SET version = 1",
        )
        .execute(&db.writer)
        .await
        .unwrap();
        data_before = sqlx::query_scalar("SELECT data FROM directory_users")
            .fetch_one(&db.reader)
            .await
            .unwrap();
        let found = directory
            .search_users(&tenant, "sf", None, 10)
            .await
            .unwrap();
        assert!(found.is_empty(), "{found:?}");
    }
    let stamp = async |db: &Database| -> i64 {
        sqlx::query_scalar("SELECT stamp FROM directory_stamps WHERE tenant = 'acme'")
            .fetch_one(&db.reader)
            .await
            .unwrap()
    };
    let db = Database::open_sqlite(&path).await.unwrap();
    let before = stamp(&db).await;
    let directory = SqlDirectory::new(db.clone()).await.unwrap();
    let found = directory
        .search_users(&tenant, "sf", None, 10)
        .await
        .unwrap();
    assert_eq!(
        found,
        vec![(UserId::parse("u1").unwrap(), "单芳".to_owned())]
    );
    let version: i64 = sqlx::query_scalar("SELECT version FROM directory_search_version")
        .fetch_one(&db.reader)
        .await
        .unwrap();
    assert_eq!(version, 2);
    assert!(
        stamp(&db).await > before,
        "the stamp moved: nodes read the rows again"
    );
    let data_after: String = sqlx::query_scalar("SELECT data FROM directory_users")
        .fetch_one(&db.reader)
        .await
        .unwrap();
    assert_eq!(
        data_after, data_before,
        "the users' own data is not written"
    );
    // A third start has nothing to do.
    let moved = stamp(&db).await;
    drop(directory);
    SqlDirectory::new(db.clone()).await.unwrap();
    assert_eq!(stamp(&db).await, moved);
    std::fs::remove_dir_all(&dir).ok();
}
