#!/usr/bin/env bash
# fsync-failure-probe.sh: measure what ext4, xfs and btrfs on THIS kernel do
# when the data (or journal) writes behind an fsync fail.
#
#   bash tests/scripts/fsync-failure-probe.sh ext4|xfs|btrfs|all [CASE...]
#
# Needs root, loop devices, FUSE (/dev/fuse), python3, mkfs.{ext4,xfs,btrfs},
# xfs_io (GETFSMAP), debugfs, xfs_db, btrfs-progs. Prints one line per
# observation: "FS CASE key=value" (dmesg lines as key dmesg="...").
#
# How writes are failed: this kernel has no device-mapper (CONFIG_BLK_DEV_DM
# is off), no dm-flakey, no fail_make_request. So a tiny FUSE server (raw
# /dev/fuse protocol, python, embedded below) serves a file 'disk' backed by
# a sparse 2 GiB image; a loop device sits on that file and the filesystem
# under test on the loop device. A write request touching a chosen byte range
# fails with EIO; the request's bytes outside the range are still written
# (what dm-linear + dm-error would leave); reads always succeed (write-only
# faults, like the dm-loki target of Rebello et al., ATC '20). Each case gets
# a fresh mkfs (default options) and mount (default options).
#
# Scratch: $FSYNC_PROBE_DIR (default /tmp/fsync-probe.XXXX), removed at exit
# unless FSYNC_PROBE_KEEP=1. Everything mounted or attached is undone at exit,
# also on failure or Ctrl-C.
set -euo pipefail

usage() { echo "usage: $0 ext4|xfs|btrfs|all [CASE...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in ext4|xfs|btrfs) FSES=("$1");; all) FSES=(ext4 xfs btrfs);; *) usage;; esac
shift
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
for t in python3 losetup mount mkfs.ext4 mkfs.xfs mkfs.btrfs xfs_io xfs_db debugfs dumpe2fs btrfs; do
  command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done
[ -c /dev/fuse ] || { echo "no /dev/fuse" >&2; exit 1; }

WORK=${FSYNC_PROBE_DIR:-$(mktemp -d /tmp/fsync-probe.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

cleanup() {
  # backstop: probe.py undoes its own mounts; this catches an interrupted run
  local fs m l
  for fs in ext4 xfs btrfs; do
    m="$WORK/$fs/mnt"
    grep -q " $m " /proc/self/mountinfo 2>/dev/null && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
    for l in $(losetup -j "$WORK/$fs/fuse/disk" -O NAME -n 2>/dev/null); do losetup -d "$l" 2>/dev/null || true; done
    m="$WORK/$fs/fuse"
    grep -q " $m " /proc/self/mountinfo 2>/dev/null && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
  done
  if grep -q " $WORK/" /proc/self/mountinfo; then
    echo "WARNING: mounts left under $WORK:" >&2; grep " $WORK/" /proc/self/mountinfo >&2
  elif [ "${FSYNC_PROBE_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$WORK/faultdev.py" <<'PY'
#!/usr/bin/env python3
"""Minimal raw-protocol FUSE server exposing one file, 'disk', backed by an image.
Writes that touch a byte range listed in RULES fail with EIO (the bytes of the
request outside the ranges are still written, as dm-linear+dm-error would do);
reads always succeed (the paper's dm-loki also failed writes only).
RULES lines: 'w START END' (bytes, END exclusive). Re-read on every write.
usage: faultdev.py MOUNTPOINT IMAGE RULES LOG"""
import os, sys, struct, ctypes, errno, time

mnt, image, rules_path, log_path = sys.argv[1:5]
img = os.open(image, os.O_RDWR)
size = os.fstat(img).st_size
log = open(log_path, 'a', buffering=1)
fd = os.open('/dev/fuse', os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
opts = f'fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other'.encode()
if libc.mount(b'faultdev', mnt.encode(), b'fuse.faultdev', 0, opts) != 0:
    e = ctypes.get_errno(); sys.exit(f'mount: {os.strerror(e)}')

def rules():
    out = []
    try:
        for line in open(rules_path):
            p = line.split()
            if len(p) == 3 and p[0] == 'w':
                out.append((int(p[1]), int(p[2])))
    except FileNotFoundError:
        pass
    return out

ATTR = struct.Struct('<QQQQQQIIIIIIIIII')  # fuse_attr, 88 bytes
def attr(ino):
    if ino == 1:
        return ATTR.pack(1, 0, 0, 0, 0, 0, 0, 0, 0, 0o40755, 2, 0, 0, 0, 4096, 0)
    return ATTR.pack(2, size, (size + 511) // 512, 0, 0, 0, 0, 0, 0, 0o100600, 1, 0, 0, 0, 4096, 0)

def reply(unique, err=0, body=b''):
    os.write(fd, struct.pack('<IiQ', 16 + len(body), -err if err else 0, unique) + body)

NOREPLY = {2, 42}  # FORGET, BATCH_FORGET
while True:
    try:
        buf = os.read(fd, (1 << 20) + 8192)
    except OSError as e:
        if e.errno == errno.ENODEV:
            break  # unmounted
        if e.errno in (errno.EINTR, errno.ENOENT, errno.EAGAIN):
            continue
        raise
    ln, op, unique, nodeid = struct.unpack_from('<IIQQ', buf)
    arg = buf[40:ln]
    try:
        if op in NOREPLY:
            continue
        if op == 26:  # INIT
            maj, mnr, ra, flags = struct.unpack_from('<IIII', arg)
            reply(unique, body=struct.pack('<IIIIHHIIHHI7I', 7, 31, 0, 0, 16, 12,
                                           1 << 20, 1, 256, 0, 0, *([0] * 7)))
        elif op == 1:  # LOOKUP
            name = arg.split(b'\0')[0]
            if nodeid == 1 and name == b'disk':
                reply(unique, body=struct.pack('<QQQQII', 2, 0, 0, 0, 0, 0) + attr(2))
            else:
                reply(unique, errno.ENOENT)
        elif op == 3:  # GETATTR
            reply(unique, body=struct.pack('<QII', 0, 0, 0) + attr(nodeid))
        elif op in (14, 27):  # OPEN, OPENDIR
            reply(unique, body=struct.pack('<QII', 0, 1 if op == 14 else 0, 0))  # FOPEN_DIRECT_IO
        elif op == 15:  # READ
            fh, off, sz = struct.unpack_from('<QQI', arg)
            reply(unique, body=os.pread(img, sz, off))
        elif op == 16:  # WRITE
            fh, off, sz = struct.unpack_from('<QQI', arg)
            data = arg[40:40 + sz]
            end = off + sz
            bad = [(max(a, off), min(b, end)) for a, b in rules() if a < end and b > off]
            if not bad:
                os.pwrite(img, data, off)
                log.write(f'W {off} {sz} ok\n')
                reply(unique, body=struct.pack('<II', sz, 0))
            else:
                # write what lies outside the failing ranges, then fail the request
                cuts = sorted(bad); pos = off
                for a, b in cuts:
                    if a > pos:
                        os.pwrite(img, data[pos - off:a - off], pos)
                    pos = max(pos, b)
                if pos < end:
                    os.pwrite(img, data[pos - off:], pos)
                log.write(f'W {off} {sz} EIO\n')
                reply(unique, errno.EIO)
        elif op == 43:  # FALLOCATE (loop's discard / write-zeroes): fails like a write
            fh, off, ln2, mode = struct.unpack_from('<QQQI', arg)
            end = off + ln2
            bad = [(a, b) for a, b in rules() if a < end and b > off]
            if bad:
                log.write(f'F {off} {ln2} EIO\n'); reply(unique, errno.EIO)
            elif libc.fallocate(img, ctypes.c_int(mode), ctypes.c_long(off), ctypes.c_long(ln2)) != 0:
                reply(unique, ctypes.get_errno())
            else:
                log.write(f'F {off} {ln2} ok\n'); reply(unique)
        elif op == 17:  # STATFS
            reply(unique, body=struct.pack('<QQQQQIIII6I', 0, 0, 0, 0, 0, 4096, 255, 4096, 0, *([0] * 6)))
        elif op in (18, 29, 25, 20, 30):  # RELEASE, RELEASEDIR, FLUSH, FSYNC, FSYNCDIR
            reply(unique)
        elif op == 28:  # READDIR: empty
            reply(unique)
        elif op == 38:  # DESTROY
            reply(unique); break
        else:
            reply(unique, errno.ENOSYS)
    except OSError as e:
        try:
            reply(unique, e.errno or errno.EIO)
        except OSError:
            pass
PY

cat > "$WORK/probe.py" <<'PY'
#!/usr/bin/env python3
"""Run the fsync-failure cases on one filesystem. usage: probe.py FS WORKDIR [CASE...]
Prints 'FS CASE key=value' lines. Each case gets a fresh filesystem on a loop
device whose backing file is served by faultdev.py (FUSE), which fails writes
to chosen byte ranges with EIO."""
import os, sys, subprocess, time, struct, fcntl, errno, ctypes, re

FS, WORK = sys.argv[1], sys.argv[2]
ONLY = sys.argv[3:]
HERE = os.path.dirname(os.path.abspath(__file__))
PG, N = 4096, 4
IMG_SIZE = 2 << 30
libc = ctypes.CDLL(None, use_errno=True)


def out(case, key, val):
    print(f'{FS} {case} {key}={val}', flush=True)


def sh(cmd, check=True):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f'{cmd}: {r.returncode} {r.stderr.strip()}')
    return r.stdout


def call(f, *a):
    """'0' or the errno name of an OSError."""
    try:
        f(*a)
        return '0'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def syncfs(fd):
    if libc.syncfs(fd) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def page(tag, i):
    return bytes([tag + i]) * PG


OLD, NEW, JUNK = ord('a'), ord('N'), ord('G')


def classify(data, i):
    if len(data) == 0:
        return 'eof'
    if len(data) < PG:
        return f'short{len(data)}'
    if data == page(OLD, i):
        return 'old'
    if data == page(NEW, i):
        return 'new'
    if data == bytes(PG):
        return 'zero'
    if data == bytes([JUNK]) * PG:
        return 'stale'
    if data[:100] == b'r' * 100:
        rest = data[100:]
        for name, tag in (('old', OLD), ('new', NEW)):
            if rest == page(tag, i)[100:]:
                return 'r100+' + name
        return 'r100+other'
    if data == b'R' * PG:
        return 'R'
    return 'other'


def read_pages(fd, first=0, n=N):
    res = []
    for i in range(first, first + n):
        try:
            res.append(classify(os.pread(fd, PG, i * PG), i))
        except OSError as e:
            res.append(errno.errorcode[e.errno])
    return ','.join(res)


def read_path(path, first=0, n=N):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return errno.errorcode[e.errno]
    try:
        return read_pages(fd, first, n)
    finally:
        os.close(fd)


def size_of(path):
    try:
        return str(os.stat(path).st_size)
    except OSError as e:
        return errno.errorcode[e.errno]


def drop_caches():
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3\n')


def fiemap(path):
    """[(logical, physical, length)] in bytes; physical is the fs's address
    (the device offset on ext4/xfs, btrfs's logical address on btrfs)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        cnt = 64
        buf = bytearray(struct.pack('=QQIIII', 0, 2**64 - 1, 1, 0, cnt, 0) + bytes(56 * cnt))  # FIEMAP_FLAG_SYNC
        fcntl.ioctl(fd, 0xC020660B, buf)
        n = struct.unpack_from('=I', buf, 20)[0]
        return [struct.unpack_from('=QQQ', buf, 32 + 56 * k) for k in range(n)]
    finally:
        os.close(fd)


NOISE = ('detected capacity change', 'BTRFS info', 'BTRFS: device fsid', 'mounted filesystem',
         'unmounting filesystem', 'Mounting V5', 'Ending clean mount', 'Unmounting Filesystem',
         'drop_caches', 'callbacks suppressed', 'Buffer I/O error')


class Vol:
    def __init__(self, case):
        self.case = case
        self.d = os.path.join(WORK, FS)
        sh(f'rm -rf {self.d}; mkdir -p {self.d}/mnt {self.d}/fuse')
        self.img, self.mnt, self.fuse = f'{self.d}/img', f'{self.d}/mnt', f'{self.d}/fuse'
        self.rules, self.log = f'{self.d}/rules', f'{self.d}/devlog'
        open(self.log, 'w').close()
        os.truncate(self.img, 0) if os.path.exists(self.img) else open(self.img, 'w').close()
        os.truncate(self.img, IMG_SIZE)
        mkfs = {'ext4': 'mkfs.ext4 -q -F', 'xfs': 'mkfs.xfs -q -f', 'btrfs': 'mkfs.btrfs -q -f'}[FS]
        sh(f'{mkfs} {self.img}')
        self.daemon = subprocess.Popen([sys.executable, f'{HERE}/faultdev.py', self.fuse, self.img, self.rules, self.log])
        self.loop = None
        self.mounted = False
        for _ in range(100):
            if f' {self.fuse} ' in open('/proc/self/mountinfo').read():
                break
            time.sleep(0.05)
        self.loop = sh(f'losetup -f --show {self.fuse}/disk').strip()
        self.kmsg0 = self.kmsg_count()
        self.mount()

    @staticmethod
    def kmsg():
        """[(seq, text)] of the kernel log records still in the buffer."""
        fd = os.open('/dev/kmsg', os.O_RDONLY | os.O_NONBLOCK)
        res = []
        try:
            while True:
                try:
                    rec = os.read(fd, 8192).decode(errors='replace')
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno == errno.EPIPE:  # overwritten record: go on
                        continue
                    raise
                head, _, msg = rec.partition(';')
                res.append((int(head.split(',')[1]), msg.split('\n')[0]))
        finally:
            os.close(fd)
        return res

    def kmsg_count(self):
        k = self.kmsg()
        return k[-1][0] if k else -1

    def dmesg(self):
        lines = [m for s, m in self.kmsg() if s > self.kmsg0]
        seen, res = set(), []
        for l in lines:
            l = re.sub(r'loop\d+', 'loopN', l)
            if l in seen or any(n in l for n in NOISE):
                continue
            seen.add(l)
            res.append(l)
        return res

    def report_dmesg(self, limit=12):
        for l in self.dmesg()[:limit]:
            out(self.case, 'dmesg', '"' + l.replace('"', "'") + '"')

    def mount(self):
        r = subprocess.run(['mount', self.loop, self.mnt], capture_output=True, text=True)
        self.mounted = r.returncode == 0
        return '0' if self.mounted else 'fail:' + r.stderr.strip().replace(' ', '_')[:80]

    def umount(self):
        r = subprocess.run(['umount', self.mnt], capture_output=True, text=True)
        if r.returncode == 0:
            self.mounted = False
        return '0' if r.returncode == 0 else 'fail'

    def remount(self):
        self.clear()
        u = self.umount()
        m = self.mount()
        return u if u != '0' else m

    def fail(self, ranges):
        tmp = self.rules + '.tmp'
        with open(tmp, 'w') as f:
            for a, b in ranges:
                f.write(f'w {a} {b}\n')
        os.rename(tmp, self.rules)

    def clear(self):
        self.fail([])

    def mark(self):
        return os.path.getsize(self.log)

    def writes(self, mark, ranges=None):
        """(ok, eio) device write requests since mark, overlapping ranges if given."""
        ok = eio = 0
        with open(self.log) as f:
            f.seek(mark)
            for line in f:
                k, off, ln, st = line.split()
                off, ln = int(off), int(ln)
                if ranges is not None and not any(a < off + ln and b > off for a, b in ranges):
                    continue
                if st == 'ok':
                    ok += 1
                else:
                    eio += 1
        return ok, eio

    def close(self):
        self.clear()
        if self.mounted:
            if self.umount() != '0':
                sh(f'umount -l {self.mnt}', check=False)
        if self.loop:
            sh(f'losetup -d {self.loop}', check=False)
        for _ in range(50):
            if f' {self.fuse} ' not in open('/proc/self/mountinfo').read():
                break
            if sh(f'umount {self.fuse}', check=False) == '' and f' {self.fuse} ' not in open('/proc/self/mountinfo').read():
                break
            time.sleep(0.1)
        try:
            self.daemon.wait(5)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()

    # --- where the data lives -------------------------------------------------
    def chunks(self):
        """btrfs: [(logical, length, type, [physical stripe offsets])]"""
        txt = sh(f'btrfs inspect-internal dump-tree -t chunk {self.loop}')
        res = []
        for line in txt.splitlines():
            m = re.search(r'CHUNK_ITEM (\d+)\)', line)
            if m:
                res.append([int(m.group(1)), 0, '', []])
            m = re.search(r'length (\d+) .*type (\S+)', line)
            if m and res:
                res[-1][1], res[-1][2] = int(m.group(1)), m.group(2)
            m = re.search(r'stripe \d+ devid \d+ offset (\d+)', line)
            if m and res:
                res[-1][3].append(int(m.group(1)))
        return [tuple(c) for c in res]

    def chunk_ranges(self, kind):
        return [(p, p + ln) for lo, ln, t, offs in self.chunks() if t.startswith(kind) for p in offs]

    def phys(self, addr):
        """fs address of a data block -> device byte offset."""
        if FS != 'btrfs':
            return addr
        for lo, ln, t, offs in self.chunks():
            if lo <= addr < lo + ln:
                return offs[0] + (addr - lo)
        raise RuntimeError(f'no chunk for {addr}')

    def page_ranges(self, path, pages):
        """device byte ranges that hold the given pages of path now."""
        res = []
        for lg, ph, ln in fiemap(path):
            for i in pages:
                if lg <= i * PG < lg + ln:
                    p = self.phys(ph + i * PG - lg)
                    res.append((p, p + PG))
        return res

    def free_space(self):
        """ext4/xfs: device byte ranges of free space (GETFSMAP)."""
        res = []
        for line in sh(f"xfs_io -c 'fsmap' {self.mnt}").splitlines():
            m = re.search(r'\[(\d+)\.\.(\d+)\]: free space', line)
            if m:
                res.append((int(m.group(1)) * 512, (int(m.group(2)) + 1) * 512))
        return res

    def data_fail_ranges(self):
        """where NEW data of the file may be written: ext4/xfs free space, btrfs data chunks"""
        return self.chunk_ranges('DATA') if FS == 'btrfs' else self.free_space()

    def journal_ranges(self):
        if FS == 'ext4':
            txt = sh(f"debugfs -R 'stat <8>' {self.loop} 2>/dev/null")
            res = []
            for a, b in re.findall(r'\d+-\d+\):(\d+)-(\d+)', txt) + [(x, x) for x in re.findall(r'\(\d+\):(\d+)', txt)]:
                res.append((int(a) * 4096, (int(b) + 1) * 4096))
            return res
        if FS == 'xfs':
            txt = sh(f"xfs_db -r -c 'sb 0' -c 'p logstart logblocks blocksize' {self.loop}")
            v = dict(re.findall(r'(\w+) = (\d+)', txt))
            d = sh(f"xfs_db -r -c 'convert fsb {v['logstart']} daddr' {self.loop}")
            daddr = int(re.search(r'\((\d+)\)', d).group(1))
            return [(daddr * 512, daddr * 512 + int(v['logblocks']) * int(v['blocksize']))]
        return self.chunk_ranges('METADATA')

    # --- helpers ---------------------------------------------------------------
    def make_file(self, name, tag=OLD, n=N):
        path = os.path.join(self.mnt, name)
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
        os.write(fd, b''.join(page(tag, i) for i in range(n)))
        os.fsync(fd)
        os.close(fd)
        return path

    def other_ops(self, case, when):
        """does the fs still accept a new file and a write+fsync elsewhere?"""
        p = os.path.join(self.mnt, f'probe-{when}')
        try:
            fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
            r_create = '0'
        except OSError as e:
            r_create, fd = errno.errorcode[e.errno], None
        r_fsync = 'n/a'
        if fd is not None:
            try:
                os.write(fd, b'x' * 100)  # small: inline on btrfs (metadata only)
                os.fsync(fd)
                r_fsync = '0'
            except OSError as e:
                r_fsync = errno.errorcode[e.errno]
            os.close(fd)
        opts = 'gone'
        for l in open('/proc/self/mountinfo'):
            p = l.split()
            if p[4] == self.mnt:  # per-mount options, then the superblock's (after ' - ')
                opts = ('ro' if p[5].split(',')[0] == 'ro' or p[-1].split(',')[0] == 'ro' else 'rw')
                opts += f'(mount:{p[5].split(",")[0]},super:{p[-1].split(",")[0]})'
        out(case, f'{when}_create', r_create)
        out(case, f'{when}_write_fsync_other', r_fsync)
        out(case, f'{when}_mount_state', opts)


def targets(v, path, which):
    """device ranges to fail so the overwrite of pages `which` of path fails."""
    if FS != 'btrfs':
        return v.page_ranges(path, which)
    if len(which) == N:
        return v.chunk_ranges('DATA')
    # btrfs COW: the rewrite goes to new space; on a fresh fs the allocator
    # takes the space right after the file's current extent. Checked after the
    # fact through the device log (target_hit).
    (lg, ph, ln), = fiemap(path)[:1]
    base = v.phys(ph) + ln
    return [(base + i * PG, base + (i + 1) * PG) for i in which]


def case_overwrite(sync_name, which_name):
    case = f'overwrite_{which_name}_{sync_name}'
    sync = os.fsync if sync_name == 'fsync' else os.fdatasync
    which = list(range(N)) if which_name == 'all' else [1]
    v = Vol(case)
    try:
        path = v.make_file('f')
        rng = targets(v, path, which)
        fd = os.open(path, os.O_RDWR)
        os.pwrite(fd, b''.join(page(NEW, i) for i in range(N)), 0)
        v.fail(rng)
        m = v.mark()
        out(case, 'failed_pages', ','.join(map(str, which)))
        out(case, f'{sync_name}1', call(sync, fd))
        ok, eio = v.writes(m, rng)
        out(case, 'dev_writes1_failed', eio)
        if FS == 'btrfs' and which_name != 'all':
            out(case, 'target_hit', 'yes' if eio else 'no')
        m = v.mark()
        out(case, f'{sync_name}2', call(sync, fd))
        ok, eio = v.writes(m, rng)
        out(case, 'dev_writes2_to_target', ok + eio)
        out(case, 'read_live', read_pages(fd))
        out(case, 'size_live', os.fstat(fd).st_size)
        v.other_ops(case, 'after_data_eio')
        v.clear()
        m = v.mark()
        out(case, f'{sync_name}3_fault_cleared', call(sync, fd))
        ok, eio = v.writes(m, v.chunk_ranges('DATA') if FS == 'btrfs' else rng)
        out(case, 'dev_writes3_to_target', ok)
        drop_caches()
        out(case, 'read_after_drop_caches', read_pages(fd))
        out(case, 'close', call(os.close, fd))
        out(case, 'remount', v.remount())
        out(case, 'read_after_remount', read_path(path))
        out(case, 'size_after_remount', size_of(path))
        v.report_dmesg()
    finally:
        v.close()


def case_append(sync_name):
    case = f'append_{sync_name}'
    sync = os.fsync if sync_name == 'fsync' else os.fdatasync
    v = Vol(case)
    try:
        # leave stale bytes ('G') in free space: a deleted file's blocks
        junk = os.path.join(v.mnt, 'junk')
        fd = os.open(junk, os.O_CREAT | os.O_RDWR, 0o644)
        os.write(fd, bytes([JUNK]) * (4 << 20))
        os.fsync(fd)
        os.close(fd)
        os.unlink(junk)
        os.sync()
        v.remount()
        path = v.make_file('f')
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        os.write(fd, b''.join(page(NEW, i) for i in range(N, 2 * N)))
        rng = v.data_fail_ranges()
        v.fail(rng)
        m = v.mark()
        out(case, f'{sync_name}1', call(sync, fd))
        ok, eio = v.writes(m, rng)
        out(case, 'dev_writes1_failed', eio)
        out(case, f'{sync_name}2', call(sync, fd))
        out(case, 'size_live', os.fstat(fd).st_size)
        out(case, 'offset_live', os.lseek(fd, 0, os.SEEK_CUR))
        out(case, 'read_live', read_pages(fd, 0, 2 * N))
        drop_caches()
        out(case, 'size_after_drop_caches', os.fstat(fd).st_size)
        out(case, 'read_after_drop_caches', read_pages(fd, 0, 2 * N))
        v.clear()
        out(case, 'close', call(os.close, fd))
        out(case, 'remount', v.remount())
        out(case, 'size_after_remount', size_of(path))
        out(case, 'read_after_remount', read_path(path, 0, 2 * N))
        # what the device holds where the appended pages were placed
        try:
            raw = []
            img = os.open(v.img, os.O_RDONLY)
            for i in range(N, 2 * N):
                r = v.page_ranges(path, [i])
                raw.append(classify(os.pread(img, PG, r[0][0]), i) if r else 'unmapped')
            os.close(img)
            out(case, 'device_bytes_at_appended_blocks', ','.join(raw))
        except Exception as e:
            out(case, 'device_bytes_at_appended_blocks', 'unknown:' + type(e).__name__)
        v.report_dmesg()
    finally:
        v.close()


def case_errseq():
    case = 'errseq'
    v = Vol(case)
    try:
        f, g = v.make_file('f'), v.make_file('g')
        rf, rg = targets(v, f, range(N)), targets(v, g, range(N))
        # A: error reported through fd1
        fd1, fd2 = os.open(f, os.O_RDWR), os.open(f, os.O_RDWR)
        fd_sb = os.open(v.mnt, os.O_RDONLY)  # for syncfs, opened before
        os.pwrite(fd1, b''.join(page(NEW, i) for i in range(N)), 0)
        v.fail(rf)
        out(case, 'fd1_fsync1', call(os.fsync, fd1))
        out(case, 'fd1_fsync2', call(os.fsync, fd1))
        out(case, 'fd2_opened_before_fsync1', call(os.fsync, fd2))
        out(case, 'fd2_opened_before_fsync2', call(os.fsync, fd2))
        fd3 = os.open(f, os.O_RDWR)
        out(case, 'fd3_opened_after_report_fsync', call(os.fsync, fd3))
        out(case, 'syncfs_fd_opened_before', call(syncfs, fd_sb))
        out(case, 'syncfs_again', call(syncfs, fd_sb))
        for x in (fd1, fd2, fd3):
            os.close(x)
        v.clear()
        # B: error happens during background writeback (sync(2)), nobody reported it yet
        if FS == 'btrfs':
            rg = v.chunk_ranges('DATA')
        g1, g2, g3 = (os.open(g, os.O_RDWR) for _ in range(3))
        os.pwrite(g1, b''.join(page(NEW, i) for i in range(N)), 0)
        v.fail(rg)
        m = v.mark()
        os.sync()
        ok, eio = v.writes(m, rg)
        out(case, 'B_sync_dev_writes_failed', eio)
        g4 = os.open(g, os.O_RDWR)
        out(case, 'B_fd4_opened_after_unreported_error_fsync', call(os.fsync, g4))
        out(case, 'B_fd4_fsync_again', call(os.fsync, g4))
        out(case, 'B_fd1_opened_before_fsync', call(os.fsync, g1))
        out(case, 'B_fd2_opened_before_fdatasync', call(os.fdatasync, g2))
        out(case, 'B_fd3_opened_before_close', call(os.close, g3))
        g5 = os.open(g, os.O_RDWR)
        out(case, 'B_fd5_opened_after_report_fsync', call(os.fsync, g5))
        for x in (g1, g2, g4, g5):
            os.close(x)
        v.clear()
        out(case, 'syncfs_after_B', call(syncfs, fd_sb))
        os.close(fd_sb)
        v.report_dmesg(4)
    finally:
        v.close()


def case_rewrite(evict):
    case = 'rewrite_after_eio' + ('_evicted' if evict else '')
    v = Vol(case)
    try:
        path = v.make_file('f')
        rng = targets(v, path, range(N))
        fd = os.open(path, os.O_RDWR)
        os.pwrite(fd, b''.join(page(NEW, i) for i in range(N)), 0)
        v.fail(rng)
        out(case, 'fsync1', call(os.fsync, fd))
        v.clear()
        if evict:
            drop_caches()
        os.pwrite(fd, b'R' * PG, 0)        # page 0 rewritten entirely
        os.pwrite(fd, b'r' * 100, PG)      # page 1: 100 bytes rewritten
        out(case, 'rewrote', 'page0_full,page1_100bytes')
        out(case, 'fsync2', call(os.fsync, fd))
        out(case, 'read_live', read_pages(fd))
        out(case, 'offset', os.lseek(fd, 0, os.SEEK_CUR))
        os.close(fd)
        out(case, 'remount', v.remount())
        out(case, 'read_after_remount', read_path(path))
        v.report_dmesg(4)
    finally:
        v.close()


def case_meta():
    case = 'meta_journal_fail'
    v = Vol(case)
    try:
        f = v.make_file('f')
        if FS == 'ext4':
            out(case, 'errors_behavior', sh(f"dumpe2fs -h {v.loop} 2>/dev/null | sed -n 's/^Errors behavior: *//p'").strip())
        rng = v.journal_ranges()
        out(case, 'failed_region', {'ext4': 'jbd2_journal', 'xfs': 'internal_log', 'btrfs': 'metadata_chunks'}[FS])
        out(case, 'failed_bytes', sum(b - a for a, b in rng))
        h = os.path.join(v.mnt, 'h')
        fd = os.open(h, os.O_CREAT | os.O_RDWR, 0o644)
        os.write(fd, page(NEW, 0))
        v.fail(rng)
        m = v.mark()
        out(case, 'fsync_new_file', call(os.fsync, fd))
        ok, eio = v.writes(m, rng)
        out(case, 'dev_writes_failed', eio)
        out(case, 'fsync_again', call(os.fsync, fd))
        os.close(fd)
        out(case, 'read_existing', read_path(f))
        v.other_ops(case, 'after_meta_eio')
        out(case, 'stat_existing', call(os.stat, f))
        out(case, 'mkdir', call(os.mkdir, os.path.join(v.mnt, 'd')))
        v.clear()
        out(case, 'still_after_fault_cleared_create', call(lambda: os.close(os.open(os.path.join(v.mnt, 'late'), os.O_CREAT | os.O_RDWR))))
        out(case, 'umount', v.umount())
        out(case, 'remount', v.mount())
        if v.mounted:
            out(case, 'new_file_after_remount', 'size' + size_of(h) if os.path.exists(h) else 'absent')
            out(case, 'read_new_file_after_remount', read_path(h, 0, 1) if os.path.exists(h) else 'absent')
            out(case, 'read_existing_after_remount', read_path(f))
        v.report_dmesg(16)
    finally:
        v.close()


CASES = {
    'overwrite_all_fsync': lambda: case_overwrite('fsync', 'all'),
    'overwrite_all_fdatasync': lambda: case_overwrite('fdatasync', 'all'),
    'overwrite_one_fsync': lambda: case_overwrite('fsync', 'one'),
    'overwrite_one_fdatasync': lambda: case_overwrite('fdatasync', 'one'),
    'append_fsync': lambda: case_append('fsync'),
    'append_fdatasync': lambda: case_append('fdatasync'),
    'errseq': case_errseq,
    'rewrite_after_eio': lambda: case_rewrite(False),
    'rewrite_after_eio_evicted': lambda: case_rewrite(True),
    'meta_journal_fail': case_meta,
}

if __name__ == '__main__':
    for name, fn in CASES.items():
        if ONLY and name not in ONLY:
            continue
        try:
            fn()
        except Exception as e:
            out(name, 'probe_error', repr(e).replace(' ', '_')[:200])
PY

echo "# kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ), $(mkfs.ext4 -V 2>&1 | head -1), $(mkfs.xfs -V), $(mkfs.btrfs --version | head -1)"
for fs in "${FSES[@]}"; do
  python3 "$WORK/probe.py" "$fs" "$WORK" "$@"
done
