//! `demo`: simulate a fleet and run it through every function of the
//! pipeline on the local AWS emulator, then report. Run it through `make
//! demo` (or `scripts/with-moto.sh cargo run -p demo -- --devices 50`),
//! which starts and stops the emulator.

#![recursion_limit = "256"]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use demo::console::Console;
use demo::pipeline::{self, Options, Progress};
use demo::stack::Stack;
use demo::{output, report};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(about = "Run a simulated fleet through the whole pipeline on a local AWS emulator")]
struct Cli {
    /// Devices in the fleet.
    #[arg(long, default_value_t = 50)]
    devices: usize,
    /// Simulated hours of fleet activity, played in compressed real time
    /// from the start of the run (one device's hour in 0.2 s).
    #[arg(long, default_value_t = 2)]
    hours: u32,
    /// Seed of the simulation: the same seed gives the same twin changes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Resource names are PREFIX-LogicalId.
    #[arg(long, default_value = "demo")]
    prefix: String,
    /// Where the run leaves its export tree, stream records and logs
    /// (emptied first) [default: target/demo in the repository].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the OEM console running after the report, until Ctrl-C.
    #[arg(long)]
    serve: bool,
    /// Run as the `api` function (the console starts the demo so).
    #[arg(long = "api-function", hide = true)]
    api_function: bool,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn phase(&self, message: &str, total: u64) {
        self.0.set_position(0);
        self.0.set_length(total);
        self.0.set_message(message.to_owned());
    }

    fn advance(&self, steps: u64) {
        self.0.inc(steps);
    }
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos:>5}/{len:<5} {msg}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(bar)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.api_function {
        return match api::run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("demo: the api function failed: {error}");
                ExitCode::FAILURE
            }
        };
    }
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("demo: failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the pipeline, leaves its files, prints the report; false when an
/// event went missing or was refused.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let options = Options {
        devices: cli.devices,
        hours: cli.hours,
        seed: cli.seed,
        prefix: cli.prefix,
    };
    let out = cli
        .out
        .unwrap_or_else(|| Stack::repo_root().join(output::DEMO_DIR));
    let root = output::prepare(&out)?;
    output::log_functions(&root)?;
    let progress = Bar::new();
    let result = pipeline::run(&options, &progress).await;
    progress.0.finish_and_clear();
    let outcome = result?;
    // scripts/with-moto.sh names the emulator's log.
    let moto_log = std::env::var_os("MOTO_LOG").map(PathBuf::from);
    let on_disk = output::save(&outcome, &root, moto_log.as_deref())
        .await
        .context("the pipeline ran, but saving its files failed")?;
    let report = report::render(&outcome, &on_disk)
        .await
        .context("the pipeline ran, but the report failed")?;
    println!("{report}");
    let exe = std::env::current_exe().context("the demo's own binary")?;
    let console = Console::start(&Stack::repo_root(), &outcome.stack, &exe)
        .await
        .context("the pipeline ran, but the console did not start")?;
    let seen = console.check().await.context("the console")?;
    println!("{}", console.text(&seen));
    if cli.serve {
        println!("Serving the console until Ctrl-C ...");
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
    }
    drop(console);
    let expected = outcome.fleet.expected_count();
    if outcome.dpl_records.len() != expected || outcome.given_up() > 0 || outcome.dead_letters > 0 {
        eprintln!(
            "demo: failed: {} events on the DPL stream for {expected} expected, {} records given up, {} dead letters",
            outcome.dpl_records.len(),
            outcome.given_up(),
            outcome.dead_letters
        );
        return Ok(false);
    }
    Ok(true)
}
