//! What the benchmark reports about the machine (date, kernel, cores, the
//! filesystem under the scratch directory) and the mount table it reads
//! to find that filesystem and any mount left under the scratch directory.

use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`: where, and what type.
#[derive(Clone, Debug, PartialEq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
}

/// Parses `/proc/self/mountinfo` text; lines it cannot read are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let fs_type = right.split(' ').next()?;
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(mount_point)),
                fs_type: fs_type.to_string(),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's mount table (empty when it cannot be read).
pub fn mounts() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

/// Mount points at or under `dir`, deepest first (the order to detach).
pub fn mounts_under(table: &[MountEntry], dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = table
        .iter()
        .filter(|m| m.mount_point.starts_with(dir))
        .map(|m| m.mount_point.clone())
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

/// The type of the filesystem holding `dir` (the deepest mount point
/// containing it), e.g. `ext4`; `?` when unknown.
pub fn fs_type(table: &[MountEntry], dir: &Path) -> String {
    table
        .iter()
        .filter(|m| dir.starts_with(&m.mount_point))
        // The last of equally deep entries is the one on top.
        .max_by_key(|m| m.mount_point.components().count())
        .map_or_else(|| "?".to_string(), |m| m.fs_type.clone())
}

/// The running kernel's release (`uname -r`).
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// CPUs this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The current time in UTC, ISO 8601 (`2026-01-31T12:00:00Z`).
pub fn now_utc() -> String {
    iso8601(jiff::Timestamp::now())
}

/// `t` as an ISO 8601 UTC date and time, to the second.
pub fn iso8601(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /tmp rw shared:2 - tmpfs tmpfs rw
41 22 0:45 / /var/tmp/durafs-bench1/mnt rw,nosuid,nodev - fuse.durafs durafs rw,user_id=0
42 22 0:46 / /var/tmp/with\\040space rw - fuse.durafs durafs rw
garbage line
";

    #[test]
    fn mountinfo_gives_points_and_types() {
        let t = parse_mountinfo(SAMPLE);
        assert_eq!(t.len(), 4);
        assert_eq!(t[2].fs_type, "fuse.durafs");
        assert_eq!(t[3].mount_point, Path::new("/var/tmp/with space"));
        assert_eq!(fs_type(&t, Path::new("/var/tmp/x")), "ext4");
        assert_eq!(fs_type(&t, Path::new("/tmp/a/b")), "tmpfs");
        assert_eq!(
            mounts_under(&t, Path::new("/var/tmp/durafs-bench1")),
            vec![PathBuf::from("/var/tmp/durafs-bench1/mnt")]
        );
        assert!(mounts_under(&t, Path::new("/var/tmp/durafs-bench")).is_empty());
    }

    #[test]
    fn dates() {
        let at = |s: i64, ns: i32| jiff::Timestamp::new(s, ns).expect("a valid time");
        assert_eq!(iso8601(at(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(at(951_782_400, 0)), "2000-02-29T00:00:00Z");
        // To the second: fractions are dropped.
        assert_eq!(iso8601(at(1_700_000_000, 999)), "2023-11-14T22:13:20Z");
        let now = now_utc();
        assert_eq!(now.len(), "2026-01-31T12:00:00Z".len(), "{now}");
        assert!(now.ends_with('Z') && now.starts_with("20"), "{now}");
    }
}
