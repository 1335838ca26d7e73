//! The README's acceptance: `stele dev` starts a cluster with mutual TLS,
//! and after `source DIR/stele.env` every command of the README's cluster
//! tour, and every `curl` line `stele dev` prints, exits 0, as written.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cluster::serial;

/// The shell code blocks of the README section `heading`.
fn tour_blocks(heading: &str) -> Vec<String> {
    let readme = include_str!("../README.md");
    let start = readme.find(heading).expect("the README's tour");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut blocks = Vec::new();
    let mut rest = &section[..end];
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("```").expect("a closed code block");
        blocks.push(body[..close].to_string());
        rest = &body[close + 3..];
    }
    blocks
}

struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child; SIGTERM lets it stop its nodes.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// `block` with each command that signs (a `stele` line with `--key`) run
/// as a person runs it: on a terminal (util-linux `script` gives it one),
/// shown the review, answering yes.
fn answering_yes(block: &str) -> String {
    block
        .replace("\\\n", " ")
        .lines()
        .map(|line| {
            if line.starts_with("stele ") && line.contains(" --key ") {
                let quoted = line.replace('\'', r"'\''");
                format!("printf 'yes\\n' | script -qec '{quoted}' /dev/null")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `script` in bash in `dir`, after `source .stele-dev/stele.env`.
fn bash(dir: &Path, script: &str) -> String {
    bash_after(dir, "source .stele-dev/stele.env", script)
}

/// Runs `script` in bash in `dir`, after `prelude`, with the built stele
/// first on the PATH.
fn bash_after(dir: &Path, prelude: &str, script: &str) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_stele")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{prelude}\n{script}"))
        .current_dir(dir)
        .env("PATH", path)
        .env("EDITOR", "true")
        .env_remove("STELE_TLS_CA")
        .env_remove("STELE_TLS_CERT")
        .env_remove("STELE_TLS_KEY")
        .env_remove("STELE_ENDPOINT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{script}\nexited {}:\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_readme_cluster_tour_and_every_printed_curl_line_work_as_written() {
    let _one_at_a_time = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(["dev", "--dir", ".stele-dev"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let dev = Dev(child);
    let mut printed = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C stops the cluster");
        printed.push(line);
        if done {
            break;
        }
    }
    assert!(
        printed.iter().any(|l| l.contains("a 3-node cluster is up")),
        "{printed:#?}"
    );
    assert!(dir.path().join(".stele-dev/stele.env").exists());

    // Every curl line stele dev printed (some continue on the next line).
    let text = printed.join("\n").replace("\\\n", " ");
    let curls: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert_eq!(curls.len(), 2, "{text}");
    for curl in curls {
        let reply = bash(dir.path(), &format!("{curl} --fail-with-body"));
        assert!(!reply.is_empty(), "{curl}");
    }

    // The README's tour, block by block; the proposal id it shows as
    // `5c1e…` is the one `stele propose` printed.
    for block in tour_blocks("## The cluster tour") {
        let block = answering_yes(&block);
        let Some(approve) = block.find("stele approve 5c1e…") else {
            bash(dir.path(), &block);
            continue;
        };
        let (first, rest) = block.split_at(block[..approve].rfind('\n').map_or(0, |i| i + 1));
        let proposed = bash(dir.path(), first);
        let id = proposed
            .split("stele approve ")
            .nth(1)
            .and_then(|rest| rest.get(..64))
            .unwrap_or_else(|| panic!("no proposal id in {proposed}"));
        let approved = bash(dir.path(), &rest.replace("5c1e…", id));
        // The approver was shown the change and asked before it signed.
        assert!(
            approved.contains(&format!("id {id}? Type yes to sign")),
            "{approved}"
        );
    }
    drop(dev);
    std::thread::sleep(Duration::from_millis(100));
}

/// The offline tour uses only files the repository ships (the example
/// bundle, `examples/tour/`) and those it makes: every block runs as
/// written, the placeholders of its last block filled in.
#[test]
fn the_readme_offline_tour_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::os::unix::fs::symlink(&examples, dir.path().join("examples")).unwrap();
    for block in tour_blocks("## The offline tour") {
        let mut block = answering_yes(&block);
        if block.contains("GENESIS_HASH") {
            let hash_of = |seq: &str| {
                let shown = bash_after(
                    dir.path(),
                    "",
                    &format!("stele --json ledger show policy.ledger {seq}"),
                );
                let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
                shown["hash"].as_str().unwrap().to_string()
            };
            block = block
                .replace("GENESIS_HASH", &hash_of("1"))
                .replace("A_HASH_YOU_SAW", &hash_of("2"));
        }
        bash_after(dir.path(), "", &block);
    }
}
