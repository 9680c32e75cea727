//! `microfab user ...`: accounts and API tokens, on the database itself (like `verify`:
//! whoever can open the database may, and the event log says `local` did it). Also the
//! bootstrap token at `serve`/`demo` start and the demo's own log-ins.

use std::io::BufRead as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::auth::accounts::{self, AccountView, BOOTSTRAP_ACCOUNT};
use crate::auth::{Role, secrets};
use crate::ops::{Actor, OpError};
use crate::store::{Open, Store, format_ms, now_ms};

use super::load_config;

/// Where the accounts are: a database URL, or the database a plant config names.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The database (sqlite://FILE or postgres://...).
    #[arg(long, conflicts_with = "config")]
    database: Option<String>,
    /// A plant config: its `database`.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl DatabaseArgs {
    async fn open(&self, open: Open) -> anyhow::Result<Store> {
        let url = match (&self.database, &self.config) {
            (Some(url), _) => url.clone(),
            (None, Some(config)) => load_config(config)?.plant.database,
            (None, None) => bail!("give --database URL or --config FILE"),
        };
        Store::open(&url, open)
            .await
            .with_context(|| format!("opening the database {}", crate::store::redact_url(&url)))
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account. Its password comes from standard input with --password-stdin;
    /// without, one is generated and printed once.
    Add {
        name: String,
        #[arg(long, value_parser = clap::value_parser!(RoleArg))]
        role: RoleArg,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List the accounts and their API tokens.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Make an API token for an account; it is printed once (the database keeps its digest).
    Token {
        name: String,
        #[arg(long, default_value = "cli")]
        label: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke an API token, by the id `user list` shows.
    RevokeToken {
        id: i64,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Set an account's password (from standard input with --password-stdin, else generated
    /// and printed once); its sessions end.
    SetPassword {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// The account may no longer sign in; its sessions end and its tokens stop working.
    Disable {
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// A role as a command-line value (`maker`, `operator`, `admin`).
#[derive(Debug, Clone, Copy)]
pub struct RoleArg(Role);

impl std::str::FromStr for RoleArg {
    type Err = String;
    fn from_str(s: &str) -> Result<RoleArg, String> {
        s.parse().map(RoleArg)
    }
}

pub(super) async fn run(command: UserCommand) -> anyhow::Result<i32> {
    let local = Actor::Local.to_string();
    match command {
        UserCommand::Add {
            name,
            role: RoleArg(role),
            password_stdin,
            database,
        } => {
            accounts::check_name(&name).map_err(refused)?;
            let (password, generated) = password(password_stdin)?;
            let hash = crate::ops::hash_password(&password)
                .await
                .map_err(refused)?;
            let store = database.open(Open::CreateIfMissing).await?;
            accounts::add(&store, &local, &name, role, Some(hash), now_ms())
                .await
                .map_err(refused)?;
            println!("added {role} '{name}'");
            if generated {
                println!("password (shown once): {password}");
            }
        }
        UserCommand::List { json, database } => {
            let store = database.open(Open::ExistingOnly).await?;
            let accounts = accounts::list(&store).await.map_err(refused)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&accounts)?);
            } else {
                print!("{}", render_accounts(&accounts));
            }
        }
        UserCommand::Token {
            name,
            label,
            database,
        } => {
            let store = database.open(Open::ExistingOnly).await?;
            let (id, token) = accounts::create_token(&store, &local, &name, &label, now_ms())
                .await
                .map_err(refused)?;
            eprintln!("API token {id} for '{name}' ({label}); shown once:");
            println!("{token}");
        }
        UserCommand::RevokeToken { id, database } => {
            let store = database.open(Open::ExistingOnly).await?;
            accounts::revoke_token(&store, &local, id, now_ms())
                .await
                .map_err(refused)?;
            println!("API token {id} revoked");
        }
        UserCommand::SetPassword {
            name,
            password_stdin,
            database,
        } => {
            let (password, generated) = password(password_stdin)?;
            let hash = crate::ops::hash_password(&password)
                .await
                .map_err(refused)?;
            let store = database.open(Open::ExistingOnly).await?;
            accounts::set_password(&store, &local, &name, hash, now_ms())
                .await
                .map_err(refused)?;
            println!("password of '{name}' set; its sessions ended");
            if generated {
                println!("password (shown once): {password}");
            }
        }
        UserCommand::Disable { name, database } => {
            let store = database.open(Open::ExistingOnly).await?;
            accounts::disable(&store, &local, &name, now_ms())
                .await
                .map_err(refused)?;
            println!("'{name}' disabled: its sessions ended, its tokens no longer work");
        }
    }
    Ok(0)
}

fn refused(e: impl Into<OpError>) -> anyhow::Error {
    anyhow::anyhow!("{}", e.into())
}

/// The password: the first line of standard input, or a generated one (`true`).
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((secrets::generate_password(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    secrets::check_password(&password).map_err(|e| anyhow::anyhow!("--password-stdin: {e}"))?;
    Ok((password, false))
}

fn render_accounts(accounts: &[AccountView]) -> String {
    let mut out = format!("{:<24} {:<9} {:<9} TOKENS\n", "NAME", "ROLE", "STATE");
    for a in accounts {
        let state = if a.disabled { "disabled" } else { "active" };
        let tokens: Vec<String> = a
            .tokens
            .iter()
            .map(|t| {
                let used = t
                    .last_used_ms
                    .map_or("never used".into(), |at| format!("used {}", format_ms(at)));
                let revoked = if t.revoked { ", revoked" } else { "" };
                format!("#{} {} ({used}{revoked})", t.id, t.label)
            })
            .collect();
        out.push_str(&format!(
            "{:<24} {:<9} {:<9} {}\n",
            a.name,
            a.role.as_str(),
            state,
            tokens.join("; ")
        ));
    }
    out
}

/// `MICROFAB_BOOTSTRAP_TOKEN`, when set: the admin account `bootstrap` holds that token.
pub(super) async fn bootstrap_from_env(store: &Store) -> anyhow::Result<()> {
    let Ok(token) = std::env::var("MICROFAB_BOOTSTRAP_TOKEN") else {
        return Ok(());
    };
    accounts::ensure_bootstrap(store, token.trim(), now_ms())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!("MICROFAB_BOOTSTRAP_TOKEN signs in as the admin '{BOOTSTRAP_ACCOUNT}'");
    Ok(())
}

/// The demo's log-ins, one account per role, each with a fresh password at every start. The
/// maker is one whose orders the demo submits.
pub(super) async fn demo_accounts(store: &Store) -> anyhow::Result<Vec<(String, Role, String)>> {
    let local = Actor::Local.to_string();
    let mut logins = Vec::new();
    for (name, role) in [
        (DEMO_MAKER, Role::Maker),
        ("operator", Role::Operator),
        ("admin", Role::Admin),
    ] {
        let password = secrets::generate_password();
        let hash = crate::ops::hash_password(&password)
            .await
            .map_err(refused)?;
        let known = accounts::list(store)
            .await
            .map_err(refused)?
            .into_iter()
            .any(|a| a.name == name);
        let changed = if known {
            accounts::set_password(store, &local, name, hash, now_ms()).await
        } else {
            accounts::add(store, &local, name, role, Some(hash), now_ms()).await
        };
        changed.map_err(refused)?;
        logins.push((name.to_string(), role, password));
    }
    Ok(logins)
}

/// The maker of the demo's bike-light mount order (and owner of stock in `deploy/demo.toml`).
pub const DEMO_MAKER: &str = "pedal-coop";
