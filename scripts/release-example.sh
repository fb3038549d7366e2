#!/usr/bin/env bash
# The main job, end to end, with no registry and no network: publish the example image
# (examples/hello, two platforms) into OCI layout directories under ./out, the way a release
# job publishes to a registry: push by digest, sign every manifest, verify, and only then tag.
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

echo "== push examples/hello to oci:$out/release, by digest (no tag yet)"
$wharf push examples/hello:v1 "oci:$out/release" --output json > "$out/push.json"
digest=$(sed -n 's/^  "digest": "\(sha256:[0-9a-f]*\)",$/\1/p' "$out/push.json" | head -n 1)
echo "   index digest: $digest"

echo "== sign the index and every platform's manifest"
$wharf sign --key "$out/example.key" --recursive --tlog-upload=false "oci:$out/release@$digest"

echo "== verify before tagging (fail-closed)"
$wharf verify --key "$out/example.pub" --recursive --insecure-ignore-tlog "oci:$out/release@$digest" > /dev/null

echo "== tag v1, now that everything is signed"
$wharf -q push examples/hello:v1 "oci:$out/release" --tag v1

echo
echo "Done. Verify the release with:"
echo "  $wharf verify --key $out/example.pub --recursive --insecure-ignore-tlog oci:$out/release:v1"
