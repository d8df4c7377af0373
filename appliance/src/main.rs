//! The `rap-appliance` command: `serve` (the default) runs the appliance,
//! `migrate` only brings the database schema up to date.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rap_appliance::Config;
use rap_appliance::config::LogFormat;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "rap-appliance", version, about = "Remote access appliance for small offices")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            // Logging is configured by the config that just failed: say it plainly.
            eprintln!("rap-appliance: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "Cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(config).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "rap-appliance failed");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("APP_LISTEN_ADDR: cannot listen on {}", config.listen_addr))?;
    tracing::info!(app_env = config.app_env.as_str(), data_dir = %config.data_dir.display(), "Starting RAP Appliance");
    rap_appliance::run(config, listener, shutdown_signal()).await
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(&config.data_dir)
        .await
        .with_context(|| format!("APP_DATA_DIR: cannot create {}", config.data_dir.display()))?;
    let store = rap_storage::sqlite::SqliteStore::start(config.database_path(), 1)?;
    let migrated = store.migrate().await;
    store.close().await;
    migrated.with_context(|| format!("migrating {}", config.database_path().display()))?;
    tracing::info!(path = %config.database_path().display(), "Database is up to date");
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (systemd stop).
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "Cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "Cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("Received SIGINT"),
        () = terminate => tracing::info!("Received SIGTERM"),
    }
}
