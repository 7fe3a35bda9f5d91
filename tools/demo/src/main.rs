//! `demo`: simulate a fleet and run it through every function of the
//! pipeline on the local AWS emulator, then report. Run it through `make
//! demo` (or `scripts/with-moto.sh cargo run -p demo -- --devices 50`),
//! which starts and stops the emulator.

#![recursion_limit = "256"]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use demo::pipeline::{self, Options, Progress};
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = Options {
        devices: cli.devices,
        hours: cli.hours,
        seed: cli.seed,
        prefix: cli.prefix,
    };
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos:>5}/{len:<5} {msg}",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let progress = Bar(bar);
    let result = pipeline::run(&options, &progress).await;
    progress.0.finish_and_clear();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("demo: failed: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match demo::report::render(&outcome).await {
        Ok(report) => println!("{report}"),
        Err(error) => {
            eprintln!("demo: the pipeline ran, but the report failed: {error:#}");
            return ExitCode::FAILURE;
        }
    }
    let expected = outcome.fleet.expected_count();
    if outcome.dpl_records.len() != expected || outcome.given_up() > 0 || outcome.dead_letters > 0 {
        eprintln!(
            "demo: failed: {} events on the DPL stream for {expected} expected, {} records given up, {} dead letters",
            outcome.dpl_records.len(),
            outcome.given_up(),
            outcome.dead_letters
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
