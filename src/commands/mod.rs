//! One module per command family; each turns parsed arguments into calls on
//! the crates and prints the result.

mod bundle;
mod check;
mod describe;
mod keygen;
mod ledger;
mod proposal;

use crate::cli::{Cli, Command};
use crate::failure::Result;
use crate::output::Output;

pub fn run(cli: Cli) -> Result<()> {
    let out = Output { json: cli.json };
    match cli.command {
        Command::Keygen { out: path } => keygen::run(out, &path),
        Command::Bundle(command) => bundle::run(out, command),
        Command::Check(args) => check::run(out, args),
        Command::Proposal(command) => proposal::run(out, command),
        Command::Ledger(command) => ledger::run(out, command),
    }
}
