#!/usr/bin/env bash
# wharf's test command: installs the test dependencies (Debian packages, plus
# cosign and oras unpacked from Debian trixie into $WHARF_TOOLS_DIR), puts them
# on PATH and runs `cargo test --locked` with any extra arguments passed along.
#
#   scripts/test.sh                 # whole suite
#   scripts/test.sh --test e2e      # one integration test target
#
# The exit code is cargo's.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export WHARF_TOOLS_DIR="${WHARF_TOOLS_DIR:-${HOME:-/root}/.cache/wharf/tools}"
tools_bin="$(bash scripts/install-test-deps.sh)"
export PATH="$tools_bin:$PATH"

echo "test.sh: tool versions:" >&2
printf '  cosign %s\n' "$(cosign version --json 2>/dev/null | jq -r '.gitVersion + " (" + .goVersion + ")"')" >&2
printf '  oras %s\n' "$(oras version | head -n1 | awk '{print $2}')" >&2
printf '  %s\n' "$(skopeo --version)" >&2
printf '  %s\n' "$(docker-registry --version)" >&2

exec cargo test --locked "$@"
