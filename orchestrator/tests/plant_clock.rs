//! The plant clock's anchor is kept in the store: a restart continues plant time, a new
//! time_scale re-anchors it without a jump. Both databases.

mod common;

use common::TestDb;
use microfab::clock::PlantClock;
use microfab::store::Store;

async fn anchor_survives_restarts_and_rescales(kind: &str) {
    let db = TestDb::of(kind).await;
    let monday = microfab::clock::parse_start("2026-12-07T06:00:00+01:00").unwrap();
    let first_wall = 1_000_000;
    {
        let store = Store::connect(&db.url).await.unwrap();
        let clock = PlantClock::anchored(&store, 600.0, Some(monday), first_wall)
            .await
            .unwrap();
        assert_eq!(
            clock.to_plant(first_wall),
            monday,
            "{kind}: starts at [simulation] start"
        );
        assert_eq!(clock.to_plant(first_wall + 1_000), monday + 600_000);
        store.pool.close().await;
    }
    // A restart ten wall seconds later: plant time went on, and `start` is not read again.
    let store = Store::connect(&db.url).await.unwrap();
    let later = first_wall + 10_000;
    let restarted = PlantClock::anchored(&store, 600.0, Some(monday + 999_999), later)
        .await
        .unwrap();
    assert_eq!(
        restarted.to_plant(later),
        monday + 6_000_000,
        "{kind}: continued"
    );
    // A new scale: same plant instant now, then the new pace.
    let rescaled = PlantClock::anchored(&store, 60.0, None, later)
        .await
        .unwrap();
    assert_eq!(
        rescaled.to_plant(later),
        monday + 6_000_000,
        "{kind}: no jump"
    );
    assert_eq!(rescaled.to_plant(later + 1_000), monday + 6_060_000);
    let again = PlantClock::anchored(&store, 60.0, None, later + 5_000)
        .await
        .unwrap();
    assert_eq!(
        again, rescaled,
        "{kind}: the re-anchored clock is the one kept"
    );
    store.pool.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn the_plant_clock_anchor_is_kept_on_sqlite() {
    anchor_survives_restarts_and_rescales("sqlite").await;
}

#[tokio::test]
async fn the_plant_clock_anchor_is_kept_on_postgres() {
    anchor_survives_restarts_and_rescales("postgres").await;
}
