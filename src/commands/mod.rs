//! One module per command family; each turns parsed arguments into calls on
//! the crates and prints the result.

mod audit;
mod bench;
mod bundle;
mod certs;
mod check;
mod cluster;
mod cluster_view;
mod describe;
mod dev;
mod ids;
mod impact;
mod keygen;
mod ledger;
mod load_http;
mod membership;
mod node;
mod proposal;
mod reads;
mod review;
mod writes;

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
        Command::Node(args) => node::run(args),
        Command::Cluster(command) => cluster::run(out, command),
        Command::Propose(args) => writes::propose(out, args),
        Command::Approve(args) => writes::approve(out, args),
        Command::Withdraw(args) => writes::withdraw(out, args),
        Command::Submit(args) => writes::submit(out, args),
        Command::Rollback(args) => writes::rollback(out, args),
        Command::Rotate(args) => writes::rotate(out, args),
        Command::Log(args) => reads::log(out, args),
        Command::Show(args) => reads::show(out, args),
        Command::Diff(args) => reads::diff(out, args),
        Command::Proposals(args) => reads::proposals(out, args),
        Command::Export(args) => reads::export(out, args),
        Command::Dev(args) => dev::run(out, args),
        Command::Bench(command) => bench::run(out, command),
        Command::Audit(command) => audit::run(out, command),
        Command::Certs(command) => certs::run(out, command),
    }
}
