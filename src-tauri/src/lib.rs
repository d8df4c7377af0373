//! The desktop app: one program an office admin installs. It runs the
//! appliance in process ([`embedded`]), opens its console in a window, and
//! keeps a tray entry with the appliance's state; quitting stops the
//! appliance gracefully. A second launch focuses the first. On a staff PC
//! it can instead show another appliance's console, that appliance's CA
//! pinned ([`client`]). Either way, desktops can open in native windows
//! ([`native_viewer`]).
//!
//! The console window loads the appliance's own web UI from its loopback
//! address, the same pages staff open in a browser, and it gets no Tauri
//! IPC at all (no capability names that origin): the webview is a browser
//! for the console, not a bridge into the app.

pub mod client;
pub mod embedded;
pub mod live_count;
pub mod native_viewer;

use std::sync::{Arc, Mutex};

use anyhow::Context;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder, WindowEvent};

use embedded::{Choices, Embedded};

const MAIN_WINDOW: &str = "main";

/// The running appliance, taken out once to stop it.
struct Running(Mutex<Option<Embedded>>);

/// Whether a tray entry exists (closing the window then only hides it).
struct HasTray(bool);

/// Where the app keeps its data and choices.
struct AppDir(std::path::PathBuf);

/// The tray's live-sessions line, which the refresher rewrites.
struct LiveLine(Mutex<Option<MenuItem<tauri::Wry>>>);

/// Dropping the sender stops the refresher (at exit).
struct StopRefresher(Mutex<Option<std::sync::mpsc::Sender<()>>>);

/// The window's console listener: a fixed loopback port, so its origin
/// (and the sign-in kept in it) survives restarts and LAN toggles.
fn console_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 47080))
}

/// Starts the appliance as `choices` say.
fn start(app_dir: &std::path::Path, choices: embedded::Choices) -> anyhow::Result<Embedded> {
    let settings = embedded::settings(app_dir, choices)?;
    let appliance = tauri::async_runtime::block_on(Embedded::start(&settings, console_addr()))?;
    tracing::info!(url = %appliance.console_url, lan = choices.lan, data_dir = %appliance.data_dir.display(), "Console");
    wait_until_serving(&appliance);
    Ok(appliance)
}

/// What the command line asks for, before the app starts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cli {
    /// Show this appliance instead of running one (saved for next time).
    pub connect: Option<client::Connect>,
    /// Run the appliance here again (forgets a saved `connect`).
    pub run_appliance: bool,
}

impl Cli {
    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut cli = Self::default();
        let (mut url, mut fingerprint) = (None, None);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--connect" => url = Some(args.next().context("--connect needs the appliance's https:// address")?),
                "--fingerprint" => fingerprint = Some(args.next().context("--fingerprint needs the CA fingerprint")?),
                "--run-appliance" => cli.run_appliance = true,
                other => {
                    anyhow::bail!("unknown argument {other} (known: --connect URL --fingerprint FP, --run-appliance)")
                }
            }
        }
        cli.connect = match (url, fingerprint) {
            (Some(url), Some(fingerprint)) => {
                let connect = client::Connect { url, fingerprint };
                connect.parsed_url()?;
                connect.normalized_fingerprint()?;
                Some(connect)
            }
            (None, None) => None,
            _ => anyhow::bail!("--connect and --fingerprint go together"),
        };
        anyhow::ensure!(
            !(cli.run_appliance && cli.connect.is_some()),
            "--connect and --run-appliance exclude each other"
        );
        Ok(cli)
    }
}

/// The console window: `url` in a webview with no IPC, whose
/// "Open in window" requests for `console` start the native viewer
/// (trusting `ca`, in client-only mode).
fn console_window(
    app: &tauri::App,
    url: tauri::Url,
    console: tauri::Url,
    ca: Option<std::path::PathBuf>,
) -> anyhow::Result<tauri::WebviewWindow> {
    let handle = app.handle().clone();
    // Scripts the app runs in the console: why a window did not open, and
    // a window's request for a fresh token.
    let run_in_console = move |script: String| {
        if let Some(window) = handle.get_webview_window(MAIN_WINDOW) {
            let _ = window.eval(script);
        }
    };
    let tell = {
        let run_in_console = run_in_console.clone();
        move |words: String| run_in_console(native_viewer::notice_script(&words))
    };
    let windows = Arc::new(native_viewer::Windows::default());
    Ok(WebviewWindowBuilder::new(app, MAIN_WINDOW, WebviewUrl::External(url))
        .initialization_script(native_viewer::PAGE_SCRIPT)
        .on_navigation(move |url| match native_viewer::console_request(url, &console) {
            None => true,
            Some(Ok(native_viewer::ConsoleRequest::Open(request))) => {
                let run_in_console = run_in_console.clone();
                let ask = move |window, request| run_in_console(native_viewer::renew_script(window, &request));
                if let Err(error) = native_viewer::launch(&console, request, ca.as_deref(), &windows, ask) {
                    tracing::warn!(error = %format!("{error:#}"), "No desktop window");
                    tell(format!("The desktop could not open in its own window: {error:#}. Connect opens it here."));
                }
                false
            }
            Some(Ok(native_viewer::ConsoleRequest::Answer { window, answer })) => {
                windows.answer(window, &answer);
                false
            }
            Some(Err(why)) => {
                tracing::warn!(why, "Refused a request to the app");
                tell(format!("The app refused to open a window: {why}."));
                false
            }
        })
        .title("RAP Appliance")
        .inner_size(1280.0, 860.0)
        .min_inner_size(720.0, 480.0)
        .build()?)
}

/// A logout, shutdown or `kill` quits like the tray's Quit: through the
/// app's exit, so an appliance running here stops cleanly.
fn quit_on_signal(handle: AppHandle) {
    tauri::async_runtime::spawn(async move {
        stop_signal().await;
        tracing::info!("Asked to stop");
        handle.exit(0);
    });
}

/// Client-only mode: the console of the appliance in `connect`, with its
/// CA pinned ([`client`]). Nothing runs here to keep alive, so there is no
/// tray and closing the window quits.
fn client_mode(app: &tauri::App, app_dir: std::path::PathBuf, connect: client::Connect) -> anyhow::Result<()> {
    app.manage(HasTray(false));
    app.manage(AppDir(app_dir.clone()));
    quit_on_signal(app.handle().clone());
    let pinned = match tauri::async_runtime::block_on(client::pin(&connect)) {
        Ok(pinned) => pinned,
        Err(error) => {
            let words = format!("{error:#}");
            tracing::error!(error = %words, url = %connect.url, "Not showing an appliance it cannot trust");
            let blank: tauri::Url = "about:blank".parse()?;
            let window = console_window(app, blank.clone(), blank, None)?;
            return show_page(&window, client::refusal_page(&connect, &words));
        }
    };
    std::fs::create_dir_all(&app_dir)?;
    let ca = app_dir.join("client-ca.pem");
    std::fs::write(&ca, &pinned.ca_pem).context("keeping the appliance's CA for the desktop windows")?;
    tracing::info!(url = %pinned.url, "Showing the appliance, its CA pinned");
    let window = console_window(app, "about:blank".parse()?, pinned.url.clone(), Some(ca))?;
    trust_in_webview(&window, &pinned)
}

/// Tells the webview to accept the pinned appliance's verified
/// certificate for its host, then loads its console.
#[cfg(target_os = "linux")]
fn trust_in_webview(window: &tauri::WebviewWindow, pinned: &client::Pinned) -> anyhow::Result<()> {
    use webkit2gtk::{WebContextExt, WebViewExt};
    let (pem, host, url) = (pinned.server_pem.clone(), pinned.host.clone(), pinned.url.to_string());
    window.with_webview(move |webview| {
        let view = webview.inner();
        match (view.context(), webkit2gtk::gio::TlsCertificate::from_pem(&pem)) {
            (Some(context), Ok(certificate)) => context.allow_tls_certificate_for_host(&certificate, &host),
            _ => tracing::error!("The webview could not be told to trust the appliance"),
        }
        view.load_uri(&url);
    })?;
    Ok(())
}

/// Shows the app's own words in the window (no URL, no network).
#[cfg(target_os = "linux")]
fn show_page(window: &tauri::WebviewWindow, html: String) -> anyhow::Result<()> {
    use webkit2gtk::WebViewExt;
    window.with_webview(move |webview| webview.inner().load_html(&html, None))?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn show_page(_window: &tauri::WebviewWindow, html: String) -> anyhow::Result<()> {
    anyhow::bail!("{html}")
}

#[cfg(not(target_os = "linux"))]
fn trust_in_webview(_window: &tauri::WebviewWindow, _pinned: &client::Pinned) -> anyhow::Result<()> {
    anyhow::bail!("client-only mode needs the Linux webview (WebKitGTK) for now")
}

pub fn run() -> anyhow::Result<()> {
    init_logging();
    let cli = Cli::parse(std::env::args().skip(1))?;
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| show_console(app)))
        .setup(move |app| {
            let app_dir = app.path().app_data_dir().context("no per-user data directory")?;
            if let Some(connect) = &cli.connect {
                client::save(&app_dir, connect)?;
            } else if cli.run_appliance {
                client::forget(&app_dir)?;
            }
            if let Some(connect) = client::load(&app_dir)? {
                client_mode(app, app_dir, connect)?;
                return Ok(());
            }
            let choices = embedded::Choices::load(&app_dir)?;
            let appliance = start(&app_dir, choices)?;
            let url = appliance.window_url().parse().context("console URL")?;
            let console: tauri::Url = appliance.console_url.parse().context("console URL")?;
            console_window(app, url, console, None)?;
            app.manage(LiveLine(Mutex::new(None)));
            let tray = match tray(app.handle(), &appliance, choices) {
                Ok(()) => true,
                Err(error) => {
                    // A desktop without a tray host still gets its window.
                    tracing::warn!(%error, "No tray entry; closing the window quits");
                    false
                }
            };
            app.manage(HasTray(tray));
            app.manage(AppDir(app_dir));
            quit_on_signal(app.handle().clone());
            app.manage(Running(Mutex::new(Some(appliance))));
            if tray {
                app.manage(StopRefresher(Mutex::new(Some(start_refresher(app.handle().clone())))));
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .context("starting the desktop app")?;
    app.run(|app, event| match event {
        RunEvent::WindowEvent { label, event: WindowEvent::CloseRequested { api, .. }, .. }
            if label == MAIN_WINDOW && app.state::<HasTray>().0 =>
        {
            // The appliance keeps serving the office; the tray brings the
            // console back or quits.
            api.prevent_close();
            if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
                let _ = window.hide();
            }
        }
        RunEvent::Exit => {
            if let Some(stop) = app.try_state::<StopRefresher>() {
                stop.0.lock().ok().and_then(|mut sender| sender.take());
            }
            stop_appliance(app);
        }
        _ => {}
    });
    Ok(())
}

/// Until the appliance answers on its port (first-run preparation done),
/// or at most a few seconds: the window opens either way.
fn wait_until_serving(appliance: &Embedded) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline && !appliance.has_ended() {
        if appliance.tls {
            // No plain probe on a TLS port: the set-up code (or the CA,
            // written just before it) says first-run preparation is done.
            if appliance.data_dir.join("setup-code").exists() || appliance.ca_fingerprint().is_some() {
                std::thread::sleep(std::time::Duration::from_millis(100));
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        }
        let probe = std::net::TcpStream::connect_timeout(&appliance.listen_addr, std::time::Duration::from_millis(200))
            .and_then(|mut stream| {
                use std::io::{Read, Write};
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
                let mut first = [0u8; 12];
                stream.read_exact(&mut first)?;
                Ok(first)
            });
        if probe.is_ok_and(|first| first.starts_with(b"HTTP/1.1")) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn show_console(app: &AppHandle) {
    if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

/// Stops the appliance (once) and waits for it: sessions detach, the
/// database is checkpointed, before the process exits.
fn stop_appliance(app: &AppHandle) {
    let Some(running) = app.try_state::<Running>() else { return };
    let taken = running.0.lock().ok().and_then(|mut slot| slot.take());
    if let Some(appliance) = taken {
        match tauri::async_runtime::block_on(appliance.stop()) {
            Ok(()) => tracing::info!("Appliance stopped"),
            Err(error) => tracing::error!(error = %format!("{error:#}"), "Appliance did not stop cleanly"),
        }
    }
}

/// What the tray says about the appliance, a line each.
pub fn status_lines(appliance: &Embedded) -> Vec<String> {
    let mut lines = Vec::new();
    if appliance.listen_addr.ip().is_loopback() {
        lines.push(format!("Running on this computer only ({})", appliance.console_url));
    } else {
        lines.push(format!("Serving the office LAN on port {}", appliance.listen_addr.port()));
    }
    if let Some(fingerprint) = appliance.ca_fingerprint() {
        let grouped = embedded::grouped(&fingerprint);
        lines.push(format!("CA fingerprint {}…", &grouped[..grouped.len().min(23)]));
    }
    lines
}

/// Every few seconds, the tray's live line from the appliance's metrics,
/// until the returned sender is dropped.
fn start_refresher(app: AppHandle) -> std::sync::mpsc::Sender<()> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        loop {
            let console = app
                .try_state::<Running>()
                .and_then(|running| running.0.lock().ok()?.as_ref().map(|appliance| appliance.console_url.clone()))
                .and_then(|url| url.parse::<tauri::Url>().ok())
                .and_then(|url| url.socket_addrs(|| None).ok()?.into_iter().next());
            // Between a stop and a start (the LAN choice) there is no appliance to ask.
            let counts = console.and_then(|console| live_count::fetch(console).ok());
            if let Some(item) = app.try_state::<LiveLine>().and_then(|line| line.0.lock().ok()?.clone()) {
                let _ = item.set_text(live_count::line(counts));
            }
            match stopped.recv_timeout(live_count::REFRESH) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    });
    stop
}

fn menu(app: &AppHandle, appliance: &Embedded, choices: embedded::Choices) -> anyhow::Result<Menu<tauri::Wry>> {
    let mut status: Vec<MenuItem<_>> = status_lines(appliance)
        .iter()
        .enumerate()
        .map(|(index, line)| MenuItem::with_id(app, format!("status-{index}"), line, false, None::<&str>))
        .collect::<Result<_, _>>()?;
    let live = MenuItem::with_id(app, "live", "Live sessions: …", false, None::<&str>)?;
    if let Some(line) = app.try_state::<LiveLine>()
        && let Ok(mut slot) = line.0.lock()
    {
        *slot = Some(live.clone());
    }
    status.push(live);
    let open = MenuItem::with_id(app, "open", "Open console", true, None::<&str>)?;
    let lan = CheckMenuItem::with_id(
        app,
        "lan",
        format!("Serve the office LAN (HTTPS on {})", embedded::LAN_LISTEN_ADDR),
        true,
        choices.lan,
        None::<&str>,
    )?;
    let separator = PredefinedMenuItem::separator(app)?;
    let quit = MenuItem::with_id(app, "quit", "Quit (stops the appliance)", true, None::<&str>)?;
    let mut items: Vec<&dyn tauri::menu::IsMenuItem<_>> = status.iter().map(|item| item as _).collect();
    items.extend([&separator as &dyn tauri::menu::IsMenuItem<_>, &open, &lan, &quit]);
    Ok(Menu::with_items(app, &items)?)
}

fn tray(app: &AppHandle, appliance: &Embedded, choices: embedded::Choices) -> anyhow::Result<()> {
    let menu = menu(app, appliance, choices)?;
    let mut builder =
        TrayIconBuilder::with_id(TRAY).menu(&menu).tooltip("RAP Appliance").on_menu_event(|app, event| {
            match event.id.as_ref() {
                "open" => show_console(app),
                "lan" => toggle_lan(app),
                "quit" => app.exit(0),
                _ => {}
            }
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    Ok(())
}

const TRAY: &str = "rap";

/// Turns serving the LAN on or off: the choice is saved, the appliance
/// restarts on its new address (sessions detach and can be resumed), and
/// the window and tray follow. Off the UI thread: a stop can take seconds.
fn toggle_lan(app: &AppHandle) {
    let app = app.clone();
    std::thread::spawn(move || {
        let Some(app_dir) = app.try_state::<AppDir>().map(|dir| dir.0.clone()) else { return };
        let choices = match embedded::Choices::load(&app_dir) {
            Ok(choices) => embedded::Choices { lan: !choices.lan },
            Err(error) => return tracing::error!(error = %format!("{error:#}"), "Cannot read the app's choices"),
        };
        if let Err(error) = choices.save(&app_dir) {
            return tracing::error!(error = %format!("{error:#}"), "Cannot save the app's choices");
        }
        stop_appliance(&app);
        let appliance = match start(&app_dir, choices) {
            Ok(appliance) => appliance,
            Err(error) => {
                // Back to what worked, so the office is not left without it.
                tracing::error!(error = %format!("{error:#}"), lan = choices.lan, "The appliance did not start; going back");
                let previous = embedded::Choices { lan: !choices.lan };
                let _ = previous.save(&app_dir);
                match start(&app_dir, previous) {
                    Ok(appliance) => appliance,
                    Err(error) => return tracing::error!(error = %format!("{error:#}"), "The appliance did not start"),
                }
            }
        };
        let lan = Choices::load(&app_dir).unwrap_or_default();
        if let (Some(tray), Ok(menu)) = (app.tray_by_id(TRAY), menu(&app, &appliance, lan)) {
            let _ = tray.set_menu(Some(menu));
        }
        if let (Some(window), Ok(url)) = (app.get_webview_window(MAIN_WINDOW), appliance.console_url.parse()) {
            let _ = window.navigate(url);
        }
        if let Some(running) = app.try_state::<Running>()
            && let Ok(mut slot) = running.0.lock()
        {
            *slot = Some(appliance);
        }
    });
}
