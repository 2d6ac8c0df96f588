//! `apogee-broker`: the broker, started like Java's `mqbroker`; `--standalone` also runs a name
//! server in the same process, for a one-command single-node cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use broker::{BrokerConfig, BrokerServer};
use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};

/// Apogee broker: RocketMQ 4.x storage and messaging on io_uring.
#[derive(Parser)]
#[command(name = "apogee-broker", version)]
struct Args {
    /// Config file (TOML with RocketMQ key names: brokerClusterName, namesrvAddr, listenPort, …).
    #[arg(short = 'c', long = "configFile", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Name server addresses, `;`-separated; overrides namesrvAddr.
    #[arg(short = 'n', long = "namesrvAddr", value_name = "ADDRS")]
    namesrv: Option<String>,
    /// Print the effective configuration and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print: bool,
    /// Also run a name server in this process, on the first namesrvAddr.
    #[arg(long)]
    standalone: bool,
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
    let fail = |e: &dyn std::fmt::Display| {
        error!("{e}");
        eprintln!("apogee-broker: {e}");
        ExitCode::FAILURE
    };
    let mut config = match &args.config {
        None => BrokerConfig::default(),
        Some(path) => match BrokerConfig::load(path) {
            Ok((config, unknown)) => {
                for key in unknown {
                    warn!(file = %path.display(), key, "unknown config key ignored");
                }
                config
            }
            Err(e) => return fail(&e),
        },
    };
    if let Some(namesrv) = args.namesrv {
        config.namesrv_addr = namesrv;
    }
    if let Err(e) = config.validate() {
        return fail(&format!("invalid configuration: {e}"));
    }
    if args.print {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(e) => return fail(&format!("cannot install signal handlers: {e}")),
    };
    let name = config.broker_name.clone();
    let server = match BrokerServer::start(config, args.standalone) {
        Ok(server) => server,
        Err(e) => return fail(&e),
    };
    if let Some(ns) = server.namesrv_addr() {
        println!("The Name Server boot success. listening on {ns}");
    }
    // Tests and scripts read the bound port from here when they ask for port 0.
    println!("The broker[{name}, {}] boot success.", server.local_addr());
    if let Some(signal) = signals.forever().next() {
        info!(signal, "stopping");
    }
    match server.stop() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("stopped with errors: {e}")),
    }
}
