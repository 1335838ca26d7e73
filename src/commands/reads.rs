//! `stele log|show|diff|export`: reads from one node's own state.

use serde_json::json;
use stele_client::Client;
use stele_ledger::{BundleFiles, Version};
use stele_proto::v1::{ExportRequest, GetVersionRequest, ListVersionsRequest};
use tokio_stream::StreamExt;

use super::describe::{diff_lines, files_json, version_json, version_line, version_text};
use crate::cli::{DiffArgs, ExportArgs, LogArgs, ShowArgs};
use crate::failure::{Failure, Result};
use crate::files::{create_new, refuse_existing};
use crate::output::Output;
use crate::remote::{block_on, client, failure};

fn node_error(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(
        "node_error",
        format!("the node sent {what} that does not decode: {e}"),
    )
}

pub fn log(out: Output, args: LogArgs) -> Result<()> {
    let client = client(&args.remote)?;
    let mut from_seq = 1;
    loop {
        let page = block_on(async {
            client
                .ledger()
                .list_versions(client.request(ListVersionsRequest { from_seq, limit: 0 }))
                .await
                .map_err(|s| failure(&client, s))
        })?
        .into_inner();
        if page.versions.is_empty() {
            return Ok(());
        }
        for bytes in &page.versions {
            let version: Version =
                serde_json::from_slice(bytes).map_err(|e| node_error("a version", e))?;
            out.result(&version_json(&version), || version_line(&version));
            from_seq = version.seq() + 1;
        }
    }
}

/// Version `seq` and its bundle, from the node `client` talks to.
pub fn fetch(client: &Client, seq: u64) -> Result<(Version, BundleFiles)> {
    let reply = block_on(async {
        client
            .ledger()
            .get_version(client.request(GetVersionRequest {
                seq,
                with_bundle: true,
            }))
            .await
            .map_err(|s| failure(client, s))
    })?
    .into_inner();
    let version = serde_json::from_slice(&reply.version).map_err(|e| node_error("a version", e))?;
    let bundle = serde_json::from_slice(reply.bundle.as_deref().unwrap_or_default())
        .map_err(|e| node_error("a bundle", e))?;
    Ok((version, bundle))
}

pub fn show(out: Output, args: ShowArgs) -> Result<()> {
    let client = client(&args.remote)?;
    let (version, bundle) = fetch(&client, args.seq)?;
    let mut value = version_json(&version);
    value["files"] = files_json(&bundle);
    out.result(&value, || version_text(&version));
    Ok(())
}

pub fn diff(out: Output, args: DiffArgs) -> Result<()> {
    let client = client(&args.remote)?;
    let (_, old) = fetch(&client, args.a)?;
    let (_, new) = fetch(&client, args.b)?;
    let changes = stele_policy::diff(&old, &new)?;
    let mut value = serde_json::to_value(&changes).expect("a diff serializes");
    value["from"] = args.a.into();
    value["to"] = args.b.into();
    out.result(&value, || {
        let lines = diff_lines(&changes);
        if lines.is_empty() {
            format!("nothing changed between seq {} and seq {}", args.a, args.b)
        } else {
            lines.join("\n")
        }
    });
    Ok(())
}

pub fn export(out: Output, args: ExportArgs) -> Result<()> {
    refuse_existing(&args.out)?;
    let client = client(&args.remote)?;
    let bytes = block_on(async {
        let mut stream = client
            .ledger()
            .export(client.request(ExportRequest {}))
            .await
            .map_err(|s| failure(&client, s))?
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend(chunk.map_err(|s| failure(&client, s))?.data);
        }
        Ok(bytes)
    })?;
    create_new(&args.out, &bytes, 0o644)?;
    let versions = bytes.iter().filter(|b| **b == b'\n').count();
    out.result(&json!({ "out": args.out, "bytes": bytes.len() }), || {
        format!(
            "wrote {} ({} bytes, {} lines); check it with `stele ledger verify`",
            args.out.display(),
            bytes.len(),
            versions
        )
    });
    Ok(())
}
