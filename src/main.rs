//! `meetline`: serve the engine, mint tokens, rebuild read models, move a deployment's history
//! between stores, and audit the log.
//!
//! # Layout
//! - `main.rs`: the command line (clap).
//! - `app.rs`: wiring — store, projector, command service, routers, middleware.
//! - `demo.rs`: the demo tenant loaded by `serve --demo`.
//! - `web.rs`: sign-in, the session cookie and the web app's embedded files (`web/`).
//! - `transfer.rs`: `export` / `import` (NDJSON of the log, the directory and line settings).
//! - `audit.rs`: `history` (a conference's timeline) and `verify` (the log's invariants).

/// The allocator: jemalloc. glibc's malloc took about a fifth of a busy query node's CPU (W4,
/// `perf`), much of it waiting on its arenas' locks between the runtime's threads and SQLite's;
/// mimalloc sped the listings up but doubled the command path's p99 (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod app;
mod audit;
mod demo;
mod transfer;
mod web;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use meetline_adapters::auth::{JwksSource, JwtKeys, SECRET_FILE, TokenPolicy};
use meetline_adapters::providers::Endpoints;
use meetline_adapters::tencent::TencentEndpoints;
use meetline_adapters::zoom::ZoomEndpoints;
use meetline_api_common::security::WebSecurity;
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
    /// The kind of event store these flags name.
    fn kind(&self) -> &'static str {
        if self
            .event_store
            .as_deref()
            .is_some_and(|url| !url.is_empty())
        {
            "esdb"
        } else if self
            .database_url
            .as_deref()
            .is_some_and(|url| !url.is_empty())
        {
            "postgres"
        } else {
            "sqlite"
        }
    }

    fn storage(&self) -> app::StorageConfig {
        app::StorageConfig {
            data: self.data.clone(),
            database_url: self.database_url.clone(),
            event_store: self.event_store.clone(),
        }
    }
}

/// What tokens the server accepts (shared by `serve` and `token`).
#[derive(clap::Args, Clone)]
struct TokenArgs {
    /// The longest a token may live, in hours; longer ones are refused.
    #[arg(long, env = "MEETLINE_TOKEN_MAX_LIFETIME_HOURS", default_value_t = meetline_adapters::auth::DEFAULT_MAX_LIFETIME_HOURS)]
    token_max_lifetime_hours: i64,
    /// HS256 tokens must carry this `iss` (and `meetline token` writes it).
    #[arg(long, env = "MEETLINE_TOKEN_ISSUER")]
    token_issuer: Option<String>,
    /// HS256 tokens must carry this `aud` (and `meetline token` writes it).
    #[arg(long, env = "MEETLINE_TOKEN_AUDIENCE")]
    token_audience: Option<String>,
}

impl TokenArgs {
    fn policy(&self, tenants: &[String], accept_hs256: bool) -> anyhow::Result<TokenPolicy> {
        anyhow::ensure!(
            (1..=24 * 31).contains(&self.token_max_lifetime_hours),
            "--token-max-lifetime-hours must be between 1 and 744"
        );
        let tenants = tenants
            .iter()
            .map(|id| id.trim())
            .filter(|id| !id.is_empty())
            .map(|id| TenantId::parse(id).with_context(|| format!("--tenants: {id:?}")))
            .collect::<anyhow::Result<HashSet<_>>>()?;
        Ok(TokenPolicy {
            max_lifetime: Duration::hours(self.token_max_lifetime_hours),
            tenants: (!tenants.is_empty()).then_some(tenants),
            accept_hs256,
            hs256_issuer: self.token_issuer.clone().filter(|text| !text.is_empty()),
            hs256_audience: self.token_audience.clone().filter(|text| !text.is_empty()),
        })
    }
}

/// Who may sign in, how browsers reach the server, and where providers are.
#[derive(clap::Args, Clone)]
struct SecurityArgs {
    #[command(flatten)]
    tokens: TokenArgs,
    /// The tenants that exist (comma-separated); tokens naming another are refused. Default:
    /// any tenant a valid token names.
    #[arg(long, env = "MEETLINE_TENANTS", value_delimiter = ',')]
    tenants: Vec<String>,
    /// Enterprise sign-in: the OA identity provider's JWKS, a file or an https URL. Its
    /// RS256/ES256/EdDSA tokens are then accepted (with --oidc-issuer and --oidc-audience).
    #[arg(long, env = "MEETLINE_OIDC_JWKS", requires_all = ["oidc_issuer", "oidc_audience"])]
    oidc_jwks: Option<String>,
    /// The `iss` the identity provider's tokens must carry.
    #[arg(long, env = "MEETLINE_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// The `aud` the identity provider's tokens must carry.
    #[arg(long, env = "MEETLINE_OIDC_AUDIENCE")]
    oidc_audience: Option<String>,
    /// Refuse HS256 tokens (only the identity provider's are accepted).
    #[arg(long, env = "MEETLINE_REJECT_HS256", requires = "oidc_jwks")]
    reject_hs256: bool,
    /// The URL browsers use (e.g. https://meet.acme.example): cookie-authenticated writes must
    /// come from its origin; over https the cookie is `Secure` and `__Host-` and HSTS is sent.
    #[arg(long, env = "MEETLINE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Origins that may frame the web app (comma-separated), e.g. the OA system's.
    #[arg(long, env = "MEETLINE_FRAME_ANCESTORS", value_delimiter = ',')]
    frame_ancestors: Vec<String>,
    /// Zoom's REST API base URL (https; http only on a loopback host).
    #[arg(
        long,
        env = "MEETLINE_ZOOM_API_URL",
        default_value = "https://api.zoom.us/v2"
    )]
    zoom_api_url: String,
    /// Zoom's OAuth server (https; http only on a loopback host).
    #[arg(
        long,
        env = "MEETLINE_ZOOM_OAUTH_URL",
        default_value = "https://zoom.us"
    )]
    zoom_oauth_url: String,
    /// Tencent Meeting's REST API base URL (https; http only on a loopback host).
    #[arg(
        long,
        env = "MEETLINE_TENCENT_API_URL",
        default_value = "https://api.meeting.qq.com"
    )]
    tencent_api_url: String,
    /// Joins by an unknown conference number a user may make per minute (then 429).
    #[arg(long, env = "MEETLINE_JOIN_FAILURES_PER_MINUTE", default_value_t = 10)]
    join_failures_per_minute: usize,
    /// How many days ahead a conference may start.
    #[arg(long, env = "MEETLINE_BOOKING_HORIZON_DAYS", default_value_t = 730)]
    booking_horizon_days: i64,
    /// On PostgreSQL, generate missing secrets and keep them in the database (instead of
    /// refusing to start without MEETLINE_JWT_SECRET(_FILE), MEETLINE_SETTINGS_KEY(_FILE) and
    /// MEETLINE_JITSI_SECRET(_FILE)).
    #[arg(long, env = "MEETLINE_GENERATE_SECRETS")]
    generate_secrets: bool,
}

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Commands {
    /// Run the HTTP server.
    Serve {
        #[arg(long, env = "MEETLINE_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[command(flatten)]
        data: DataArgs,
        /// Which APIs this process serves.
        #[arg(long, env = "MEETLINE_ROLE", value_enum, default_value = "all")]
        role: Role,
        /// Load the demo tenant `demo` on first start.
        #[arg(long, env = "MEETLINE_DEMO")]
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
        /// Commands one tenant's pool may have waiting before requests are refused with 429.
        #[arg(
            long,
            env = "MEETLINE_COMMAND_QUEUE_DEPTH",
            default_value_t = meetline_command_api::service::QUEUE_DEPTH,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000),
            hide = true
        )]
        command_queue_depth: usize,
        /// On SIGTERM or Ctrl-C: how long requests under way may take to finish, and then the
        /// background processes, before they are cut off (seconds).
        #[arg(long, env = "MEETLINE_SHUTDOWN_GRACE_SECONDS", default_value_t = 10,
              value_parser = clap::value_parser!(u64).range(1..=600))]
        shutdown_grace_seconds: u64,
        #[command(flatten)]
        security: SecurityArgs,
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
        /// Hours until it expires (at most the server's --token-max-lifetime-hours).
        #[arg(long, default_value_t = 12)]
        hours: i64,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        tokens: TokenArgs,
    },
    /// Rebuild the read models from the event log beside the live ones, then swap them in (a
    /// running server keeps serving the old ones until then).
    Rebuild {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write the event log (with every event's metadata), the directory and the lines'
    /// settings (sealed, as stored) to standard output, as NDJSON.
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// Only this tenant's history.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Load what `export` wrote (standard input) into an empty store — or, with --tenant, one
    /// tenant into a store that does not have it — check it, and rebuild the read models.
    Import {
        #[command(flatten)]
        data: DataArgs,
        /// Add only this tenant's records, to a store that does not have the tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Key of the target's line settings (default as `serve`'s); the imported settings must
        /// open with it: give the source's key.
        #[arg(long, env = "MEETLINE_SETTINGS_KEY", hide_env_values = true)]
        settings_key: Option<String>,
        /// On PostgreSQL, use (or generate) the key kept in the database, as `serve
        /// --generate-secrets` does.
        #[arg(long, env = "MEETLINE_GENERATE_SECRETS")]
        generate_secrets: bool,
    },
    /// Print a conference's history from the event log: who did what, when.
    History {
        /// The conference's id, or its number (every conference that carried it).
        conference: String,
        #[arg(long)]
        tenant: String,
        /// Only what had happened by then (RFC 3339).
        #[arg(long)]
        as_of: Option<DateTime<Utc>>,
        /// The viewer's time zone (IANA name; default: $TZ, else UTC).
        #[arg(long)]
        tz: Option<String>,
        /// A JSON document instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Re-read the whole event log and check every invariant with the independent checker;
    /// exits non-zero, naming the offending events, when one is broken.
    Verify {
        #[command(flatten)]
        data: DataArgs,
    },
}

/// A secret from the environment: `NAME`, or the contents of the file `NAME_FILE` names.
///
/// # Errors
/// When `NAME_FILE` names a file that cannot be read or is empty.
fn env_secret(name: &str) -> anyhow::Result<Option<String>> {
    if let Some(secret) = std::env::var(name).ok().filter(|secret| !secret.is_empty()) {
        return Ok(Some(secret));
    }
    let Some(path) = std::env::var_os(format!("{name}_FILE")).filter(|path| !path.is_empty())
    else {
        return Ok(None);
    };
    let secret = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {name}_FILE ({})", PathBuf::from(&path).display()))?;
    let secret = secret.trim().to_owned();
    anyhow::ensure!(!secret.is_empty(), "{name}_FILE names an empty file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(&path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0) {
            tracing::warn!(variable = %format!("{name}_FILE"), "the secret file is readable by others than its owner");
        }
    }
    Ok(Some(secret))
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
            command_queue_depth,
            shutdown_grace_seconds,
            security,
        } => {
            let identity_provider = match &security.oidc_jwks {
                Some(jwks) => Some((
                    JwksSource::parse(jwks).context("--oidc-jwks")?,
                    security.oidc_issuer.clone().unwrap_or_default(),
                    security.oidc_audience.clone().unwrap_or_default(),
                )),
                None => None,
            };
            anyhow::ensure!(
                security.booking_horizon_days > 0 && security.booking_horizon_days <= 3660,
                "--booking-horizon-days must be between 1 and 3660"
            );
            let settings = Settings {
                storage: data.storage(),
                role,
                demo,
                jwt_secret: env_secret("MEETLINE_JWT_SECRET")?,
                jitsi_url,
                jitsi_app_id,
                jitsi_secret: jitsi_secret.or(env_secret("MEETLINE_JITSI_SECRET")?),
                settings_key: settings_key.or(env_secret("MEETLINE_SETTINGS_KEY")?),
                provision_wait: std::time::Duration::from_millis(provision_wait_ms),
                provider_retry: meetline_adapters::zoom::RetryPolicy {
                    min_delay: std::time::Duration::from_millis(provider_retry_ms),
                    ..meetline_adapters::zoom::RetryPolicy::default()
                },
                rate_limits: RateLimits::new(rate_limit, rate_burst).map(Arc::new),
                clock: fixed_now.map_or(Clock::System, Clock::Fixed),
                endpoints: Endpoints {
                    zoom: ZoomEndpoints::new(&security.zoom_api_url, &security.zoom_oauth_url)
                        .map_err(|url| {
                            anyhow::anyhow!(
                                "a Zoom endpoint must be https (http only on a loopback host): {url}"
                            )
                        })?,
                    tencent: TencentEndpoints::new(&security.tencent_api_url).map_err(|url| {
                        anyhow::anyhow!(
                            "the Tencent Meeting endpoint must be https (http only on a loopback host): {url}"
                        )
                    })?,
                },
                join_failures_per_minute: security.join_failures_per_minute.max(1),
                booking_horizon: Duration::days(security.booking_horizon_days),
                web: WebSecurity::new(security.public_url.as_deref(), &security.frame_ancestors)
                    .map_err(|error| {
                        anyhow::anyhow!("--public-url / --frame-ancestors: {error}")
                    })?,
                token_policy: security
                    .tokens
                    .policy(&security.tenants, !security.reject_hs256)?,
                identity_provider,
                generate_secrets: security.generate_secrets,
                command_queue_depth,
            };
            serve(
                addr,
                settings,
                std::time::Duration::from_secs(shutdown_grace_seconds),
            )
            .await
        }
        Commands::Token {
            tenant,
            user,
            admin,
            hours,
            data,
            tokens,
        } => {
            let tenant = TenantId::parse(&tenant).context("--tenant")?;
            let user = UserId::parse(&user).context("--user")?;
            let policy = tokens.policy(&[], true)?;
            anyhow::ensure!(
                hours > 0 && Duration::hours(hours) <= policy.max_lifetime,
                "--hours must be between 1 and {} (the server refuses longer tokens; see --token-max-lifetime-hours)",
                policy.max_lifetime.num_hours()
            );
            let keys = match env_secret("MEETLINE_JWT_SECRET")? {
                Some(secret) => JwtKeys::from_secret(secret.as_bytes()),
                // The secret a server generated (`--generate-secrets`) in the shared database;
                // never a new one there: that is the server's decision, not this command's.
                None if data.database_url.is_some() => {
                    let storage = app::open_storage(&data.storage()).await?;
                    let secret = meetline_adapters::secrets::load(&storage.db, SECRET_FILE)
                        .await?
                        .context(
                            "no MEETLINE_JWT_SECRET (or _FILE) and no generated secret in the database",
                        )?;
                    JwtKeys::from_secret(secret.as_bytes())
                }
                None => JwtKeys::load_or_create(&data.data, None)?,
            }
            .with_policy(policy);
            println!(
                "{}",
                keys.mint(&tenant, &user, admin, Duration::hours(hours))
            );
            Ok(())
        }
        Commands::Rebuild { data } => rebuild(&data).await,
        Commands::Export { data, tenant } => export(&data, tenant.as_deref()).await,
        Commands::Import {
            data,
            tenant,
            settings_key,
            generate_secrets,
        } => {
            let settings_key = settings_key.or(env_secret("MEETLINE_SETTINGS_KEY")?);
            import(&data, tenant.as_deref(), settings_key, generate_secrets).await
        }
        Commands::History {
            conference,
            tenant,
            as_of,
            tz,
            json,
            data,
        } => {
            let tenant = TenantId::parse(&tenant).context("--tenant")?;
            let wanted = audit::Wanted::parse(&conference)?;
            let zone = match tz {
                Some(name) => name
                    .parse::<chrono_tz::Tz>()
                    .map_err(|_| anyhow::anyhow!("--tz: {name:?} is not an IANA time zone"))?,
                // $TZ when it names an IANA zone (not a POSIX rule such as `CST-8`), else UTC.
                None => std::env::var("TZ")
                    .ok()
                    .and_then(|name| name.trim_start_matches(':').parse::<chrono_tz::Tz>().ok())
                    .unwrap_or(chrono_tz::Tz::UTC),
            };
            let storage = app::open_storage(&data.storage()).await?;
            let text =
                audit::history(storage.store.as_ref(), &tenant, &wanted, zone, as_of, json).await?;
            println!("{text}");
            Ok(())
        }
        Commands::Verify { data } => verify(&data).await,
    }
}

/// A progress bar on standard error (drawn only on a terminal).
fn progress_bar(what: &str, length: u64) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} events ({{per_sec}}, eta {{eta}})"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

async fn export(data: &DataArgs, tenant: Option<&str>) -> anyhow::Result<()> {
    let tenant = tenant
        .map(|tenant| TenantId::parse(tenant).context("--tenant"))
        .transpose()?;
    let app::Storage { db, store } = app::open_storage(&data.storage()).await?;
    let bar = progress_bar("exporting", store.head_position().await?);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let totals = transfer::export(
        store.as_ref(),
        &db,
        data.kind(),
        tenant.as_ref(),
        &mut out,
        &bar,
    )
    .await?;
    bar.finish_and_clear();
    eprintln!("exported {totals}");
    Ok(())
}

async fn import(
    data: &DataArgs,
    tenant: Option<&str>,
    settings_key: Option<String>,
    generate_secrets: bool,
) -> anyhow::Result<()> {
    let tenant = tenant
        .map(|tenant| TenantId::parse(tenant).context("--tenant"))
        .transpose()?;
    let app::Storage { db, store } = app::open_storage(&data.storage()).await?;
    let key = app::secret(
        &db,
        &data.data,
        "settings-key",
        settings_key.as_deref(),
        generate_secrets,
    )
    .await?;
    let settings =
        meetline_adapters::line_settings::LineSettingsStore::new(db.clone(), &key).await?;
    let bar = progress_bar("importing", 0);
    let stdin = std::io::stdin();
    let imported = transfer::import(
        store.as_ref(),
        &db,
        &settings,
        tenant.as_ref(),
        stdin.lock(),
        &bar,
    )
    .await?;
    bar.finish_and_clear();
    // The read models: rebuilt from the log when the store was empty; a tenant added to a
    // store is projected by its servers as they follow the log.
    if imported.whole {
        let projector = Projector::new(store.clone(), db.clone()).await?;
        let bar = progress_bar("rebuilding read models", imported.totals.events);
        projector
            .rebuild(|progress| {
                bar.set_length(progress.head);
                bar.set_position(progress.position);
            })
            .await?;
        bar.finish_and_clear();
    }
    // Read back: the target's history of what was imported is the file's, record for record.
    let again = transfer::export(
        store.as_ref(),
        &db,
        data.kind(),
        tenant.as_ref(),
        &mut std::io::sink(),
        &ProgressBar::hidden(),
    )
    .await?;
    anyhow::ensure!(
        again == imported.totals,
        "the target does not hold what was imported: it holds {again}; the file held {}",
        imported.totals
    );
    println!("imported {again}; verified");
    Ok(())
}

async fn verify(data: &DataArgs) -> anyhow::Result<()> {
    let storage = app::open_storage(&data.storage()).await?;
    let log = meetline_verify::whole_log(storage.store.as_ref()).await?;
    let report = meetline_verify::check(&log, &[]);
    if report.passed() {
        println!("{}", report.summary());
        return Ok(());
    }
    println!(
        "verify (independent checker): FAIL ({} violations)",
        report.violations.len()
    );
    for violation in &report.violations {
        // The log is in position order.
        let event = log
            .binary_search_by_key(&violation.position, |recorded| recorded.position)
            .ok()
            .map(|index| &log[index])
            .map_or(String::new(), |recorded| {
                format!(
                    " [{} {}, recorded {} by {}]",
                    recorded.event.type_name(),
                    recorded.metadata.event_id,
                    recorded.metadata.recorded_at.to_rfc3339(),
                    recorded.metadata.actor
                )
            });
        println!("  {violation}{event}");
    }
    anyhow::bail!(
        "the log breaks {} rule(s): see the events above",
        report.violations.len()
    )
}

async fn serve(
    addr: SocketAddr,
    settings: Settings,
    grace: std::time::Duration,
) -> anyhow::Result<()> {
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
    app::run(listener, app, shutdown_signal(), grace).await
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
    let bar = progress_bar("rebuilding read models", head);
    let started = std::time::Instant::now();
    let applied = match projector
        .rebuild(|progress| {
            bar.set_length(progress.head);
            bar.set_position(progress.position);
        })
        .await
    {
        Ok(applied) => applied,
        // Another rebuild holds the new generation (or took this one's over).
        Err(meetline_domain::ports::StoreError::Conflict { stream, .. }) => {
            bar.abandon();
            anyhow::bail!("cannot rebuild now: {stream}; the live read models are unchanged")
        }
        Err(error) => {
            bar.abandon();
            return Err(error.into());
        }
    };
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt from {applied} events in {seconds:.1} s ({:.0} events/s)",
        applied as f64 / seconds.max(1e-9)
    );
    Ok(())
}
