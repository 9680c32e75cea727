//! The plant clock: the time the calendar, the planner and simulated operators live in. It runs
//! at `[simulation] time_scale` (1 in a real plant, where it is the wall clock) from an anchor:
//! at wall instant `wall_origin` it read `plant_origin`. The store keeps wall instants; read
//! models that reason about shifts and plans map them with [`PlantClock::to_plant`].

use std::time::Duration;

use crate::store::{Store, StoreError, now_ms};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlantClock {
    scale: f64,
    wall_origin: i64,
    plant_origin: i64,
}

impl PlantClock {
    pub fn new(scale: f64, wall_origin: i64, plant_origin: i64) -> PlantClock {
        PlantClock {
            scale,
            wall_origin,
            plant_origin,
        }
    }

    /// The wall clock itself.
    pub fn wall() -> PlantClock {
        PlantClock::new(1.0, 0, 0)
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Plant time now (ms since the Unix epoch).
    pub fn now(&self) -> i64 {
        self.to_plant(now_ms())
    }

    pub fn to_plant(&self, wall_ms: i64) -> i64 {
        self.plant_origin + ((wall_ms - self.wall_origin) as f64 * self.scale).round() as i64
    }

    pub fn to_wall(&self, plant_ms: i64) -> i64 {
        self.wall_origin + ((plant_ms - self.plant_origin) as f64 / self.scale).round() as i64
    }

    /// How long a stretch of plant time takes on the wall clock.
    pub fn wall_duration(&self, plant_ms: i64) -> Duration {
        Duration::from_secs_f64((plant_ms.max(0) as f64 / self.scale) / 1000.0)
    }
}

impl PlantClock {
    /// The plant's clock from its anchor in the store. The first start writes the anchor (plant
    /// time `start`, or the wall clock, at `now_wall`); a restart continues from it, so plant
    /// time goes on where the wall clock says; a different `scale` re-anchors at the plant time
    /// reached, so plant time never jumps.
    pub async fn anchored(
        store: &Store,
        scale: f64,
        start: Option<i64>,
        now_wall: i64,
    ) -> Result<PlantClock, StoreError> {
        let mut writer = store.writer("system", now_wall).await?;
        let stored: Option<(i64, i64, f64)> = sqlx::query_as(
            "SELECT wall_origin_ms, plant_origin_ms, time_scale FROM plant_clock WHERE id = 1",
        )
        .fetch_optional(&mut *writer.tx)
        .await?;
        let clock = match stored {
            Some((wall, plant, stored_scale)) if stored_scale == scale => {
                return Ok(PlantClock::new(scale, wall, plant));
            }
            Some((wall, plant, stored_scale)) => {
                let reached = PlantClock::new(stored_scale, wall, plant).to_plant(now_wall);
                PlantClock::new(scale, now_wall, reached)
            }
            None => PlantClock::new(scale, now_wall, start.unwrap_or(now_wall)),
        };
        sqlx::query("DELETE FROM plant_clock")
            .execute(&mut *writer.tx)
            .await?;
        sqlx::query(
            "INSERT INTO plant_clock (id, wall_origin_ms, plant_origin_ms, time_scale) \
             VALUES (1, $1, $2, $3)",
        )
        .bind(clock.wall_origin)
        .bind(clock.plant_origin)
        .bind(clock.scale)
        .execute(&mut *writer.tx)
        .await?;
        writer.commit().await?;
        Ok(clock)
    }
}

/// `[simulation] start` (RFC 3339) as ms since the Unix epoch.
pub fn parse_start(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plant_and_wall_instants_map_both_ways() {
        let clock = PlantClock::new(1800.0, 1_000, 5_000_000);
        assert_eq!(clock.to_plant(1_000), 5_000_000);
        assert_eq!(clock.to_plant(2_000), 5_000_000 + 1_800_000);
        assert_eq!(clock.to_wall(clock.to_plant(123_456)), 123_456);
        assert_eq!(clock.wall_duration(3_600_000), Duration::from_secs(2));
        assert_eq!(PlantClock::wall().to_plant(42), 42);
    }
}
