//! The `rap-appliance` command: `serve` (the default) runs the appliance,
//! `migrate` only brings the database schema up to date, `backup` copies
//! the database while it serves; the rest are the
//! installer's tools (Product Root keys, activations, first owner).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rap_appliance::Config;
use rap_appliance::config::LogFormat;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

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
    /// Print this installation's status (id, authority mode) as JSON.
    Installation,
    /// Copy the database to FILE, consistent while the appliance serves
    /// (the keys are not in it: back up the key directory apart).
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
    /// Resource secret store maintenance.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Product Root keys: the vendor side of activations.
    #[command(subcommand)]
    ProductRoot(ProductRootCommand),
    /// Create the first owner, with the same rules as the HTTP endpoint. The
    /// password is read from RAP_OWNER_PASSWORD or, if unset, from stdin.
    BootstrapOwner {
        #[arg(long)]
        email: String,
        #[arg(long)]
        display_name: String,
        /// A JSON file with {"manifest_b64", "signature_b64"}.
        #[arg(long)]
        activation: Option<PathBuf>,
        /// The one-time set-up code (legacy mode); by default read from
        /// the data directory, which this command can read anyway.
        #[arg(long)]
        setup_code: Option<String>,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every resource secret under the active key
    /// (SECRET_ENCRYPTION_KEY_*), reading old ones with the retired keys.
    Rotate,
}

#[derive(Subcommand)]
enum ProductRootCommand {
    /// Generate a key pair: `product-root.key` (private, 0600) and
    /// `product-root.pub` (base64 public key) in DIR; prints the public key.
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign an activation manifest for one installation and owner; prints
    /// the activation JSON.
    Sign {
        /// The private key file made by `generate`.
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        installation_id: Uuid,
        #[arg(long)]
        owner_email: String,
        /// How long the activation stays valid, e.g. 24h or 7d.
        #[arg(long, default_value = "24h")]
        valid_for: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    // Product Root tools are the vendor's and need no appliance configuration.
    if let Command::ProductRoot(command) = command {
        return match product_root(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("rap-appliance: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
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
        match command {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(config).await,
            Command::Installation => installation(config).await,
            Command::BootstrapOwner { email, display_name, activation, setup_code } => {
                bootstrap_owner(config, email, display_name, activation, setup_code).await
            }
            Command::Secrets(SecretsCommand::Rotate) => rotate_secrets(config).await,
            Command::Backup { out } => backup(config, out).await,
            Command::ProductRoot(_) => unreachable!("handled before configuration"),
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

#[allow(clippy::print_stdout)]
async fn backup(config: Config, out: PathBuf) -> anyhow::Result<()> {
    let database = config.database_path();
    let shown = out.display().to_string();
    let size = tokio::task::spawn_blocking(move || rap_storage::sqlite::backup(&database, &out)).await??;
    println!("{shown} ({size} bytes)");
    Ok(())
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
    rap_appliance::prepare_data_dir(&config.data_dir).await?;
    let store = rap_storage::sqlite::SqliteStore::start(config.database_path(), 1)?;
    let migrated = store.migrate().await;
    store.close().await;
    migrated.with_context(|| format!("migrating {}", config.database_path().display()))?;
    tracing::info!(path = %config.database_path().display(), "Database is up to date");
    Ok(())
}

/// Opens the database and builds the services, as `serve` does, for the
/// one-shot commands.
async fn offline_state(
    config: Config,
) -> anyhow::Result<(rap_storage::sqlite::SqliteStore, rap_appliance::state::AppState)> {
    rap_appliance::prepare_data_dir(&config.data_dir).await?;
    let store = rap_storage::sqlite::SqliteStore::start(config.database_path(), 1)?;
    store.migrate().await.with_context(|| format!("opening {}", config.database_path().display()))?;
    let state = rap_appliance::state::AppState::build(config, store.repositories(), Default::default()).await?;
    Ok((store, state))
}

#[allow(clippy::print_stdout)]
async fn installation(config: Config) -> anyhow::Result<()> {
    let (store, state) = offline_state(config).await?;
    let view = state.installation().view().await;
    store.close().await;
    println!("{}", serde_json::to_string_pretty(&view?)?);
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn rotate_secrets(config: Config) -> anyhow::Result<()> {
    let (store, state) = offline_state(config).await?;
    let context =
        rap_appliance::audit::RequestContext { user_agent: Some("rap-appliance cli".into()), ..Default::default() };
    let report = state.secrets().rotate(&context).await;
    store.close().await;
    let report = report?;
    println!("{}", serde_json::to_string(&report)?);
    if report.failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} secret(s) could not be opened with the configured keys", report.failed.len())
    }
}

#[allow(clippy::print_stdout)]
async fn bootstrap_owner(
    config: Config,
    email: String,
    display_name: String,
    activation: Option<PathBuf>,
    setup_code: Option<String>,
) -> anyhow::Result<()> {
    let activation = match activation {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Some(serde_json::from_str(&text).with_context(|| format!("{}: not an activation JSON", path.display()))?)
        }
        None => None,
    };
    let password = match std::env::var("RAP_OWNER_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let code_file = config.data_dir.join(rap_appliance::installation::setup_code::SETUP_CODE_FILE);
    let (store, state) = offline_state(config).await?;
    state.installation().prepare_first_run().await.map_err(|error| anyhow::anyhow!("{error}"))?;
    let setup_code = setup_code.or_else(|| std::fs::read_to_string(&code_file).ok());
    let context =
        rap_appliance::audit::RequestContext { user_agent: Some("rap-appliance cli".into()), ..Default::default() };
    let request = rap_appliance::installation::BootstrapOwner { email, password, display_name, activation, setup_code };
    let outcome = state.installation().bootstrap_owner(request, &context).await;
    store.close().await;
    let result = outcome.map_err(|error| anyhow::anyhow!("bootstrap refused: {error}"))?;
    println!(
        "{}",
        serde_json::json!({"user_id": result.user.id, "email": result.user.email, "organization_id": result.organization.id})
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
fn product_root(command: ProductRootCommand) -> anyhow::Result<()> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    match command {
        ProductRootCommand::Generate { out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let key = ed25519_dalek::SigningKey::from_bytes(&rap_appliance::keys::random_bytes());
            let public = STANDARD.encode(key.verifying_key().as_bytes());
            rap_appliance::keys::write_private_file(
                &out.join("product-root.key"),
                STANDARD.encode(key.to_bytes()).as_bytes(),
            )
            .with_context(|| format!("writing {}/product-root.key (it must not exist yet)", out.display()))?;
            std::fs::write(out.join("product-root.pub"), format!("{public}\n"))?;
            println!("{public}");
            Ok(())
        }
        ProductRootCommand::Sign { key, installation_id, owner_email, valid_for } => {
            let text = std::fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
            let seed: [u8; 32] = STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .with_context(|| format!("{}: not a Product Root private key", key.display()))?;
            let valid_for =
                rap_appliance::config::parse_duration(&valid_for).context("--valid-for: expected e.g. 24h or 7d")?;
            let now = time::OffsetDateTime::now_utc();
            let manifest = rap_appliance::installation::manifest::ActivationManifest {
                installation_id,
                owner_email: owner_email.trim().to_lowercase(),
                issued_at: now,
                expires_at: now + time::Duration::try_from(valid_for)?,
                nonce: Uuid::new_v4().to_string(),
            };
            let activation =
                rap_appliance::installation::manifest::sign(&manifest, &ed25519_dalek::SigningKey::from_bytes(&seed));
            println!("{}", serde_json::to_string(&activation)?);
            Ok(())
        }
    }
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
