#!/usr/bin/env bash
# Install everything wharf's test suite needs, idempotently.
#
#  * Debian packages (from the machine's configured bookworm sources):
#      docker-registry skopeo apache2-utils jq time hyperfine openssl ca-certificates
#      binutils groff-base (renders the generated manual pages) man-db (`wharf man | man -l -`)
#  * cosign and oras: not in bookworm, so they are taken from Debian trixie.
#    A trixie apt source (pinned at priority 1, so nothing is ever installed or
#    upgraded from it by accident) is added next to the machine's own source,
#    the two .debs are fetched with `apt-get download` and unpacked with
#    `dpkg -x` into ${WHARF_TOOLS_DIR:-$HOME/.cache/wharf/tools}; nothing from
#    trixie is installed into the system.
#
# Progress goes to stderr. The only line printed on stdout is the directory to
# prepend to PATH ($WHARF_TOOLS_DIR/usr/bin).
#
# When everything is already present this does no apt-get call at all.
set -euo pipefail

APT_PACKAGES=(docker-registry skopeo apache2-utils jq time hyperfine openssl ca-certificates binutils groff-base man-db)
TOOL_PACKAGES=(cosign oras)

WHARF_TOOLS_DIR="${WHARF_TOOLS_DIR:-${HOME:-/root}/.cache/wharf/tools}"
TOOLS_BIN="$WHARF_TOOLS_DIR/usr/bin"

TRIXIE_SOURCES=/etc/apt/sources.list.d/wharf-trixie.sources
TRIXIE_PREFS=/etc/apt/preferences.d/wharf-trixie

log() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Run a command as root (directly, or through sudo).
if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
    as_root() { sudo -n "$@" || sudo "$@"; }
else
    as_root() { die "need root for: $* (not root and no sudo)"; }
fi

apt_get() {
    # Wait for a concurrent apt/dpkg instead of failing on its lock.
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=300 "$@" >&2 </dev/null
}

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

tools_ok() {
    local t
    for t in "${TOOL_PACKAGES[@]}"; do
        [ -x "$TOOLS_BIN/$t" ] || return 1
        "$TOOLS_BIN/$t" version >/dev/null 2>&1 || return 1
    done
}

# Print the deb822 stanza for trixie, derived from the machine's own source.
trixie_stanza() {
    local deb822=/etc/apt/sources.list.d/debian.sources
    if [ -r "$deb822" ]; then
        # First stanza whose Types include "deb"; keep its fields and comment
        # lines, force Types: deb and Suites: trixie (dropping any
        # continuation lines of the replaced fields).
        awk '
            function flush() {
                if (n > 0 && isdeb && !done) {
                    for (i = 1; i <= n; i++) print buf[i]
                    done = 1
                }
                n = 0; isdeb = 0; skip = 0
            }
            /^[ \t]*$/ { flush(); next }
            done { next }
            /^#/ { buf[++n] = $0; next }
            /^[ \t]/ { if (!skip) buf[++n] = $0; next }
            {
                skip = 0
                field = tolower($0); sub(/:.*/, "", field)
                if (field == "types") {
                    if ($0 ~ /[: \t]deb([ \t]|$)/) isdeb = 1
                    buf[++n] = "Types: deb"; skip = 1; next
                }
                if (field == "suites") { buf[++n] = "Suites: trixie"; skip = 1; next }
                if (field == "enabled") { skip = 1; next }
                buf[++n] = $0
            }
            END { flush(); if (!done) exit 1 }
        ' "$deb822" && return 0
        log "no usable stanza in $deb822; trying /etc/apt/sources.list"
    fi
    local list=/etc/apt/sources.list
    [ -r "$list" ] || die "no apt source found (neither $deb822 nor $list)"
    # First "deb [opts] URI suite components..." line, converted to deb822.
    awk '
        $1 == "deb" {
            opts = ""; i = 2
            if ($2 ~ /^\[/) {
                while (i <= NF) {
                    w = $i; i++
                    gsub(/[\[\]]/, "", w)
                    if (w != "") opts = opts " " w
                    if ($(i-1) ~ /\]$/) break
                }
            }
            uri = $i; i++
            i++    # suite, replaced by trixie
            comps = ""
            for (; i <= NF; i++) { if ($i ~ /^#/) break; comps = comps (comps == "" ? "" : " ") $i }
            print "Types: deb"
            print "URIs: " uri
            print "Suites: trixie"
            print "Components: " (comps == "" ? "main" : comps)
            m = split(opts, o, " ")
            for (k = 1; k <= m; k++) {
                split(o[k], kv, "=")
                key = tolower(kv[1]); val = substr(o[k], length(kv[1]) + 2)
                gsub(/,/, " ", val)
                if (key == "signed-by") print "Signed-By: " val
                else if (key == "arch") print "Architectures: " val
                else if (key == "trusted") print "Trusted: " val
            }
            found = 1
            exit
        }
        END { if (!found) exit 1 }
    ' "$list" || die "no deb line in $list"
}

# Write a root-owned file only when its content differs. Returns 0 if written.
write_if_changed() {
    local path=$1 content=$2
    if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
        return 1
    fi
    printf '%s\n' "$content" | as_root tee "$path" >/dev/null
    log "wrote $path"
    return 0
}

ensure_trixie_source() {
    local stanza
    stanza=$(trixie_stanza)
    write_if_changed "$TRIXIE_SOURCES" "# Added by wharf scripts/install-test-deps.sh: cosign and oras are
# fetched from trixie with 'apt-get download' (never installed).
$stanza" || true
    write_if_changed "$TRIXIE_PREFS" "# Added by wharf scripts/install-test-deps.sh: never install or
# upgrade anything from trixie unless explicitly asked for.
Package: *
Pin: release n=trixie
Pin-Priority: 1" || true
}

fetch_tools() {
    local tmp deb t debs
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/wharf-tools.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    log "downloading ${TOOL_PACKAGES[*]} from trixie"
    # apt-get download needs no root. As root, apt would drop to the _apt user,
    # which cannot write into our private temp dir: keep it as root instead.
    local sandbox=()
    [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$tmp" && apt-get -q "${sandbox[@]}" download "${TOOL_PACKAGES[@]/%//trixie}" >&2 </dev/null) \
        || die "apt-get download ${TOOL_PACKAGES[*]} failed"
    mkdir -p "$WHARF_TOOLS_DIR"
    for t in "${TOOL_PACKAGES[@]}"; do
        debs=("$tmp/${t}"_*.deb)
        deb=${debs[0]}
        [ -f "$deb" ] || die "no .deb downloaded for $t"
        log "unpacking $(basename "$deb") into $WHARF_TOOLS_DIR"
        dpkg -x "$deb" "$WHARF_TOOLS_DIR"
    done
    rm -rf "$tmp"
    trap - EXIT
}

# Node packages (the loopback Sigstore stand-in) and Python packages (independent validators).
ensure_node_and_python_deps() {
    local repo standin
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    standin="$repo/tests/sigstore-stand-in"
    if [ -f "$standin/package-lock.json" ]; then
        if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
            log "installing nodejs npm"
            apt_get -qq update && apt_get -q -y --no-install-recommends install nodejs npm \
                || die "apt-get install nodejs npm failed"
        fi
        # npm ci only when the lock file changed since the last install.
        if [ ! -f "$standin/node_modules/.package-lock.json" ] \
            || [ "$standin/package-lock.json" -nt "$standin/node_modules/.package-lock.json" ]; then
            log "npm ci (tests/sigstore-stand-in)"
            npm ci --prefix "$standin" --no-audit --no-fund >&2 </dev/null || die "npm ci failed"
        fi
    fi
    # jsonschema validates generated SBOMs against the official CycloneDX schema, which
    # cyclonedx-python-lib ships; format-nongpl adds the date-time/iri format checkers.
    # sigstore (sigstore-python) verifies wharf's Sigstore bundles independently.
    # pyyaml parses the generated admission policies and the workflow files.
    # tuf (python-tuf) builds the TUF repositories the trust-root tests serve (tests/tuf-repo.py).
    if ! python3 -c 'import jsonschema, cyclonedx, rfc3339_validator, sigstore, yaml, tuf' 2>/dev/null; then
        log "pip install jsonschema cyclonedx-python-lib sigstore pyyaml tuf"
        python3 -m pip install -q --root-user-action=ignore 'cyclonedx-python-lib>=7,<12' \
            'jsonschema[format-nongpl]>=4.18' 'sigstore>=4,<5' 'pyyaml>=6' 'tuf>=5,<8' >&2 </dev/null \
            || die "pip install failed"
    fi
    # zizmor audits the workflows and action.yml (offline) for GitHub Actions pitfalls.
    if ! command -v zizmor >/dev/null 2>&1; then
        log "pip install zizmor"
        python3 -m pip install -q --root-user-action=ignore 'zizmor>=1.32,<2' >&2 </dev/null \
            || die "pip install zizmor failed"
        command -v zizmor >/dev/null 2>&1 || die "zizmor is not on PATH after pip install"
    fi
}

# ---------------------------------------------------------------------------

missing=()
for p in "${APT_PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done
need_tools=0
tools_ok || need_tools=1

ensure_node_and_python_deps

if [ ${#missing[@]} -eq 0 ] && [ $need_tools -eq 0 ]; then
    log "all present (${APT_PACKAGES[*]} ${TOOL_PACKAGES[*]})"
    printf '%s\n' "$TOOLS_BIN"
    exit 0
fi

if [ $need_tools -eq 1 ]; then
    ensure_trixie_source
fi

log "apt-get update"
apt_get -qq update || die "apt-get update failed"

if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_get -q -y --no-install-recommends install "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
fi

if [ $need_tools -eq 1 ]; then
    fetch_tools
    for t in "${TOOL_PACKAGES[@]}"; do
        "$TOOLS_BIN/$t" version >/dev/null 2>&1 \
            || die "$TOOLS_BIN/$t does not run after unpacking"
    done
fi

for p in "${APT_PACKAGES[@]}"; do
    is_installed "$p" || die "$p is still not installed"
done
log "done"
printf '%s\n' "$TOOLS_BIN"
