#!/usr/bin/env bash
# wharf benchmarks against other tools, on a local docker-registry (loopback, plain HTTP).
#
#   scripts/bench.sh push        # wharf push vs skopeo copy vs oras cp
#
# Environment:
#   BENCH_RUNS   runs per tool (default 5); the table shows medians
#   BENCH_DIR    work directory (default target/bench): generated layouts are kept there
#                (content is deterministic, so they are reused), registry storage is
#                created there per invocation and removed at exit
#
# Each subcommand is a function `cmd_<name>`; shared pieces (tool setup, release build,
# layout generator, registry, measuring, table) are functions below, so `sign` and
# `mirror` can be added the same way.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH_RUNS=${BENCH_RUNS:-5}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
MiB=$((1024 * 1024))

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- cleanup stack: functions push commands, run last-in first-out at exit -------------

CLEANUPS=()
on_exit() {
    local i
    for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUPS[i]}" || true
    done
}
trap on_exit EXIT
trap 'exit 130' INT TERM
at_exit() { CLEANUPS+=("$1"); }

# --- tools -----------------------------------------------------------------------------

setup_tools() {
    export WHARF_TOOLS_DIR="${WHARF_TOOLS_DIR:-${HOME:-/root}/.cache/wharf/tools}"
    local tools_bin
    tools_bin="$(bash scripts/install-test-deps.sh)"
    export PATH="$tools_bin:$PATH"
    local t
    for t in docker-registry skopeo python3; do
        command -v "$t" >/dev/null || die "$t not found"
    done
    [ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) not found"
}

build_wharf() {
    log "cargo build --release"
    cargo build --release --locked --quiet >&2
    WHARF="$ROOT/target/release/wharf"
    [ -x "$WHARF" ] || die "no $WHARF after the build"
}

# --- layouts ---------------------------------------------------------------------------

# gen_layout DIR REF LAYER_MIB LAYERS_PER_PLATFORM PLATFORM...
# Writes an OCI image layout (index over one image per platform; a single image manifest
# when one platform is given) whose layers are deterministic pseudo-random bytes (not
# real tarballs: no tool here looks inside). Reuses DIR when it was generated with the
# same arguments.
gen_layout() {
    local dir=$1
    local stamp="$*"
    if [ -f "$dir/.bench-stamp" ] && [ "$(cat "$dir/.bench-stamp")" = "$stamp" ]; then
        log "reusing layout $dir"
        return
    fi
    log "generating layout $dir ($3 MiB x $4 layers x $(($# - 4)) platforms)"
    rm -rf "$dir"
    python3 - "$@" <<'PY'
import hashlib, json, os, random, sys

dir_, ref, layer_mib, per_platform = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
platforms = sys.argv[5:]
blobs = os.path.join(dir_, "blobs", "sha256")
os.makedirs(blobs)

def put(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}

def put_random(seed, size):
    rng, h = random.Random(seed), hashlib.sha256()
    tmp = os.path.join(blobs, ".tmp")
    with open(tmp, "wb") as f:
        left = size
        while left:
            chunk = rng.randbytes(min(left, 1 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    os.rename(tmp, os.path.join(blobs, h.hexdigest()))
    return {"digest": "sha256:" + h.hexdigest(), "size": size}

def dump(obj):
    return json.dumps(obj, indent=2).encode()

manifests = []
for p_index, platform in enumerate(platforms):
    os_, arch, *variant = platform.split("/")
    layers = [
        dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip",
             **put_random(1000 * p_index + l_index + 1, layer_mib << 20))
        for l_index in range(per_platform)
    ]
    plat = {"architecture": arch, "os": os_}
    if variant:
        plat["variant"] = variant[0]
    config = dict(plat, created="2024-01-01T00:00:00Z", config={},
                  rootfs={"type": "layers", "diff_ids": [l["digest"] for l in layers]})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **put(dump(config))),
        "layers": layers,
    }
    manifests.append(dict(mediaType=manifest["mediaType"], **put(dump(manifest)), platform=plat))

if len(manifests) == 1:
    root = manifests[0]
    del root["platform"]
else:
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}
    root = dict(mediaType=index["mediaType"], **put(dump(index)))
root["annotations"] = {"org.opencontainers.image.ref.name": ref}
with open(os.path.join(dir_, "index.json"), "wb") as f:
    f.write(dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": [root]}))
with open(os.path.join(dir_, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
PY
    printf '%s' "$stamp" >"$dir/.bench-stamp"
}

# --- registry --------------------------------------------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_registry: starts docker-registry on a free loopback port with fresh storage under
# BENCH_DIR; sets REG (HOST:PORT). Stopped and removed at exit.
start_registry() {
    local dir attempt port pid
    dir=$(mktemp -d "$BENCH_DIR/registry.XXXXXX")
    at_exit "rm -rf '$dir'"
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: wharf-bench
EOF
        docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
        pid=$!
        local i
        for i in $(seq 100); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break # exited: port taken, try another
            fi
            if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
                at_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
                REG=127.0.0.1:$port
                log "docker-registry on $REG (pid $pid, storage $dir/storage)"
                return
            fi
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    die "docker-registry did not start; log:
$(tail -n 20 "$dir/registry.log")"
}

# --- skopeo's blob-info cache ----------------------------------------------------------
# skopeo remembers which blobs it has seen in which repository (containers/image's
# blob-info cache) and then mounts them across repositories instead of uploading: runs
# after the first would measure no upload at all. containers/image keeps it in
# /var/lib/containers/cache for root, else in ${XDG_DATA_HOME:-~/.local/share}/containers/cache.
# Non-root: every skopeo run gets a fresh empty XDG_DATA_HOME. Root: the existing cache file
# is moved aside for the benchmark (restored at exit) and deleted before every skopeo run.

SKOPEO_ROOT_CACHE=/var/lib/containers/cache/blob-info-cache-v1.boltdb

setup_skopeo_cache() {
    [ "$(id -u)" -eq 0 ] || return 0
    if [ -e "$SKOPEO_ROOT_CACHE" ]; then
        local backup="$BENCH_DIR/blob-info-cache-v1.boltdb.saved"
        mv "$SKOPEO_ROOT_CACHE" "$backup"
        at_exit "rm -f '$SKOPEO_ROOT_CACHE'; mv '$backup' '$SKOPEO_ROOT_CACHE'"
    else
        at_exit "rm -f '$SKOPEO_ROOT_CACHE'"
    fi
}

# fresh_skopeo_cache: empties skopeo's blob-info cache and sets SKOPEO_ENV, the `env`
# command line to run skopeo with (GNU time needs an executable, not a shell function).
fresh_skopeo_cache() {
    if [ "$(id -u)" -eq 0 ]; then
        rm -f "$SKOPEO_ROOT_CACHE"
        SKOPEO_ENV=(env)
    else
        local data
        data=$(mktemp -d "$BENCH_DIR/skopeo-data.XXXXXX")
        at_exit "rm -rf '$data'"
        SKOPEO_ENV=(env "XDG_DATA_HOME=$data")
    fi
}

# --- measuring -------------------------------------------------------------------------

RESULTS=""

# measure TOOL CMD...: runs CMD under GNU time, appends "TOOL WALL_S PEAK_RSS_KIB" to
# $RESULTS; the command's output goes to a log, shown if it fails.
measure() {
    local tool=$1
    shift
    local timing out
    timing=$(mktemp "$BENCH_DIR/time.XXXXXX")
    out=$(mktemp "$BENCH_DIR/out.XXXXXX")
    if ! /usr/bin/time -f '%e %M' -o "$timing" "$@" >"$out" 2>&1; then
        log "$tool failed: $*"
        cat "$out" >&2
        rm -f "$timing" "$out"
        exit 1
    fi
    local wall rss
    read -r wall rss < <(tail -n 1 "$timing")
    log "  $tool: ${wall}s, $((rss / 1024)) MiB"
    printf '%s %s %s\n' "$tool" "$wall" "$rss" >>"$RESULTS"
    rm -f "$timing" "$out"
}

# table RESULTS_FILE BASELINE_TOOL: tool, median wall, median peak RSS, wall ratio.
table() {
    python3 - "$1" "$2" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    tool, wall, rss = line.split()
    rows.setdefault(tool, []).append((float(wall), int(rss)))
base = statistics.median(w for w, _ in rows[sys.argv[2]])
print(f"{'tool':<8} {'runs':>4} {'median wall s':>14} {'median peak RSS MiB':>20} "
      f"{'max peak RSS MiB':>17} {'wall / ' + sys.argv[2]:>13}")
for tool, samples in rows.items():
    wall = statistics.median(w for w, _ in samples)
    rss = statistics.median(r for _, r in samples) / 1024
    top = max(r for _, r in samples) / 1024
    ratio = wall / base if base else float("nan")
    print(f"{tool:<8} {len(samples):>4} {wall:>14.2f} {rss:>20.1f} {top:>17.1f} {ratio:>13.2f}")
PY
}

# --- subcommands -----------------------------------------------------------------------

# push: a 2-platform layout (2 x 64 MiB layers each) pushed to a fresh repository per run
# by wharf, skopeo and oras (when on PATH); then wharf alone with one 512 MiB layer, for
# its peak RSS.
cmd_push() {
    setup_tools
    build_wharf
    mkdir -p "$BENCH_DIR"
    local layout="$BENCH_DIR/layouts/push-2x2x64M" big="$BENCH_DIR/layouts/push-1x512M"
    mkdir -p "$BENCH_DIR/layouts"
    gen_layout "$layout" bench 64 2 linux/amd64 linux/arm64
    gen_layout "$big" bench 512 1 linux/amd64
    start_registry
    setup_skopeo_cache

    local have_oras=0
    command -v oras >/dev/null && have_oras=1
    [ $have_oras -eq 1 ] || log "oras not on PATH: skipped"

    local layout_mib
    layout_mib=$(du -sm "$layout/blobs" | cut -f1)
    local results
    results=$(mktemp "$BENCH_DIR/results.XXXXXX")
    at_exit "rm -f '$results'"
    RESULTS=$results
    log "push: ${layout_mib} MiB layout, $BENCH_RUNS runs per tool, registry $REG"
    local i
    for i in $(seq "$BENCH_RUNS"); do
        log "run $i/$BENCH_RUNS"
        measure wharf "$WHARF" push "$layout" "$REG/wharf-$i" --allow-insecure-registry -q
        fresh_skopeo_cache
        measure skopeo "${SKOPEO_ENV[@]}" skopeo copy --quiet --all --preserve-digests \
            --dest-tls-verify=false "oci:$layout:bench" "docker://$REG/skopeo-$i"
        if [ $have_oras -eq 1 ]; then
            measure oras oras cp --from-oci-layout -r "$layout:bench" "$REG/oras-$i" \
                --to-plain-http
        fi
    done

    local big_results
    big_results=$(mktemp "$BENCH_DIR/results.XXXXXX")
    at_exit "rm -f '$big_results'"
    log "push: one 512 MiB layer, wharf only"
    RESULTS=$big_results
    for i in $(seq "$BENCH_RUNS"); do
        measure wharf "$WHARF" push "$big" "$REG/big-$i" --allow-insecure-registry -q
    done

    echo
    echo "push: 2 platforms x 2 x 64 MiB layers (${layout_mib} MiB), $BENCH_RUNS runs, registry on loopback"
    table "$results" wharf
    echo
    echo "push: 1 layer of 512 MiB, wharf only (RSS target)"
    table "$big_results" wharf
}

cmd_sign() { die "sign: not written yet"; }
cmd_mirror() { die "mirror: not written yet"; }

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
    push | sign | mirror) "cmd_$1" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
