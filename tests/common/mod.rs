//! Running the real `stele` binary from tests.
#![allow(dead_code)]

pub mod cluster;
pub mod http;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The single JSON line on stdout.
    pub fn json(&self) -> Value {
        let line = self.stdout.trim_end();
        assert!(
            !line.contains('\n'),
            "expected one JSON line, got:\n{}",
            self.stdout
        );
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// One JSON value per stdout line.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }

    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stele failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn fails(self) -> Run {
        assert_ne!(
            self.code, 0,
            "stele should have failed:\nstdout: {}",
            self.stdout
        );
        self
    }
}

fn finish(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs `stele ARGS` in `dir`.
pub fn stele(dir: &Path, args: &[&str]) -> Run {
    stele_unconfirmed(dir, &confirmed(args))
}

/// `args`, with `--yes` when the command signs (it takes `--key`): these
/// tests are scripts, which must say that they mean to sign; the review
/// and its question have tests of their own (`stele_unconfirmed`).
pub fn confirmed<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut args = args.to_vec();
    if args.contains(&"--key") && !args.contains(&"--yes") {
        args.push("--yes");
    }
    args
}

/// Runs `stele ARGS` in `dir` as given, with stdin closed (no terminal).
pub fn stele_unconfirmed(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(args)
        .current_dir(dir)
        .env("USER", "tester")
        .stdin(Stdio::null())
        .output()
        .expect("the stele binary runs");
    finish(output)
}

/// Runs `stele ARGS` in `dir` with `input` on stdin.
pub fn stele_with_stdin(dir: &Path, args: &[&str], input: &str) -> Run {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the stele binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    finish(child.wait_with_output().unwrap())
}

pub fn example_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/zero-trust")
}

/// A scratch directory holding approver keys a, b and c (`a`, `a.pub`, …)
/// and a copy of the example bundle at `bundle/`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

/// The example bundle, approvers a, b, c, 2 of 3, signed by a and b: the
/// genesis every test starts from, offline or on a cluster.
pub const GENESIS_ARGS: &[&str] = &[
    "--bundle",
    "bundle",
    "--approver",
    "a.pub",
    "--approver",
    "b.pub",
    "--approver",
    "c.pub",
    "--threshold",
    "2",
    "--key",
    "a",
    "--key",
    "b",
];

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b", "c"] {
            stele(dir.path(), &["keygen", "--out", name]).ok();
        }
        copy_dir(&example_bundle(), &dir.path().join("bundle"));
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        stele(self.path(), args)
    }

    /// `ledger.l`: genesis from the example bundle, approvers a, b, c, 2 of 3.
    pub fn genesis(&self) -> Value {
        let mut args = vec!["--json", "ledger", "new", "ledger.l"];
        args.extend_from_slice(GENESIS_ARGS);
        self.run(&args).ok().json()
    }

    /// A copy of the example bundle at `name/` with `edit` applied to
    /// `guardrails.cedar`.
    pub fn bundle_variant(&self, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
        let dir = self.file(name);
        copy_dir(&example_bundle(), &dir);
        let path = dir.join("guardrails.cedar");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(&text)).unwrap();
        dir
    }

    /// Appends an update made from a variant of the example bundle (an extra
    /// comment, so its digest is new), signed by a and b.
    pub fn append_update(&self, name: &str) -> Value {
        self.bundle_variant(name, |text| format!("{text}\n// {name}\n"));
        self.run(&[
            "--json", "ledger", "append", "ledger.l", "--bundle", name, "-m", name, "--key", "a",
            "--key", "b",
        ])
        .ok()
        .json()
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.file(name)).unwrap()
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The approver names a version's `--json` trust set declares, sorted.
/// The request lines of the flips a `proposal impact --json` shows.
pub fn flipped_lines(impact: &Value) -> Vec<u64> {
    impact["examples"]
        .as_array()
        .expect("an impact lists its flips")
        .iter()
        .map(|flip| flip["line"].as_u64().unwrap())
        .collect()
}

pub fn approver_names(version: &Value) -> Vec<String> {
    let mut names: Vec<String> = version["trust"]["approvers"]
        .as_array()
        .expect("a trust set with named approvers")
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}
