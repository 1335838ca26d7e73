#!/usr/bin/env python3
"""An independent implementation of docs/FORMAT.md, written from the document
alone. It prints the golden vector that `crates/ledger/tests/golden/format-v1.json`
holds, so the Rust implementation is checked against a second reading of the
spec. Needs the `cryptography` package.

    python3 docs/format_reference.py > crates/ledger/tests/golden/format-v1.json
"""
import hashlib
import json
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def u64(n):
    return struct.pack(">Q", n)


def u32(n):
    return struct.pack(">I", n)


def length_prefixed(b):
    return u64(len(b)) + b


def tagged(tag, body):
    return hashlib.sha256(tag.encode() + b"\x00" + body).digest()


def bundle_digest(files):
    body = u64(len(files))
    for path in sorted(files, key=lambda p: p.encode()):
        body += length_prefixed(path.encode()) + hashlib.sha256(files[path].encode()).digest()
    return tagged("stele/bundle/v1", body)


KINDS = {"genesis": 1, "update": 2, "rollback": 3, "rotate": 4, "membership": 5}
ROLES = {"voter": 1, "learner": 2}


def canonical_header(h):
    out = u64(h["seq"]) + bytes.fromhex(h["parent_hash"]) + bytes.fromhex(h["bundle_digest"])
    out += bytes([KINDS[h["kind"]["type"]]])
    if h["kind"]["type"] == "rollback":
        out += u64(h["kind"]["to_seq"])
    out += length_prefixed(h["message"].encode()) + length_prefixed(h["author"].encode())
    out += u64(h["created_at"])
    if h["trust"] is None:
        out += b"\x00"
    else:
        keys = h["trust"]["keys"]
        out += b"\x01" + u32(h["trust"]["threshold"]) + u64(len(keys))
        out += b"".join(bytes.fromhex(k) for k in keys)
    # Optional fields: tag, then value, in ascending tag order.
    if h.get("expires_at") is not None:
        out += b"\x01" + u64(h["expires_at"])
    if h["trust"] is not None and "approvers" in h["trust"]:
        out += b"\x02"
        for approver in h["trust"]["approvers"]:
            out += length_prefixed(approver["name"].encode())
            out += length_prefixed(approver.get("contact", "").encode())
    if h.get("members") is not None:
        out += b"\x03" + u64(len(h["members"]))
        for member in h["members"]:
            out += u64(member["id"]) + bytes([ROLES[member["role"]]])
            out += length_prefixed(member["client"].encode())
            out += length_prefixed(member["peer"].encode())
            out += length_prefixed(member.get("region", "").encode())
            out += bytes.fromhex(member["spki_sha256"])
    return out


def approval_message(version_hash):
    return b"stele/approve/v1\x00" + version_hash


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def main():
    seeds = [bytes([n]) * 32 for n in (1, 2, 3)]
    secrets = [Ed25519PrivateKey.from_private_bytes(s) for s in seeds]
    publics = [s.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex() for s in secrets]

    files = {
        "schema.cedarschema": "entity User;\nentity Doc;\naction read appliesTo { principal: User, resource: Doc };\n",
        "policy.cedar": '@id("readers")\npermit(principal, action == Action::"read", resource);\n',
    }
    digest = bundle_digest(files).hex()

    genesis = {
        "seq": 1,
        "parent_hash": "00" * 32,
        "bundle_digest": digest,
        "kind": {"type": "genesis"},
        "message": "golden genesis \u00e9\n\"quoted\"",
        "author": "golden",
        "created_at": 1764288000,
        "trust": {"threshold": 2, "keys": sorted(publics)},
    }
    genesis_bytes = canonical_header(genesis)
    genesis_hash = tagged("stele/version/v1", genesis_bytes)
    genesis_sigs = sorted(
        ({"key": publics[i], "signature": secrets[i].sign(approval_message(genesis_hash)).hex()}
         for i in (0, 1)),
        key=lambda s: s["key"],
    )

    rollback = {
        "seq": 2,
        "parent_hash": genesis_hash.hex(),
        "bundle_digest": digest,
        "kind": {"type": "rollback", "to_seq": 1},
        "message": "restate the genesis policy",
        "author": "golden",
        "created_at": 1764288060,
        "trust": None,
    }
    rollback_bytes = canonical_header(rollback)
    rollback_hash = tagged("stele/version/v1", rollback_bytes)
    rollback_sigs = sorted(
        ({"key": publics[i], "signature": secrets[i].sign(approval_message(rollback_hash)).hex()}
         for i in (2, 0)),
        key=lambda s: s["key"],
    )

    expiring = {
        "seq": 3,
        "parent_hash": rollback_hash.hex(),
        "bundle_digest": digest,
        "kind": {"type": "update"},
        "message": "an update that cannot commit after its expiry",
        "author": "golden",
        "created_at": 1764288120,
        "trust": None,
        "expires_at": 1764892920,
    }
    expiring_bytes = canonical_header(expiring)
    expiring_hash = tagged("stele/version/v1", expiring_bytes)
    expiring_sigs = sorted(
        ({"key": publics[i], "signature": secrets[i].sign(approval_message(expiring_hash)).hex()}
         for i in (1, 2)),
        key=lambda s: s["key"],
    )

    # A rotation to the same keys, now named (contact only where given),
    # by one of its signers.
    names = {publics[0]: "alice", publics[1]: "bob", publics[2]: "carol"}
    contacts = {publics[1]: "bob@example.com"}
    approvers = []
    for key in sorted(publics):
        approver = {"name": names[key]}
        if key in contacts:
            approver["contact"] = contacts[key]
        approvers.append(approver)
    rotate = {
        "seq": 4,
        "parent_hash": expiring_hash.hex(),
        "bundle_digest": digest,
        "kind": {"type": "rotate"},
        "message": "name the approvers",
        "author": "alice",
        "created_at": 1764288180,
        "trust": {"threshold": 2, "keys": sorted(publics), "approvers": approvers},
    }
    rotate_bytes = canonical_header(rotate)
    rotate_hash = tagged("stele/version/v1", rotate_bytes)
    rotate_sigs = sorted(
        ({"key": publics[i], "signature": secrets[i].sign(approval_message(rotate_hash)).hex()}
         for i in (0, 1)),
        key=lambda s: s["key"],
    )

    # The first member set: two voters in two regions and a learner with
    # none, one of them on IPv6, by an approver of the named set.
    membership = {
        "seq": 5,
        "parent_hash": rotate_hash.hex(),
        "bundle_digest": digest,
        "kind": {"type": "membership"},
        "message": "the first member set",
        "author": "bob",
        "created_at": 1764288240,
        "trust": None,
        "members": [
            {"id": 1, "role": "voter", "client": "10.0.0.1:7000", "peer": "10.0.0.1:7100",
             "region": "eu-west", "spki_sha256": hashlib.sha256(b"node 1 spki").hexdigest()},
            {"id": 2, "role": "voter", "client": "[2001:db8::2]:7000", "peer": "[2001:db8::2]:7100",
             "region": "us-east", "spki_sha256": hashlib.sha256(b"node 2 spki").hexdigest()},
            {"id": 7, "role": "learner", "client": "node-7.example:7000", "peer": "node-7.example:7100",
             "spki_sha256": hashlib.sha256(b"node 7 spki").hexdigest()},
        ],
    }
    membership_bytes = canonical_header(membership)
    membership_hash = tagged("stele/version/v1", membership_bytes)
    membership_sigs = sorted(
        ({"key": publics[i], "signature": secrets[i].sign(approval_message(membership_hash)).hex()}
         for i in (1, 2)),
        key=lambda s: s["key"],
    )

    file_list = [{"path": p, "content": files[p]} for p in sorted(files, key=lambda p: p.encode())]
    ledger_file = "".join(
        compact(record) + "\n"
        for record in [
            {"format": "stele-ledger", "format_version": 1},
            {"bundle": {"digest": digest, "files": file_list}},
            {"version": {"header": genesis, "signatures": genesis_sigs}},
            {"version": {"header": rollback, "signatures": rollback_sigs}},
            {"version": {"header": expiring, "signatures": expiring_sigs}},
            {"version": {"header": rotate, "signatures": rotate_sigs}},
            {"version": {"header": membership, "signatures": membership_sigs}},
        ]
    )

    vector = {
        "about": "stele format v1 golden vector (docs/FORMAT.md), produced by docs/format_reference.py",
        "approver_seeds": [s.hex() for s in seeds],
        "approver_keys": publics,
        "bundle_files": file_list,
        "bundle_digest": digest,
        "versions": [
            {
                "header": genesis,
                "canonical_header": genesis_bytes.hex(),
                "hash": genesis_hash.hex(),
                "approval_message": approval_message(genesis_hash).hex(),
                "signatures": genesis_sigs,
                "signed_by_seed_index": [0, 1],
            },
            {
                "header": rollback,
                "canonical_header": rollback_bytes.hex(),
                "hash": rollback_hash.hex(),
                "approval_message": approval_message(rollback_hash).hex(),
                "signatures": rollback_sigs,
                "signed_by_seed_index": [2, 0],
            },
            {
                "header": expiring,
                "canonical_header": expiring_bytes.hex(),
                "hash": expiring_hash.hex(),
                "approval_message": approval_message(expiring_hash).hex(),
                "signatures": expiring_sigs,
                "signed_by_seed_index": [1, 2],
            },
            {
                "header": rotate,
                "canonical_header": rotate_bytes.hex(),
                "hash": rotate_hash.hex(),
                "approval_message": approval_message(rotate_hash).hex(),
                "signatures": rotate_sigs,
                "signed_by_seed_index": [0, 1],
            },
            {
                "header": membership,
                "canonical_header": membership_bytes.hex(),
                "hash": membership_hash.hex(),
                "approval_message": approval_message(membership_hash).hex(),
                "signatures": membership_sigs,
                "signed_by_seed_index": [1, 2],
            },
        ],
        "ledger_file": ledger_file,
    }
    print(json.dumps(vector, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
