//! The `stele` command: a thin layer over the crates. See `stele --help`.

mod cli;
mod commands;
mod example_bundle;
mod failure;
mod files;
mod ledger_files;
mod output;
mod remote;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let json = cli.json;
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            if json && !failure.results_tell {
                println!("{}", failure.to_json());
            }
            ExitCode::FAILURE
        }
    }
}
