//! Wiring: opens the store, starts the projector and the command service, and builds the router
//! for the chosen role. The only place that knows every crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use meetline_adapters::auth::{Enterprise, JwksSource, JwtKeys, SECRET_FILE, TokenPolicy};
use meetline_adapters::db::{Backend, Database};
use meetline_adapters::directory::{Directory, SqlDirectory};
use meetline_adapters::line_settings::LineSettingsStore;
use meetline_adapters::links::JitsiSettings;
use meetline_adapters::postgres::PgEventStore;
use meetline_adapters::providers::{Endpoints, Providers};
use meetline_adapters::sqlite::SqliteEventStore;
use meetline_api_common::error::{localize_problems, method_not_allowed, not_found};
use meetline_api_common::request_id::{RequestId, request_id};
use meetline_api_common::security::{WebSecurity, csrf_guard, security_headers};
use meetline_api_common::{ApiContext, Clock, FailedAttempts, LinkRenderer, Metrics, RateLimits};
use meetline_command_api::provisioning::ProvisioningProcess;
use meetline_command_api::timer::TimerProcess;
use meetline_command_api::{CommandService, CommandState, ServiceConfig};
use meetline_domain::ports::{EventStore, LineSettings, ProviderRegistry};
use meetline_domain::types::TenantId;
use meetline_projections::{ProcessState, Projector, ProviderMeetings, ReadModels, Timetable};
use meetline_query_api::QueryState;
use meetline_query_api::directory::DirectoryState;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

/// What runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Command API, query API and projections.
    All,
    /// Only the command API.
    Command,
    /// Only the query API and the projections.
    Query,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub storage: StorageConfig,
    pub role: Role,
    pub demo: bool,
    pub jwt_secret: Option<String>,
    pub jitsi_url: String,
    pub jitsi_app_id: String,
    pub jitsi_secret: Option<String>,
    /// Encrypts line settings at rest (default: generated once, kept like the other secrets).
    pub settings_key: Option<String>,
    /// How long a create on an external provider's line waits for the meeting (else 202).
    pub provision_wait: Duration,
    /// Retries of provider calls.
    pub provider_retry: meetline_adapters::zoom::RetryPolicy,
    /// Per-user request limits (`None`: unlimited).
    pub rate_limits: Option<Arc<RateLimits>>,
    pub clock: Clock,
    /// Where the external providers are (operator configuration, never a tenant's).
    pub endpoints: Endpoints,
    /// Joins by an unknown number a user may make per minute before 429.
    pub join_failures_per_minute: usize,
    /// How far ahead a conference may start.
    pub booking_horizon: chrono::Duration,
    /// How browsers reach the server (`--public-url`) and who may frame the app.
    pub web: WebSecurity,
    /// Lifetime, tenants, HS256 issuer/audience.
    pub token_policy: TokenPolicy,
    /// The OA identity provider's JWKS, issuer and audience, when enterprise sign-in is on.
    pub identity_provider: Option<(JwksSource, String, String)>,
    /// Whether missing secrets may be generated and kept in a PostgreSQL database (otherwise a
    /// deployment on PostgreSQL must be given them).
    pub generate_secrets: bool,
    /// Commands one tenant's pool may have waiting before requests are refused (429).
    pub command_queue_depth: usize,
}

/// A running application: its router and the handles tests and the CLI need.
pub struct App {
    pub router: Router,
    pub store: Arc<dyn EventStore>,
    pub service: CommandService,
    pub directory: Arc<dyn Directory>,
    /// The background processes (provisioning, timer, projector), by name.
    pub background: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    /// Stops them (each finishes what it is doing first).
    pub stop: CancellationToken,
    /// Ends what holds a request open without end (event streams), when the server drains.
    pub draining: CancellationToken,
}

const LIMIT_BYTES: usize = 64 * 1024;
/// The shortest HS256 secret accepted.
pub const MIN_SECRET_BYTES: usize = 32;

/// Where events, read models and the directory live.
pub struct Storage {
    pub db: Database,
    pub store: Arc<dyn EventStore>,
}

/// Connections per PostgreSQL pool (the event store has one, the read side another).
const PG_CONNECTIONS: u32 = 16;

/// Where the data lives: `database_url` (PostgreSQL) or the SQLite file under `data` for the read
/// models, directory and — unless `event_store` names an EventStoreDB — the events.
#[derive(Debug, Clone, Default)]
pub struct StorageConfig {
    pub data: PathBuf,
    pub database_url: Option<String>,
    pub event_store: Option<String>,
}

fn given(value: Option<&String>) -> Option<&str> {
    value
        .map(|text| text.trim())
        .filter(|text| !text.is_empty())
}

/// Opens the storage `config` names.
///
/// # Errors
/// When the folder, the file or a server cannot be opened, or a URL is of an unknown engine.
pub async fn open_storage(config: &StorageConfig) -> anyhow::Result<Storage> {
    let (db, own_store): (Database, Option<Arc<dyn EventStore>>) = match given(
        config.database_url.as_ref(),
    ) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let db = Database::connect_postgres(url, PG_CONNECTIONS)
                .await
                .context("connecting to PostgreSQL")?;
            let store = if given(config.event_store.as_ref()).is_none() {
                let pool = meetline_adapters::postgres::connect(url, PG_CONNECTIONS)
                    .await
                    .context("connecting to PostgreSQL")?;
                let store = PgEventStore::new(pool)
                    .await
                    .context("preparing the PostgreSQL event store")?;
                Some(Arc::new(store) as Arc<dyn EventStore>)
            } else {
                None
            };
            (db, store)
        }
        Some(url) => {
            let scheme = url.split(':').next().unwrap_or_default();
            anyhow::bail!(
                "unsupported database URL scheme {scheme:?}: use postgres://… or leave DATABASE_URL unset for SQLite"
            )
        }
        None => {
            // The folder holds the database and the generated secrets: the owner's only.
            meetline_adapters::auth::private_folder(&config.data)
                .with_context(|| format!("creating the data folder {}", config.data.display()))?;
            let file = config.data.join("meetline.db");
            let db = Database::open_sqlite(&file)
                .await
                .context("opening the SQLite database")?;
            // The owner's only (SQLite gives its -wal and -shm files the same mode).
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .context("making the database file private")?;
            }
            let store = if given(config.event_store.as_ref()).is_none() {
                Some(Arc::new(SqliteEventStore::new(db.clone()).await?) as Arc<dyn EventStore>)
            } else {
                None
            };
            (db, store)
        }
    };
    let store = match own_store {
        Some(store) => store,
        None => {
            external_event_store(given(config.event_store.as_ref()).unwrap_or_default()).await?
        }
    };
    Ok(Storage { db, store })
}

#[cfg(feature = "esdb")]
async fn external_event_store(url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    if !(url.starts_with("esdb://")
        || url.starts_with("esdb+discover://")
        || url.starts_with("kurrentdb://"))
    {
        anyhow::bail!("--event-store takes an esdb://… or kurrentdb://… URL");
    }
    let store = meetline_adapters::esdb::EsdbEventStore::connect(url)
        .await
        .context("connecting to EventStoreDB")?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "esdb"))]
async fn external_event_store(_url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    anyhow::bail!("this build has no EventStoreDB support (build with the `esdb` feature)")
}

/// A secret: `given` (from the environment or a `…_FILE`) when set. Otherwise, on SQLite, one
/// generated once and kept (mode 0600) in the data folder (mode 0700); on PostgreSQL — where a
/// secret kept in the database would sit beside what it protects — only with `generate`
/// (`--generate-secrets`), shared by every node through the database.
///
/// # Errors
/// When the secret cannot be read or stored, or is missing on PostgreSQL without `generate`.
pub async fn secret(
    db: &Database,
    data: &Path,
    name: &str,
    given: Option<&str>,
    generate: bool,
) -> anyhow::Result<String> {
    if let Some(secret) = given.filter(|secret| !secret.is_empty()) {
        if db.backend == Backend::Postgres
            && meetline_adapters::secrets::load(db, name).await?.is_some()
        {
            tracing::warn!(
                name,
                "a generated secret is still kept in the database although one is configured: \
                 delete it (DELETE FROM meetline_secrets WHERE name = '{name}')"
            );
        }
        return Ok(secret.to_owned());
    }
    Ok(match db.backend {
        Backend::Postgres if generate => {
            meetline_adapters::secrets::load_or_create(db, name).await?
        }
        Backend::Postgres => {
            let variable = format!("MEETLINE_{}", name.to_ascii_uppercase().replace('-', "_"));
            anyhow::bail!(
                "no {name} given: on PostgreSQL set {variable} or {variable}_FILE (a file readable only by meetline), \
                 or start with --generate-secrets to generate it and keep it in the database"
            )
        }
        Backend::Sqlite => meetline_adapters::auth::load_or_create_secret(&data.join(name))?,
    })
}

/// Builds the application for `settings`, starting the projector when the role serves queries.
///
/// # Errors
/// When the store cannot be opened.
pub async fn build(settings: &Settings) -> anyhow::Result<App> {
    let Storage { db, store } = open_storage(&settings.storage).await?;
    let data = &settings.storage.data;
    let generate = settings.generate_secrets;
    let jwt_secret = secret(
        &db,
        data,
        SECRET_FILE,
        settings.jwt_secret.as_deref(),
        generate,
    )
    .await?;
    anyhow::ensure!(
        jwt_secret.len() >= MIN_SECRET_BYTES,
        "MEETLINE_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (a short secret can be guessed offline from any token)"
    );
    let mut keys =
        JwtKeys::from_secret(jwt_secret.as_bytes()).with_policy(settings.token_policy.clone());
    if let Some((source, issuer, audience)) = &settings.identity_provider {
        let enterprise = Enterprise::load(source.clone(), issuer, audience)
            .await
            .context("loading the identity provider's keys (--oidc-jwks)")?;
        tokio::spawn(enterprise.clone().run_refresh());
        keys = keys.with_enterprise(enterprise);
    }
    let keys = Arc::new(keys);
    let jitsi_secret = secret(
        &db,
        data,
        "jitsi-secret",
        settings.jitsi_secret.as_deref(),
        generate,
    )
    .await?;
    let directory: Arc<dyn Directory> = Arc::new(SqlDirectory::new(db.clone()).await?);
    let settings_key = secret(
        &db,
        data,
        "settings-key",
        settings.settings_key.as_deref(),
        generate,
    )
    .await?;
    let line_settings = LineSettingsStore::new(db.clone(), &settings_key).await?;
    let providers: Arc<dyn ProviderRegistry> = Arc::new(Providers::new(
        line_settings.clone(),
        JitsiSettings::new(
            &settings.jitsi_url,
            &settings.jitsi_app_id,
            jitsi_secret.as_bytes(),
        ),
        settings.endpoints.clone(),
        settings.provider_retry,
    ));
    let line_settings: Arc<dyn LineSettings> = Arc::new(line_settings);
    meetline_projections::projector::migrate(&db).await?;
    let read_models = ReadModels::new(db.clone());
    let metrics = Arc::new(Metrics::default());
    let context = ApiContext {
        keys: keys.clone(),
        metrics: metrics.clone(),
        clock: settings.clock,
        links: Arc::new(LinkRenderer::new(providers.clone())),
        limits: settings.rate_limits.clone(),
        web: Arc::new(settings.web.clone()),
    };
    let (stop, draining) = (CancellationToken::new(), CancellationToken::new());
    let mut background = Vec::new();
    let service = CommandService::new(
        store.clone(),
        metrics.clone(),
        ServiceConfig {
            queue_depth: settings.command_queue_depth,
            booking_horizon: settings.booking_horizon,
            ..ServiceConfig::default()
        },
    );

    let mut router = Router::new();
    if settings.role != Role::Query {
        let state = CommandState {
            context: context.clone(),
            service: service.clone(),
            directory: directory.clone(),
            line_settings: line_settings.clone(),
            providers: providers.clone(),
            provision_wait: settings.provision_wait,
            read_models: read_models.clone(),
            provider_meetings: ProviderMeetings::new(db.clone()),
            join_attempts: Arc::new(FailedAttempts::new(
                settings.join_failures_per_minute,
                Duration::from_secs(60),
            )),
            booking_horizon: settings.booking_horizon,
            webhook_scans: Arc::new(meetline_api_common::ServerLimit::new(
                std::num::NonZeroU32::new(2).expect("non-zero"),
                std::num::NonZeroU32::new(10).expect("non-zero"),
            )),
        };
        router = router.merge(meetline_command_api::router().with_state(state));
        let provisioning = ProvisioningProcess::new(
            store.clone(),
            db.clone(),
            service.clone(),
            providers.clone(),
            ProcessState::new(db.clone()),
            metrics.clone(),
            settings.clock,
        );
        background.push(("provisioning", tokio::spawn(provisioning.run(stop.clone()))));
        let timer = TimerProcess::new(
            service.clone(),
            Timetable::new(db.clone()),
            settings.clock,
            Duration::from_secs(1),
        );
        background.push(("timer", tokio::spawn(timer.run(stop.clone()))));
    }
    if settings.role != Role::Command {
        let projector = Projector::new(store.clone(), db.clone()).await?;
        let (applied, leading) = (projector.applied(), projector.leading());
        background.push(("projector", tokio::spawn(projector.run(stop.clone()))));
        let state = QueryState {
            context: context.clone(),
            read_models,
            store: store.clone(),
            applied,
            leading,
            line_settings,
            providers,
            draining: draining.clone(),
        };
        router = router.merge(meetline_query_api::router().with_state(state));
    } else {
        router = router.route("/healthz", get(|| async { "ok" }));
    }
    let web = crate::web::WebState {
        context: context.clone(),
        keys: keys.clone(),
        directory: directory.clone(),
        demo_tenant: settings
            .demo
            .then(|| TenantId::parse(crate::demo::TENANT).expect("a valid tenant")),
    };
    let router = router
        .route("/api/v1/openapi.json", get(openapi))
        .merge(crate::web::router(web))
        .merge(
            meetline_query_api::directory::router().with_state(DirectoryState {
                context: context.clone(),
                directory: directory.clone(),
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(LIMIT_BYTES))
        .layer(middleware::from_fn_with_state(context.web.clone(), csrf_guard))
        .layer(middleware::from_fn(localize_problems))
        .layer(middleware::from_fn_with_state(context.web.clone(), security_headers))
        .layer(middleware::from_fn_with_state(metrics, count_requests))
        // The path only: a query may carry a sign-in token, which belongs in no log. At info
        // level, so that what a request logs carries its id.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request
                .extensions()
                .get::<RequestId>()
                .map(|id| id.0.to_string())
                .unwrap_or_default();
            tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
        }))
        .layer(middleware::from_fn(request_id));
    Ok(App {
        router,
        store,
        service,
        directory,
        background,
        stop,
        draining,
    })
}

async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.http_request(&method, response.status().as_u16());
    response
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut document = meetline_command_api::CommandApiDoc::openapi();
    document.merge(meetline_query_api::QueryApiDoc::openapi());
    document.merge(meetline_query_api::directory::DirectoryApiDoc::openapi());
    document.info.title = "meetline".to_owned();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document.info.description =
        Some("Video conferences on a company's licensed lines: command and query APIs.".to_owned());
    add_shared_contract(&mut document);
    document
}

const PROBLEM_JSON: &str = "application/problem+json";

fn problem_response(
    description: &str,
    retry_after: bool,
) -> utoipa::openapi::RefOr<utoipa::openapi::response::Response> {
    use utoipa::openapi::content::ContentBuilder;
    use utoipa::openapi::header::Header;
    use utoipa::openapi::response::ResponseBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Ref, Type};
    let mut response = ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            Header::new(ObjectBuilder::new().schema_type(Type::Integer)),
        );
    }
    utoipa::openapi::RefOr::T(response.build())
}

/// What the layers shared by every route add to each operation of the document: the bearer
/// scheme (the session cookie of the web app stands in for it), and the problem+json statuses
/// any `/api/v1` route can answer — the extractors' 400 (body, query, headers: only for an
/// operation that takes any), `Caller`'s 401
/// and 429, the body limit's 413, `csrf_guard`'s 403 and 415 on cookie-authenticated writes, and
/// 503 when the store fails. Statuses particular to a route are in its own annotation. A 405
/// (another method on a served path; problem+json too) belongs to no operation.
fn add_shared_contract(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    document
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    document.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    for (path, item) in &mut document.paths.paths {
        if !path.starts_with("/api/v1/") {
            continue; // /metrics, /healthz and /readyz declare all they answer
        }
        // Signed by the provider, not by a token: no 401 from `Caller`, no cookie.
        let webhook = path.starts_with("/api/v1/providers/");
        let operations = [
            (false, item.get.as_mut()),
            (true, item.post.as_mut()),
            (true, item.put.as_mut()),
            (true, item.patch.as_mut()),
            (true, item.delete.as_mut()),
        ];
        for (write, operation) in operations {
            let Some(operation) = operation else { continue };
            // A path parameter that does not parse is a 404; a query, a header or a body that
            // does not is a 400.
            let takes_input = operation.request_body.is_some()
                || operation.parameters.iter().flatten().any(|parameter| {
                    parameter.parameter_in != utoipa::openapi::path::ParameterIn::Path
                });
            let responses = &mut operation.responses.responses;
            // Every error body is problem+json, whatever an annotation forgot to say.
            for (status, response) in responses.iter_mut() {
                if status.parse::<u16>().is_ok_and(|status| status >= 400)
                    && let RefOr::T(response) = response
                    && let Some(content) = response.content.shift_remove("application/json")
                {
                    response.content.insert(PROBLEM_JSON.to_owned(), content);
                }
            }
            let mut add = |status: &str, description: &str, retry_after: bool| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem_response(description, retry_after));
            };
            if takes_input {
                add(
                    "400",
                    "malformed_request: a body, query or header not of the documented shape",
                    false,
                );
            }
            add(
                "503",
                "unavailable: the store failed; try again after Retry-After",
                true,
            );
            if !webhook {
                add(
                    "401",
                    "unauthorized: missing, invalid or expired token",
                    false,
                );
                add(
                    "429",
                    "rate_limited: too many requests, or the command queue is full; try again after Retry-After",
                    true,
                );
            }
            if write {
                add("413", "payload_too_large: a body over 64 KiB", false);
            }
            if write && !webhook {
                add(
                    "403",
                    "forbidden: not allowed, or a cross-site request riding on the session cookie",
                    false,
                );
                add(
                    "415",
                    "unsupported_media_type: a cookie-authenticated write without Content-Type: application/json",
                    false,
                );
            }
        }
    }
}

async fn openapi() -> Response {
    let mut response = serde_json::to_string_pretty(&openapi_document())
        .expect("openapi serializes")
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Serves `router` on `listener` until `shutdown` resolves.
///
/// # Errors
/// When the server fails.
/// Serves until `shutdown` completes, then shuts down **gracefully** and within bounds: stops
/// accepting, ends the event streams, lets the requests under way finish (each command is
/// answered once durable) for up to `grace`, then stops the background processes — each
/// finishes what it is doing — for up to `grace` more; what is still running then is aborted.
///
/// # Errors
/// When serving fails.
pub async fn run(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let draining = app.draining.clone();
    let signalled = draining.clone();
    let server = axum::serve(
        listener,
        app.router
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        signalled.cancel();
    })
    .into_future();
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => {
            if let Err(error) = served {
                app.stop.cancel();
                return Err(error).context("serving HTTP");
            }
        }
        () = async { draining.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "requests still open after the grace period: closing them");
        }
    }
    tracing::info!("requests drained; stopping the background processes");
    app.stop.cancel();
    let deadline = tokio::time::Instant::now() + grace;
    for (name, mut task) in app.background {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!(process = name, "still busy after the grace period: aborted");
            task.abort();
        }
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn document() -> Value {
        serde_json::to_value(super::openapi_document()).expect("the document serializes")
    }

    fn operations(document: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                found.push((path.clone(), method.clone(), operation.clone()));
            }
        }
        found
    }

    fn schemas_in(value: &Value, found: &mut Vec<Value>) {
        match value {
            Value::Object(object) => {
                found.push(value.clone());
                object.values().for_each(|value| schemas_in(value, found));
            }
            Value::Array(items) => items.iter().for_each(|value| schemas_in(value, found)),
            _ => {}
        }
    }

    #[test]
    fn every_served_api_route_is_documented() {
        let document = document();
        for path in [
            "/api/v1/conferences",
            "/api/v1/conferences/{id}/cancel",
            "/api/v1/lines/{id}",
            "/api/v1/providers/{provider}/webhook/{tenant}/{line}",
            "/api/v1/directory/chats/{id}",
            "/api/v1/ops/timeline",
            "/api/v1/events/stream",
            "/api/v1/me",
            "/api/v1/my/meetings",
            "/api/v1/my/chats",
            "/api/v1/directory/users",
            "/metrics",
            "/healthz",
            "/readyz",
        ] {
            assert!(
                document["paths"][path].is_object(),
                "{path} is not documented"
            );
        }
    }

    #[test]
    fn parameters_are_where_the_server_reads_them_and_never_null() {
        for (path, method, operation) in operations(&document()) {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().expect("a name");
                let place = parameter["in"].as_str().expect("a place");
                assert_eq!(
                    place == "path",
                    path.contains(&format!("{{{name}}}")),
                    "{method} {path}: {name} is in {place}"
                );
                let types = &parameter["schema"]["type"];
                assert!(
                    !types
                        .as_array()
                        .is_some_and(|types| types.contains(&"null".into())),
                    "{method} {path}: {name} may be null"
                );
            }
        }
    }

    #[test]
    fn errors_are_problem_json_and_api_routes_need_the_bearer_token() {
        let document = document();
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for (path, method, operation) in operations(&document) {
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                if status.as_str() >= "400" && path.starts_with("/api/v1/") {
                    let types: Vec<_> = response["content"]
                        .as_object()
                        .map(|content| content.keys().cloned().collect())
                        .unwrap_or_default();
                    assert_eq!(
                        types,
                        ["application/problem+json"],
                        "{method} {path} {status}"
                    );
                }
            }
            let webhook = path.starts_with("/api/v1/providers/");
            if path.starts_with("/api/v1/") && !webhook {
                assert!(responses.contains_key("401"), "{method} {path} lacks 401");
                assert!(operation.get("security").is_none(), "{method} {path}");
            } else {
                // The provider signs webhooks; the ops endpoints are open.
                assert_eq!(
                    operation["security"],
                    serde_json::json!([{}]),
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn no_schema_uses_what_openapi_tools_cannot_read() {
        let mut found = Vec::new();
        schemas_in(&document(), &mut found);
        for schema in found {
            assert!(
                schema.get("prefixItems").is_none()
                    && schema.get("items") != Some(&Value::Bool(false)),
                "{schema}"
            );
        }
    }
}
