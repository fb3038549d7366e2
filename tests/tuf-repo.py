#!/usr/bin/env python3
"""Builds and changes a small TUF repository for wharf's trust-root tests, with python-tuf.

The repository is laid out as Sigstore's public-good one is served: metadata at the top of
DIR (N.root.json, timestamp.json, N.snapshot.json, N.targets.json; consistent snapshots) and
targets under DIR/targets/ named HASH.NAME. The current metadata and the private keys live in
DIR/.work/ so later commands can change the repository.

  tuf-repo.py init DIR --target NAME=FILE ...        root v1, first targets/snapshot/timestamp
  tuf-repo.py publish DIR [--target NAME=FILE ...] [--timestamp-expires SECONDS]
                                                      new targets (when given), snapshot, timestamp
  tuf-repo.py rotate-root DIR                         root v+1 with a new root key, signed by the
                                                      old key and the new one

Every key is ECDSA P-256 (ecdsa-sha2-nistp256), as in Sigstore's repository.
"""

import argparse
import hashlib
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

ROLES = ("root", "targets", "snapshot", "timestamp")
SERIALIZER = JSONSerializer(compact=False)


def now():
    return datetime.now(timezone.utc).replace(microsecond=0)


def work(repo):
    return os.path.join(repo, ".work")


def save_key(repo, name, signer):
    with open(os.path.join(work(repo), "keys", name + ".pem"), "wb") as f:
        f.write(signer.private_bytes)


def load_key(repo, name):
    with open(os.path.join(work(repo), "keys", name + ".pem"), "rb") as f:
        return CryptoSigner(serialization.load_pem_private_key(f.read(), None))


def current_key_name(repo, role):
    with open(os.path.join(work(repo), "keys", role + ".current")) as f:
        return f.read().strip()


def set_current_key(repo, role, name):
    with open(os.path.join(work(repo), "keys", role + ".current"), "w") as f:
        f.write(name)


def load(repo, role):
    return Metadata.from_file(os.path.join(work(repo), role + ".json"))


def store(repo, md):
    md.to_file(os.path.join(work(repo), md.signed.type + ".json"), SERIALIZER)


def publish_file(repo, name, md):
    md.to_file(os.path.join(repo, name), SERIALIZER)


def parse_targets(pairs):
    out = []
    for pair in pairs or []:
        name, _, path = pair.partition("=")
        if not name or not path:
            sys.exit(f"--target wants NAME=FILE, not {pair!r}")
        out.append((name, path))
    return out


def write_targets(repo, targets_md, pairs):
    targets_md.signed.targets = {}
    os.makedirs(os.path.join(repo, "targets"), exist_ok=True)
    for name, path in pairs:
        with open(path, "rb") as f:
            data = f.read()
        target = TargetFile.from_data(name, data, ["sha256"])
        targets_md.signed.targets[name] = target
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(repo, "targets", f"{digest}.{name}"), "wb") as f:
            f.write(data)


def sign(repo, md, role):
    md.signatures.clear()
    md.sign(load_key(repo, current_key_name(repo, role)))


def publish_chain(repo, targets_pairs, timestamp_expires, bump=1):
    """New targets (when pairs are given), snapshot and timestamp, signed and published. The
    first publication (bump 0) keeps the versions at 1."""
    targets = load(repo, "targets")
    if targets_pairs:
        targets.signed.version += bump
        targets.signed.expires = now() + timedelta(days=365)
        write_targets(repo, targets, targets_pairs)
        sign(repo, targets, "targets")
        store(repo, targets)
        publish_file(repo, f"{targets.signed.version}.targets.json", targets)

    snapshot = load(repo, "snapshot")
    snapshot.signed.version += bump
    snapshot.signed.expires = now() + timedelta(days=365)
    snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
    sign(repo, snapshot, "snapshot")
    store(repo, snapshot)
    publish_file(repo, f"{snapshot.signed.version}.snapshot.json", snapshot)

    timestamp = load(repo, "timestamp")
    timestamp.signed.version += bump
    timestamp.signed.expires = now() + timedelta(seconds=timestamp_expires)
    timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
    sign(repo, timestamp, "timestamp")
    store(repo, timestamp)
    publish_file(repo, "timestamp.json", timestamp)


def init(args):
    repo = args.dir
    os.makedirs(os.path.join(work(repo), "keys"), exist_ok=True)
    root = Metadata(Root(expires=now() + timedelta(days=365), consistent_snapshot=True))
    for role in ROLES:
        signer = CryptoSigner.generate_ecdsa()
        name = f"{role}-1"
        save_key(repo, name, signer)
        set_current_key(repo, role, name)
        root.signed.add_key(signer.public_key, role)
    sign(repo, root, "root")
    store(repo, root)
    publish_file(repo, "1.root.json", root)

    store(repo, Metadata(Targets(expires=now())))
    store(repo, Metadata(Snapshot(expires=now())))
    store(repo, Metadata(Timestamp(expires=now())))
    publish_chain(repo, parse_targets(args.target), args.timestamp_expires, bump=0)


def publish(args):
    publish_chain(args.dir, parse_targets(args.target), args.timestamp_expires)


def rotate_root(args):
    repo = args.dir
    root = load(repo, "root")
    old_name = current_key_name(repo, "root")
    old_signer = load_key(repo, old_name)
    new_signer = CryptoSigner.generate_ecdsa()
    new_name = f"root-{root.signed.version + 1}"
    save_key(repo, new_name, new_signer)

    root.signed.revoke_key(old_signer.public_key.keyid, "root")
    root.signed.add_key(new_signer.public_key, "root")
    root.signed.version += 1
    root.signed.expires = now() + timedelta(days=365)
    # The new root must satisfy the threshold of the old root and of itself.
    root.signatures.clear()
    root.sign(old_signer, append=True)
    root.sign(new_signer, append=True)
    set_current_key(repo, "root", new_name)
    store(repo, root)
    publish_file(repo, f"{root.signed.version}.root.json", root)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("init", "publish"):
        p = sub.add_parser(name)
        p.add_argument("dir")
        p.add_argument("--target", action="append", metavar="NAME=FILE")
        p.add_argument(
            "--timestamp-expires",
            type=int,
            default=7 * 86400,
            metavar="SECONDS",
            help="from now; negative for a timestamp that has already expired",
        )
    p = sub.add_parser("rotate-root")
    p.add_argument("dir")
    args = parser.parse_args()
    {"init": init, "publish": publish, "rotate-root": rotate_root}[args.command](args)


if __name__ == "__main__":
    main()
