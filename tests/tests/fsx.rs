//! An fsx-style exerciser: long seeded random sequences of operations on ONE
//! file through the mount (read, write anywhere including past the end,
//! truncate up and down, mmap reads, `MAP_SHARED` mmap writes + `msync`,
//! fsync, fdatasync), checked against a shadow buffer of the expected
//! content: after every operation the whole file is read back and compared,
//! and its size checked.
//!
//! Power cuts are part of the sequence: a `keep-all` cut (everything
//! survives, synced or not) and a `drop-all` cut (exactly the content as of
//! the last fsync / fdatasync / msync survives), each followed by a remount.
//!
//! Quick in CI (a few thousand operations per seed). Longer or other runs:
//!
//! ```text
//! DURAFS_FSX_OPS=200000 DURAFS_FSX_SEED=12345 \
//!     cargo test -p durafs-tests --test fsx -- --nocapture
//! ```
//!
//! `DURAFS_FSX_SEED` replaces the fixed seeds by the one given. On a
//! mismatch the test prints the seed, the operation index, the last
//! operations and the first differing offset.

use durafs::model::Persistence;
use durafs::model::crash::Policy;
use durafs_tests::{Vol, fsync_dir};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Largest file size the sequence creates (kept small so that the
/// full-content check after every operation stays cheap).
const MAX_SIZE: u64 = 256 << 10;
/// Longest single read or write.
const MAX_LEN: u64 = 64 << 10;
const PAGE: u64 = 4096;
const HISTORY: usize = 20;

/// splitmix64: small, seeded, the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

struct Fsx {
    seed: u64,
    rng: Rng,
    path: std::path::PathBuf,
    file: File,
    /// What the file must hold now.
    shadow: Vec<u8>,
    /// What it held at the last durability point (fsync, fdatasync, msync).
    synced: Vec<u8>,
    history: VecDeque<String>,
    op: usize,
    counts: [usize; 9],
}

const NAMES: [&str; 9] = [
    "read",
    "write",
    "truncate",
    "mapread",
    "mapwrite",
    "fsync",
    "fdatasync",
    "cut keep-all",
    "cut drop-all",
];

impl Fsx {
    /// An exerciser over the existing file `path`, expected empty.
    fn new(seed: u64, path: std::path::PathBuf) -> Fsx {
        Fsx {
            seed,
            rng: Rng(seed),
            file: Fsx::open(&path),
            path,
            shadow: Vec::new(),
            synced: Vec::new(),
            history: VecDeque::new(),
            op: 0,
            counts: [0; 9],
        }
    }

    fn open(path: &std::path::Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
    }

    fn fail(&self, what: &str) -> ! {
        let mut msg = format!(
            "fsx: seed {} op #{}: {what}\nreproduce: DURAFS_FSX_SEED={} DURAFS_FSX_OPS={} \
             cargo test -p durafs-tests --test fsx -- --nocapture\nlast operations:\n",
            self.seed,
            self.op,
            self.seed,
            self.op + 1
        );
        for h in &self.history {
            msg.push_str("  ");
            msg.push_str(h);
            msg.push('\n');
        }
        panic!("{msg}");
    }

    fn log(&mut self, text: String) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(format!("#{} {text}", self.op));
    }

    fn check(&self, f: &File, want: &[u8], when: &str) {
        let size = match f.metadata() {
            Ok(md) => md.len(),
            Err(e) => self.fail(&format!("{when}: fstat: {e}")),
        };
        if size != want.len() as u64 {
            self.fail(&format!("{when}: size {size}, expected {}", want.len()));
        }
        let mut got = vec![0u8; want.len() + 1];
        let mut n = 0;
        loop {
            match f.read_at(&mut got[n..], n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => self.fail(&format!("{when}: read at {n}: {e}")),
            }
            if n == got.len() {
                break;
            }
        }
        got.truncate(n);
        if got != want {
            let first = got
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            self.fail(&format!(
                "{when}: content differs: read {n} bytes, expected {}; first difference at \
                 offset {first} (got {:?}, expected {:?})",
                want.len(),
                got.get(first),
                want.get(first)
            ));
        }
    }

    fn offset_len(&mut self) -> (u64, u64) {
        let off = self.rng.below(MAX_SIZE);
        let len = 1 + self.rng.below(MAX_LEN.min(MAX_SIZE - off));
        (off, len)
    }

    fn read(&mut self) {
        let (off, len) = self.offset_len();
        self.log(format!("read {off}+{len} (size {})", self.shadow.len()));
        let mut buf = vec![0u8; len as usize];
        let n = match self.file.read_at(&mut buf, off) {
            Ok(n) => n,
            Err(e) => self.fail(&format!("read: {e}")),
        };
        let start = (off as usize).min(self.shadow.len());
        let end = ((off + len) as usize).min(self.shadow.len());
        let want = &self.shadow[start..end];
        if &buf[..n] != want {
            self.fail(&format!(
                "read {off}+{len} returned {n} bytes that differ from the expected {}",
                want.len()
            ));
        }
    }

    fn write(&mut self) {
        let (off, len) = self.offset_len();
        self.log(format!("write {off}+{len} (size {})", self.shadow.len()));
        let data = self.rng.bytes(len as usize);
        if let Err(e) = self.file.write_all_at(&data, off) {
            self.fail(&format!("write: {e}"));
        }
        let end = (off + len) as usize;
        if self.shadow.len() < end {
            self.shadow.resize(end, 0);
        }
        self.shadow[off as usize..end].copy_from_slice(&data);
    }

    fn truncate(&mut self) {
        let size = match self.rng.below(8) {
            0 => 0,
            _ => self.rng.below(MAX_SIZE + 1),
        };
        self.log(format!("truncate {} -> {size}", self.shadow.len()));
        if let Err(e) = self.file.set_len(size) {
            self.fail(&format!("truncate: {e}"));
        }
        self.shadow.resize(size as usize, 0);
    }

    /// Maps `[off, off+len)` of the file (page-aligned start) and returns the
    /// mapping, its length and the offset of `off` within it.
    fn map(&self, off: u64, len: u64, prot: i32) -> (*mut u8, usize, usize) {
        let start = off & !(PAGE - 1);
        let maplen = (off + len - start) as usize;
        // SAFETY: mapping a descriptor we own; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                maplen,
                prot,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                start as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            self.fail(&format!("mmap: {}", std::io::Error::last_os_error()));
        }
        (p.cast(), maplen, (off - start) as usize)
    }

    fn unmap(&self, p: *mut u8, len: usize) {
        // SAFETY: a mapping made by `map` with this length.
        if unsafe { libc::munmap(p.cast(), len) } != 0 {
            self.fail(&format!("munmap: {}", std::io::Error::last_os_error()));
        }
    }

    fn mapread(&mut self) {
        let size = self.shadow.len() as u64;
        if size == 0 {
            return self.read();
        }
        let off = self.rng.below(size);
        let len = 1 + self.rng.below(MAX_LEN.min(size - off));
        self.log(format!("mapread {off}+{len} (size {size})"));
        let (p, maplen, at) = self.map(off, len, libc::PROT_READ);
        // SAFETY: `[at, at+len)` lies within the mapping and within the file.
        let got = unsafe { std::slice::from_raw_parts(p.add(at), len as usize) }.to_vec();
        self.unmap(p, maplen);
        if got[..] != self.shadow[off as usize..(off + len) as usize] {
            self.fail(&format!(
                "mapread {off}+{len} differs from the expected bytes"
            ));
        }
    }

    fn mapwrite(&mut self) {
        let (off, len) = self.offset_len();
        let size = self.shadow.len() as u64;
        self.log(format!("mapwrite {off}+{len} (size {size})"));
        // As fsx: a store past the end needs the file extended first.
        if off + len > size {
            if let Err(e) = self.file.set_len(off + len) {
                self.fail(&format!("mapwrite: extending: {e}"));
            }
            self.shadow.resize((off + len) as usize, 0);
        }
        let data = self.rng.bytes(len as usize);
        let (p, maplen, at) = self.map(off, len, libc::PROT_READ | libc::PROT_WRITE);
        // SAFETY: `[at, at+len)` lies within the mapping and within the file.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p.add(at), data.len()) };
        // SAFETY: the whole mapping.
        if unsafe { libc::msync(p.cast(), maplen, libc::MS_SYNC) } != 0 {
            self.fail(&format!("msync: {}", std::io::Error::last_os_error()));
        }
        self.unmap(p, maplen);
        self.shadow[off as usize..(off + len) as usize].copy_from_slice(&data);
        // msync(MS_SYNC) fsyncs the file (datasync): its data is durable.
        self.synced = self.shadow.clone();
    }

    fn fsync(&mut self, datasync: bool) {
        self.log(format!(
            "{} (size {})",
            if datasync { "fdatasync" } else { "fsync" },
            self.shadow.len()
        ));
        let r = if datasync {
            self.file.sync_data()
        } else {
            self.file.sync_all()
        };
        if let Err(e) = r {
            self.fail(&format!("fsync: {e}"));
        }
        self.synced = self.shadow.clone();
    }

    /// Cuts the power under `policy`, remounts and reopens the file; the
    /// content must be the shadow (keep-all) or the last synced content
    /// (drop-all), exactly.
    fn cut(&mut self, v: &mut Vol, policy: Policy) {
        self.log(format!(
            "cut {policy:?} (size {}, synced size {})",
            self.shadow.len(),
            self.synced.len()
        ));
        v.cut(policy);
        v.remount();
        self.file = Self::open(&self.path);
        if policy == Policy::DropAll {
            self.shadow = self.synced.clone();
        }
        self.synced = self.shadow.clone();
        let f = self.file.try_clone().expect("dup");
        self.check(&f, &self.shadow, "after the cut and remount");
    }

    fn step(&mut self, v: &mut Vol) {
        let k = match self.rng.below(100) {
            0..20 => 0,
            20..45 => 1,
            45..55 => 2,
            55..68 => 3,
            68..82 => 4,
            82..91 => 5,
            91..99 => 6,
            // Cuts are rare: each remounts.
            _ => 7 + self.rng.below(2) as usize,
        };
        match k {
            0 => self.read(),
            1 => self.write(),
            2 => self.truncate(),
            3 => self.mapread(),
            4 => self.mapwrite(),
            5 => self.fsync(false),
            6 => self.fsync(true),
            7 => self.cut(v, Policy::KeepAll),
            _ => self.cut(v, Policy::DropAll),
        }
        self.counts[k] += 1;
    }
}

/// Runs `ops` operations from `seed` on a fresh volume.
fn run(seed: u64, ops: usize) {
    let mut v = Vol::new(Persistence::Posix);
    let path = v.p("fsx");
    File::create(&path).expect("create");
    // The name is durable: drop-all cuts keep the file.
    fsync_dir(&v.mnt);
    let mut fsx = Fsx::new(seed, path);
    let started = std::time::Instant::now();
    for i in 0..ops {
        fsx.op = i;
        fsx.step(&mut v);
        let f = fsx.file.try_clone().expect("dup");
        fsx.check(&f, &fsx.shadow, "after the operation");
        // Fixed cuts in the middle, whatever the random mix does.
        if i == ops / 3 {
            fsx.cut(&mut v, Policy::KeepAll);
        } else if i == 2 * ops / 3 {
            fsx.fsync(false);
            fsx.cut(&mut v, Policy::DropAll);
        }
    }
    let counts: Vec<String> = NAMES
        .iter()
        .zip(fsx.counts)
        .map(|(n, c)| format!("{n} {c}"))
        .collect();
    eprintln!(
        "fsx: seed {seed}: {ops} operations in {:.1?} ({})",
        started.elapsed(),
        counts.join(", ")
    );
}

fn plan() -> (Vec<u64>, usize) {
    let ops = env_u64("DURAFS_FSX_OPS").map_or(5000, |n| n as usize);
    let seeds = match env_u64("DURAFS_FSX_SEED") {
        Some(s) => vec![s],
        None => vec![1, 0x5eed_f5c0],
    };
    (seeds, ops)
}

#[test]
fn fsx_random_operations_match_the_shadow_copy() {
    let (seeds, ops) = plan();
    for seed in seeds {
        run(seed, ops);
    }
}

#[test]
fn the_checker_detects_a_wrong_byte() {
    // A checker that cannot fail would pass everything: feed it a shadow
    // that differs from the file in one byte.
    let v = Vol::new(Persistence::Posix);
    let path = v.p("f");
    std::fs::write(&path, b"abcdef").expect("write");
    let fsx = Fsx::new(0, path);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fsx.check(&fsx.file, b"abcXef", "self-test")
    }));
    let msg = *r
        .expect_err("a wrong byte is reported")
        .downcast::<String>()
        .expect("message");
    assert!(msg.contains("first difference at offset 3"), "{msg}");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fsx.check(&fsx.file, b"abcdefg", "self-test")
    }));
    assert!(r.is_err(), "a wrong size is reported");
    fsx.check(&fsx.file, b"abcdef", "self-test");
}
