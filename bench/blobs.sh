#!/usr/bin/env bash
# Blob upload benchmarks for BENCHMARKS.md, side by side in one run, medians of 3 runs:
#   1. one 2 GiB file to file://, hashed, vs `cp`, `cp` + `sync` and `openssl dgst -sha256` (and
#      Weft's peak RSS, /usr/bin/time -v);
#   2. 10,000 files of 1-64 KiB + 5 x 50 MiB to file:// vs `rclone copy`: on this disk,
#      and (section ext4, as root) on a freshly made ext4 for each tool's run, where
#      `rclone copy` + `sync -f` (durable, as Weft is) runs too;
#   3. the same tree to Azurite, to moto's S3 server and to s3s-fs (an S3 server in Rust,
#      storing on disk, far faster than moto) vs `rclone copy` to the same server and a
#      raw object_store copy (host/examples/raw_copy.rs) at the same concurrency (16
#      files at once, 8 MiB parts, 4 parts in flight per file), and the same raw copy
#      doing Weft's hashing (every file's SHA-256 sent as its `sha256` metadata);
#   4. peak RSS of one 2 GiB file to each server (one run each).
# Needs: a release build (built here), rclone (apt-get install -y rclone), GNU time
# (apt-get install -y time), Azurite, moto and s3s-fs (as .ci/run installs them).
# Usage: bench/blobs.sh [WORK_DIR]   (default /tmp/weft-bench; needs ~8 GiB free);
# SECTIONS="local ext4 azure s3 s3s" (the default) picks what runs; LOCAL_ONLY=1 is
# SECTIONS="local ext4"; S3S_DATA=DIR puts s3s-fs's objects there (default WORK_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-/tmp/weft-bench}
RUNS=${RUNS:-3}
SECTIONS=${SECTIONS:-local ext4 azure s3 s3s}
# Where s3s-fs stores the objects: S3S_DATA=/dev/shm/weft-s3s keeps the shared disk's
# writeback out of the comparison (about 3 GB of memory per run of the four tools).
S3S_DATA=${S3S_DATA:-$WORK}
mkdir -p "$S3S_DATA"
[ -n "${LOCAL_ONLY:-}" ] && SECTIONS="local ext4"
section() { [[ " $SECTIONS " == *" $1 "* ]]; }
mkdir -p "$WORK"

cargo build --release -p weft --bin weft --example raw_copy >&2
WEFT=${WEFT:-$REPO/target/release/weft}
RAW=$REPO/target/release/examples/raw_copy
AZURITE=${WEFT_AZURITE:-$HOME/.cache/weft/npm/node_modules/.bin/azurite-blob}
S3S_FS=${WEFT_S3S_FS:-$HOME/.cache/weft/s3s/bin/s3s-fs}
EMULATOR_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
for tool in rclone /usr/bin/time "$AZURITE" python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool; see the header of $0" >&2; exit 1; }
done

# This machine's AWS_CA_BUNDLE (for a proxy) makes rclone's S3 client refuse plain HTTP.
rclone() { env -u AWS_CA_BUNDLE rclone "$@"; }

# --- Data (kept between runs) ---------------------------------------------------------
if [ ! -f "$WORK/big/2GiB.bin" ]; then
  mkdir -p "$WORK/big"
  head -c $((2 << 30)) /dev/urandom > "$WORK/big/2GiB.bin"
fi
if [ ! -f "$WORK/tree.done" ]; then
  rm -rf "$WORK/tree"
  python3 - "$WORK/tree" <<'EOF'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
for i in range(10_000):
    d = os.path.join(root, f"d{i % 100:02d}", f"e{i % 7}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.bin"), "wb") as f:
        f.write(rng.randbytes(rng.randint(1 << 10, 64 << 10)))
os.makedirs(os.path.join(root, "large"), exist_ok=True)
for i in range(5):
    with open(os.path.join(root, "large", f"l{i}.bin"), "wb") as f:
        for _ in range(50):
            f.write(rng.randbytes(1 << 20))
EOF
  touch "$WORK/tree.done"
fi
# Every tool reads from memory: the source is read right before each timed run (outside
# the timing), since memory left untouched for a while may be reclaimed meanwhile (this
# VM's kernel pages out cold memory: DAMON's `pageout` scheme).
warm_big() { cat "$WORK/big/2GiB.bin" > /dev/null; }
warm_tree() { find "$WORK/tree" -type f -exec cat {} + > /dev/null; }

OUT=$WORK/out
CACHE=$WORK/weft-cache
rm -rf "$OUT"; mkdir -p "$OUT"

# Seconds (3 decimals) that "$@" takes; its output goes to $WORK/last.log.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" > "$WORK/last.log" 2>&1 || { echo "FAILED: $*" >&2; tail -5 "$WORK/last.log" >&2; return 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l | xargs printf '%.3f'
}
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
# "$2 $3 ..." rotated left by $1.
rotate() {
  local n=$1; shift
  local all=("$@"); local k=$(( n % ${#all[@]} ))
  echo "${all[@]:k}" "${all[@]:0:k}"
}

# "MEDIAN (runs R1 R2 ...)": the ratios of the arrays named $1 and $2, run by run (the
# tools of one run go back to back, so their ratio drifts less with the machine's load).
per_run() {
  local -n num=$1 den=$2
  local ratios=() k
  for k in "${!num[@]}"; do ratios+=("$(ratio "${num[$k]}" "${den[$k]}")"); done
  echo "$(median "${ratios[@]}") (runs ${ratios[*]})"
}
# Peak RSS in MiB (GNU time) of a backup of $1 into blob store $2, with extra args.
peak_mib() {
  local input=$1 url=$2; shift 2
  local data; data=$(mktemp -d "$WORK/data.XXXX")
  /usr/bin/time -v "$WEFT" run E2_BackupSiteContent --input "\"$input\"" --blobs "$url" \
    --data-dir "$data" --cache-dir "$CACHE" --allow-dir "$input" "$@" \
    > "$WORK/last.log" 2> "$WORK/time.log" || { tail -5 "$WORK/time.log" >&2; return 1; }
  awk '/Maximum resident set size/ { printf "%.1f", $6 / 1024 }' "$WORK/time.log"
}
# weft run of the backup sample on $1 into blob store $2, with extra args.
# Weft may read only the directory it backs up, as a user would set it up; its data and
# cache directories (under $WORK) are then outside what it may read, so no open has to
# check that it did not reach them (see activity/confine.rs).
weft_backup() {
  local input=$1 url=$2; shift 2
  local data; data=$(mktemp -d "$WORK/data.XXXX")
  "$WEFT" run E2_BackupSiteContent --input "\"$input\"" --blobs "$url" \
    --data-dir "$data" --cache-dir "$CACHE" --allow-dir "$input" "$@"
}
# Compile the sample once, outside every measurement.
mkdir -p "$WORK/empty"; weft_backup "$WORK/empty" "memory://" > /dev/null

echo "# weft blob benchmarks, $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"
echo "# weft $(git -C "$REPO" rev-parse --short HEAD), rclone $(rclone version | head -1 | awk '{print $2}')"

# --- 1. 2 GiB to file:// vs cp ----------------------------------------------------------
if section local; then
# Weft fsyncs the blob before it reports success; `cp` + `sync FILE` is the durable peer.
cp_sync() { cp "$1" "$2/" && sync "$2/$(basename "$1")"; }
# `openssl dgst -sha256` (SHA-NI, as Weft's sha2) is the floor of any copy that hashes
# every byte: one core's SHA-256 of the file (coreutils' `sha256sum` is 2 x slower).
w=(); c=(); s=(); h=()
# Each tool's copy is removed (and everything flushed) right after it is timed: a copy
# left in memory would be flushed while the next tool runs, and on this VM a tool that
# needs 2 GiB of page cache beyond what the last deletion freed can run 9 times slower
# (`cp` itself: 5.6 s instead of 0.6 s), so every tool starts from the same state.
for i in $(seq "$RUNS"); do
  mkdir -p "$OUT/cp$i" "$OUT/cps$i"
  warm_big; c+=("$(seconds cp "$WORK/big/2GiB.bin" "$OUT/cp$i/")"); rm -rf "$OUT/cp$i"; sync
  warm_big; s+=("$(seconds cp_sync "$WORK/big/2GiB.bin" "$OUT/cps$i")"); rm -rf "$OUT/cps$i"; sync
  warm_big; h+=("$(seconds openssl dgst -sha256 "$WORK/big/2GiB.bin")")
  warm_big; w+=("$(seconds weft_backup "$WORK/big" "file://$OUT/weft-big$i")")
  rm -rf "$OUT/weft-big$i" "$WORK"/data.*
  sync
done
warm_big; rss=$(peak_mib "$WORK/big" "file://$OUT/weft-big-rss"); rm -rf "$OUT/weft-big-rss" "$WORK"/data.*
wm=$(median "${w[@]}"); cm=$(median "${c[@]}"); sm=$(median "${s[@]}"); hm=$(median "${h[@]}")
echo "2GiB file:// | weft ${wm}s (runs ${w[*]}) | cp ${cm}s (runs ${c[*]}) | cp+sync ${sm}s (runs ${s[*]}) | openssl sha256 ${hm}s (runs ${h[*]}) | weft/cp $(ratio "$wm" "$cm") | weft/(cp+sync) $(ratio "$wm" "$sm") | sha256/cp $(ratio "$hm" "$cm") | weft peak RSS ${rss} MiB"

# --- 2. tree to file:// vs rclone ------------------------------------------------------
# The copies stay until every run is done: creating files soon after thousands were
# deleted is slow on ext4 without a journal (see host/src/bench/backup.rs): its inode
# allocator passes over inodes freed in the last 5 s (30 s while their table block is
# dirty), so the runs start 35 s after the last deletion.
# Weft runs with its default 16 activities and with 32 (a copy holds its activity while
# it waits for its group's sync, which rclone never does; rclone has 16 transfers and 16
# checkers).
sync; sleep 35
w=(); w32=(); r=()
# rclone goes first in odd runs and last in even ones: the machine drifts within a run.
for i in $(seq "$RUNS"); do
  if (( i % 2 )); then
    sync; warm_tree
    r+=("$(seconds rclone copy --transfers 16 --checkers 16 "$WORK/tree" "$OUT/rclone-tree$i")")
  fi
  sync; warm_tree
  w+=("$(seconds weft_backup "$WORK/tree" "file://$OUT/weft-tree$i")")
  sync; warm_tree
  w32+=("$(seconds weft_backup "$WORK/tree" "file://$OUT/weft32-tree$i" --max-activities 32)")
  if (( i % 2 == 0 )); then
    sync; warm_tree
    r+=("$(seconds rclone copy --transfers 16 --checkers 16 "$WORK/tree" "$OUT/rclone-tree$i")")
  fi
done
rm -rf "$OUT"/rclone-tree* "$OUT"/weft-tree* "$OUT"/weft32-tree* "$WORK"/data.*
sync
wm=$(median "${w[@]}"); w32m=$(median "${w32[@]}"); rm_=$(median "${r[@]}")
echo "tree file:// | weft ${wm}s (runs ${w[*]}) | weft, 32 activities ${w32m}s (runs ${w32[*]}) | rclone ${rm_}s (runs ${r[*]}) | weft/rclone $(ratio "$wm" "$rm_") | weft/rclone per run $(per_run w r) | weft 32/rclone per run $(per_run w32 r)"
fi

# --- 2b. tree to a fresh ext4 vs rclone --------------------------------------------------
# This VM's disk is an ext4 without a journal that has seen many deletions: its inode
# allocator's scans, and its neighbours' load, swing every tool 1.5 to 3x between rounds.
# Here each tool's run writes into an ext4 made just before it (defaults, so with a
# journal, as a user's disk has; its tables initialised at once, not in the background)
# on a loop device over a file in WORK (direct I/O: no second page cache), so that every
# run starts from the same state. Needs root, mkfs.ext4 and losetup.
if section ext4 && { [ "$(id -u)" != 0 ] || ! command -v mkfs.ext4 losetup > /dev/null; }; then
  echo "tree fresh ext4 | skipped: needs root, mkfs.ext4 and losetup"
elif section ext4; then
  MNT=$WORK/mnt; IMG=$WORK/ext4.img
  mkdir -p "$MNT"
  fresh_ext4() {
    rm -f "$IMG"; truncate -s 6G "$IMG"
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$IMG"
    LOOP=$(losetup --direct-io=on -f --show "$IMG")
    mount "$LOOP" "$MNT"; sync
  }
  drop_ext4() { umount "$MNT"; losetup -d "$LOOP"; rm -f "$IMG"; }
  # Weft makes every blob durable before it records its copy; `rclone copy` then
  # `sync -f` (a sync of that filesystem) is the durable peer, as `cp` + `sync` is above.
  rclone_sync() { rclone copy --transfers 16 --checkers 16 "$1" "$2" && sync -f "$2"; }
  w=(); r=(); rs=()
  for i in $(seq "$RUNS"); do
    for tool in $(rotate "$i" rclone weft rclone-sync); do
      fresh_ext4; warm_tree
      case $tool in
        rclone) r+=("$(seconds rclone copy --transfers 16 --checkers 16 "$WORK/tree" "$MNT/tree")") ;;
        rclone-sync) rs+=("$(seconds rclone_sync "$WORK/tree" "$MNT/tree")") ;;
        weft) w+=("$(seconds weft_backup "$WORK/tree" "file://$MNT/blobs" ${WEFT_ARGS:-})") ;;
      esac
      drop_ext4
    done
    rm -rf "$WORK"/data.*
  done
  wm=$(median "${w[@]}"); rm_=$(median "${r[@]}"); rsm=$(median "${rs[@]}")
  echo "tree fresh ext4 | weft ${wm}s (runs ${w[*]}) | rclone ${rm_}s (runs ${r[*]}) | rclone+sync ${rsm}s (runs ${rs[*]}) | weft/rclone $(ratio "$wm" "$rm_") | weft/rclone per run $(per_run w r) | weft/(rclone+sync) per run $(per_run w rs)"
fi

# --- 3. tree to Azurite and S3 vs rclone and raw object_store ---------------------------
start_server() { # $1 = log file, rest = command; prints the port
  local log=$1; shift
  "$@" > "$log" 2>&1 &
  echo $! > "$log.pid"
  for _ in $(seq 600); do
    local port
    port=$(grep -aoE '(listens on|Running on|running at) http://127.0.0.1:[0-9]+' "$log" | grep -oE '[0-9]+$' | head -1 || true)
    [ -n "$port" ] && { echo "$port"; return; }
    sleep 0.1
  done
  echo "server did not start: $*" >&2; cat "$log" >&2; return 1
}
stop_server() { kill "$(cat "$1.pid")" 2>/dev/null || true; wait "$(cat "$1.pid")" 2>/dev/null || true; }

# Starts a fresh server of kind $1 (azure|s3|s3s) for the measurement named $2 and points
# Weft, rclone and raw_copy at it; sets SCHEME and LOG. Every tool gets a fresh server:
# the emulators slow down as they fill (Azurite, in memory, took 14 to 26 to 47 s for the
# same copy as the first, second and third tool on one server). s3s-fs stores on disk,
# in a fresh directory each time, all deleted only at the end of the section (files
# created soon after thousands were deleted are slow to create, see section 2).
serve() {
  local kind=$1 run=$2 port
  # A log of its own: a server that is still closing writes on in the one before.
  mkdir -p "$WORK/logs"
  LOG=$WORK/logs/$kind-server-$run.log
  if [ "$kind" = azure ]; then
    port=$(cd "$WORK" && start_server "$LOG" "$AZURITE" --inMemoryPersistence --skipApiVersionCheck \
      --disableTelemetry --blobHost 127.0.0.1 --blobPort 0)
    export AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$port
    # rclone 1.60 reaches an emulator on another port than 10000 only through a SAS URL.
    local sas
    sas=$(python3 -c "
from datetime import datetime, timedelta, timezone
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
print(generate_account_sas('devstoreaccount1', '$EMULATOR_KEY',
    resource_types=ResourceTypes(service=True, container=True, object=True),
    permission=AccountSasPermissions(read=True, write=True, list=True, create=True, add=True, delete=True),
    expiry=datetime.now(timezone.utc) + timedelta(hours=6)))")
    export RCLONE_CONFIG_BENCH_TYPE=azureblob \
      RCLONE_CONFIG_BENCH_SAS_URL="http://127.0.0.1:$port/devstoreaccount1?$sas"
    SCHEME=az
  else
    if [ "$kind" = s3s ]; then
      mkdir -p "$S3S_DATA/s3s-data.$run"
      port=$(cd "$WORK" && RUST_LOG=info start_server "$LOG" "$S3S_FS" --host 127.0.0.1 --port 0 \
        --access-key bench --secret-key bench-secret "$S3S_DATA/s3s-data.$run")
    else
      port=$(cd "$WORK" && start_server "$LOG" python3 -m moto.server -H 127.0.0.1 -p 0)
    fi
    export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
      AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
    export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
      RCLONE_CONFIG_BENCH_ENDPOINT=http://127.0.0.1:$port RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=bench \
      RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=bench-secret RCLONE_CONFIG_BENCH_REGION=us-east-1 \
      RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
    SCHEME=s3
  fi
}

cloud() { # $1 = azure|s3|s3s
  local kind=$1 w=() r=() x=() y=()
  rm -rf "$S3S_DATA"/s3s-data.* "$WORK/logs"
  for i in $(seq "$RUNS"); do
    # The tools take turns to go first (the disk, too, remembers what ran before).
    for tool in $(rotate "$i" rclone weft raw raw-sha256); do
      serve "$kind" "$i-$tool"
      warm_tree
      case $tool in
        rclone)
          r+=("$(seconds rclone copy --transfers 16 --checkers 16 "$WORK/tree" "bench:rclone-tree")") ;;
        weft)
          weft_backup "$WORK/empty" "$SCHEME://weft-tree" --create-container > /dev/null
          w+=("$(seconds weft_backup "$WORK/tree" "$SCHEME://weft-tree")") ;;
        raw)
          rclone mkdir "bench:raw-tree" > /dev/null 2>&1
          x+=("$(seconds "$RAW" "$WORK/tree" "$SCHEME://raw-tree" 16)") ;;
        raw-sha256)
          rclone mkdir "bench:raw-tree" > /dev/null 2>&1
          y+=("$(seconds "$RAW" "$WORK/tree" "$SCHEME://raw-tree" 16 --sha256)") ;;
      esac
      stop_server "$LOG"
      # Off the disk, deleting at once slows nothing down, and memory is shorter.
      if [ "$S3S_DATA" != "$WORK" ]; then rm -rf "$S3S_DATA"/s3s-data.*; fi
    done
    rm -rf "$WORK"/data.*
  done
  local wm rm_ xm ym
  wm=$(median "${w[@]}"); rm_=$(median "${r[@]}"); xm=$(median "${x[@]}"); ym=$(median "${y[@]}")
  # Weft against the raw copy of the same run (minutes apart, not tens of minutes), which
  # the machine's drifting load disturbs less than the ratio of the medians.
  echo "tree $kind | weft ${wm}s (runs ${w[*]}) | rclone ${rm_}s (runs ${r[*]}) | raw object_store ${xm}s (runs ${x[*]}) | raw + sha256 ${ym}s (runs ${y[*]}) | weft/rclone $(ratio "$wm" "$rm_") | weft/raw $(ratio "$wm" "$xm") | weft/(raw + sha256) $(ratio "$wm" "$ym") | weft/raw per run $(per_run w x)"
  serve "$kind" rss
  weft_backup "$WORK/empty" "$SCHEME://weft-big" --create-container > /dev/null
  local rss
  warm_big; rss=$(peak_mib "$WORK/big" "$SCHEME://weft-big")
  echo "2GiB $kind | weft peak RSS ${rss} MiB (one run)"
  rm -rf "$WORK"/data.*
  stop_server "$LOG"
  rm -rf "$S3S_DATA"/s3s-data.*
}
for kind in azure s3 s3s; do
  if section "$kind"; then cloud "$kind"; fi
done
