//! Browser sessions: a random cookie, kept in the store as its digest, ending after a time
//! without use or at the latest a fixed time after sign-in.

use super::accounts::{SignedIn, parse_role};
use super::secrets;
use crate::plant::Result;
use crate::store::Store;

/// A session nobody used for this long has ended (a shift's break, not a weekend).
pub const IDLE_MS: i64 = 8 * 3600 * 1000;
/// A session ends this long after sign-in however much it is used.
pub const ABSOLUTE_MS: i64 = 7 * 24 * 3600 * 1000;
/// How often a session's `last_seen_ms` is written at most.
const LAST_SEEN_RESOLUTION_MS: i64 = 60_000;

/// A new session for `account`: the cookie value (the store keeps its digest). Sessions that
/// have ended are cleared out on the way.
pub async fn start(store: &Store, account: &str, now_ms: i64) -> Result<String> {
    let cookie = secrets::new_session_cookie();
    let mut w = store.writer(account, now_ms).await?;
    sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1 OR last_seen_ms <= $2")
        .bind(now_ms)
        .bind(now_ms - IDLE_MS)
        .execute(&mut *w.tx)
        .await?;
    sqlx::query(
        "INSERT INTO sessions (cookie_sha256, account, created_ms, last_seen_ms, expires_ms) \
         VALUES ($1, $2, $3, $3, $4)",
    )
    .bind(secrets::digest(&cookie))
    .bind(account)
    .bind(now_ms)
    .bind(now_ms + ABSOLUTE_MS)
    .execute(&mut *w.tx)
    .await?;
    w.commit().await?;
    Ok(cookie)
}

/// The account a session cookie signs in as, if the session has not ended (idle or absolute)
/// and its account is not disabled.
pub async fn lookup(store: &Store, cookie: &str, now_ms: i64) -> Result<Option<SignedIn>> {
    let digest = secrets::digest(cookie);
    let row: Option<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT a.name AS name, a.role AS role, s.last_seen_ms AS last_seen_ms, s.expires_ms AS expires_ms \
         FROM sessions s JOIN accounts a ON a.name = s.account \
         WHERE s.cookie_sha256 = $1 AND a.disabled_ms IS NULL",
    )
    .bind(&digest)
    .fetch_optional(&store.pool)
    .await?;
    let Some((name, role, last_seen, expires)) = row else {
        return Ok(None);
    };
    if now_ms >= expires || now_ms - last_seen >= IDLE_MS {
        return Ok(None);
    }
    if now_ms - last_seen >= LAST_SEEN_RESOLUTION_MS {
        let mut w = store.writer(&name, now_ms).await?;
        sqlx::query("UPDATE sessions SET last_seen_ms = $1 WHERE cookie_sha256 = $2")
            .bind(now_ms)
            .bind(&digest)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
    }
    Ok(Some(SignedIn {
        name,
        role: parse_role(&role)?,
    }))
}

/// Sign out: the session ends now.
pub async fn end(store: &Store, cookie: &str, now_ms: i64) -> Result<()> {
    let mut w = store.writer("system", now_ms).await?;
    sqlx::query("DELETE FROM sessions WHERE cookie_sha256 = $1")
        .bind(secrets::digest(cookie))
        .execute(&mut *w.tx)
        .await?;
    w.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::auth::accounts;

    async fn store_with(name: &str) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("auth.db").display());
        let store = Store::connect(&url).await.unwrap();
        accounts::add(&store, "local", name, Role::Operator, None, 0)
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_session_ends_when_idle_at_its_absolute_end_and_at_sign_out() {
        let (_dir, store) = store_with("olga").await;
        let t0 = 1_000_000;
        let cookie = start(&store, "olga", t0).await.unwrap();
        let stored: String = sqlx::query_scalar("SELECT cookie_sha256 FROM sessions")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_ne!(stored, cookie, "the store keeps the cookie's digest only");

        let signed_in = lookup(&store, &cookie, t0 + 1000).await.unwrap().unwrap();
        assert_eq!(
            (signed_in.name.as_str(), signed_in.role),
            ("olga", Role::Operator)
        );
        assert!(lookup(&store, "forged", t0).await.unwrap().is_none());
        // Idle: untouched for IDLE_MS.
        assert!(
            lookup(&store, &cookie, t0 + IDLE_MS)
                .await
                .unwrap()
                .is_none()
        );
        // Used every hour, it still ends ABSOLUTE_MS after sign-in.
        let mut t = t0;
        while t + 3_600_000 < t0 + ABSOLUTE_MS {
            t += 3_600_000;
            assert!(
                lookup(&store, &cookie, t).await.unwrap().is_some(),
                "at {t}"
            );
        }
        assert!(
            lookup(&store, &cookie, t0 + ABSOLUTE_MS)
                .await
                .unwrap()
                .is_none()
        );

        let cookie = start(&store, "olga", t0).await.unwrap();
        end(&store, &cookie, t0 + 1).await.unwrap();
        assert!(lookup(&store, &cookie, t0 + 2).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_disabled_account_signs_in_no_more() {
        let (_dir, store) = store_with("olga").await;
        let cookie = start(&store, "olga", 0).await.unwrap();
        let (_, token) = accounts::create_token(&store, "local", "olga", "cli", 0)
            .await
            .unwrap();
        assert!(
            accounts::by_token(&store, &token, 1)
                .await
                .unwrap()
                .is_some()
        );
        accounts::disable(&store, "local", "olga", 2).await.unwrap();
        assert!(lookup(&store, &cookie, 3).await.unwrap().is_none());
        assert!(
            accounts::by_token(&store, &token, 3)
                .await
                .unwrap()
                .is_none()
        );
    }
}
