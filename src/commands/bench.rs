//! `stele bench`: a load generator for a node's Decision service, and the
//! synthetic bundles to load it with.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use serde_json::json;
use stele_client::Client;
use stele_node::check_wire::check_request;
use stele_policy::synthetic;
use stele_policy::{Query, scenario_queries};
use stele_proto::v1::{CheckBatchRequest, CheckRequest, CheckResponse, check_result};

use super::load_http::{HttpCaller, Item, batch_body, evaluation_body};
use crate::cli::{BenchBundleArgs, BenchCheckArgs, BenchCommand};
use crate::example_bundle;
use crate::failure::{Code, Failure, Result};
use crate::files::{create_new, refuse_existing};
use crate::output::Output;
use crate::remote::{block_on, connect};

const EVALUATION_PATH: &str = "/access/v1/evaluation";
const EVALUATIONS_PATH: &str = "/access/v1/evaluations";

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
    let batch = args.batch.unwrap_or(1) as usize;
    let mut callers = block_on(callers(&args, &requests))?;
    // One call first, so that a wrong endpoint or bundle is named at once.
    block_on(async {
        let refused =
            |message| Failure::new(Code::Unavailable, format!("{}: {message}", target(&args)));
        let first = callers[0].call(&requests, &[0]).await.map_err(refused)?;
        match first.into_iter().next() {
            Some(Err(message)) => Err(refused(message)),
            _ => Ok(()),
        }
    })?;
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
        let workers: Vec<_> = callers
            .drain(..)
            .enumerate()
            .map(|(worker, caller)| {
                let requests = requests.clone();
                let schedule = schedule.clone();
                tokio::spawn(async move {
                    work(caller, requests, worker, batch, schedule, measure_from, end).await
                })
            })
            .collect();
        let mut tallies = Vec::new();
        for worker in workers {
            tallies.push(
                worker
                    .await
                    .map_err(|e| Failure::new(Code::Internal, e.to_string()))?,
            );
        }
        Ok(tallies)
    })?;
    report(out, &args, batch, tallies);
    Ok(())
}

/// Where the load goes: the node's gRPC Decision service, or its HTTP
/// AuthZEN API.
enum Caller {
    Grpc(Client),
    Http {
        caller: HttpCaller,
        bodies: Arc<Vec<Bytes>>,
    },
}

/// One caller per worker. gRPC workers share up to `MAX_CONNECTIONS`
/// connections (HTTP/2 multiplexes); HTTP/1.1 needs one each.
async fn callers(args: &BenchCheckArgs, requests: &[CheckRequest]) -> Result<Vec<Caller>> {
    match &args.http {
        Some(addr) => {
            let bodies = Arc::new(requests.iter().map(evaluation_body).collect::<Vec<_>>());
            let mut callers = Vec::with_capacity(args.concurrency);
            let tls = crate::remote::client_tls()?;
            for _ in 0..args.concurrency {
                let caller = HttpCaller::connect(addr, args.remote.timeout, tls.clone())
                    .await
                    .map_err(|e| Failure::new(Code::Unavailable, e))?;
                callers.push(Caller::Http {
                    caller,
                    bodies: bodies.clone(),
                });
            }
            Ok(callers)
        }
        None => {
            let connections = args.concurrency.min(MAX_CONNECTIONS);
            let clients: Vec<Client> = (0..connections)
                .map(|_| connect(&args.remote.endpoint, args.remote.timeout))
                .collect::<Result<_>>()?;
            Ok((0..args.concurrency)
                .map(|worker| Caller::Grpc(clients[worker % connections].clone()))
                .collect())
        }
    }
}

fn target(args: &BenchCheckArgs) -> String {
    match &args.http {
        Some(addr) => format!("http://{addr}"),
        None => args.remote.endpoint.clone(),
    }
}

fn grpc_item(reply: &CheckResponse) -> Item {
    Ok((
        reply.decision == stele_proto::v1::Outcome::Allow as i32,
        reply.version.as_ref().map(|v| v.seq),
    ))
}

impl Caller {
    /// One call for the requests at `picked`: Check or CheckBatch, or one
    /// or many AuthZEN evaluations.
    async fn call(
        &mut self,
        requests: &[CheckRequest],
        picked: &[usize],
    ) -> std::result::Result<Vec<Item>, String> {
        match self {
            Caller::Grpc(client) if picked.len() == 1 => {
                let request = requests[picked[0]].clone();
                let reply = client.check(request).await.map_err(|e| e.message())?;
                Ok(vec![grpc_item(&reply)])
            }
            Caller::Grpc(client) => {
                let call = CheckBatchRequest {
                    requests: picked.iter().map(|&i| requests[i].clone()).collect(),
                    min_version: None,
                };
                let reply = client.check_batch(call).await.map_err(|e| e.message())?;
                Ok(reply
                    .results
                    .into_iter()
                    .map(|result| match result.result {
                        Some(check_result::Result::Decision(d)) => grpc_item(&d),
                        Some(check_result::Result::Error(e)) => Err(e),
                        None => Err("empty result".into()),
                    })
                    .collect())
            }
            Caller::Http { caller, bodies } if picked.len() == 1 => {
                caller
                    .call(EVALUATION_PATH, bodies[picked[0]].clone(), false)
                    .await
            }
            Caller::Http { caller, bodies } => {
                let body = batch_body(picked.iter().map(|&i| &bodies[i]));
                caller.call(EVALUATIONS_PATH, body, true).await
            }
        }
    }
}

async fn work(
    mut caller: Caller,
    requests: Arc<Vec<CheckRequest>>,
    worker: usize,
    batch: usize,
    schedule: Option<Arc<Schedule>>,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut next = worker * 7919 % requests.len();
    let mut picked = Vec::with_capacity(batch);
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
        picked.clear();
        for _ in 0..batch {
            picked.push(next);
            next = (next + 1) % requests.len();
        }
        let reply = caller.call(&requests, &picked).await;
        if due < measure_from {
            continue;
        }
        match reply {
            Ok(items) => items.into_iter().for_each(|item| tally.count(item)),
            Err(message) => *tally.errors.entry(message).or_default() += batch as u64,
        }
        let micros = due.elapsed().as_micros();
        tally
            .latencies
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
    }
}

impl Tally {
    fn count(&mut self, item: Item) {
        match item {
            Ok((allowed, version)) => {
                self.decisions += 1;
                self.allowed += u64::from(allowed);
                self.versions.extend(version);
            }
            Err(message) => *self.errors.entry(message).or_default() += 1,
        }
    }
}

fn call_name(args: &BenchCheckArgs, batch: usize) -> String {
    match (&args.http, batch) {
        (None, 1) => "Check".into(),
        (None, n) => format!("CheckBatch of {n}"),
        (Some(_), 1) => "AuthZEN evaluation".into(),
        (Some(_), n) => format!("AuthZEN evaluations of {n}"),
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
        "endpoint": target(args),
        "call": call_name(args, batch),
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
            target(args),
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
