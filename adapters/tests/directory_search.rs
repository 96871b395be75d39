//! The directory's search rows across versions: rows written by an older `search_key` are
//! written again when a node starts, so what the newer key finds is found in old data too.

use meetline_adapters::db::Database;
use meetline_adapters::directory::{Directory, DirectoryUser, SqlDirectory};
use meetline_domain::types::{TenantId, UserId};

#[tokio::test]
async fn rows_of_an_older_search_key_are_written_again_at_start() {
    let dir = std::env::temp_dir().join(format!("meetline-dir-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("directory.db");
    let tenant = TenantId::parse("acme").unwrap();
    {
        let db = Database::open_sqlite(&path).await.unwrap();
        let directory = SqlDirectory::new(db.clone()).await.unwrap();
        directory
            .put_users(
                &tenant,
                &[DirectoryUser {
                    id: UserId::parse("u1").unwrap(),
                    name: "单芳".to_owned(),
                    email: None,
                    timezone: None,
                }],
            )
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
        let found = directory
            .search_users(&tenant, "sf", None, 10)
            .await
            .unwrap();
        assert!(found.is_empty(), "{found:?}");
    }
    let db = Database::open_sqlite(&path).await.unwrap();
    let directory = SqlDirectory::new(db).await.unwrap();
    let found = directory
        .search_users(&tenant, "sf", None, 10)
        .await
        .unwrap();
    assert_eq!(
        found,
        vec![(UserId::parse("u1").unwrap(), "单芳".to_owned())]
    );
    std::fs::remove_dir_all(&dir).ok();
}
