//! `stele log|show|diff|export`: reads from one node's own state.

use serde_json::json;
use stele_proto::v1::ListVersionsRequest;

use stele_client::Client;
use stele_ledger::Version;

use super::describe::{
    Names, diff_lines, files_json, member_changes, version_json, version_line, version_text,
};
use crate::cli::{DiffArgs, ExportArgs, LogArgs, ShowArgs};
use crate::failure::Result;
use crate::files::{create_new, refuse_existing};
use crate::output::Output;
use crate::remote::{call, client};

pub fn log(out: Output, args: LogArgs) -> Result<()> {
    let client = client(&args.remote)?;
    let versions = all_versions(&client)?;
    let names = Names::of(&versions);
    let mut members = None;
    for version in &versions {
        let mut value = version_json(version, &names);
        let mut changes = Vec::new();
        if let Some(declared) = &version.header.members {
            changes = member_changes(members, declared);
            value["member_changes"] = json!(changes);
            members = Some(declared);
        }
        out.result(&value, || {
            let mut text = version_line(version, &names);
            for change in &changes {
                text.push_str(&format!("\n         {change}"));
            }
            text
        });
    }
    Ok(())
}

pub fn show(out: Output, args: ShowArgs) -> Result<()> {
    let client = client(&args.remote)?;
    let (version, bundle) = call(client.version(args.seq))?;
    let names = Names::of(&all_versions(&client)?);
    let mut value = version_json(&version, &names);
    value["files"] = files_json(&bundle);
    out.result(&value, || version_text(&version, &names));
    Ok(())
}

/// Every version the node holds, a page at a time.
fn all_versions(client: &Client) -> Result<Vec<Version>> {
    let mut versions = Vec::new();
    loop {
        let from_seq = versions.len() as u64 + 1;
        let page = call(client.list_versions(ListVersionsRequest { from_seq, limit: 0 }))?;
        if page.is_empty() {
            return Ok(versions);
        }
        versions.extend(page);
    }
}

pub fn diff(out: Output, args: DiffArgs) -> Result<()> {
    let client = client(&args.remote)?;
    let (_, old) = call(client.version(args.a))?;
    let (_, new) = call(client.version(args.b))?;
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
    let bytes = call(client.export())?;
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
