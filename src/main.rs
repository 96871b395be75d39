//! `meetline`: serve the engine, mint tokens, rebuild read models.
//!
//! # Layout
//! - `main.rs`: the command line (clap).
//! - `app.rs`: wiring — store, projector, command service, routers, middleware.
//! - `demo.rs`: the demo tenant loaded by `serve --demo`.
//! - `web.rs`: sign-in, the session cookie and the web app's embedded files (`web/`).

mod app;
mod demo;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use meetline_adapters::auth::{JwtKeys, SECRET_FILE};
use meetline_api_common::{Clock, RateLimits};
use meetline_domain::types::{TenantId, UserId};
use meetline_projections::Projector;
use tracing_subscriber::EnvFilter;

use crate::app::{Role, Settings};

#[derive(Parser)]
#[command(
    name = "meetline",
    version,
    about = "Schedules video conferences on a company's licensed lines"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(clap::Args, Clone)]
struct DataArgs {
    /// Folder of the embedded SQLite database and generated secrets.
    #[arg(long, env = "MEETLINE_DATA", default_value = "./meetline-data")]
    data: PathBuf,
    /// A PostgreSQL URL (postgres://…) instead of the embedded database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Keep the events in EventStoreDB / KurrentDB (esdb://host:2113?tls=false); read models
    /// and the directory stay in PostgreSQL or SQLite.
    #[arg(long, env = "MEETLINE_EVENT_STORE")]
    event_store: Option<String>,
}

impl DataArgs {
    fn storage(&self) -> app::StorageConfig {
        app::StorageConfig {
            data: self.data.clone(),
            database_url: self.database_url.clone(),
            event_store: self.event_store.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Commands {
    /// Run the HTTP server.
    Serve {
        #[arg(long, env = "MEETLINE_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[command(flatten)]
        data: DataArgs,
        /// Which APIs this process serves.
        #[arg(long, value_enum, default_value = "all")]
        role: Role,
        /// Load the demo tenant `demo` on first start.
        #[arg(long)]
        demo: bool,
        /// Base URL of the Jitsi Meet deployment the builtin provider's links open.
        #[arg(
            long,
            env = "MEETLINE_JITSI_URL",
            default_value = "https://meet.jit.si"
        )]
        jitsi_url: String,
        /// The app id (`iss`) of the Jitsi tokens.
        #[arg(long, env = "MEETLINE_JITSI_APP_ID", default_value = "meetline")]
        jitsi_app_id: String,
        /// Secret of the Jitsi tokens (default: generated once, kept in the data folder).
        #[arg(long, env = "MEETLINE_JITSI_SECRET", hide_env_values = true)]
        jitsi_secret: Option<String>,
        /// Key that encrypts line settings at rest (default: generated once, kept with the data).
        #[arg(long, env = "MEETLINE_SETTINGS_KEY", hide_env_values = true)]
        settings_key: Option<String>,
        /// How long creating a conference on an external provider's line waits for the meeting
        /// before answering 202 (milliseconds).
        #[arg(long, env = "MEETLINE_PROVISION_WAIT_MS", default_value_t = 5000)]
        provision_wait_ms: u64,
        /// First delay between retries of a provider call, doubling up to 30 s (milliseconds).
        #[arg(
            long,
            env = "MEETLINE_PROVIDER_RETRY_MS",
            default_value_t = 500,
            hide = true
        )]
        provider_retry_ms: u64,
        /// Requests per second each user may make, sustained (0: no limit). Over it: 429.
        #[arg(long, env = "MEETLINE_RATE_LIMIT", default_value_t = 100)]
        rate_limit: u32,
        /// Requests each user may make at once before the sustained rate applies.
        #[arg(long, env = "MEETLINE_RATE_BURST", default_value_t = 400)]
        rate_burst: u32,
        /// Freeze the clock at this RFC 3339 instant (benchmarks and tests only).
        #[arg(long, env = "MEETLINE_FIXED_NOW", hide = true)]
        fixed_now: Option<DateTime<Utc>>,
    },
    /// Print a bearer token signed with the server's secret.
    Token {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        /// Give the token the admin role.
        #[arg(long)]
        admin: bool,
        /// Hours until it expires.
        #[arg(long, default_value_t = 24)]
        hours: i64,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Drop the read models and rebuild them from the event log.
    Rebuild {
        #[command(flatten)]
        data: DataArgs,
    },
}

fn jwt_secret() -> Option<String> {
    std::env::var("MEETLINE_JWT_SECRET")
        .ok()
        .filter(|secret| !secret.is_empty())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("MEETLINE_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Commands::Serve {
            addr,
            data,
            role,
            demo,
            jitsi_url,
            jitsi_app_id,
            jitsi_secret,
            settings_key,
            provision_wait_ms,
            provider_retry_ms,
            rate_limit,
            rate_burst,
            fixed_now,
        } => {
            let settings = Settings {
                storage: data.storage(),
                role,
                demo,
                jwt_secret: jwt_secret(),
                jitsi_url,
                jitsi_app_id,
                jitsi_secret,
                settings_key,
                provision_wait: std::time::Duration::from_millis(provision_wait_ms),
                provider_retry: meetline_adapters::zoom::RetryPolicy {
                    min_delay: std::time::Duration::from_millis(provider_retry_ms),
                    ..meetline_adapters::zoom::RetryPolicy::default()
                },
                rate_limits: RateLimits::new(rate_limit, rate_burst).map(Arc::new),
                clock: fixed_now.map_or(Clock::System, Clock::Fixed),
            };
            serve(addr, settings).await
        }
        Commands::Token {
            tenant,
            user,
            admin,
            hours,
            data,
        } => {
            let tenant = TenantId::parse(&tenant).context("--tenant")?;
            let user = UserId::parse(&user).context("--user")?;
            let keys = match jwt_secret() {
                Some(secret) => JwtKeys::from_secret(secret.as_bytes()),
                // The secret the server generated: in the shared database, or the data folder.
                None if data.database_url.is_some() => {
                    let storage = app::open_storage(&data.storage()).await?;
                    let secret = app::secret(&storage.db, &data.data, SECRET_FILE, None).await?;
                    JwtKeys::from_secret(secret.as_bytes())
                }
                None => JwtKeys::load_or_create(&data.data, None)?,
            };
            println!(
                "{}",
                keys.mint(&tenant, &user, admin, Duration::hours(hours))
            );
            Ok(())
        }
        Commands::Rebuild { data } => rebuild(&data).await,
    }
}

async fn serve(addr: SocketAddr, settings: Settings) -> anyhow::Result<()> {
    let app = app::build(&settings).await?;
    if settings.demo {
        demo::load(&app, settings.clock.now())
            .await
            .context("loading the demo tenant")?;
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("meetline listening on http://{bound}");
    if settings.demo {
        println!(
            "demo tenant `demo`: get a token with `meetline token --tenant demo --user zhangwei` (add --admin for an admin)"
        );
    }
    tracing::info!(%bound, role = ?settings.role, data = %settings.storage.data.display(), "serving");
    app::run(listener, app.router, shutdown_signal()).await
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

async fn rebuild(data: &DataArgs) -> anyhow::Result<()> {
    let app::Storage { db, store } = app::open_storage(&data.storage()).await?;
    let head = store.head_position().await?;
    let projector = Projector::new(store, db).await?;
    let bar = ProgressBar::new(head);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} rebuilding read models [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let applied = projector
        .rebuild(|position| bar.set_position(position))
        .await?;
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt from {applied} events in {seconds:.1} s ({:.0} events/s)",
        applied as f64 / seconds.max(1e-9)
    );
    Ok(())
}
