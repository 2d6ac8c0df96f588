//! `apogee-namesrv`: the name server, started like Java's `mqnamesrv`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use namesrv::{NamesrvConfig, NamesrvServer};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};

/// Apogee name server: RocketMQ 4.x route registry for brokers and clients.
#[derive(Parser)]
#[command(name = "apogee-namesrv", version)]
struct Args {
    /// Config file (TOML with RocketMQ key names: listenPort, kvConfigPath, …).
    #[arg(short = 'c', long = "configFile", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let config = match &args.config {
        None => NamesrvConfig::default(),
        Some(path) => match NamesrvConfig::load(path) {
            Ok((config, unknown)) => {
                for key in unknown {
                    warn!(file = %path.display(), key, "unknown config key ignored");
                }
                config
            }
            Err(e) => {
                error!("{e}");
                eprintln!("apogee-namesrv: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    if args.print {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }

    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("apogee-namesrv: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match NamesrvServer::start(config) {
        Ok(server) => server,
        Err(e) => {
            error!("{e}");
            eprintln!("apogee-namesrv: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Tests and scripts read the bound port from here when they ask for port 0.
    println!("The Name Server boot success. listening on {}", server.local_addr());
    if let Some(signal) = signals.forever().next() {
        info!(signal, "stopping");
    }
    server.stop();
    ExitCode::SUCCESS
}
