//! `microfab serve`: the store, the runtime and the API on one listener, until shutdown.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::PlantClock;
use crate::config::PlantConfig;
use crate::ops::Operations;
use crate::plant::Plant;
use crate::runtime::{self, Runtime};
use crate::store::{Store, now_ms, redact_url};

/// A running plant: its runtime (for in-process callers such as the demo) and its tasks.
pub struct Running {
    pub runtime: Arc<Runtime>,
    pub address: std::net::SocketAddr,
    tasks: JoinSet<()>,
}

impl Running {
    /// The operations on this plant, for in-process callers.
    pub fn operations(&self) -> Operations {
        Operations::new(self.runtime.clone())
    }

    /// Wait for every task to end (after the shutdown token was cancelled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Open the store, start the machines and the coordinator, and serve the API on `listener`.
pub async fn start(
    config: PlantConfig,
    database: &str,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let store = Store::connect(database)
        .await
        .with_context(|| format!("opening the database {}", redact_url(database)))?;
    let simulation = &config.simulation;
    let start = simulation
        .start
        .as_deref()
        .and_then(crate::clock::parse_start);
    let clock = PlantClock::anchored(&store, simulation.time_scale, start, now_ms()).await?;
    let plant = Arc::new(Plant::new(store, Arc::new(config), clock));
    let mut tasks = JoinSet::new();
    let runtime = runtime::start(plant, shutdown.clone(), &mut tasks).await?;
    let address = listener.local_addr()?;
    let ops = Operations::new(runtime.clone());
    // Every route, the API's and the panel's, behind the one guard: no route without an account.
    let app = crate::api::app(ops.clone())
        .merge(crate::auth::routes(ops.clone()))
        .merge(crate::panel::router(ops.clone()))
        .layer(axum::middleware::from_fn_with_state(
            ops,
            crate::auth::guard,
        ))
        .layer(axum::middleware::from_fn(access_log))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let stop = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });
    if let Some(operators) = runtime.plant.config.simulation.operators.clone() {
        crate::sim_operators::start(
            Operations::new(runtime.clone()),
            operators,
            shutdown.clone(),
            &mut tasks,
        );
    }
    runtime.wake();
    Ok(Running {
        runtime,
        address,
        tasks,
    })
}

/// One line per request on the `microfab::access` target: method, path, status, time and the
/// account that asked (`-` for none: the login page, a refused request).
async fn access_log(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let account = response
        .extensions()
        .get::<crate::auth::Caller>()
        .map_or("-", |caller| caller.name.as_str())
        .to_string();
    tracing::info!(
        target: "microfab::access",
        %method,
        %path,
        status = response.status().as_u16(),
        ms = (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
        %account,
        "request"
    );
    response
}
