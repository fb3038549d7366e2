#!/usr/bin/env bash
# A release by hand, signed with the project's static key (keys/release.pub):
#
#   WHARF_RELEASE_KEY=path/to/release.key WHARF_PASSWORD=... scripts/release.sh wharf.toml [--dry-run]
#
# The key may also be env://VAR (PEM in an environment variable). Everything else comes from
# the release config; this script only pins the key and the public key it must verify under.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: scripts/release.sh CONFIG [wharf release flags...]}
shift
: "${WHARF_RELEASE_KEY:?set WHARF_RELEASE_KEY to the release private key (file or env://VAR)}"
cargo build --release --locked --quiet
expected=$(sed -n 's/^    \([0-9a-f]\{64\}\)$/\1/p' keys/README.md)
actual=$(target/release/wharf key fingerprint keys/release.pub)
if [ "$expected" != "$actual" ]; then
    echo "release.sh: keys/release.pub does not match the fingerprint in keys/README.md" >&2
    exit 1
fi
exec target/release/wharf release --config "$config" \
    --set "signing.key=$WHARF_RELEASE_KEY" --set "verify.key=keys/release.pub" "$@"
