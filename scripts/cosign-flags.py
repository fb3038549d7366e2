#!/usr/bin/env python3
"""How many of cosign's flags wharf accepts, per verb.

Reads `cosign VERB --help` (the "Flags:" list) and asks wharf's own parser about each flag:
`wharf VERB --FLAG=1 --help` is refused with "unexpected argument" only when wharf does not
know the flag (any other answer, including a value it does not like, means the flag exists).
Prints a Markdown table and, per verb, the flags wharf refuses with the reason listed below
(REASONS); a refused flag without a reason is marked "(no reason recorded)".

    scripts/cosign-flags.py [--cosign PATH] [--wharf PATH]

Both binaries default to the ones on PATH (cosign 2.5 as scripts/install-test-deps.sh
unpacks it; wharf from `cargo build`, target/debug/wharf).
"""

import argparse
import re
import shutil
import subprocess
import sys

VERBS = [
    "sign",
    "verify",
    "attest",
    "verify-attestation",
    "copy",
    "download signature",
    "download attestation",
    "download sbom",
    "tree",
    "public-key",
    "generate-key-pair",
]

# Why wharf refuses a cosign flag on purpose, grouped by reason.
_HARDWARE = "hardware tokens and KMS keys are not supported: keys are files or env://VAR"
_K8S = "no Kubernetes keychain or Secret keys: credentials come from the Docker/podman config"
_CHAIN = (
    "custom certificate chains and bring-your-own certificates are not supported: keyless "
    "certificates chain to the trusted root (--trusted-root)"
)
_TSA = "RFC 3161 timestamping of image signatures is not supported yet (verify-blob reads them)"
_OIDC = (
    "interactive OIDC flows are not supported: wharf signs in CI with an ambient or given "
    "identity token (--identity-token, SIGSTORE_ID_TOKEN)"
)
_DEPRECATED = "deprecated in cosign"
_LOCAL = "cosign save/load layouts: wharf reads OCI layouts as oci:DIR instead"
_OUTPUT = "wharf prints to stdout (redirect it), with --output json for scripts"
_NOT_CHECKED = (
    "turning checks off is refused: wharf always checks the claims against the digest"
)
_PREFIX = "custom attachment tag prefixes are not supported"
_CERT_OUT = "writing the signing certificate or signature to files is not supported for images"
_TLOG = "Rekor v1 is the only log wharf writes; its entries are checked offline"
_OCI11 = "OCI 1.1 referrers are chosen with --bundle-format bundle|both"
_RECORD = "signing time recording is not supported"

_TLS = (
    "registry TLS client certificates and custom CAs are not supported: the system's roots, "
    "or --insecure-registry HOST"
)
_DETACHED = "signatures are read from the registry only (no detached signature files)"

REASONS = {
    "registry-cacert": _TLS,
    "registry-client-cert": _TLS,
    "registry-client-key": _TLS,
    "registry-server-name": _TLS,
    "registry-referrers-mode": _OCI11,
    "sct": _DETACHED,
    "signature": _DETACHED,
    "kms": _HARDWARE,
    "upload": "a signature that is not stored is not supported (nor written to a file)",
    "signature-digest-algorithm": "wharf signs and verifies with SHA-256 (P-256 keys) only",
    "rekor-entry-type": "wharf logs attestations as dsse entries, the type cosign 3 uses",
    "policy": (
        "CUE and Rego policies are not supported: `wharf policy` writes admission policies "
        "for policy-controller and Kyverno"
    ),
    "annotations": (
        "verify: checking signed annotations is not supported (sign and attest accept them)"
    ),
    "recursive": (
        "attest: an SBOM or provenance describes one platform's image; "
        "--platform names it"
    ),
    "sk": _HARDWARE,
    "slot": _HARDWARE,
    "k8s-keychain": _K8S,
    "certificate": _CHAIN,
    "certificate-chain": _CHAIN,
    "ca-roots": _CHAIN,
    "ca-intermediates": _CHAIN,
    "timestamp-server-url": _TSA,
    "timestamp-client-cacert": _TSA,
    "timestamp-client-cert": _TSA,
    "timestamp-client-key": _TSA,
    "timestamp-server-name": _TSA,
    "timestamp-certificate-chain": _TSA,
    "use-signed-timestamps": _TSA,
    "rfc3161-timestamp": _TSA,
    "oidc-client-id": _OIDC,
    "oidc-client-secret-file": _OIDC,
    "oidc-disable-ambient-providers": _OIDC,
    "oidc-issuer": _OIDC,
    "oidc-provider": _OIDC,
    "oidc-redirect-url": _OIDC,
    "fulcio-auth-flow": _OIDC,
    "issue-certificate": _OIDC,
    "identity-token-audience": _OIDC,
    "attachment": _DEPRECATED,
    "sig-only": _DEPRECATED,
    "no-upload": _DEPRECATED,
    "payload": "signing a prepared payload is not supported: wharf builds the payload",
    "local-image": _LOCAL,
    "output-file": _OUTPUT,
    "output-certificate": _CERT_OUT,
    "output-payload": _CERT_OUT,
    "output-signature": _CERT_OUT,
    "check-claims": _NOT_CHECKED,
    "attachment-tag-prefix": _PREFIX,
    "registry-token": (
        "tokens never go in argv: the Docker or podman config, or --registry-auth-file"
    ),
    "registry-password": (
        "passwords never go in argv: --registry-password-stdin or WHARF_REGISTRY_PASSWORD"
    ),
    "max-workers": "wharf's -j/--jobs sets concurrency",
    "experimental-oci11": _OCI11,
    "new-bundle-format": _OCI11,
    "record-creation-timestamp": _RECORD,
    "private-infrastructure": _TLOG,
    "signing-config": _TLOG,
    "use-signing-config": _TLOG,
    "verbose": "wharf's errors are one line; --quiet turns the rest off",
    "timeout": "no overall deadline: every registry request has its own time limit",
    "sign-container-identity": "the signed docker-reference is always the image's repository",
    "offline": "wharf verifies image signatures offline always",
    "max-certificate-chain-len": _CHAIN,
    "bundle": "bundles of images live in the registry, not in files",
    "no-tlog-upload": _DEPRECATED,
    "output": "wharf's --output takes text or json",
}

FLAG = re.compile(r"^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)(?:=|\s|:)")


def cosign_flags(cosign, verb):
    out = subprocess.run(
        [cosign, *verb.split(), "--help"], capture_output=True, text=True, check=True
    ).stdout
    flags = []
    in_flags = False
    for line in out.splitlines():
        if line.strip() in ("Flags:", "Global Flags:"):
            in_flags = True
            continue
        if in_flags:
            m = FLAG.match(line)
            if m and m.group(1) != "help":
                flags.append(m.group(1))
    return sorted(set(flags))


def wharf_accepts(wharf, verb, flag):
    out = subprocess.run(
        [wharf, *verb.split(), f"--{flag}=1", "--help"],
        capture_output=True,
        text=True,
    )
    return "unexpected argument" not in out.stderr and "unrecognized subcommand" not in out.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cosign", default=shutil.which("cosign"))
    parser.add_argument("--wharf", default=shutil.which("wharf") or "target/debug/wharf")
    args = parser.parse_args()
    if not args.cosign:
        sys.exit("cosign not found: run scripts/install-test-deps.sh and put its bin on PATH")

    rows = []
    refused = {}
    for verb in VERBS:
        flags = cosign_flags(args.cosign, verb)
        accepted = [f for f in flags if wharf_accepts(args.wharf, verb, f)]
        rows.append((verb, len(flags), len(accepted)))
        refused[verb] = [f for f in flags if f not in accepted]

    print("| cosign verb | cosign 2.5 flags | accepted by wharf | refused |")
    print("| --- | ---: | ---: | ---: |")
    for verb, total, ok in rows:
        print(f"| `{verb}` | {total} | {ok} | {total - ok} |")
    total = sum(r[1] for r in rows)
    ok = sum(r[2] for r in rows)
    print(f"| all | {total} | {ok} | {total - ok} |")
    print()
    by_reason = {}
    for verb, flags in refused.items():
        for f in flags:
            reason = REASONS.get(f) or "(no reason recorded)"
            by_reason.setdefault(reason, {}).setdefault(f, []).append(verb)
    print("Refused on purpose, by reason:")
    print()
    for reason, flags in sorted(by_reason.items()):
        names = ", ".join(f"`--{f}`" for f in sorted(flags))
        print(f"- {reason}: {names}")


if __name__ == "__main__":
    main()
