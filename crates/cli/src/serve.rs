//! `trellis serve`: connect, migrate, bootstrap the admin, optionally install the demo, and serve until
//! Ctrl-C or SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use trellis_runtime::auth::BootstrapOutcome;
use trellis_runtime::{Runtime, RuntimeSettings};
use trellis_server::ServerSettings;

use crate::options::{ServeConfig, ServeOptions};

pub fn run(options: ServeOptions) -> anyhow::Result<ExitCode> {
    let config = options.resolve()?;
    init_logging(config.json_logs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_env("TRELLIS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    if config.db_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data dir '{}'", config.data_dir.display()))?;
    }
    let shown_url = trellis_runtime::redact_db_url(&config.db_url);
    let settings = RuntimeSettings::from_env().map_err(anyhow::Error::msg)?;
    if let Some(mail) = &settings.mail {
        tracing::info!(from = %mail.from, "notifications are also mailed");
    }
    let runtime = Runtime::connect(&config.db_url, settings)
        .await
        .with_context(|| format!("opening database {shown_url}"))?;
    tracing::info!(db = %shown_url, backend = ?runtime.backend(), "database ready");

    let admin_password = std::env::var("TRELLIS_ADMIN_PASSWORD").ok();
    match runtime.bootstrap_admin(admin_password.as_deref()).await? {
        BootstrapOutcome::UsersExist => {}
        BootstrapOutcome::CreatedWithGivenPassword => {
            println!("created user 'admin' with the password from TRELLIS_ADMIN_PASSWORD");
        }
        BootstrapOutcome::CreatedWithGeneratedPassword(password) => {
            println!("created user 'admin' with password: {password}");
            println!(
                "(shown once; set TRELLIS_ADMIN_PASSWORD before the first start to choose it)"
            );
        }
    }
    if config.demo {
        crate::demo::install(&runtime).await?;
    }
    // The columns stored reports read, loaded in the background (from column snapshots where
    // they exist), so the first dashboard does not wait for them.
    let warming = runtime.clone();
    tokio::spawn(async move {
        let system = trellis_runtime::Principal::system("serve", "serve");
        let apps = match warming.list_apps(&system, false).await {
            Ok(apps) => apps,
            Err(error) => {
                tracing::warn!(%error, "report columns not prepared");
                return;
            }
        };
        for app in apps {
            if let Err(error) = warming.warm_report_columns(&app.id, None).await {
                tracing::warn!(%error, app = app.id, "report columns not prepared");
            }
        }
        tracing::info!("report columns prepared");
    });

    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another server using it? pick one with --addr)",
                config.addr
            )
        })?;
    let local = listener.local_addr()?;
    let settings = ServerSettings {
        max_body_bytes: config.max_body_bytes,
        max_import_bytes: config.max_import_bytes,
        ..Default::default()
    };
    let router = trellis_server::router(runtime.clone(), &settings);
    // Due flow timers fire and overdue tasks escalate from here (every server runs it; a timer is
    // consumed in its transition's transaction, so it fires once even with several servers).
    let scheduler = runtime.start_scheduler(std::time::Duration::from_secs(1));
    println!("listening on http://{local}");
    std::io::stdout().flush().ok();
    tracing::info!(addr = %local, "listening");
    trellis_server::serve(listener, router, shutdown_signal()).await?;
    scheduler.abort();
    runtime.store().close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
