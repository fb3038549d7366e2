#!/usr/bin/env bash
# The main job, end to end, with no registry and no network: release the example image
# (examples/hello, two platforms) into OCI layout directories under ./out, the way a release
# job publishes to a registry: push by digest, sign every manifest, attest an SBOM per
# platform, verify, and only then tag; then mirror to a second layout and verify there.
# Signs with a throwaway example key generated under ./out (password "example").
set -euo pipefail
cd "$(dirname "$0")/.."
out=${WHARF_EXAMPLE_OUT:-out}
cargo build --release --quiet
wharf=target/release/wharf
rm -rf "$out" && mkdir -p "$out"
export WHARF_PASSWORD=example

echo "== key: a throwaway example key pair ($out/example.key, $out/example.pub)"
$wharf -q key generate --output-key-prefix "$out/example"
echo "   fingerprint: $($wharf key fingerprint "$out/example.pub")"

echo "== release examples/hello as examples/wharf.toml says (push, sign, attest, verify, tag, mirror)"
# examples/wharf.toml writes under out/; point it at $out instead when that was changed.
export WHARF_CFG_REPOSITORY="oci:$out/release"
export WHARF_CFG_SIGNING__KEY="$out/example.key"
export WHARF_CFG_VERIFY__KEY="$out/example.pub"
export WHARF_CFG_MIRROR="[{destination=\"oci:$out/mirror\"}]"
$wharf release --config examples/wharf.toml

echo
echo "Done. Verify the release, and its air-gapped mirror, with:"
echo "  $wharf verify --key $out/example.pub --recursive --insecure-ignore-tlog oci:$out/release:v1"
echo "  $wharf verify-attestation --key $out/example.pub --recursive --type cyclonedx --insecure-ignore-tlog oci:$out/mirror:v1"
