#!/usr/bin/env bash
# Tree to a fresh ext4, tools taking turns: N rounds of each command given, each run
# into an ext4 made just before it (as root: a loop device over a file, direct I/O), with
# the whole machine's CPU split over the run (from /proc/stat: user, system, idle and
# I/O wait, so the kernel's writeback counts too). Prints each run and the medians.
# The tree is bench/blobs.sh's (10,000 files of 1-64 KiB + 5 x 50 MiB in WORK/tree).
# Usage: bench/tree-ab.sh N TOOL...   where TOOL is `rclone` or the path of a weft binary
# e.g.   bench/tree-ab.sh 8 target/release/weft rclone
#        bench/tree-ab.sh 8 /tmp/weft-before target/release/weft
# WORK=/tmp/weft-bench by default; WEFT_ARGS adds arguments to each weft run.
set -euo pipefail
N=$1
shift
WORK=${WORK:-/tmp/weft-bench}
[ -f "$WORK/tree.done" ] || { echo "no tree in $WORK: run bench/blobs.sh once first" >&2; exit 1; }
MNT=$WORK/mnt
IMG=$WORK/ext4.img
mkdir -p "$MNT"

one() {
  local tool=$1
  rm -f "$IMG"
  truncate -s 6G "$IMG"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$IMG"
  local loop
  loop=$(losetup --direct-io=on -f --show "$IMG")
  mount "$loop" "$MNT"
  sync
  find "$WORK/tree" -type f -exec cat {} + >/dev/null
  local data
  data=$(mktemp -d "$WORK/data.XXXX")
  local a b s e
  read -ra a < /proc/stat
  s=$(date +%s%N)
  case $tool in
    rclone) rclone copy --transfers 16 --checkers 16 "$WORK/tree" "$MNT/tree" 2>/dev/null ;;
    *) "$tool" run E2_BackupSiteContent --input "\"$WORK/tree\"" --blobs "file://$MNT/blobs" \
         --data-dir "$data" --cache-dir "$WORK/weft-cache" --allow-dir "$WORK/tree" \
         ${WEFT_ARGS:-} >/dev/null 2>"$WORK/tree-ab.err" ;;
  esac
  e=$(date +%s%N)
  read -ra b < /proc/stat
  umount "$MNT"
  losetup -d "$loop"
  rm -rf "$IMG" "$data"
  # /proc/stat counts in 10 ms ticks: user nice system idle iowait.
  echo "$tool $(((e - s) / 1000000)) $(((b[1] - a[1]) * 10)) $(((b[3] - a[3]) * 10)) $(((b[4] - a[4]) * 10)) $(((b[5] - a[5]) * 10))"
}

for _ in $(seq "$N"); do
  for tool in "$@"; do one "$tool"; done
done | tee /dev/stderr | python3 -c '
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in sys.stdin:
    tool, wall, user, system, idle, iowait = line.split()
    runs[tool].append((int(wall), int(user) + int(system), int(idle) + int(iowait)))
tools = list(runs)
for tool in tools:
    r = runs[tool]
    print(f"{tool}: wall median {statistics.median(x[0] for x in r)} ms "
          f"(runs {[x[0] for x in r]}), machine CPU busy {statistics.median(x[1] for x in r)} ms, "
          f"idle {statistics.median(x[2] for x in r)} ms")
if len(tools) >= 2:
    first, second = runs[tools[0]], runs[tools[1]]
    ratios = [a[0] / b[0] for a, b in zip(first, second)]
    print(f"{tools[0]} / {tools[1]}: per round median {statistics.median(ratios):.2f} "
          f"(rounds {[round(x, 2) for x in ratios]})")
'
