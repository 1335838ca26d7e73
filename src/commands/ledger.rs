//! `stele ledger new|append|rollback|verify|log|show`: ledger files, offline.

use std::path::Path;

use serde_json::json;
use stele_ledger::{
    Admitted, Approver, Authorship, BundleFiles, Hash, Head, Header, Kind, Ledger, LedgerFileError,
    MemberSet, PublicKey, Reason, Rejection, SecretKey, TrustSet, Version, export, structural_only,
};
use stele_policy::{admission_check, check_ledger_bundles, load_dir};

use super::describe::{Names, files_json, version_json, version_line};
use super::review::{Below, confirm};
use crate::cli::{About, Confirm, LedgerCommand};
use crate::failure::{Code, Failure, Result};
use crate::files::{create_new, load_public_key, load_secret_keys, read_limited, update_locked};
use crate::ledger_files::{
    MAX_LEDGER_FILE_BYTES, author_for, decode_ledger, load_ledger, load_proposal, now_unix_seconds,
};
use crate::output::Output;

pub fn run(out: Output, command: LedgerCommand) -> Result<()> {
    match command {
        LedgerCommand::New {
            ledger,
            proposal,
            bundle,
            approvers,
            contacts,
            threshold,
            members,
            keys,
            confirm,
            message,
            author,
        } => {
            let (version, files) = match proposal {
                Some(path) => {
                    let proposal = load_proposal(&path)?;
                    refuse_expired(&proposal.version)?;
                    let mut version = proposal.version;
                    sign_all(&mut version, &load_secret_keys(&keys)?);
                    (version, proposal.bundle)
                }
                None => {
                    let files = load_dir(bundle.as_deref().expect("clap requires --bundle"))?;
                    let trust = trust_set(&approvers, &contacts, threshold)?;
                    let keys = load_secret_keys(&keys)?;
                    let about = About {
                        message,
                        author,
                        // Written straight into the file: nothing to expire.
                        expires_in: None,
                    };
                    let members = super::membership::genesis_members(&members)?;
                    let header = genesis_header(&files, trust, members, &about, &keys)?;
                    let mut version = Version::unsigned(header);
                    sign_all(&mut version, &keys);
                    (version, files)
                }
            };
            if !keys.is_empty() {
                confirm_here(&confirm, None, &version, &files)?;
            }
            create(out, &ledger, version, files)
        }
        LedgerCommand::Append {
            ledger,
            proposal,
            bundle,
            message,
            author,
            keys,
            confirm,
        } => {
            let keys = load_secret_keys(&keys)?;
            let asked = (!keys.is_empty()).then_some(&confirm);
            match proposal {
                Some(path) => {
                    let proposal = load_proposal(&path)?;
                    refuse_expired(&proposal.version)?;
                    append(out, &ledger, asked, |_| {
                        let mut version = proposal.version;
                        sign_all(&mut version, &keys);
                        Ok((version, proposal.bundle))
                    })
                }
                None => {
                    let files = load_dir(bundle.as_deref().expect("clap requires --bundle"))?;
                    let about = About {
                        message: message.expect("clap requires --message"),
                        author,
                        expires_in: None,
                    };
                    append(out, &ledger, asked, |chain| {
                        let header = next_header(chain, &files, Kind::Update, None, &about, &keys)?;
                        Ok((signed(header, &keys), files))
                    })
                }
            }
        }
        LedgerCommand::Rollback {
            ledger,
            to,
            about,
            signing,
        } => {
            let keys = load_secret_keys(&signing.keys)?;
            append(out, &ledger, Some(&signing.confirm), |chain| {
                let files = rollback_bundle(chain, to)?;
                let kind = Kind::Rollback { to_seq: to };
                let header = next_header(chain, &files, kind, None, &about, &keys)?;
                Ok((signed(header, &keys), files))
            })
        }
        LedgerCommand::Verify {
            ledger,
            genesis,
            contains,
        } => verify(out, &ledger, genesis.as_deref(), &contains),
        LedgerCommand::Log { ledger } => {
            let chain = load_ledger(&ledger)?;
            let names = Names::of(chain.versions());
            for version in chain.versions() {
                out.result(&version_json(version, &names), || {
                    version_line(version, &names)
                });
            }
            Ok(())
        }
        LedgerCommand::Show { ledger, seq } => {
            let chain = load_ledger(&ledger)?;
            let version = chain.version(seq).ok_or_else(|| {
                Failure::new(
                    Code::NotFound,
                    format!(
                        "{}: no version {seq} (head is {})",
                        ledger.display(),
                        chain.head().map_or(0, |h| h.seq)
                    ),
                )
            })?;
            let bundle = chain
                .bundle_at(seq)
                .expect("a verified ledger holds every version's bundle");
            let parent = seq
                .checked_sub(1)
                .and_then(|parent| chain.bundle_at(parent));
            let below = Below::of(chain.versions(), version);
            let (mut value, mut text) = below.subject(version, bundle, parent).render();
            value["files"] = files_json(bundle);
            text.push_str(&format!("\nfiles:\n{}", files_text(bundle)));
            out.result(&value, || text);
            Ok(())
        }
    }
}

/// The trust set `--approver`, `--contact` and `--threshold` declare,
/// every approver named (`NAME=PUB`, or the key file's name: `alice.pub`
/// is alice).
pub fn trust_set(
    approvers: &[std::path::PathBuf],
    contacts: &[String],
    threshold: Option<u32>,
) -> Result<TrustSet> {
    let threshold = threshold.ok_or_else(|| Failure::usage("--threshold M is required"))?;
    let mut contacts_by_name = std::collections::BTreeMap::new();
    for arg in contacts {
        let (name, text) = arg
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--contact {arg:?}: give NAME=TEXT")))?;
        if contacts_by_name.insert(name, text).is_some() {
            return Err(Failure::usage(format!(
                "--contact {name}=… is given twice; give one contact per approver"
            )));
        }
    }
    let mut contacts = contacts_by_name;
    let entries = approvers
        .iter()
        .map(|arg| {
            let (name, path) = approver_arg(arg)?;
            let contact = contacts
                .remove(name.as_str())
                .unwrap_or_default()
                .to_string();
            Ok((load_public_key(&path)?, Approver { name, contact }))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(name) = contacts.keys().next() {
        return Err(Failure::usage(format!(
            "--contact {name}=…: no --approver is named {name:?}"
        )));
    }
    TrustSet::named(entries, threshold).map_err(|e| Failure::usage(format!("trust set: {e}")))
}

/// `NAME=PATH`, or `PATH` named after its file.
fn approver_arg(arg: &Path) -> Result<(String, std::path::PathBuf)> {
    let text = arg.to_string_lossy();
    // A file that exists is a file, "=" in its path or not; a name never
    // holds a path separator.
    if !arg.is_file()
        && let Some((name, path)) = text.split_once('=')
        && !name.contains(std::path::MAIN_SEPARATOR)
    {
        return Ok((name.to_string(), path.into()));
    }
    let name = arg
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Failure::usage(format!(
                "--approver {text:?}: give NAME=PUB or a .pub file named after its approver"
            ))
        })?;
    Ok((name, arg.to_path_buf()))
}

/// What `about` says, by `author`, signed now.
fn authorship(about: &About, author: String) -> Authorship {
    Authorship {
        message: about.message.clone(),
        author,
        created_at: now_unix_seconds(),
    }
}

fn public(keys: &[SecretKey]) -> Vec<PublicKey> {
    keys.iter().map(SecretKey::public_key).collect()
}

/// A proposal past its own expiry is refused here as a cluster refuses
/// it: a ledger file has no clock, so this machine's judges.
fn refuse_expired(version: &Version) -> Result<()> {
    let now_ms = stele_node::system_clock()();
    match version.header.expires_at {
        Some(at) if version.header.expired_at(now_ms) => Err(Failure::new(
            Code::Reason(Reason::ProposalExpired),
            format!("the proposal expired at {at} (Unix seconds): make and sign it again"),
        )),
        _ => Ok(()),
    }
}

/// `header`, expiring as `about` says: rounded up, so that the version
/// has at least that long.
fn expiring(header: Header, about: &About) -> Header {
    match about.expires_in {
        Some(within) => {
            let now_ms = stele_node::system_clock()();
            let within_ms = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
            let at_ms = now_ms.saturating_add(within_ms);
            header.expiring(at_ms.div_ceil(1000))
        }
        None => header,
    }
}

/// The header of a genesis version declaring `trust`, proposed by the
/// holder of `keys` (none: `--author` names who will sign).
pub fn genesis_header(
    files: &BundleFiles,
    trust: TrustSet,
    members: Option<MemberSet>,
    about: &About,
    keys: &[SecretKey],
) -> Result<Header> {
    let author = author_for(&[&trust], &public(keys), about.author.as_deref())?;
    let header = Header::genesis(files.digest(), trust, authorship(about, author));
    let header = match members {
        Some(members) => header.listing(members),
        None => header,
    };
    Ok(expiring(header, about))
}

/// The bundle a rollback to `to_seq` must carry.
pub fn rollback_bundle(chain: &Ledger, to_seq: u64) -> Result<BundleFiles> {
    chain.bundle_at(to_seq).cloned().ok_or_else(|| {
        Failure::from(Rejection::RollbackTargetMissing {
            to_seq,
            head_seq: chain.head().map_or(0, |h| h.seq),
        })
    })
}

/// The head's bundle (what a rotation carries).
pub fn head_bundle(chain: &Ledger) -> Result<BundleFiles> {
    chain
        .head()
        .and_then(|head| chain.bundle_at(head.seq))
        .cloned()
        .ok_or_else(|| Failure::new(Code::EmptyLedger, "the ledger has no genesis yet"))
}

/// The header of the next version on `chain`'s head, proposed by the
/// holder of `keys`; a rotation's `declares` its new trust set.
pub fn next_header(
    chain: &Ledger,
    files: &BundleFiles,
    kind: Kind,
    declares: Option<TrustSet>,
    about: &About,
    keys: &[SecretKey],
) -> Result<Header> {
    let head = chain
        .head()
        .ok_or_else(|| Failure::new(Code::EmptyLedger, "the ledger has no genesis yet"))?;
    let sets: Vec<&TrustSet> = chain.trust().into_iter().chain(declares.as_ref()).collect();
    let author = author_for(&sets, &public(keys), about.author.as_deref())?;
    let header = header_on(head, files, kind, about, author);
    Ok(match declares {
        Some(trust) => header.declaring(trust),
        None => header,
    })
}

/// The header of a version whose parent is `head`, by `author`, created now.
pub fn header_on(
    head: Head,
    files: &BundleFiles,
    kind: Kind,
    about: &About,
    author: String,
) -> Header {
    expiring(
        Header::after(head, files.digest(), kind, authorship(about, author)),
        about,
    )
}

fn sign_all(version: &mut Version, keys: &[SecretKey]) {
    for key in keys {
        version.sign(key);
    }
}

pub fn signed(header: Header, keys: &[SecretKey]) -> Version {
    let mut version = Version::unsigned(header);
    sign_all(&mut version, keys);
    version
}

fn create(out: Output, path: &Path, version: Version, files: BundleFiles) -> Result<()> {
    if path.exists() {
        return Err(Failure::new(
            Code::Exists,
            format!(
                "{} already exists; a ledger is never overwritten",
                path.display()
            ),
        ));
    }
    let mut ledger = Ledger::new();
    let admitted = ledger.submit(version, files, &admission_check)?;
    create_new(path, export::encode(&ledger).as_bytes(), 0o644)?;
    print_admitted(out, admitted);
    Ok(())
}

/// Appends the version `build` makes from the current chain, under the
/// file's lock. A refused version leaves the file untouched.
/// Appends what `build` makes on the ledger; when it signs here (`asked`),
/// after the signer has reviewed it against the ledger.
fn append(
    out: Output,
    path: &Path,
    asked: Option<&Confirm>,
    build: impl FnOnce(&Ledger) -> Result<(Version, BundleFiles)>,
) -> Result<()> {
    let admitted = update_locked(path, MAX_LEDGER_FILE_BYTES, |bytes| {
        let mut ledger = decode_ledger(path, bytes)?;
        let (version, files) = build(&ledger)?;
        if let Some(asked) = asked {
            confirm_here(asked, Some(&ledger), &version, &files)?;
        }
        let admitted = ledger
            .submit(version, files, &admission_check)
            .map_err(|rejection| {
                let hint = match &rejection {
                    Rejection::UnknownKey { key } => format!(
                        "; a signature by a key outside the trust set never counts and is not accepted: remove it with `stele proposal unsign FILE --approver {key}`"
                    ),
                    _ => String::new(),
                };
                let mut failure = Failure::from(rejection);
                failure.message.push_str(&hint);
                failure
            })?;
        let replacement = match admitted {
            Admitted::Appended { .. } => Some(export::encode(&ledger).into_bytes()),
            Admitted::AlreadyCommitted { .. } => None,
        };
        Ok((replacement, admitted))
    })?;
    print_admitted(out, admitted);
    Ok(())
}

/// Shows what is signed here, against the ledger it extends, and asks.
fn confirm_here(
    asked: &Confirm,
    chain: Option<&Ledger>,
    version: &Version,
    bundle: &BundleFiles,
) -> Result<()> {
    let versions = chain.map_or(&[][..], Ledger::versions);
    let parent = chain.and_then(|chain| {
        let seq = chain.state().seq_of(&version.header.parent_hash)?;
        chain.bundle_at(seq)
    });
    let below = Below::of(versions, version);
    let subject = below.subject(version, bundle, parent);
    let strangers = subject.strangers();
    if let Some(key) = strangers.first() {
        return Err(Failure::new(
            Code::Reason(Reason::UnknownKey),
            format!(
                "the version carries a signature by {key}, which is not an approver of the trust set in force: it never counts, and the version cannot be appended with it; nothing signed. Remove it with `stele proposal unsign FILE --approver {key}`, or sign with an approver's key"
            ),
        ));
    }
    let (_, review) = subject.render();
    confirm(asked, version, &review, false)
}

/// One line per bundle file: its path, size and digest.
fn files_text(bundle: &BundleFiles) -> String {
    bundle
        .files()
        .map(|(path, content)| {
            format!(
                "  {path} ({} bytes, sha256 {})",
                content.len(),
                stele_ledger::Hash::of_bytes(content.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_admitted(out: Output, admitted: Admitted) {
    match admitted {
        Admitted::Appended { seq, hash } => out.result(
            &json!({ "status": "appended", "seq": seq, "hash": hash }),
            || format!("appended seq {seq} ({hash})"),
        ),
        Admitted::AlreadyCommitted { seq } => out.result(
            &json!({ "status": "already_committed", "seq": seq }),
            || format!("already committed at seq {seq}; nothing changed"),
        ),
    }
}

fn verify(out: Output, path: &Path, genesis: Option<&str>, contains: &[String]) -> Result<()> {
    let parse_hash = |flag: &str, text: &str| -> Result<Hash> {
        text.parse()
            .map_err(|e| Failure::usage(format!("{flag} {text:?} is not a version hash: {e}")))
    };
    let start = match genesis {
        None => Ledger::new(),
        Some(text) => Ledger::pinned_to(parse_hash("--genesis", text)?),
    };
    let known: Vec<Hash> = contains
        .iter()
        .map(|text| parse_hash("--contains", text))
        .collect::<Result<_>>()?;
    let bytes = read_limited(path, MAX_LEDGER_FILE_BYTES)?;
    let named = |failure: Failure| {
        Failure {
            message: format!("{}: {}", path.display(), failure.message),
            ..failure
        }
        .with("ok", false)
    };
    // Hashes and signatures first, so an unsigned file never gets Cedar to
    // work; then every bundle compiled and tested, on all cores.
    let ledger = export::read(&bytes, start, &structural_only)
        .and_then(|ledger| {
            check_ledger_bundles(&ledger, 0).map_err(LedgerFileError::Chain)?;
            Ok(ledger)
        })
        .map_err(|error| named(error.into()))?;
    let Some(head) = ledger.head() else {
        return Err(named(Failure::new(
            Code::EmptyLedger,
            "the ledger holds no version, not even a genesis",
        )));
    };
    for hash in &known {
        if ledger.state().seq_of(hash).is_none() {
            return Err(named(
                Failure::new(
                    Code::MissingVersion,
                    format!(
                        "version {hash} is not in the ledger (head is seq {}): it was cut short or replaced",
                        head.seq
                    ),
                )
                .with("head", json!({ "seq": head.seq, "hash": head.hash })),
            ));
        }
    }
    let value = json!({ "ok": true, "head": { "seq": head.seq, "hash": head.hash } });
    out.result(&value, || {
        format!(
            "ok: {} version(s) verify; head is seq {} ({})",
            head.seq, head.seq, head.hash
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approver_is_a_name_and_a_key_or_a_file_named_after_it() {
        let dir = tempfile::tempdir().unwrap();
        // A key file whose directory has "=" in its name is still a file.
        let odd = dir.path().join("keys=2026").join("alice.pub");
        std::fs::create_dir_all(odd.parent().unwrap()).unwrap();
        std::fs::write(&odd, "key").unwrap();
        assert_eq!(
            approver_arg(&odd).unwrap(),
            ("alice".to_string(), odd.clone())
        );
        assert_eq!(
            approver_arg(Path::new("bob=keys/b.pub")).unwrap(),
            ("bob".to_string(), "keys/b.pub".into())
        );
        assert_eq!(approver_arg(Path::new("carol.pub")).unwrap().0, "carol");
    }
}
