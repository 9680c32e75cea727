//! Two processes on one SQLite file, as `microfab serve` and an admin's `microfab user add`
//! are: each one's writes wait for the other's instead of failing with "database is locked".

use microfab::auth::Role;
use microfab::auth::accounts;
use microfab::store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_sqlite_file_both_write_while_the_other_does() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("plant.db").display());
    // Two pools are two sets of connections: to SQLite's locks, two processes.
    let serve = Store::connect(&url).await.unwrap();
    let cli = Store::connect(&url).await.unwrap();
    let writes = |store: Store, prefix: &'static str| {
        tokio::spawn(async move {
            for i in 0..150 {
                accounts::add(
                    &store,
                    "admin",
                    &format!("{prefix}-{i}"),
                    Role::Maker,
                    None,
                    0,
                )
                .await
                .unwrap_or_else(|e| panic!("{prefix}-{i}: {e}"));
            }
        })
    };
    let (a, b) = tokio::join!(writes(serve, "serve"), writes(cli, "cli"));
    a.unwrap();
    b.unwrap();
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(accounts::list(&store).await.unwrap().len(), 300);
}
