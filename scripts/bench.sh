#!/usr/bin/env bash
# wharf benchmarks against other tools, on local docker-registry instances (loopback,
# plain HTTP). benches/README.md describes each benchmark and holds recorded results.
#
#   scripts/bench.sh push      # wharf push vs skopeo copy vs oras cp
#   scripts/bench.sh sign      # recursive sign / verify: wharf vs cosign at 2/8/32 platforms
#   scripts/bench.sh mirror    # wharf mirror vs cosign copy vs oras cp -r vs skopeo copy
#   scripts/bench.sh blob      # verify-blob of a keyless bundle: wharf vs cosign vs sigstore-python
#   scripts/bench.sh airgap    # a 32-platform signed release into an archive and back out:
#                              # wharf mirror vs skopeo copy --all vs oras cp -r
#   scripts/bench.sh compat    # cosign's commands on a cosign-signed and -attested image:
#                              # verify, verify-attestation, download attestation, copy
#   scripts/bench.sh all       # each of them in turn
#
# Tables go to stdout, progress to stderr.
#
# Environment:
#   BENCH_RUNS        runs per tool (default 5); the tables show medians
#   BENCH_PLATFORMS   sign: platform counts, each at least 2 (default "2 8 32")
#   BENCH_BLOB_SIZES  blob: file sizes, bytes or with a K/M/G suffix (default "1K 256M")
#   BENCH_DIR         work directory (default target/bench): generated layouts are kept in
#                     BENCH_DIR/layouts (content is deterministic, so they are reused);
#                     registry storage, keys and the mirror's 1 GiB layout are created
#                     there per subcommand and removed when it ends (or at exit)
#
# Each subcommand is a function `cmd_<name>`; the shared pieces (tool setup, release build,
# layout generator, registries, timing, median, tables) come first.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH_RUNS=${BENCH_RUNS:-5}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
BENCH_PLATFORMS=${BENCH_PLATFORMS:-2 8 32}
BENCH_BLOB_SIZES=${BENCH_BLOB_SIZES:-1K 256M}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- cleanup stack: functions push commands, run last-in first-out ---------------------
# At exit everything left runs; `scoped CMD...` runs what CMD pushed as soon as CMD
# returns (so `all` stops one subcommand's registries and frees its disk before the next).

CLEANUPS=()
cleanup_to() {
    local keep=$1 last
    while ((${#CLEANUPS[@]} > keep)); do
        last=$((${#CLEANUPS[@]} - 1))
        eval "${CLEANUPS[last]}" || true
        unset "CLEANUPS[$last]"
    done
}
trap 'cleanup_to 0' EXIT
trap 'exit 130' INT TERM
at_exit() { CLEANUPS+=("$1"); }
scoped() {
    local mark=${#CLEANUPS[@]}
    "$@"
    cleanup_to "$mark"
}

# --- tools -----------------------------------------------------------------------------

# setup_tools: puts the test dependencies (scripts/install-test-deps.sh) on PATH, once.
setup_tools() {
    [ -z "${TOOLS_READY:-}" ] || return 0
    export WHARF_TOOLS_DIR="${WHARF_TOOLS_DIR:-${HOME:-/root}/.cache/wharf/tools}"
    local tools_bin
    tools_bin="$(bash scripts/install-test-deps.sh)"
    export PATH="$tools_bin:$PATH"
    need docker-registry python3 curl
    [ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) not found"
    TOOLS_READY=1
}

need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || die "$t not found"
    done
}

# build_wharf: release build, once; sets WHARF.
build_wharf() {
    [ -z "${WHARF_BUILT:-}" ] || return 0
    log "cargo build --release"
    cargo build --release --locked --quiet >&2
    WHARF="$ROOT/target/release/wharf"
    [ -x "$WHARF" ] || die "no $WHARF after the build"
    WHARF_BUILT=1
}

prepare() {
    setup_tools
    build_wharf
    mkdir -p "$BENCH_DIR/layouts"
}

# --- layouts ---------------------------------------------------------------------------

# gen_layout DIR REF LAYER_SIZE LAYERS_PER_PLATFORM PLATFORM...
# Writes an OCI image layout (index over one image per platform; a single image manifest
# when one platform is given) whose layers are deterministic pseudo-random bytes (not
# real tarballs: no tool here looks inside). LAYER_SIZE is bytes, or with a K, M or G
# suffix (KiB, MiB, GiB). PLATFORM is OS/ARCH[/VARIANT]. Reuses DIR when it was generated
# with the same arguments.
gen_layout() {
    local dir=$1
    local stamp="$*"
    if [ -f "$dir/.bench-stamp" ] && [ "$(cat "$dir/.bench-stamp")" = "$stamp" ]; then
        log "reusing layout $dir"
        return
    fi
    log "generating layout $dir ($3 x $4 layers x $(($# - 4)) platforms)"
    rm -rf "$dir"
    python3 - "$@" <<'PY'
import hashlib, json, os, random, sys

dir_, ref, layer_size, per_platform = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
platforms = sys.argv[5:]
units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
if layer_size[-1:].upper() in units:
    layer_bytes = int(layer_size[:-1]) * units[layer_size[-1].upper()]
else:
    layer_bytes = int(layer_size)
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
             **put_random(1000 * p_index + l_index + 1, layer_bytes))
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

# --- registries ------------------------------------------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_registry NAME [access-log]: starts docker-registry on a free loopback port with
# fresh storage under BENCH_DIR; sets NAME (HOST:PORT) and NAME_LOG (its access log, Apache
# combined lines, written only when `access-log` is given: mirror counts requests).
# Stopped and its storage removed when the subcommand ends.
start_registry() {
    local name=$1 access_disabled=true dir attempt port pid
    [ "${2:-}" = access-log ] && access_disabled=false
    dir=$(mktemp -d "$BENCH_DIR/registry.XXXXXX")
    at_exit "rm -rf '$dir'"
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: $access_disabled
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
        docker-registry serve "$dir/config.yml" >>"$dir/access.log" 2>>"$dir/registry.log" </dev/null &
        pid=$!
        local i
        for i in $(seq 100); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break # exited: port taken, try another
            fi
            if curl -fsS -A bench-sync -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
                at_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
                printf -v "$name" '%s' "127.0.0.1:$port"
                printf -v "${name}_LOG" '%s' "$dir/access.log"
                log "docker-registry $name on 127.0.0.1:$port (pid $pid, storage $dir/storage)"
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

SYNC_ID=0

# requests_served ADDR LOG: number of requests in LOG so far, not counting this script's
# own (user agent bench-sync). The registry logs a request once its response is complete;
# a numbered sentinel request, waited for, makes sure every earlier line is in the file.
requests_served() {
    local addr=$1 file=$2 i
    SYNC_ID=$((SYNC_ID + 1))
    curl -fsS -A bench-sync -o /dev/null "http://$addr/v2/?bench-sync=$SYNC_ID"
    for i in $(seq 200); do
        grep -q "bench-sync=$SYNC_ID " "$file" && break
        sleep 0.05
    done
    grep '^[0-9.]* - ' "$file" | grep -vc '"bench-sync"$' || true
}

# --- skopeo's blob-info cache ----------------------------------------------------------
# skopeo remembers which blobs it has seen in which repository (containers/image's
# blob-info cache) and then mounts them across repositories instead of uploading: runs
# after the first would measure no upload at all. containers/image keeps it in
# /var/lib/containers/cache for root, else in ${XDG_DATA_HOME:-~/.local/share}/containers/cache.
# Non-root: every skopeo run gets a fresh empty XDG_DATA_HOME. Root: the existing cache file
# is moved aside for the subcommand (restored when it ends) and deleted before every
# skopeo run.

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

# --- timing ----------------------------------------------------------------------------

# run_timed CMD...: runs CMD with its output to a temporary log. Sets RUN_OK (yes/no),
# RUN_WALL (seconds, 3 decimals: `date +%s%N` around the command), RUN_RSS (peak RSS in
# KiB, from GNU time; "-" when CMD is a shell function, which GNU time cannot run) and,
# when CMD failed, RUN_TAIL (the last 30 lines of its output).
run_timed() {
    local out timing start end ns function=no
    out=$(mktemp "$BENCH_DIR/out.XXXXXX")
    timing=$(mktemp "$BENCH_DIR/time.XXXXXX")
    declare -F "$1" >/dev/null && function=yes
    RUN_OK=yes RUN_RSS=- RUN_TAIL=
    start=$(date +%s%N)
    if [ $function = yes ]; then
        "$@" >"$out" 2>&1 || RUN_OK=no
    else
        /usr/bin/time -f '%M' -o "$timing" "$@" >"$out" 2>&1 || RUN_OK=no
    fi
    end=$(date +%s%N)
    ns=$((end - start))
    printf -v RUN_WALL '%d.%03d' $((ns / 1000000000)) $((ns / 1000000 % 1000))
    [ $function = yes ] || RUN_RSS=$(tail -n 1 "$timing")
    if [ "$RUN_OK" = no ]; then
        RUN_TAIL=$(grep -v '^Command exited with non-zero status' "$out" | tail -n 30 || true)
    fi
    rm -f "$out" "$timing"
}

# new_results VAR: sets VAR to a new empty results file, removed when the subcommand ends
# (not a command substitution: at_exit must run in this shell).
new_results() {
    local f
    f=$(mktemp "$BENCH_DIR/results.XXXXXX")
    at_exit "rm -f '$f'"
    printf -v "$1" '%s' "$f"
}

# measure TOOL CMD...: runs CMD (run_timed), appends "TOOL WALL_S PEAK_RSS_KIB" to
# $RESULTS; stops the benchmark with CMD's output if it fails.
RESULTS=""
measure() {
    local tool=$1
    shift
    run_timed "$@"
    if [ "$RUN_OK" = no ]; then
        log "$tool failed: $*"
        printf '%s\n' "$RUN_TAIL" >&2
        exit 1
    fi
    log "  $tool: ${RUN_WALL}s, $((RUN_RSS / 1024)) MiB"
    printf '%s %s %s\n' "$tool" "$RUN_WALL" "$RUN_RSS" >>"$RESULTS"
}

# --- tables ----------------------------------------------------------------------------
# py ARG... <<'PY' ... PY: runs the Python on stdin after the shared prelude (median).

PY_PRELUDE='import re, statistics, sys

def median(values):
    return statistics.median(list(values))

def by_group(path):
    """Lines "GROUP/TOOL WALL_S PEAK_RSS_KIB" (from `measure`) as {GROUP: {TOOL: [(wall, rss)]}}."""
    rows = {}
    for line in open(path):
        group_tool, wall, rss = line.split()
        group, tool = group_tool.split("/", 1)
        rows.setdefault(group, {}).setdefault(tool, []).append((float(wall), int(rss)))
    return rows
'

py() {
    local code
    code=$(cat)
    python3 -c "$PY_PRELUDE$code" "$@"
}

# wall_rss_table RESULTS BASELINE_TOOL: tool, runs, median wall, median peak RSS, max peak
# RSS, wall ratio to BASELINE_TOOL (lines from `measure`).
wall_rss_table() {
    py "$1" "$2" <<'PY'
rows = {}
for line in open(sys.argv[1]):
    tool, wall, rss = line.split()
    rows.setdefault(tool, []).append((float(wall), int(rss)))
base = median(w for w, _ in rows[sys.argv[2]])
print(f"{'tool':<8} {'runs':>4} {'median wall s':>14} {'median peak RSS MiB':>20} "
      f"{'max peak RSS MiB':>17} {'wall / ' + sys.argv[2]:>13}")
for tool, samples in rows.items():
    wall = median(w for w, _ in samples)
    rss = median(r for _, r in samples) / 1024
    top = max(r for _, r in samples) / 1024
    ratio = wall / base if base else float("nan")
    print(f"{tool:<8} {len(samples):>4} {wall:>14.2f} {rss:>20.1f} {top:>17.1f} {ratio:>13.2f}")
PY
}

# sign_table RESULTS: platforms, operation, wharf median, cosign median, wharf/cosign.
sign_table() {
    py "$1" <<'PY'
rows = {}
for line in open(sys.argv[1]):
    p, op, tool, secs = line.split()
    rows.setdefault((int(p), op), {}).setdefault(tool, []).append(float(secs))
print(f"{'platforms':>9}  {'operation':<9} {'runs':>4} {'wharf median s':>15} "
      f"{'cosign median s':>16} {'wharf/cosign':>13}")
for (p, op), tools in sorted(rows.items()):
    w = median(tools["wharf"])
    c = median(tools["cosign"])
    print(f"{p:>9}  {op:<9} {len(tools['wharf']):>4} {w:>15.2f} {c:>16.2f} {w / c:>13.2f}")
PY
}

# mirror_table RESULTS: per tool, medians and checks (lines from `measure_copy`).
mirror_table() {
    py "$1" <<'PY'
rows = {}
for line in open(sys.argv[1]):
    tool, ok, wall, rss, ra, rb, complete, kept, missing, extra = line.split()
    rows.setdefault(tool, []).append(
        dict(ok=ok == "yes", wall=float(wall), rss=int(rss), ra=int(ra), rb=int(rb),
             complete=complete, kept=kept, missing=int(missing), extra=extra))
# Medians over the successful runs (all runs if none succeeded); failures are counted.
failures = {t: sum(not s["ok"] for s in samples) for t, samples in rows.items()}
rows = {t: [s for s in samples if s["ok"]] or samples for t, samples in rows.items()}

def med(samples, key):
    return median(s[key] for s in samples)

def same(samples, key):
    values = sorted({str(s[key]) for s in samples})
    return values[0] if len(values) == 1 else "/".join(values)

def short_tags(tags):
    # sha256-<64 hex> tags (an image's fallback / digest tags) are counted, not listed.
    if tags == "-":
        return tags
    named, digests = [], 0
    for t in tags.split(","):
        if re.fullmatch(r"sha256-[0-9a-f]{64}", t):
            digests += 1
        else:
            named.append(t)
    if digests:
        named.append(f"{digests} x sha256-<hex>")
    return ", ".join(named)

copy_tools = [t for t in rows if t not in ("wharf-remirror", "registry-floor")]
walls = {t: med(rows[t], "wall") for t in rows}
hdr = (f"{'tool':<15} {'runs':>4} {'failed':>6} {'median wall s':>13} {'vs fastest peer':>15} "
       f"{'requests A+B':>14} {'peak RSS MiB':>12} {'artifacts complete':>18} "
       f"{'digest kept':>11} {'missing tags':>12}  extra tags")
print(hdr)
for tool, samples in rows.items():
    peers = [walls[t] for t in copy_tools if t != tool]
    ratio = walls[tool] / min(peers) if peers and min(peers) else float("nan")
    ra, rb = med(samples, "ra"), med(samples, "rb")
    requests = f"{ra:g}+{rb:g}={ra + rb:g}"
    print(f"{tool:<15} {len(samples) + failures[tool]:>4} {failures[tool]:>6} {walls[tool]:>13.2f} {ratio:>15.2f} {requests:>14} "
          f"{med(samples, 'rss') / 1024:>12.1f} {same(samples, 'complete'):>18} "
          f"{same(samples, 'kept'):>11} {same(samples, 'missing'):>12}  "
          f"{short_tags(same(samples, 'extra'))}")
PY
}

# --- push ------------------------------------------------------------------------------

# push: a 2-platform layout (2 x 64 MiB layers each) pushed to a fresh repository per run
# by wharf, skopeo and oras (when on PATH); then wharf alone with one 512 MiB layer, for
# its peak RSS.
cmd_push() {
    prepare
    need skopeo
    local layout="$BENCH_DIR/layouts/push-2x2x64M" big="$BENCH_DIR/layouts/push-1x512M"
    gen_layout "$layout" bench 64M 2 linux/amd64 linux/arm64
    gen_layout "$big" bench 512M 1 linux/amd64
    start_registry REG
    setup_skopeo_cache

    local have_oras=0
    command -v oras >/dev/null && have_oras=1
    [ $have_oras -eq 1 ] || log "oras not on PATH: skipped"

    local layout_mib
    layout_mib=$(du -sm "$layout/blobs" | cut -f1)
    local results
    new_results results
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
    new_results big_results
    log "push: one 512 MiB layer, wharf only"
    RESULTS=$big_results
    for i in $(seq "$BENCH_RUNS"); do
        measure wharf "$WHARF" push "$big" "$REG/big-$i" --allow-insecure-registry -q
    done

    echo
    echo "push: 2 platforms x 2 x 64 MiB layers (${layout_mib} MiB), $BENCH_RUNS runs, registry on loopback"
    wall_rss_table "$results" wharf
    echo
    echo "push: 1 layer of 512 MiB, wharf only (RSS target)"
    wall_rss_table "$big_results" wharf
}

# --- sign ------------------------------------------------------------------------------
# For P in BENCH_PLATFORMS: an index over P image manifests (one 1 KiB layer each) is
# pushed to a fresh repository per run and per tool (so earlier signatures never count),
# then
#   sign:   wharf sign --key K --recursive --tlog-upload=false
#           cosign sign --key K --recursive --tlog-upload=false -y
#   verify: wharf verify --key K.pub --recursive --insecure-ignore-tlog
#           cosign verify --key K.pub --insecure-ignore-tlog=true, once per manifest (index
#           and each child in turn: cosign has no recursive verify)
# Both tools use one key (cosign's encrypted format, from `wharf key generate`) and verify
# the same signed image (wharf's). The first run also checks, untimed, that wharf verifies
# cosign's signatures.

# sign_platforms P: P distinct platforms, one a line: 8 architectures, then the same
# with variants v1, v2, ...
sign_platforms() {
    local archs=(amd64 arm64 arm 386 ppc64le s390x riscv64 mips64le) i p
    for ((i = 0; i < $1; i++)); do
        p=linux/${archs[i % ${#archs[@]}]}
        if ((i >= ${#archs[@]})); then
            p+=/v$((i / ${#archs[@]}))
        fi
        printf '%s\n' "$p"
    done
}

# push_fresh LAYOUT REPO: pushes with wharf; sets DIGESTS (index first, then children).
push_fresh() {
    local json
    json=$("$WHARF" push "$1" "$2" --allow-insecure-registry --output json) || die "push to $2 failed"
    mapfile -t DIGESTS < <(printf '%s' "$json" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r["digest"])
for m in r["manifests"]:
    print(m["digest"])')
}

# time_run RESULTS P OPERATION TOOL CMD...: runs CMD (run_timed), appends
# "P OPERATION TOOL SECONDS" to RESULTS; stops the benchmark if it fails.
time_run() {
    local results=$1 platforms=$2 op=$3 tool=$4
    shift 4
    run_timed "$@"
    if [ "$RUN_OK" = no ]; then
        log "$tool $op failed: $*"
        printf '%s\n' "$RUN_TAIL" >&2
        exit 1
    fi
    log "  P=$platforms $op $tool: ${RUN_WALL}s"
    printf '%s %s %s %s\n' "$platforms" "$op" "$tool" "$RUN_WALL" >>"$results"
}

# cosign_verify_each REPO DIGEST...: cosign verify of every manifest in turn.
cosign_verify_each() {
    local repo=$1 d
    shift
    for d in "$@"; do
        cosign verify --key "$KEY.pub" --insecure-ignore-tlog=true --allow-insecure-registry \
            "$repo@$d" >/dev/null || return 1
    done
}

# wharf_version: the first line of `wharf --version` without the name: version, commit, date.
wharf_version() {
    "$WHARF" --version | sed -n '1s/^wharf //p'
}

# cosign_version: cosign's gitVersion, or for a Debian build (which says "devel") the
# package version from its changelog.
cosign_version() {
    local v changelog
    v=$(cosign version --json 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["gitVersion"])' || echo unknown)
    changelog="$(dirname "$(command -v cosign)")/../share/doc/cosign/changelog.Debian.gz"
    if [ "$v" = devel ] && [ -f "$changelog" ]; then
        v="$(zcat "$changelog" | head -n 1 | sed -E 's/^cosign \(([^)]*)\).*/\1/') (Debian)"
    fi
    printf '%s\n' "$v"
}

cmd_sign() {
    prepare
    need cosign
    local p
    for p in $BENCH_PLATFORMS; do
        [[ $p =~ ^[0-9]+$ ]] && ((p >= 2)) || die "BENCH_PLATFORMS: $p is not a count of at least 2"
    done
    local work
    work=$(mktemp -d "$BENCH_DIR/sign.XXXXXX")
    at_exit "rm -rf '$work'"
    start_registry REG

    # One key for both tools, in cosign's encrypted format.
    local -x WHARF_PASSWORD=wharf-bench COSIGN_PASSWORD=wharf-bench
    KEY=$work/bench
    "$WHARF" key generate --output-key-prefix "$KEY" -q

    local results
    new_results results
    local i repo layout wharf_repo
    local -a platforms digests
    for p in $BENCH_PLATFORMS; do
        layout=$BENCH_DIR/layouts/sign-$p
        mapfile -t platforms < <(sign_platforms "$p")
        gen_layout "$layout" bench 1K 1 "${platforms[@]}"
        log "sign: $p platforms, $BENCH_RUNS runs per tool, registry $REG"
        for i in $(seq "$BENCH_RUNS"); do
            log "run $i/$BENCH_RUNS"
            # wharf signs its own fresh copy; both tools verify that copy.
            repo=$REG/p$p-wharf-$i
            push_fresh "$layout" "$repo"
            wharf_repo=$repo
            digests=("${DIGESTS[@]}")
            time_run "$results" "$p" sign wharf \
                "$WHARF" sign --key "$KEY.key" --recursive --tlog-upload=false \
                --allow-insecure-registry -q "$repo@${digests[0]}"

            repo=$REG/p$p-cosign-$i
            push_fresh "$layout" "$repo"
            time_run "$results" "$p" sign cosign \
                cosign sign --key "$KEY.key" --recursive --tlog-upload=false -y \
                --allow-insecure-registry "$repo@${DIGESTS[0]}"
            if [ "$i" -eq 1 ]; then
                # Not timed: cosign's signatures verify in wharf (every manifest signed).
                "$WHARF" verify --key "$KEY.pub" --recursive --insecure-ignore-tlog \
                    --allow-insecure-registry -q "$repo@${DIGESTS[0]}" >/dev/null ||
                    die "wharf cannot verify cosign's signatures on $repo"
            fi

            time_run "$results" "$p" verify wharf \
                "$WHARF" verify --key "$KEY.pub" --recursive --insecure-ignore-tlog \
                --allow-insecure-registry -q "$wharf_repo@${digests[0]}"
            time_run "$results" "$p" verify cosign \
                cosign_verify_each "$wharf_repo" "${digests[@]}"
        done
    done

    echo
    echo "sign/verify: index + P manifests (P+1 signatures), $BENCH_RUNS runs, registry on loopback"
    echo "wharf $(wharf_version) (release build), cosign $(cosign_version)"
    sign_table "$results"
}

# --- mirror ----------------------------------------------------------------------------
# A release is built in registry A: the push benchmark's 2-platform layout (2 x 64 MiB
# random layers per platform), pushed with `wharf push --tag v1`, signed recursively by
# wharf, and a CycloneDX attestation by `cosign attest`. Then BENCH_RUNS times, each tool
# copies A/rel:v1 to a fresh repository of registry B. Per tool: wall time and peak RSS,
# HTTP requests served by A and B (their access logs), B's tags afterwards, and whether
# `cosign verify` (index and both platforms) and `cosign verify-attestation` pass on the
# copy. Then re-mirroring the unchanged release with wharf is timed too. Last, the peak
# RSS of one `wharf mirror` of a signed release with a single 1 GiB random layer (its
# layout and both registries' copies are removed when the subcommand ends).

MIRROR_PASSWORD=bench-mirror-password

# make_release LAYOUT: pushes, signs and attests A/rel:v1; sets DIGEST, CHILDREN, KEY_PUB,
# RELEASE_KEY, SOURCE_TAGS (A's tags, sorted, one per line).
make_release() {
    local layout=$1 keys
    keys=$(mktemp -d "$BENCH_DIR/keys.XXXXXX")
    at_exit "rm -rf '$keys'"
    DIGEST=$("$WHARF" push "$layout" "$A/rel" --tag v1 --allow-insecure-registry -q --output json |
        jq -r .digest)
    mapfile -t CHILDREN < <(curl -fsS -H 'Accept: application/vnd.oci.image.index.v1+json' \
        "http://$A/v2/rel/manifests/$DIGEST" | jq -r '.manifests[].digest')
    WHARF_PASSWORD=$MIRROR_PASSWORD "$WHARF" key generate --output-key-prefix "$keys/release" >/dev/null
    RELEASE_KEY=$keys/release.key
    KEY_PUB=$keys/release.pub
    WHARF_PASSWORD=$MIRROR_PASSWORD "$WHARF" sign --key "$RELEASE_KEY" --recursive \
        --tlog-upload=false --allow-insecure-registry -q "$A/rel@$DIGEST"
    cat >"$keys/sbom.cdx.json" <<'EOF'
{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
 "components": [{"type": "library", "name": "bench", "version": "1.0.0"}]}
EOF
    COSIGN_PASSWORD=$MIRROR_PASSWORD cosign attest --key "$RELEASE_KEY" --tlog-upload=false \
        --type cyclonedx --predicate "$keys/sbom.cdx.json" -y --allow-insecure-registry \
        "$A/rel@$DIGEST" >/dev/null 2>&1 || die "cosign attest failed"
    SOURCE_TAGS=$(tags_of "$A" rel)
    log "release $A/rel@$DIGEST; tags: $(echo "$SOURCE_TAGS" | tr '\n' ' ')"
}

# release_between_registries LAYOUT [access-log]: registries A and B (with access logs when
# asked), skopeo's cache set aside, an empty Docker config for cosign and oras, and the release
# of LAYOUT in A (make_release); sets LAYOUT_MIB. All undone when the subcommand ends.
release_between_registries() {
    start_registry A "${2:-}"
    start_registry B "${2:-}"
    setup_skopeo_cache
    DOCKER_CONFIG=$(mktemp -d "$BENCH_DIR/docker-config.XXXXXX")
    export DOCKER_CONFIG
    at_exit "rm -rf '$DOCKER_CONFIG'; unset DOCKER_CONFIG"
    echo '{"auths": {}}' >"$DOCKER_CONFIG/config.json"
    make_release "$1"
    LAYOUT_MIB=$(du -sm "$1/blobs" | cut -f1)
}

tags_of() {
    curl -fsS "http://$1/v2/$2/tags/list" 2>/dev/null | jq -r '.tags // [] | .[]' | sort || true
}

# artifacts_complete REPO: whether cosign verifies the index and each platform, and the
# CycloneDX attestation, at B/REPO.
artifacts_complete() {
    local repo=$1 d
    for d in "$DIGEST" "${CHILDREN[@]}"; do
        cosign verify --key "$KEY_PUB" --insecure-ignore-tlog=true --allow-insecure-registry \
            "$B/$repo@$d" >/dev/null 2>&1 || { echo no; return; }
    done
    cosign verify-attestation --key "$KEY_PUB" --type cyclonedx --insecure-ignore-tlog=true \
        --allow-insecure-registry "$B/$repo@$DIGEST" >/dev/null 2>&1 || { echo no; return; }
    echo yes
}

# measure_copy TOOL REPO CMD...: runs CMD (run_timed) and appends one line to $RESULTS:
# tool succeeded wall_s peak_rss_kib requests_A requests_B complete digest_kept
# missing_tags extra_tags
measure_copy() {
    local tool=$1 repo=$2
    shift 2
    local a0 b0 a1 b1
    a0=$(requests_served "$A" "$A_LOG")
    b0=$(requests_served "$B" "$B_LOG")
    run_timed "$@"
    if [ "$RUN_OK" = no ]; then
        # A failing tool is a result too (cosign copy sometimes writes an index before its
        # platform manifests and the registry refuses it): record it and go on.
        log "$tool FAILED: $*"
        printf '%s\n' "$RUN_TAIL" | tail -n 3 | sed 's/^/    /' >&2
    fi
    a1=$(requests_served "$A" "$A_LOG")
    b1=$(requests_served "$B" "$B_LOG")

    local tags complete kept missing extra
    tags=$(tags_of "$B" "$repo")
    if [ -n "${PLAIN_RELEASE:-}" ]; then
        complete=-
    else
        complete=$(artifacts_complete "$repo")
    fi
    kept=no
    if curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json' \
        "http://$B/v2/$repo/manifests/$DIGEST" 2>/dev/null; then
        kept=yes
    fi
    missing=$(comm -23 <(echo "$SOURCE_TAGS") <(echo "$tags") | grep -c . || true)
    extra=$(comm -13 <(echo "$SOURCE_TAGS") <(echo "$tags") | paste -sd, -)
    [ "$RUN_RSS" = - ] && RUN_RSS=0
    log "  $tool: ${RUN_WALL}s, $((RUN_RSS / 1024)) MiB, requests A $((a1 - a0)) B $((b1 - b0))," \
        "artifacts complete $complete, missing tags $missing, extra tags ${extra:--}"
    printf '%s %s %s %s %s %s %s %s %s %s\n' "$tool" "$RUN_OK" "$RUN_WALL" "$RUN_RSS" \
        "$((a1 - a0))" "$((b1 - b0))" "$complete" "$kept" "$missing" "${extra:--}" >>"$RESULTS"
}

# registry_floor REPO: uploads the release layout's layer files (every blob of 1 MiB or more)
# straight from disk into B/REPO with curl, all at once: no source registry, no manifests. The
# time it takes is the least any copying tool can need for B to take in those bytes here.
registry_floor() {
    local repo=$1 blob location pids=()
    for blob in "$FLOOR_LAYOUT"/blobs/sha256/*; do
        [ "$(stat -c %s "$blob")" -ge 1048576 ] || continue
        location=$(curl -fsS -o /dev/null -w '%header{location}' -X POST \
            "http://$B/v2/$repo/blobs/uploads/") || return 1
        case $location in /*) location="http://$B$location" ;; esac
        curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
            -T "$blob" "$location&digest=sha256:$(basename "$blob")" &
        pids+=($!)
    done
    local pid
    for pid in "${pids[@]}"; do
        wait "$pid" || return 1
    done
}

# mirror_big RESULTS: a signed release with one 1 GiB random layer in A/big:v1, mirrored
# once by wharf into B/big under GNU time (`measure`). Its layout lives only until pushed.
mirror_big() {
    local tmp digest got
    tmp=$(mktemp -d "$BENCH_DIR/mirror-big.XXXXXX")
    at_exit "rm -rf '$tmp'"
    gen_layout "$tmp/layout" big 1G 1 linux/amd64
    BIG_MIB=$(du -sm "$tmp/layout/blobs" | cut -f1)
    digest=$("$WHARF" push "$tmp/layout" "$A/big" --tag v1 --allow-insecure-registry -q --output json |
        jq -r .digest)
    rm -rf "$tmp/layout" # A holds it now: 1 GiB less on disk while mirroring
    WHARF_PASSWORD=$MIRROR_PASSWORD "$WHARF" sign --key "$RELEASE_KEY" --recursive \
        --tlog-upload=false --allow-insecure-registry -q "$A/big@$digest"
    log "mirror: one 1 GiB layer ($A/big@$digest), wharf only, 1 run"
    RESULTS=$1
    measure wharf "$WHARF" mirror "$A/big:v1" "$B/big" --allow-insecure-registry -q
    got=$(curl -fsS -o /dev/null -w '%header{docker-content-digest}' \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "http://$B/v2/big/manifests/v1") || die "B/big:v1 missing after wharf mirror"
    [ "$got" = "$digest" ] || die "B/big:v1 is $got, expected $digest"
    cosign verify --key "$KEY_PUB" --insecure-ignore-tlog=true --allow-insecure-registry \
        "$B/big@$digest" >/dev/null 2>&1 || die "the 1 GiB copy's signature does not verify"
}

# copy_runs SRC_REPO SUFFIX: BENCH_RUNS rounds of the four tools copying A/SRC_REPO:v1 into
# fresh repositories B/<tool>SUFFIX-<run>, each measured by measure_copy.
copy_runs() {
    local src=$A/$1:v1 suffix=$2 i
    for i in $(seq "$BENCH_RUNS"); do
        log "run $i/$BENCH_RUNS"
        measure_copy wharf "wharf$suffix-$i" \
            "$WHARF" mirror "$src" "$B/wharf$suffix-$i" --allow-insecure-registry -q
        measure_copy cosign "cosign$suffix-$i" \
            cosign copy --allow-insecure-registry -f "$src" "$B/cosign$suffix-$i"
        measure_copy oras "oras$suffix-$i" \
            oras cp -r --from-plain-http --to-plain-http "$src" "$B/oras$suffix-$i"
        fresh_skopeo_cache
        measure_copy skopeo "skopeo$suffix-$i" \
            "${SKOPEO_ENV[@]}" skopeo copy --quiet --all --preserve-digests \
            --src-tls-verify=false --dest-tls-verify=false \
            "docker://$src" "docker://$B/skopeo$suffix-$i"
    done
}

cmd_mirror() {
    prepare
    need skopeo cosign oras jq
    # Same layout (and stamp) as `push`, so the two share it.
    local layout="$BENCH_DIR/layouts/push-2x2x64M"
    gen_layout "$layout" bench 64M 2 linux/amd64 linux/arm64
    release_between_registries "$layout" access-log
    local layout_mib=$LAYOUT_MIB

    local results
    new_results results
    RESULTS=$results
    log "mirror: ${layout_mib} MiB release, $BENCH_RUNS runs per tool, A=$A B=$B"
    copy_runs rel ""
    local i
    FLOOR_LAYOUT=$layout
    for i in $(seq "$BENCH_RUNS"); do
        measure_copy registry-floor "floor-$i" registry_floor "floor-$i"
    done
    log "re-mirroring the unchanged release with wharf"
    for i in $(seq "$BENCH_RUNS"); do
        measure_copy wharf-remirror wharf-1 \
            "$WHARF" mirror "$A/rel:v1" "$B/wharf-1" --allow-insecure-registry -q
    done

    # The same image without signatures or attestations: every tool copies the same
    # content, so requests and times compare like for like.
    local plain_results
    new_results plain_results
    RESULTS=$plain_results
    "$WHARF" push "$layout" "$A/plain" --tag v1 --allow-insecure-registry -q
    local -x PLAIN_RELEASE=1
    local saved_tags=$SOURCE_TAGS
    SOURCE_TAGS=v1
    log "mirror: the same image unsigned ($A/plain:v1), $BENCH_RUNS runs per tool"
    copy_runs plain -plain
    SOURCE_TAGS=$saved_tags
    unset PLAIN_RELEASE
    RESULTS=$results

    local big_results
    new_results big_results
    mirror_big "$big_results"

    echo
    echo "mirror: 2 platforms x 2 x 64 MiB layers (${layout_mib} MiB), signed (wharf, recursive)" \
        "+ CycloneDX attestation (cosign); $BENCH_RUNS runs, registries on loopback"
    mirror_table "$results"
    echo
    echo "Medians over the successful runs; failed: runs where the tool exited non-zero (their"
    echo "copy is still checked). requests A+B: HTTP requests each registry served in one run."
    echo "artifacts complete: cosign verify (index and each platform) and cosign"
    echo "verify-attestation --type cyclonedx pass on the copy. missing/extra tags: the copy's"
    echo "tags compared with the source's (v1 plus sha256-<hex>.sig/.att). wharf-remirror:"
    echo "wharf mirror again into wharf-1, which already holds the release. registry-floor:"
    echo "curl uploads the layer files straight from disk into B, all at once (no source reads,"
    echo "no manifests): the least time any copying tool can take for B to take in those bytes."
    echo
    echo "mirror: the same image unsigned (no attachments; every tool copies the same content)," \
        "$BENCH_RUNS runs"
    mirror_table "$plain_results"
    echo
    echo "mirror: 1 layer of 1 GiB (${BIG_MIB} MiB), signed; wharf only, 1 run (RSS target)"
    wall_rss_table "$big_results" wharf
}

# --- blob ------------------------------------------------------------------------------
# A file of each size in BENCH_BLOB_SIZES is signed keylessly by `wharf sign-blob` against
# the loopback Sigstore stand-in (tests/sigstore-stand-in: Fulcio, Rekor v1, OIDC), giving a
# bundle v0.3 with a certificate, a SET and an inclusion proof. Then each tool verifies it
# offline against the stand-in's trust, with the same identity policy:
#   wharf verify-blob --trusted-root TR --certificate-identity ID --certificate-oidc-issuer I
#   cosign verify-blob --new-bundle-format --trusted-root TR (empty TUF_ROOT) …
#   python3 -m sigstore --trust-config TC verify identity --offline …
# Each verification hashes the file itself.

# blob_table RESULTS: size, tool, runs, median wall, median peak RSS, wall / wharf (lines
# from `measure`, tools named SIZE/TOOL).
blob_table() {
    py "$1" <<'PY'
rows = by_group(sys.argv[1])
print(f"{'file':>6}  {'tool':<16} {'runs':>4} {'median wall s':>14} {'median peak RSS MiB':>20} "
      f"{'wall / wharf':>13}")
for size, tools in rows.items():
    base = median(w for w, _ in tools["wharf"])
    for tool, samples in tools.items():
        wall = median(w for w, _ in samples)
        rss = median(r for _, r in samples) / 1024
        print(f"{size:>6}  {tool:<16} {len(samples):>4} {wall:>14.3f} {rss:>20.1f} "
              f"{wall / base:>13.2f}")
PY
}

# start_standin DIR: runs the Sigstore stand-in with its trust files in DIR; sets SI_URL,
# SI_STATE. Stopped when the subcommand ends.
start_standin() {
    local dir=$1 pid i
    node tests/sigstore-stand-in/server.js --state "$dir/state.json" --port 0 \
        >/dev/null 2>"$dir/stand-in.log" </dev/null &
    pid=$!
    at_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    for i in $(seq 150); do
        [ -f "$dir/state.json" ] && break
        kill -0 "$pid" 2>/dev/null || die "the Sigstore stand-in exited: $(tail -n 5 "$dir/stand-in.log")"
        sleep 0.1
    done
    [ -f "$dir/state.json" ] || die "the Sigstore stand-in did not start"
    SI_STATE=$dir/state.json
    SI_URL=$(jq -r .url "$SI_STATE")
    log "Sigstore stand-in on $SI_URL"
}

# si_token: a fresh identity token from the stand-in's OIDC endpoint.
si_token() {
    curl -fsS -H "Authorization: Bearer $(jq -r .oidc_request_token "$SI_STATE")" \
        "$SI_URL/oidc/token?audience=$(jq -r .oidc_audience "$SI_STATE")" | jq -r .value
}

cmd_blob() {
    prepare
    need cosign node jq
    python3 -c 'import sigstore' 2>/dev/null || die "sigstore-python is not installed"
    local work
    work=$(mktemp -d "$BENCH_DIR/blob.XXXXXX")
    at_exit "rm -rf '$work'"
    start_standin "$work"
    local trusted_root trust_config identity issuer
    trusted_root=$(jq -r .trusted_root "$SI_STATE")
    trust_config=$(jq -r .trust_config "$SI_STATE")
    identity=$(jq -r .identity "$SI_STATE")
    issuer=$(jq -r .oidc_issuer "$SI_STATE")
    mkdir -p "$work/tuf"
    # cosign 2.5 refuses an entry at log index 0, which only a fresh log hands out.
    printf 'first\n' >"$work/first"
    "$WHARF" sign-blob -q --fulcio-url "$SI_URL" --rekor-url "$SI_URL" \
        --trusted-root "$trusted_root" --identity-token "$(si_token)" \
        --bundle "$work/first.json" "$work/first"

    local size file bundle i
    new_results RESULTS
    for size in $BENCH_BLOB_SIZES; do
        file=$work/blob-$size
        python3 - "$file" "$size" <<'PY'
import random, sys
path, size = sys.argv[1], sys.argv[2]
units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
n = int(size[:-1]) * units[size[-1].upper()] if size[-1:].upper() in units else int(size)
rng = random.Random(n)
with open(path, "wb") as f:
    while n:
        chunk = rng.randbytes(min(n, 1 << 20))
        f.write(chunk)
        n -= len(chunk)
PY
        bundle=$file.sigstore.json
        "$WHARF" sign-blob -q --fulcio-url "$SI_URL" --rekor-url "$SI_URL" \
            --trusted-root "$trusted_root" --identity-token "$(si_token)" \
            --bundle "$bundle" "$file"
        log "blob: $size, $BENCH_RUNS runs per tool"
        for i in $(seq "$BENCH_RUNS"); do
            measure "$size/wharf" "$WHARF" verify-blob -q --trusted-root "$trusted_root" \
                --certificate-identity "$identity" --certificate-oidc-issuer "$issuer" \
                --bundle "$bundle" "$file"
            measure "$size/cosign" env TUF_ROOT="$work/tuf" cosign verify-blob \
                --new-bundle-format --trusted-root "$trusted_root" \
                --certificate-identity "$identity" --certificate-oidc-issuer "$issuer" \
                --bundle "$bundle" "$file"
            measure "$size/sigstore-python" python3 -m sigstore --trust-config "$trust_config" \
                verify identity --offline --bundle "$bundle" --cert-identity "$identity" \
                --cert-oidc-issuer "$issuer" "$file"
        done
    done

    echo
    echo "verify-blob: a keyless bundle v0.3 (certificate, SET, inclusion proof), offline, $BENCH_RUNS runs"
    echo "wharf $(wharf_version) (release build), cosign $(cosign_version), sigstore-python $(python3 -c 'import sigstore; print(sigstore.__version__)')"
    blob_table "$RESULTS"
}

# --- airgap ----------------------------------------------------------------------------
# A 32-platform release (one 4 MiB random layer per platform) is built in registry A as for
# `mirror` (make_release: wharf push --tag v1, wharf sign --recursive, cosign attest). Then
# BENCH_RUNS times each tool carries A/rel:v1 across an air gap and into a fresh repository
# of registry B, in two timed legs:
#   wharf         mirror A/rel:v1 oci-archive:FILE;  mirror oci-archive:FILE:v1 B/wharf-N
#   wharf-layout  the same through oci:DIR (no archive)
#   skopeo        copy --all --preserve-digests docker://A/rel:v1 oci-archive:FILE:v1, and
#                 back to docker://B/skopeo-N:v1 (the image only: skopeo does not copy
#                 signatures or attestations)
#   oras          cp -r A/rel:v1 --to-oci-layout DIR:v1, and cp -r --from-oci-layout back
#                 (oras writes no archives; -r follows OCI referrers, not cosign's tags)
# The table gives each leg's median wall time and peak RSS, the median of both legs together
# and its ratio to wharf's, what crossed the gap (MiB on disk), and whether cosign verify (index
# and every platform) and verify-attestation pass on the last run's copy in B. Then the same
# for the image unsigned (A/plain:v1), where every tool carries the same content.

# airgap_table RESULTS EXTRAS: per tool, legs' medians, total and ratio to wharf (RESULTS
# from `measure TOOL:LEG`); EXTRAS has "TOOL MIB COMPLETE" lines.
airgap_table() {
    py "$1" "$2" <<'PY'
legs = {}
for line in open(sys.argv[1]):
    tool_leg, wall, rss = line.split()
    tool, leg = tool_leg.split(":")
    legs.setdefault(tool, {}).setdefault(leg, []).append((float(wall), int(rss)))
extras = {}
for line in open(sys.argv[2]):
    tool, mib, complete = line.split()
    extras[tool] = (mib, complete)
def total_median(tool):
    ins, outs = legs[tool]["in"], legs[tool]["out"]
    return median(a[0] + b[0] for a, b in zip(ins, outs))
base = total_median("wharf")
print(f"{'tool':<13} {'runs':>4} {'in s':>6} {'out s':>6} {'total s':>8} {'total / wharf':>13} "
      f"{'peak RSS in/out MiB':>19} {'across MiB':>10}  artifacts complete")
for tool in legs:
    ins, outs = legs[tool]["in"], legs[tool]["out"]
    total = total_median(tool)
    rss = f"{max(r for _, r in ins) / 1024:.0f}/{max(r for _, r in outs) / 1024:.0f}"
    mib, complete = extras.get(tool, ("-", "-"))
    print(f"{tool:<13} {len(ins):>4} {median(w for w, _ in ins):>6.2f} "
          f"{median(w for w, _ in outs):>6.2f} {total:>8.2f} {total / base:>13.2f} "
          f"{rss:>19} {mib:>10}  {complete}")
PY
}

# size_on_disk NAME PATH: "NAME MIB" for a file or directory.
size_on_disk() {
    echo "$1 $(du -sm "$2" | cut -f1)"
}

# airgap_runs SRC_REPO SUFFIX WORK EXTRAS: BENCH_RUNS rounds of the four tools carrying
# A/SRC_REPO:v1 across into fresh repositories B/<tool>SUFFIX-<run>; appends "TOOL MIB
# COMPLETE" to EXTRAS (COMPLETE "-" when SUFFIX is set: an unsigned image has nothing to check).
airgap_runs() {
    local src=$A/$1:v1 suffix=$2 work=$3 extras=$4 i tool carried
    : >"$work/sizes"
    for i in $(seq "$BENCH_RUNS"); do
        log "run $i/$BENCH_RUNS"
        carried=$work/wharf-$i.tar
        measure wharf:in "$WHARF" mirror "$src" "oci-archive:$carried" \
            --allow-insecure-registry -q
        measure wharf:out "$WHARF" mirror "oci-archive:$carried:v1" "$B/wharf$suffix-$i" \
            --allow-insecure-registry -q
        [ "$i" -gt 1 ] || size_on_disk wharf "$carried" >>"$work/sizes"
        rm -f "$carried"

        carried=$work/wharf-layout-$i
        measure wharf-layout:in "$WHARF" mirror "$src" "oci:$carried" \
            --allow-insecure-registry -q
        measure wharf-layout:out "$WHARF" mirror "oci:$carried:v1" \
            "$B/wharf-layout$suffix-$i" --allow-insecure-registry -q
        [ "$i" -gt 1 ] || size_on_disk wharf-layout "$carried" >>"$work/sizes"
        rm -rf "$carried"

        carried=$work/skopeo-$i.tar
        fresh_skopeo_cache
        measure skopeo:in "${SKOPEO_ENV[@]}" skopeo copy --quiet --all --preserve-digests \
            --src-tls-verify=false "docker://$src" "oci-archive:$carried:v1"
        fresh_skopeo_cache
        measure skopeo:out "${SKOPEO_ENV[@]}" skopeo copy --quiet --all --preserve-digests \
            --dest-tls-verify=false "oci-archive:$carried:v1" "docker://$B/skopeo$suffix-$i:v1"
        [ "$i" -gt 1 ] || size_on_disk skopeo "$carried" >>"$work/sizes"
        rm -f "$carried"

        carried=$work/oras-$i
        measure oras:in oras cp -r --from-plain-http "$src" --to-oci-layout "$carried:v1"
        measure oras:out oras cp -r --from-oci-layout "$carried:v1" --to-plain-http \
            "$B/oras$suffix-$i:v1"
        [ "$i" -gt 1 ] || size_on_disk oras "$carried" >>"$work/sizes"
        rm -rf "$carried"
    done
    local complete=-
    for tool in wharf wharf-layout skopeo oras; do
        [ -n "$suffix" ] || complete=$(artifacts_complete "$tool-$BENCH_RUNS")
        echo "$tool $(awk -v t="$tool" '$1 == t { print $2 }' "$work/sizes") $complete" \
            >>"$extras"
    done
}

cmd_airgap() {
    prepare
    need skopeo cosign oras jq
    local layout="$BENCH_DIR/layouts/airgap-32x4M" work
    local -a platforms
    mapfile -t platforms < <(sign_platforms 32)
    gen_layout "$layout" bench 4M 1 "${platforms[@]}"
    work=$(mktemp -d "$BENCH_DIR/airgap.XXXXXX")
    at_exit "rm -rf '$work'"
    release_between_registries "$layout"
    local layout_mib=$LAYOUT_MIB

    local results extras
    new_results results
    new_results extras
    RESULTS=$results
    log "airgap: 32 platforms (${layout_mib} MiB), signed, $BENCH_RUNS runs per tool, A=$A B=$B"
    airgap_runs rel "" "$work" "$extras"

    # The same image without signatures or attestation: every tool carries the same content.
    local plain_results plain_extras
    new_results plain_results
    new_results plain_extras
    RESULTS=$plain_results
    "$WHARF" push "$layout" "$A/plain" --tag v1 --allow-insecure-registry -q
    log "airgap: the same image unsigned ($A/plain:v1), $BENCH_RUNS runs per tool"
    airgap_runs plain -plain "$work" "$plain_extras"

    echo
    echo "airgap: 32 platforms x 1 x 4 MiB layer (${layout_mib} MiB), signed (wharf, recursive," \
        "33 signatures) + CycloneDX attestation (cosign); $BENCH_RUNS runs, registries on loopback"
    airgap_table "$results" "$extras"
    echo
    echo "in: registry A -> archive (wharf, skopeo) or layout directory (wharf-layout, oras);"
    echo "out: that -> a fresh repository of registry B. Medians; peak RSS is the largest of the"
    echo "runs. artifacts complete: cosign verify (index and each platform) and cosign"
    echo "verify-attestation --type cyclonedx pass on the last run's copy in B."
    echo
    echo "airgap: the same image unsigned (every tool carries the same content), $BENCH_RUNS runs"
    airgap_table "$plain_results" "$plain_extras"
}

# --- compat ----------------------------------------------------------------------------
# The commands cosign users already run, on an image cosign made: a 2-platform index (one
# 4 MiB random layer per platform) pushed to a local registry, then, with a key from `cosign
# generate-key-pair` and the transparency log off:
#   cosign sign --key K --recursive         (the index and both platforms)
#   cosign attest --key K --type cyclonedx  (on the index)
# Then BENCH_RUNS times, wharf and cosign in turn on the same IMAGE@DIGEST with the same flags:
#   verify               verify --key K.pub --insecure-ignore-tlog=true
#   verify-attestation   verify-attestation --key K.pub --type cyclonedx --insecure-ignore-tlog=true
#   download-attestation download attestation --predicate-type https://cyclonedx.org/bom
#   copy                 copy REG/img:v1 REG/copy-TOOL-N (a fresh repository per run and tool)
# A run that fails stops the benchmark. Untimed, once: both tools download the same
# envelopes, and cosign verifies the signatures and the attestation on each tool's first copy.

COMPAT_PASSWORD=bench-compat-password

# compat_table RESULTS: per operation, both tools' median wall time and peak RSS and the
# ratios wharf/cosign (lines from `measure OPERATION/TOOL`).
compat_table() {
    py "$1" <<'PY'
rows = by_group(sys.argv[1])
print(f"{'operation':<20} {'runs':>4} {'wharf median s':>15} {'cosign median s':>16} "
      f"{'wharf/cosign':>13} {'wharf RSS MiB':>14} {'cosign RSS MiB':>15} {'RSS wharf/cosign':>17}")
for op, tools in rows.items():
    w, c = tools["wharf"], tools["cosign"]
    ww, cw = median(s for s, _ in w), median(s for s, _ in c)
    wr, cr = median(r for _, r in w) / 1024, median(r for _, r in c) / 1024
    print(f"{op:<20} {len(w):>4} {ww:>15.3f} {cw:>16.3f} {ww / cw:>13.2f} "
          f"{wr:>14.1f} {cr:>15.1f} {wr / cr:>17.2f}")
PY
}

# cosign_verifies_copy REPO DIGEST...: cosign verify of each manifest at REG/REPO, and
# verify-attestation of the first, under the compat key; stops the benchmark if one fails.
cosign_verifies_copy() {
    local repo=$1 d
    shift
    for d in "$@"; do
        cosign verify --key "$KEY.pub" --insecure-ignore-tlog=true --allow-insecure-registry \
            "$REG/$repo@$d" >/dev/null 2>&1 || die "cosign verify fails on the copy $REG/$repo@$d"
    done
    cosign verify-attestation --key "$KEY.pub" --type cyclonedx --insecure-ignore-tlog=true \
        --allow-insecure-registry "$REG/$repo@$1" >/dev/null 2>&1 ||
        die "cosign verify-attestation fails on the copy $REG/$repo@$1"
}

# compat_pair OPERATION ARG...: `measure`s wharf, then cosign, each run with ARG...
compat_pair() {
    local op=$1
    shift
    measure "$op/wharf" "$WHARF" "$@"
    measure "$op/cosign" cosign "$@"
}

cmd_compat() {
    prepare
    need cosign jq
    local layout="$BENCH_DIR/layouts/compat-2x4M" work
    gen_layout "$layout" bench 4M 1 linux/amd64 linux/arm64
    work=$(mktemp -d "$BENCH_DIR/compat.XXXXXX")
    at_exit "rm -rf '$work'"
    start_registry REG
    DOCKER_CONFIG=$work/docker-config
    export DOCKER_CONFIG
    at_exit "unset DOCKER_CONFIG"
    mkdir -p "$DOCKER_CONFIG"
    echo '{"auths": {}}' >"$DOCKER_CONFIG/config.json"

    local -x COSIGN_PASSWORD=$COMPAT_PASSWORD
    KEY=$work/cosign
    cosign generate-key-pair --output-key-prefix "$KEY" >/dev/null 2>&1 ||
        die "cosign generate-key-pair failed"
    local image=$REG/img digest
    local -a children
    digest=$("$WHARF" push "$layout" "$image" --tag v1 --allow-insecure-registry -q --output json |
        jq -r .digest)
    mapfile -t children < <(curl -fsS -H 'Accept: application/vnd.oci.image.index.v1+json' \
        "http://$REG/v2/img/manifests/$digest" | jq -r '.manifests[].digest')
    cosign sign --key "$KEY.key" --recursive --tlog-upload=false -y --allow-insecure-registry \
        "$image@$digest" >/dev/null 2>&1 || die "cosign sign failed"
    cat >"$work/sbom.cdx.json" <<'EOF'
{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
 "components": [{"type": "library", "name": "bench", "version": "1.0.0"}]}
EOF
    cosign attest --key "$KEY.key" --tlog-upload=false --type cyclonedx \
        --predicate "$work/sbom.cdx.json" -y --allow-insecure-registry "$image@$digest" \
        >/dev/null 2>&1 || die "cosign attest failed"
    log "compat: $image@$digest signed (recursive) and attested by cosign; tags:" \
        "$(tags_of "$REG" img | tr '\n' ' ')"

    # Not timed: both tools download the same envelopes.
    local bom=https://cyclonedx.org/bom tool
    for tool in "$WHARF" cosign; do
        "$tool" download attestation --predicate-type "$bom" --allow-insecure-registry \
            "$image@$digest" 2>/dev/null >"$work/download" ||
            die "$tool download attestation failed"
        jq -cS . "$work/download" | sort >"$work/$(basename "$tool").att"
    done
    [ -s "$work/cosign.att" ] && cmp -s "$work/wharf.att" "$work/cosign.att" ||
        die "wharf and cosign download different attestations"

    local results i
    new_results results
    RESULTS=$results
    log "compat: $BENCH_RUNS runs per tool, registry $REG"
    for i in $(seq "$BENCH_RUNS"); do
        log "run $i/$BENCH_RUNS"
        compat_pair verify verify --key "$KEY.pub" --insecure-ignore-tlog=true \
            --allow-insecure-registry "$image@$digest"
        compat_pair verify-attestation verify-attestation --key "$KEY.pub" --type cyclonedx \
            --insecure-ignore-tlog=true --allow-insecure-registry "$image@$digest"
        compat_pair download-attestation download attestation --predicate-type "$bom" \
            --allow-insecure-registry "$image@$digest"
        measure copy/wharf "$WHARF" copy --allow-insecure-registry "$image:v1" "$REG/copy-wharf-$i"
        measure copy/cosign cosign copy --allow-insecure-registry "$image:v1" "$REG/copy-cosign-$i"
        if [ "$i" -eq 1 ]; then
            cosign_verifies_copy copy-wharf-1 "$digest" "${children[@]}"
            cosign_verifies_copy copy-cosign-1 "$digest" "${children[@]}"
        fi
    done

    echo
    echo "compat: 2 platforms x 1 x 4 MiB layer, signed (recursive) and attested (CycloneDX) by" \
        "cosign with a key, tlog off; $BENCH_RUNS runs, registry on loopback"
    echo "wharf $(wharf_version) (release build), cosign $(cosign_version)"
    compat_table "$results"
}

# --- main ------------------------------------------------------------------------------

cmd_all() {
    scoped cmd_push
    scoped cmd_sign
    scoped cmd_mirror
    scoped cmd_blob
    scoped cmd_airgap
    scoped cmd_compat
}

usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
}

case "${1:-}" in
    push | sign | mirror | blob | airgap | compat | all) "cmd_$1" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
