//! `stele-sim`: runs whole simulated stele clusters from seeds and checks
//! the design's invariants. See `stele-sim --help`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use stele_sim::{Report, SimConfig};

/// Deterministic simulation of a stele cluster: 3–5 real nodes on turmoil's
/// simulated network and clock, a workload of signed proposals, approvals,
/// rollbacks, rotations and membership changes, attacks, and faults
/// (partitions, held messages, latency spikes, crashes), all drawn from the
/// seed. After the faults heal, checkers test the invariants of the design.
/// The same seed always gives the same trace digest.
#[derive(Parser)]
#[command(name = "stele-sim", version)]
struct Args {
    /// Run one seed and print its trace digest.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a half-open range of seeds, as in Rust: `0..100`.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<(u64, u64)>,
    /// Hosts running a node (3 to 5).
    #[arg(long, default_value_t = 5)]
    nodes: u64,
    /// How many nodes start as voters; the others join during the run.
    #[arg(long, default_value_t = 3)]
    voters: u64,
    /// Simulated time of workload and faults, before everything heals.
    #[arg(long, default_value = "60s", value_parser = parse_seconds)]
    duration: Duration,
    /// Switch on a deliberate defect (simulation builds only, see
    /// scripts/sim): skip-parent-check, double-count-signer, serve-stale,
    /// snapshot-regress, log-wrong-version, ignore-member-set.
    #[arg(long, value_name = "NAME")]
    bug: Option<String>,
    /// Also crash the leader between committing a membership version and
    /// finishing Raft's change (twice at most): a cluster must finish it
    /// under the next leader. Such a run reproduces from its seed in a
    /// fresh process (as `--seed N` runs it).
    #[arg(long)]
    crash_points: bool,
    /// Print the whole event trace of a single seed.
    #[arg(long)]
    trace: bool,
    /// Print results as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not a range like 0..100"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|e| format!("{s:?} in {text:?}: {e}"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a >= b {
        return Err(format!(
            "{text:?} is empty: the end is excluded, as in Rust"
        ));
    }
    Ok((a, b))
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds = text
        .strip_suffix('s')
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| format!("{text:?} is not a duration in whole seconds, like 60s"))?;
    Ok(Duration::from_secs(seconds))
}

fn reproduce(args: &Args, seed: u64) -> String {
    let mut command = format!("scripts/sim --seed {seed}");
    if args.nodes != 5 {
        command += &format!(" --nodes {}", args.nodes);
    }
    if args.voters != 3 {
        command += &format!(" --voters {}", args.voters);
    }
    if args.duration != Duration::from_secs(60) {
        command += &format!(" --duration {}s", args.duration.as_secs());
    }
    if let Some(bug) = &args.bug {
        command += &format!(" --bug {bug}");
    }
    if args.crash_points {
        command += " --crash-points";
    }
    command
}

fn as_json(report: &Report, command: &str, wall: Duration) -> serde_json::Value {
    json!({
        "seed": report.seed,
        "ok": report.violations.is_empty(),
        "digest": report.digest,
        "violations": report.violations.iter().map(|v| json!({
            "invariant": v.invariant,
            "detail": v.detail,
        })).collect::<Vec<_>>(),
        "reproduce": command,
        "simulated_ms": report.simulated_ms,
        "commits": report.commits,
        "decisions": report.decisions,
        "faults": report.faults,
        "operations": report.tally,
        "wall_ms": wall.as_millis() as u64,
    })
}

fn summary(report: &Report, wall: Duration) -> String {
    let verdict = if report.violations.is_empty() {
        "ok".to_string()
    } else {
        format!("{} VIOLATION(S)", report.violations.len())
    };
    format!(
        "seed {}: {verdict} · digest {} · {:.1} s simulated in {:.1} s · {} commits acknowledged · {} decisions · {} faults",
        report.seed,
        report.digest,
        report.simulated_ms as f64 / 1000.0,
        wall.as_secs_f64(),
        report.commits,
        report.decisions,
        report.faults
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let (start, end) = match (args.seed, args.seeds) {
        (Some(seed), None) => match seed.checked_add(1) {
            Some(end) => (seed, end),
            None => {
                eprintln!("error: --seed must be below {}", u64::MAX);
                return ExitCode::from(2);
            }
        },
        (None, Some(range)) => range,
        _ => {
            eprintln!("error: give --seed N or --seeds A..B (see --help)");
            return ExitCode::from(2);
        }
    };
    // A panic in a node ends the process: turmoil shuts the host's tokio
    // runtime down, which panics again while unwinding, and Rust aborts. Say
    // which seed did it, and what was seen before, while there is time.
    let running = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let hook_running = running.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let command = hook_running.lock().map(|c| c.clone()).unwrap_or_default();
        for seen in stele_sim::history::take_live_violations() {
            println!("  violated (seen before the panic): {seen}");
        }
        println!("a node panicked (invariant: nodes never panic): {info}\n  reproduce: {command}");
        default_hook(info);
    }));
    let began = Instant::now();
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for seed in start..end {
        let config = SimConfig {
            seed,
            nodes: args.nodes,
            voters: args.voters,
            duration: args.duration,
            defect: args.bug.clone(),
            crash_points: args.crash_points,
        };
        if let Ok(mut running) = running.lock() {
            *running = reproduce(&args, seed);
        }
        let started = Instant::now();
        let report = match stele_sim::run(&config) {
            Ok(report) => report,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        };
        let wall = started.elapsed();
        let command = reproduce(&args, seed);
        if args.json {
            results.push(as_json(&report, &command, wall));
        } else {
            println!("{}", summary(&report, wall));
            if args.trace {
                for line in &report.trace {
                    println!("  {line}");
                }
            }
            for violation in &report.violations {
                println!(
                    "  violated: invariant {}: {}",
                    violation.invariant, violation.detail
                );
            }
            if !report.violations.is_empty() {
                println!("  reproduce: {command}");
            }
        }
        if !report.violations.is_empty() {
            failed.push((seed, report.violations[0].invariant, command));
        }
    }
    let wall = began.elapsed();
    let ran = end - start;
    if args.json {
        let out = if ran == 1 {
            results.pop().expect("one result")
        } else {
            json!({
                "seeds": format!("{start}..{end}"),
                "ran": ran,
                "failed": failed.iter().map(|(seed, invariant, command)| json!({
                    "seed": seed, "invariant": invariant, "reproduce": command,
                })).collect::<Vec<_>>(),
                "wall_ms": wall.as_millis() as u64,
                "seeds_per_minute": ran as f64 * 60.0 / wall.as_secs_f64(),
                "results": results,
            })
        };
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    } else if ran > 1 {
        println!(
            "{ran} seeds in {:.1} s ({:.1} seeds a minute): {} failed",
            wall.as_secs_f64(),
            ran as f64 * 60.0 / wall.as_secs_f64(),
            failed.len()
        );
        for (seed, invariant, command) in &failed {
            println!("  seed {seed}: invariant {invariant} violated; reproduce: {command}");
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
