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
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};
use tokio::sync::{Mutex, MutexGuard, broadcast};

pub use events::{Draw, Event, EventRecord, MachineCommand};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL '{0}': use sqlite://FILE or postgres://...")]
    UnsupportedUrl(String),
    #[error("no database at {0}: only `microfab serve` and `microfab demo` create one")]
    Missing(String),
    #[error("cannot connect to PostgreSQL at {address}: {cause}")]
    Connect { address: String, cause: String },
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

/// How long a first connection to PostgreSQL may take before we say so: the pool on its own
/// would retry a refused connection silently until its acquire timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether opening a store may create its database (`serve`, `demo`) or reads an existing one
/// (`verify` and every other command that only looks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    CreateIfMissing,
    ExistingOnly,
}

/// `sqlite://FILE` opens FILE, creating it only with [`Open::CreateIfMissing`];
/// `sqlite::memory:` stays as is.
fn normalise_url(url: &str, open: Open) -> Result<(String, Backend), StoreError> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest.contains("memory") || rest.contains("mode=") {
            return Ok((url.to_string(), Backend::Sqlite));
        }
        let mode = match open {
            Open::CreateIfMissing => "rwc",
            Open::ExistingOnly => {
                let path = sqlite_path(rest);
                if !std::path::Path::new(path).is_file() {
                    return Err(StoreError::Missing(path.to_string()));
                }
                "rw"
            }
        };
        let sep = if rest.contains('?') { '&' } else { '?' };
        return Ok((format!("{url}{sep}mode={mode}"), Backend::Sqlite));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_string(), Backend::Postgres));
    }
    Err(StoreError::UnsupportedUrl(redact_url(url)))
}

/// The file of a `sqlite:` URL (after the scheme): `//FILE?options` or `FILE`.
fn sqlite_path(rest: &str) -> &str {
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    rest.split('?').next().unwrap_or(rest)
}

/// The URL's authority (`user:password@host:port`) and what comes before and after it.
fn split_authority(url: &str) -> Option<(&str, &str, &str)> {
    let start = url.find("://")? + 3;
    let len = url[start..].find(['/', '?']).unwrap_or(url.len() - start);
    Some((&url[..start], &url[start..start + len], &url[start + len..]))
}

/// The URL with its password, if any, shown as `****`: for logs, startup lines and errors.
/// PostgreSQL takes a password in the user part or as a `password=` option.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, authority, tail)) = split_authority(url) else {
        return url.to_string();
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}:****@{host}")
        }
        _ => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, options)) => {
            let options: Vec<String> = options
                .split('&')
                .map(|option| match option.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=****")
                    }
                    _ => option.to_string(),
                })
                .collect();
            format!("{path}?{}", options.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

/// `host:port` of a PostgreSQL URL, the port defaulting to 5432.
fn postgres_address(url: &str) -> String {
    let authority = split_authority(url).map_or("", |(_, authority, _)| authority);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if host.is_empty() { "localhost" } else { host };
    if host
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        host.to_string()
    } else {
        format!("{host}:5432")
    }
}

/// One connection, within [`CONNECT_TIMEOUT`], so that a wrong host, port, database or password
/// is reported with its cause at once.
async fn probe_postgres(url: &str, options: &AnyConnectOptions) -> Result<(), StoreError> {
    let failed = |cause: String| StoreError::Connect {
        address: postgres_address(url),
        cause,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect_with(options)).await {
        Ok(Ok(connection)) => {
            // Closing politely is a courtesy to the server; the probe already did its job.
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

impl Store {
    /// Open the store at `url`, creating its database if it does not exist yet.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::open(url, Open::CreateIfMissing).await
    }

    /// Open the store at `url`; with [`Open::ExistingOnly`] a database that is not there is an
    /// error naming it, never a new empty one.
    pub async fn open(url: &str, open: Open) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = normalise_url(url, open)?;
        let options: AnyConnectOptions = url.parse()?;
        if backend == Backend::Postgres {
            probe_postgres(&url, &options).await?;
        }
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
        // On SQLite the write lock is taken at BEGIN, where busy_timeout waits for another
        // process's writer (an admin's `microfab user add` beside `serve`). A deferred BEGIN
        // would take it at the first write, after this transaction's reads, and fail at once
        // (SQLITE_BUSY_SNAPSHOT) whenever the other process wrote in between.
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
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
            events::facts::log(record);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_database_url_is_never_shown() {
        for (url, shown) in [
            (
                "postgres://plant:s3cret@db.local:5433/microfab",
                "postgres://plant:****@db.local:5433/microfab",
            ),
            (
                "postgresql://plant:p@ss@db.local/microfab?sslmode=require",
                "postgresql://plant:****@db.local/microfab?sslmode=require",
            ),
            (
                "postgres://plant@db.local/microfab",
                "postgres://plant@db.local/microfab",
            ),
            (
                "postgres://plant@db.local/microfab?sslmode=require&password=s3cret",
                "postgres://plant@db.local/microfab?sslmode=require&password=****",
            ),
            ("sqlite://plant.db", "sqlite://plant.db"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }

    #[test]
    fn a_postgres_address_is_host_and_port() {
        for (url, address) in [
            (
                "postgres://plant:pw@db.local:5433/microfab",
                "db.local:5433",
            ),
            ("postgres://db.local/microfab", "db.local:5432"),
            ("postgres://127.0.0.1", "127.0.0.1:5432"),
        ] {
            assert_eq!(postgres_address(url), address);
        }
    }
}
