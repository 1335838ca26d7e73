//! The `stele` command: a thin layer over the crates. See `stele --help`.

mod cli;
mod commands;
mod example_bundle;
mod failure;
mod files;
mod ledger_files;
mod output;
mod remote;
mod terminal_text;

// The deliberate defects of simulation builds must never reach the product:
// `stele` is never part of a simulation build (scripts/sim builds stele-sim
// and its tests only), so a build of it with them does not compile.
#[cfg(stele_sim)]
compile_error!(
    "--cfg stele_sim is for simulation builds (scripts/sim); the stele binary is never built with it"
);

use std::process::ExitCode;

use clap::Parser;

// A decision allocates and frees many small objects (Cedar's request,
// context and answer; tonic's frames): mimalloc serves them faster than
// glibc's allocator, which took about a fifth of a node's time under load
// (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let json = cli.json;
    // One crypto provider for the whole process: ring.
    stele_tls::install_ring();
    remote::set_tls(cli.tls.clone());
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!(
                "error: {}",
                terminal_text::terminal_safe(&failure.to_string())
            );
            if json && !failure.results_tell {
                println!("{}", failure.to_json());
            }
            ExitCode::FAILURE
        }
    }
}
