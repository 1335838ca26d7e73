//! `stele bench`: a load generator for a node's Decision service, and the
//! synthetic bundles to load it with.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use stele_client::Client;
use stele_policy::synthetic;
use stele_policy::{Query, scenario_queries};
use stele_proto::v1::{CheckBatchRequest, CheckRequest, check_result};

use super::check::check_request;
use crate::cli::{BenchBundleArgs, BenchCheckArgs, BenchCommand};
use crate::example_bundle;
use crate::failure::{Failure, Result};
use crate::files::{create_new, refuse_existing};
use crate::output::Output;
use crate::remote::{block_on, connect, failure};

/// Connections the load is spread over: HTTP/2 multiplexes, but one
/// connection is one server task.
const MAX_CONNECTIONS: usize = 8;

pub fn run(out: Output, command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Check(args) => check(out, args),
        BenchCommand::Bundle(args) => bundle(out, args),
    }
}

fn bundle(out: Output, args: BenchBundleArgs) -> Result<()> {
    let policies = args.policies as usize;
    let bundle = synthetic::bundle(args.shape, policies);
    let mut requests = synthetic::requests(args.shape, policies, args.requests).join("\n");
    requests.push('\n');
    let mut files: Vec<(String, String)> = bundle
        .files()
        .map(|(path, text)| (path.to_string(), text.to_string()))
        .collect();
    files.push(("requests.jsonl".into(), requests));
    refuse_existing(&args.out)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Failure::io(&args.out, e))?;
    for (path, text) in &files {
        create_new(&args.out.join(path), text.as_bytes(), 0o644)?;
    }
    let value = json!({
        "dir": args.out.display().to_string(),
        "shape": args.shape.name(),
        "policies": args.policies,
        "requests": args.requests,
        "digest": bundle.digest().to_string(),
    });
    out.result(&value, || {
        format!(
            "wrote {} ({} {} policies, bundle digest {}) and {} requests to {}",
            args.out.display(),
            args.policies,
            args.shape.name(),
            bundle.digest(),
            args.requests,
            args.out.join("requests.jsonl").display()
        )
    });
    Ok(())
}

/// Call times at a held rate: the n-th call is due at start + n × gap.
struct Schedule {
    start: Instant,
    gap: Duration,
    taken: AtomicU64,
}

impl Schedule {
    fn next(&self) -> Instant {
        let n = self.taken.fetch_add(1, Ordering::Relaxed);
        self.start + self.gap.mul_f64(n as f64)
    }
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    /// Microseconds per call, from when it was due.
    latencies: Vec<u32>,
    decisions: u64,
    allowed: u64,
    /// Calls or batch items the node refused, by message.
    errors: std::collections::BTreeMap<String, u64>,
    versions: std::collections::BTreeSet<u64>,
}

fn check(out: Output, args: BenchCheckArgs) -> Result<()> {
    if args.concurrency == 0 {
        return Err(Failure::usage("--concurrency must be at least 1"));
    }
    if args.rate == Some(0) {
        return Err(Failure::usage(
            "--rate must be at least 1 decision a second",
        ));
    }
    let requests = Arc::new(load_requests(args.requests.as_deref())?);
    let connections = args.concurrency.min(MAX_CONNECTIONS);
    let clients: Vec<Client> = (0..connections)
        .map(|_| connect(&args.remote.endpoint, args.remote.timeout))
        .collect::<Result<_>>()?;
    // One call first, so that a wrong endpoint or bundle is named at once.
    block_on(async {
        let mut decision = clients[0].decision();
        decision
            .check(clients[0].request(requests[0].clone()))
            .await
            .map_err(|s| failure(&clients[0], s))
    })?;
    let batch = args.batch.unwrap_or(1) as usize;
    // With --rate, one schedule of call times for all workers: a free
    // worker takes the next slot, so a slow call delays no other slot.
    let gap = args
        .rate
        .map(|rate| Duration::from_secs_f64(batch as f64 / rate as f64));
    let started = Instant::now();
    let measure_from = started + args.warmup;
    let end = measure_from + args.duration;
    let schedule = gap.map(|gap| {
        Arc::new(Schedule {
            start: started,
            gap,
            taken: AtomicU64::new(0),
        })
    });
    let tallies = block_on(async {
        let workers: Vec<_> = (0..args.concurrency)
            .map(|worker| {
                let client = clients[worker % connections].clone();
                let requests = requests.clone();
                let schedule = schedule.clone();
                tokio::spawn(async move {
                    work(client, requests, worker, batch, schedule, measure_from, end).await
                })
            })
            .collect();
        let mut tallies = Vec::new();
        for worker in workers {
            tallies.push(
                worker
                    .await
                    .map_err(|e| Failure::new("internal", e.to_string()))?,
            );
        }
        Ok(tallies)
    })?;
    report(out, &args, batch, tallies);
    Ok(())
}

async fn work(
    client: Client,
    requests: Arc<Vec<CheckRequest>>,
    worker: usize,
    batch: usize,
    schedule: Option<Arc<Schedule>>,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut decision = client.decision();
    let mut next = worker * 7919 % requests.len();
    loop {
        let due = match &schedule {
            Some(schedule) => {
                let due = schedule.next();
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        if due >= end {
            return tally;
        }
        let measured = due >= measure_from;
        let mut take = || {
            let request = requests[next].clone();
            next = (next + 1) % requests.len();
            request
        };
        if batch == 1 {
            let reply = decision.check(client.request(take())).await;
            if !measured {
                continue;
            }
            match reply {
                Ok(reply) => tally.count(&reply.into_inner()),
                Err(status) => {
                    *tally
                        .errors
                        .entry(status.message().to_string())
                        .or_default() += 1
                }
            }
        } else {
            let call = CheckBatchRequest {
                requests: (0..batch).map(|_| take()).collect(),
                min_version: None,
            };
            let reply = decision.check_batch(client.request(call)).await;
            if !measured {
                continue;
            }
            match reply {
                Ok(reply) => {
                    for result in reply.into_inner().results {
                        match result.result {
                            Some(check_result::Result::Decision(d)) => tally.count(&d),
                            Some(check_result::Result::Error(e)) => {
                                *tally.errors.entry(e).or_default() += 1
                            }
                            None => *tally.errors.entry("empty result".into()).or_default() += 1,
                        }
                    }
                }
                Err(status) => {
                    *tally
                        .errors
                        .entry(status.message().to_string())
                        .or_default() += batch as u64
                }
            }
        }
        let micros = due.elapsed().as_micros();
        tally
            .latencies
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
    }
}

impl Tally {
    fn count(&mut self, reply: &stele_proto::v1::CheckResponse) {
        self.decisions += 1;
        if reply.decision == stele_proto::v1::Outcome::Allow as i32 {
            self.allowed += 1;
        }
        if let Some(version) = &reply.version {
            self.versions.insert(version.seq);
        }
    }
}

fn report(out: Output, args: &BenchCheckArgs, batch: usize, tallies: Vec<Tally>) {
    let mut latencies: Vec<u32> = Vec::new();
    let mut total = Tally::default();
    for tally in tallies {
        latencies.extend(tally.latencies);
        total.decisions += tally.decisions;
        total.allowed += tally.allowed;
        for (message, n) in tally.errors {
            *total.errors.entry(message).or_default() += n;
        }
        total.versions.extend(tally.versions);
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1] as f64 / 1000.0
    };
    let seconds = args.duration.as_secs_f64();
    let errors: u64 = total.errors.values().sum();
    let value = json!({
        "endpoint": args.remote.endpoint,
        "call": if batch == 1 { "Check".to_string() } else { format!("CheckBatch of {batch}") },
        "concurrency": args.concurrency,
        "rate": args.rate,
        "seconds": seconds,
        "calls": latencies.len(),
        "decisions": total.decisions,
        "decisions_per_second": (total.decisions as f64 / seconds).round(),
        "allowed": total.allowed,
        "errors": errors,
        "error_kinds": total.errors,
        "versions": total.versions,
        "latency_ms": {
            "p50": percentile(50.0),
            "p90": percentile(90.0),
            "p99": percentile(99.0),
            "p999": percentile(99.9),
            "max": percentile(100.0),
        },
    });
    out.result(&value, || {
        let mut text = format!(
            "{} decisions/s over {seconds:.1} s ({} decisions, {} allowed, {errors} errors) \
             from {} by {} at concurrency {}{}\n\
             latency per call (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3}\n\
             served versions: {:?}",
            (total.decisions as f64 / seconds).round(),
            total.decisions,
            total.allowed,
            args.remote.endpoint,
            value["call"].as_str().unwrap_or_default(),
            args.concurrency,
            args.rate
                .map(|r| format!(", held at {r}/s"))
                .unwrap_or_default(),
            percentile(50.0),
            percentile(90.0),
            percentile(99.0),
            percentile(99.9),
            percentile(100.0),
            total.versions,
        );
        for (message, n) in &total.errors {
            text.push_str(&format!("\n  {n} × {message}"));
        }
        text
    });
}

/// The requests to cycle through: the file's lines, or the example's
/// scenario queries.
fn load_requests(path: Option<&Path>) -> Result<Vec<CheckRequest>> {
    let queries: Vec<Query> = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Failure::io(path, e))?;
            text.lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(n, line)| {
                    Query::from_json(line).map_err(|e| {
                        Failure::usage(format!("{}: line {}: {e}", path.display(), n + 1))
                    })
                })
                .collect::<Result<_>>()?
        }
        None => scenario_queries(&example_bundle::zero_trust())
            .expect("the embedded example's scenarios parse"),
    };
    if queries.is_empty() {
        return Err(Failure::usage("no requests to send: the file has none"));
    }
    Ok(queries.iter().map(|q| check_request(q, None)).collect())
}
