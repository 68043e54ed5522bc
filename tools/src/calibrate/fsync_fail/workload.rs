//! Generated fsync-failure workloads: a file of 1 to 4 pages made durable,
//! some pages overwritten and/or appended, an fsync or fdatasync whose
//! device writes fail on chosen blocks, then (each optional) a retried
//! fsync, a rewrite of part of a failed page with an fsync, a read after
//! `drop_caches`, and always a read after a clean unmount and mount.
//!
//! Every page's bytes are seeded per (seed, workload, generation, page), so
//! a page read back names what it holds: `old` (generation 0, made
//! durable first), `new` (the overwrite or append that failed), `R` (the
//! rewrite), `zero`, or `?`.

use super::super::device::FsKind;
use durafs::model::rng::SplitMix64;

/// The page size of the workloads (and of the model's page rule).
pub const PAGE: u64 = 4096;

/// Which device blocks fail while the fsync writes the file back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fail {
    /// ext4, xfs: the blocks (FIEMAP) of these overwritten pages and, with
    /// `free_space`, every free block (GETFSMAP), where appended pages go.
    Blocks { pages: Vec<u64>, free_space: bool },
    /// btrfs: every data chunk (copy-on-write puts every new page there).
    DataChunks,
    /// btrfs: one block, where copy-on-write is expected to put the
    /// `nth` dirty page (after the file's last extent, on a fresh
    /// filesystem); whether it did is measured.
    NextFree { nth: u64 },
}

/// A partial or whole rewrite of a failed page after the failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rewrite {
    pub page: u64,
    pub len: u64,
}

/// One generated workload.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Workload {
    pub name: String,
    #[serde(skip)]
    pub seed: u64,
    #[serde(skip)]
    pub index: u64,
    /// Pages of the durable file.
    pub pages: u64,
    /// Pages overwritten whole (ascending, below `pages`).
    pub overwrite: Vec<u64>,
    /// Bytes appended at the old end.
    pub append: u64,
    pub datasync: bool,
    pub fail: Fail,
    /// A second fsync right after the failed one.
    pub retry: bool,
    pub rewrite: Option<Rewrite>,
    /// Read again after `echo 3 > /proc/sys/vm/drop_caches`.
    pub drop_caches: bool,
}

/// Generation of a page's bytes.
pub const OLD: u64 = 0;
pub const NEW: u64 = 1;
pub const REWRITE: u64 = 2;

fn rng(seed: u64, index: u64, salt: u64) -> SplitMix64 {
    let mut r = SplitMix64::new(seed ^ 0xCA11_F5F1);
    let a = r.next_u64() ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    SplitMix64::new(a ^ salt.rotate_left(17))
}

/// Workload `index` of `seed` for `fs`.
pub fn generate(fs: FsKind, seed: u64, index: u64) -> Workload {
    let mut r = rng(seed, index, 0x5eed);
    let coin = |r: &mut SplitMix64| r.next_u64() & 1 == 1;
    let pages = 1 + r.below(4);
    let overwrite: Vec<u64> = (0..pages).filter(|_| coin(&mut r)).collect();
    let mut append = match r.below(3) {
        0 => 0,
        n => n * PAGE - if coin(&mut r) { r.below(3000) } else { 0 },
    };
    if overwrite.is_empty() && append == 0 {
        append = PAGE;
    }
    let mut w = Workload {
        name: format!("ff-{seed}-{index}"),
        seed,
        index,
        pages,
        overwrite,
        append,
        datasync: coin(&mut r),
        fail: Fail::DataChunks,
        retry: coin(&mut r),
        rewrite: None,
        drop_caches: coin(&mut r),
    };
    w.fail = pick_fail(fs, &w, &mut r);
    if coin(&mut r) {
        let failing = w.failing();
        if !failing.is_empty() {
            let page = failing[r.below(failing.len() as u64) as usize];
            let room = w.size().saturating_sub(page * PAGE).min(PAGE);
            let len = if coin(&mut r) { 100 } else { PAGE };
            w.rewrite = Some(Rewrite {
                page,
                len: len.min(room),
            });
        }
    }
    w
}

fn pick_fail(fs: FsKind, w: &Workload, r: &mut SplitMix64) -> Fail {
    if fs == FsKind::Btrfs {
        return if r.next_u64() & 1 == 1 {
            Fail::DataChunks
        } else {
            Fail::NextFree {
                nth: r.below(w.dirty().len() as u64),
            }
        };
    }
    let mut pages: Vec<u64> = w
        .overwrite
        .iter()
        .copied()
        .filter(|_| r.next_u64() & 1 == 1)
        .collect();
    let mut free_space = w.append > 0 && r.next_u64() & 1 == 1;
    if pages.is_empty() && !free_space {
        let n = w.overwrite.len() as u64 + u64::from(w.append > 0);
        let k = r.below(n);
        match w.overwrite.get(k as usize) {
            Some(p) => pages.push(*p),
            None => free_space = true,
        }
    }
    Fail::Blocks { pages, free_space }
}

impl Workload {
    /// The live size after the overwrite and append.
    pub fn size(&self) -> u64 {
        self.pages * PAGE + self.append
    }

    /// The pages holding unsynced bytes when the fsync fails, ascending
    /// (the model's dirty pages).
    pub fn dirty(&self) -> Vec<u64> {
        let mut v = self.overwrite.clone();
        v.extend(self.pages..self.size().div_ceil(PAGE));
        v
    }

    /// The dirty pages whose blocks are meant to fail (btrfs: every one).
    pub fn failing(&self) -> Vec<u64> {
        match &self.fail {
            Fail::Blocks { pages, free_space } => {
                let mut v = pages.clone();
                if *free_space {
                    v.extend(self.pages..self.size().div_ceil(PAGE));
                }
                v
            }
            Fail::DataChunks | Fail::NextFree { .. } => self.dirty(),
        }
    }

    /// The bytes of page `page` in generation `gen` (a whole page).
    pub fn page_bytes(&self, gen_: u64, page: u64) -> Vec<u8> {
        let mut r = rng(self.seed, self.index, (gen_ << 32) | page);
        let mut out = Vec::with_capacity(PAGE as usize);
        while out.len() < PAGE as usize {
            out.extend_from_slice(&r.next_u64().to_le_bytes());
        }
        out
    }

    /// The new bytes of dirty page `page` as the kernel writes it back:
    /// the overwrite or append, zeros past the live size.
    pub fn new_page(&self, page: u64) -> Vec<u8> {
        let mut b = self.page_bytes(NEW, page);
        let end = self.size().saturating_sub(page * PAGE).min(PAGE) as usize;
        b[end..].fill(0);
        b
    }

    /// One line describing the workload.
    pub fn describe(&self) -> String {
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let mut s = format!("{} pages durable", self.pages);
        if !self.overwrite.is_empty() {
            s += &format!("; overwrite {}", list(&self.overwrite));
        }
        if self.append > 0 {
            s += &format!("; append {} B", self.append);
        }
        s += if self.datasync {
            "; fdatasync"
        } else {
            "; fsync"
        };
        s += &match &self.fail {
            Fail::Blocks { pages, free_space } => {
                let mut f = Vec::new();
                if !pages.is_empty() {
                    f.push(format!("blocks of page {}", list(pages)));
                }
                if *free_space {
                    f.push("free space".to_string());
                }
                format!(" failing on {}", f.join(" + "))
            }
            Fail::DataChunks => " failing on the data chunks".to_string(),
            Fail::NextFree { nth } => format!(" failing on the next free block + {nth}"),
        };
        if self.retry {
            s += "; retry";
        }
        if let Some(r) = self.rewrite {
            s += &format!("; rewrite {} B of page {} + fsync", r.len, r.page);
        }
        if self.drop_caches {
            s += "; drop caches";
        }
        s + "; remount"
    }

    /// Names each page of `bytes` (a read of the file): `old`, `new`, `R`
    /// (rewritten, then `R+new` / `R+old` for the rest of the page),
    /// `zero` or `?`, comma-separated.
    pub fn labels(&self, bytes: &[u8]) -> String {
        bytes
            .chunks(PAGE as usize)
            .enumerate()
            .map(|(i, chunk)| self.label(i as u64, chunk))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn label(&self, page: u64, chunk: &[u8]) -> String {
        let n = chunk.len();
        let is = |b: &[u8]| b.len() >= n && &b[..n] == chunk;
        let zero = vec![0u8; PAGE as usize];
        let plain = [
            ("old", self.page_bytes(OLD, page)),
            ("new", self.new_page(page)),
        ];
        if let Some(r) = self.rewrite.filter(|r| r.page == page) {
            let len = r.len as usize;
            let rewritten = &self.page_bytes(REWRITE, page)[..len];
            if n >= len && &chunk[..len] == rewritten {
                if n == len {
                    return "R".into();
                }
                for (name, b) in plain.iter().chain([("zero", zero.clone())].iter()) {
                    if b[len..].len() >= n - len && b[len..n] == chunk[len..] {
                        return format!("R+{name}");
                    }
                }
                return "R+?".into();
            }
        }
        for (name, b) in &plain {
            if is(b) {
                return (*name).into();
            }
        }
        if is(&zero) { "zero" } else { "?" }.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_workloads_have_dirty_and_failing_pages_and_fit_the_file() {
        for fs in [FsKind::Ext4, FsKind::Xfs, FsKind::Btrfs] {
            for i in 0..200 {
                let w = generate(fs, 7, i);
                assert!(!w.dirty().is_empty(), "{w:?}");
                assert!(!w.failing().is_empty(), "{w:?}");
                assert!(w.failing().iter().all(|p| w.dirty().contains(p)), "{w:?}");
                if let Some(r) = w.rewrite {
                    assert!(r.page * PAGE + r.len <= w.size(), "{w:?}");
                }
                assert_eq!(w.name, generate(fs, 7, i).name);
            }
        }
    }

    #[test]
    fn pages_read_back_are_named() {
        let mut w = generate(FsKind::Ext4, 1, 0);
        w.rewrite = Some(Rewrite { page: 0, len: 100 });
        let mut bytes = w.page_bytes(OLD, 0);
        assert_eq!(w.labels(&bytes), "old");
        bytes[..100].copy_from_slice(&w.page_bytes(REWRITE, 0)[..100]);
        assert_eq!(w.labels(&bytes), "R+old");
        bytes.extend(vec![0u8; 10]);
        assert_eq!(w.labels(&bytes), "R+old,zero");
        bytes.extend(vec![1u8; 10]);
        assert_eq!(w.labels(&bytes), "R+old,?");
    }
}
