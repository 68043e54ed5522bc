//! Where a filesystem will write new data on its device: ext4's and
//! xfs's free space (the `FS_IOC_GETFSMAP` ioctl,
//! `Documentation/filesystems/ext4` and `xfs_io`'s `fsmap`), btrfs's data
//! chunks (`btrfs inspect-internal dump-tree -t chunk`), and btrfs's
//! address-to-device mapping.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

/// `struct fsmap` of `<linux/fsmap.h>`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Fsmap {
    device: u32,
    flags: u32,
    physical: u64,
    owner: u64,
    offset: u64,
    length: u64,
    reserved: [u64; 3],
}

/// Records asked for per call.
const BATCH: usize = 64;

/// `struct fsmap_head` with room for [`BATCH`] records.
#[repr(C)]
struct Head {
    iflags: u32,
    oflags: u32,
    count: u32,
    entries: u32,
    reserved: [u64; 6],
    keys: [Fsmap; 2],
    recs: [Fsmap; BATCH],
}

/// `_IOWR('X', 59, struct fsmap_head)` (the head is 192 bytes).
const FS_IOC_GETFSMAP: libc::c_ulong = 0xC0C0_583B;
const FMR_OF_SPECIAL_OWNER: u32 = 0x10;
const FMR_OF_LAST: u32 = 0x20;
/// `FMR_OWNER(0, 1)`.
const FMR_OWN_FREE: u64 = 1;

/// The free space of the filesystem mounted at `mnt`, as device byte
/// ranges `[start, end)`.
pub fn free_space(mnt: &Path) -> std::io::Result<Vec<(u64, u64)>> {
    let f = File::open(mnt)?;
    let high = Fsmap {
        device: u32::MAX,
        flags: u32::MAX,
        physical: u64::MAX,
        owner: u64::MAX,
        offset: u64::MAX,
        length: 0,
        reserved: [0; 3],
    };
    let mut keys = [Fsmap::default(), high];
    let mut out: Vec<(u64, u64)> = Vec::new();
    loop {
        let mut head = Head {
            iflags: 0,
            oflags: 0,
            count: BATCH as u32,
            entries: 0,
            reserved: [0; 6],
            keys,
            recs: [Fsmap::default(); BATCH],
        };
        // SAFETY: `head` is a `struct fsmap_head` followed by room for
        // `count` records, as the ioctl expects; it lives across the call.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GETFSMAP, &mut head as *mut Head) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let got = &head.recs[..(head.entries as usize).min(BATCH)];
        for rec in got {
            let free = rec.flags & FMR_OF_SPECIAL_OWNER != 0 && rec.owner == FMR_OWN_FREE;
            if free && rec.length > 0 {
                let (s, e) = (rec.physical, rec.physical + rec.length);
                match out.last_mut() {
                    Some(last) if last.1 == s => last.1 = e,
                    _ => out.push((s, e)),
                }
            }
        }
        match got.last() {
            Some(last) if last.flags & FMR_OF_LAST == 0 && got.len() == BATCH => {
                keys[0] = *last;
            }
            _ => return Ok(out),
        }
    }
}

/// `ranges` less `holes` (both `[start, end)`, `ranges` ascending and
/// disjoint).
pub fn subtract(ranges: &[(u64, u64)], holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(s, e) in ranges {
        let mut cuts: Vec<(u64, u64)> = holes
            .iter()
            .filter(|(a, b)| *a < e && s < *b)
            .copied()
            .collect();
        cuts.sort_unstable();
        let mut at = s;
        for (a, b) in cuts {
            if a > at {
                out.push((at, a));
            }
            at = at.max(b);
        }
        if at < e {
            out.push((at, e));
        }
    }
    out
}

/// One btrfs chunk: filesystem addresses `[logical, logical + length)`,
/// its type (`DATA|single`) and the device offsets of its stripes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub logical: u64,
    pub length: u64,
    pub kind: String,
    pub stripes: Vec<u64>,
}

impl Chunk {
    pub fn is_data(&self) -> bool {
        self.kind.starts_with("DATA")
    }
}

/// The chunks of the btrfs on `dev` (a device or an image).
pub fn chunks(dev: &Path) -> Result<Vec<Chunk>, String> {
    let out = Command::new("btrfs")
        .args(["inspect-internal", "dump-tree", "-t", "chunk"])
        .arg(dev)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("btrfs inspect-internal: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "btrfs inspect-internal dump-tree -t chunk {}: {}",
            dev.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_chunks(&String::from_utf8_lossy(&out.stdout)))
}

/// The chunks of `dump-tree -t chunk`'s output.
pub fn parse_chunks(text: &str) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = Vec::new();
    let after = |line: &str, word: &str| -> Option<u64> {
        let rest = line.split(word).nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())?
            .parse()
            .ok()
    };
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("item ") && t.contains("CHUNK_ITEM") {
            if let Some(logical) = after(t, "CHUNK_ITEM") {
                out.push(Chunk {
                    logical,
                    length: 0,
                    kind: String::new(),
                    stripes: Vec::new(),
                });
            }
        } else if t.starts_with("length ") {
            if let Some(c) = out.last_mut() {
                c.length = after(t, "length").unwrap_or(0);
                c.kind = t
                    .split("type ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap_or("")
                    .to_string();
            }
        } else if t.starts_with("stripe ") && t.contains(" offset ") {
            if let (Some(c), Some(off)) = (out.last_mut(), after(t, " offset ")) {
                c.stripes.push(off);
            }
        }
    }
    out
}

/// The device offset of btrfs address `addr` (first stripe).
pub fn device_offset(chunks: &[Chunk], addr: u64) -> Option<u64> {
    chunks
        .iter()
        .find(|c| c.logical <= addr && addr < c.logical + c.length)
        .and_then(|c| c.stripes.first().map(|s| s + (addr - c.logical)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
	item 1 key (FIRST_CHUNK_TREE CHUNK_ITEM 13631488) itemoff 16105 itemsize 80
		length 8388608 owner 2 stripe_len 65536 type DATA|single
		num_stripes 1 sub_stripes 1
			stripe 0 devid 1 offset 13631488
	item 2 key (FIRST_CHUNK_TREE CHUNK_ITEM 22020096) itemoff 15993 itemsize 112
		length 8388608 owner 2 stripe_len 65536 type SYSTEM|DUP
		num_stripes 2 sub_stripes 1
			stripe 0 devid 1 offset 22020096
			stripe 1 devid 1 offset 30408704
";

    #[test]
    fn holes_are_cut_out_of_ranges() {
        assert_eq!(
            subtract(&[(0, 100), (200, 300)], &[(10, 20), (15, 30), (90, 210)]),
            vec![(0, 10), (30, 90), (210, 300)]
        );
        assert_eq!(subtract(&[(0, 10)], &[(0, 10)]), vec![]);
    }

    #[test]
    fn chunks_are_read_from_dump_tree() {
        let c = parse_chunks(DUMP);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0],
            Chunk {
                logical: 13631488,
                length: 8388608,
                kind: "DATA|single".into(),
                stripes: vec![13631488],
            }
        );
        assert!(c[0].is_data() && !c[1].is_data());
        assert_eq!(c[1].stripes, vec![22020096, 30408704]);
        assert_eq!(device_offset(&c, 13631488 + 4096), Some(13631488 + 4096));
        assert_eq!(device_offset(&c, 22020096 + 1), Some(22020096 + 1));
        assert_eq!(device_offset(&c, 1), None);
    }
}
