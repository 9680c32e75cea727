//! The durable store: sqlx over SQLite (a file, WAL; the default) or PostgreSQL, chosen by the
//! URL at run time, one SQL dialect (`$N` parameters, portable types) and one migration folder
//! per backend.
//!
//! Architecture invariant: every state change is written together with its event in one
//! transaction ([`Writer`]), before anyone (API reply, SSE, a machine) is told about it. One
//! writer at a time: SQLite wants it, and it makes every change a clean step of the event log.

pub mod events;

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, MutexGuard, broadcast};

pub use events::{Draw, Event, EventRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL '{0}': use sqlite://FILE or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

pub struct Store {
    pub pool: AnyPool,
    pub backend: Backend,
    write_lock: Mutex<()>,
    events: broadcast::Sender<EventRecord>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// `sqlite://FILE` opens (or creates) FILE; `sqlite::memory:` stays as is.
fn normalise_url(url: &str) -> Result<(String, Backend), StoreError> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest.contains("memory") || rest.contains("mode=") {
            return Ok((url.to_string(), Backend::Sqlite));
        }
        let sep = if rest.contains('?') { '&' } else { '?' };
        return Ok((format!("{url}{sep}mode=rwc"), Backend::Sqlite));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_string(), Backend::Postgres));
    }
    Err(StoreError::UnsupportedUrl(url.to_string()))
}

impl Store {
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = normalise_url(url)?;
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if backend == Backend::Sqlite {
            // WAL is a property of the file: readers never block the writer.
            sqlx::query("PRAGMA journal_mode = WAL")
                .fetch_all(&pool)
                .await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
        } else {
            POSTGRES_MIGRATIONS.run(&pool).await?;
        }
        let (events, _) = broadcast::channel(4096);
        Ok(Store {
            pool,
            backend,
            write_lock: Mutex::new(()),
            events,
        })
    }

    /// Start the one write transaction. Events emitted through the writer are published only
    /// after it commits.
    pub async fn writer(&self, actor: &str, at_ms: i64) -> Result<Writer<'_>, StoreError> {
        let guard = self.write_lock.lock().await;
        let tx = self.pool.begin().await?;
        Ok(Writer {
            store: self,
            _guard: guard,
            tx,
            actor: actor.to_string(),
            at_ms,
            emitted: Vec::new(),
        })
    }

    /// Hold off every writer of this process, for reads that must see one consistent state
    /// across several queries (replay checks).
    pub async fn quiesce(&self) -> MutexGuard<'_, ()> {
        self.write_lock.lock().await
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.events.subscribe()
    }
}

pub struct Writer<'s> {
    store: &'s Store,
    _guard: MutexGuard<'s, ()>,
    pub tx: Transaction<'static, Any>,
    pub actor: String,
    pub at_ms: i64,
    emitted: Vec<EventRecord>,
}

impl Writer<'_> {
    pub async fn emit(&mut self, event: Event) -> Result<i64, StoreError> {
        let record = events::append(&mut self.tx, &self.actor, self.at_ms, event).await?;
        let seq = record.seq;
        self.emitted.push(record);
        Ok(seq)
    }

    pub async fn commit(self) -> Result<Vec<EventRecord>, StoreError> {
        self.tx.commit().await?;
        for record in &self.emitted {
            // Nobody listening is fine: subscribers read the log from the store on connect.
            let _ = self.store.events.send(record.clone());
        }
        Ok(self.emitted)
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
