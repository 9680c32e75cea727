//! Read model of the lots received into stock accounts (each restock is one lot), for the
//! materials page.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Plant, Result};
use crate::amount::Amount;
use crate::store::format_ms;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LotView {
    pub id: String,
    pub account: String,
    pub origin: String,
    pub quantity: Amount,
    pub received: String,
}

impl Plant {
    /// Every lot received, newest first.
    pub async fn lots(&self) -> Result<Vec<LotView>> {
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, account, origin, quantity, received_ms FROM lots ORDER BY received_ms DESC, id DESC",
        )
        .fetch_all(&self.store.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, account, origin, quantity, received_ms)| LotView {
                id,
                account,
                origin,
                quantity: Amount(quantity),
                received: format_ms(received_ms),
            })
            .collect())
    }
}
