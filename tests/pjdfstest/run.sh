#!/usr/bin/env bash
# pjdfstest, the POSIX conformance suite, on a fresh durafs volume.
#
#   tests/pjdfstest/run.sh [--quick] [--durafs PATH] [--keep-log FILE]
#
# Builds pjdfstest from ../shared/third-party/pjdfstest-85a8aea.tar.gz (the
# repository's parent; PJDFSTEST_TARBALL overrides) into target/pjdfstest/
# once, mounts a fresh `durafs mount --allow-other` volume in a temp dir,
# runs `prove -r` over the suite from inside the mount (--quick: the subset
# in QUICK below, full: all 238 files), unmounts with `durafs umount` (which
# must succeed: it persists everything) and prints the totals as
#   pjdfstest: files=N subtests=M failed=K seconds=S
# The durafs binary: --durafs PATH, else $DURAFS, else `cargo build`'s
# target/debug/durafs. Needs root and the tool chain (autoconf automake
# libtool build-essential pkg-config, prove from perl). Exit status: 0 when
# no subtest failed and the unmount succeeded.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
tarball=${PJDFSTEST_TARBALL:-$repo/../shared/third-party/pjdfstest-85a8aea.tar.gz}
cache=${PJDFSTEST_CACHE:-$repo/target/pjdfstest}

# A few files of each group: the common cases (00), errors, and the
# permission checks (other uids, set-id bits). Left out for time: the
# slowest files (rename/09 and 10, unlink/00, link/00: 15-19 s each on a
# debug build), the full run has them; chown/00 (about 100 s: it waits for
# ctime to tick) stays, as it checks the clearing of set-id bits.
QUICK=(
  chmod/00.t chmod/05.t chmod/07.t chmod/12.t
  chown/00.t chown/05.t chown/07.t
  ftruncate/00.t ftruncate/05.t ftruncate/06.t
  granular/00.t granular/01.t granular/02.t
  link/02.t link/06.t link/07.t
  mkdir/00.t mkdir/05.t mkdir/06.t
  mkfifo/00.t mkfifo/05.t
  mknod/00.t mknod/11.t
  open/00.t open/02.t open/05.t open/06.t open/07.t
  rename/00.t rename/21.t
  rmdir/00.t rmdir/07.t rmdir/11.t
  symlink/00.t symlink/05.t symlink/06.t
  truncate/00.t truncate/05.t truncate/06.t
  unlink/05.t unlink/11.t
  utimensat/00.t utimensat/05.t utimensat/06.t utimensat/07.t
)

quick=false
durafs=${DURAFS:-}
keep_log=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=true ;;
    --durafs) durafs=$2; shift ;;
    --keep-log) keep_log=$2; shift ;;
    *) echo "usage: $0 [--quick] [--durafs PATH] [--keep-log FILE]" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "pjdfstest: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "needs root (pjdfstest switches users; durafs mounts)"
for t in autoreconf make cc prove; do
  command -v "$t" >/dev/null || die "$t is missing: apt-get install autoconf automake libtool build-essential pkg-config perl"
done

if [ -z "$durafs" ]; then
  (cd "$repo" && cargo build -q -p durafs-tools) || die "cargo build failed"
  durafs=$repo/target/debug/durafs
fi
[ -x "$durafs" ] || die "no durafs binary at $durafs"
durafs=$(realpath "$durafs")

# Build once; a lock keeps parallel runs from building over each other.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -x "$cache/src/pjdfstest" ]; then
  [ -r "$tarball" ] || die "no $tarball"
  rm -rf "$cache/src" "$cache/build.log"
  mkdir -p "$cache/src"
  tar -xzf "$tarball" -C "$cache/src" --strip-components=1
  if ! (cd "$cache/src" && autoreconf -ifs && ./configure && make pjdfstest) \
      >"$cache/build.log" 2>&1; then
    tail -30 "$cache/build.log" >&2
    die "building pjdfstest failed (log: $cache/build.log)"
  fi
fi
flock -u 9

if $quick; then
  files=("${QUICK[@]/#/$cache/src/tests/}")
else
  files=("$cache/src/tests")
fi

# pjdfstest runs as several users: the whole path to the mount must be
# traversable.
work=$(mktemp -d /tmp/durafs-pjdfstest.XXXXXX)
chmod 755 "$work"
mkdir "$work/backing" "$work/mnt"
mnt=$work/mnt
mounted=false
cleanup() {
  cd /
  if $mounted; then
    "$durafs" umount --lazy "$mnt" >/dev/null 2>&1 || umount -l "$mnt" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$durafs" mount --allow-other "$work/backing" "$mnt"
mounted=true
chmod 755 "$mnt"

log=$work/prove.log
start=$(date +%s)
set +e
(cd "$mnt" && prove -r --timer "${files[@]}") >"$log" 2>&1
prove_rc=$?
set -e
seconds=$(( $(date +%s) - start ))
[ -n "$keep_log" ] && cp "$log" "$keep_log"

umount_rc=0
cd /
"$durafs" umount "$mnt" || umount_rc=$?
[ "$umount_rc" = 0 ] && mounted=false

# prove's summary: "Files=N, Tests=M, ..." and, per failing file,
# "  Failed K/L subtests" (a file that died without a plan counts as one).
summary=$(grep -E '^Files=[0-9]+, Tests=[0-9]+' "$log" | tail -1 || true)
nfiles=$(sed -E 's/^Files=([0-9]+).*/\1/' <<<"$summary")
ntests=$(sed -E 's/^Files=[0-9]+, Tests=([0-9]+).*/\1/' <<<"$summary")
failed=$(awk '/Failed [0-9]+\/[0-9]+ subtests/ { split($2, a, "/"); n += a[1] }
              /Parse errors:/ { n += 1 } END { print n + 0 }' "$log")
if [ -z "$summary" ]; then
  tail -40 "$log" >&2
  die "prove printed no summary (exit $prove_rc)"
fi
if [ "$prove_rc" != 0 ] || [ "$failed" != 0 ]; then
  sed -n '/^Test Summary Report/,$p' "$log" >&2
fi
echo "pjdfstest: files=$nfiles subtests=$ntests failed=$failed seconds=$seconds"
if [ "$umount_rc" != 0 ]; then
  echo "pjdfstest: durafs umount failed (exit $umount_rc)" >&2
  exit 1
fi
[ "$failed" = 0 ] && [ "$prove_rc" = 0 ]
