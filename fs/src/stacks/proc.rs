//! What the kernel tells about a thread and its process: the files of
//! `/proc` (`syscall`, `status`, `comm`, `maps`) and the process's memory
//! through `process_vm_readv(2)`. Parsers are pure functions over the text
//! so that they are tested without a process; every read turns the
//! kernel's errors into [`StackError`]s.

use std::collections::HashMap;
use std::io;

use super::StackError;

/// What `/proc/TID/syscall` says of a thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum SyscallState {
    /// The thread is on a CPU (or runnable): `running`.
    Running,
    /// The thread is in the kernel, but not in a system call (stopped by a
    /// signal, a page fault): `-1 SP PC`.
    NotInSyscall,
    /// Blocked in system call `nr`; `sp` and `pc` are its user registers
    /// (`pc` is the instruction after the `syscall` instruction).
    InSyscall { nr: u64, sp: u64, pc: u64 },
}

/// Parses the text of `/proc/TID/syscall`: `running`, `-1 SP PC` or
/// `NR ARG1 .. ARG6 SP PC` (numbers in hexadecimal with `0x`, NR in
/// decimal). None when the text is of none of these forms.
pub(super) fn parse_syscall(text: &str) -> Option<SyscallState> {
    let text = text.trim();
    if text == "running" {
        return Some(SyscallState::Running);
    }
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let nr: i64 = fields.first()?.parse().ok()?;
    if nr < 0 {
        return (fields.len() == 3).then_some(SyscallState::NotInSyscall);
    }
    if fields.len() != 9 {
        return None;
    }
    Some(SyscallState::InSyscall {
        nr: nr as u64,
        sp: parse_hex(fields[7])?,
        pc: parse_hex(fields[8])?,
    })
}

fn parse_hex(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    u64::from_str_radix(digits, 16).ok()
}

/// The thread group id (the process id) in the text of `/proc/TID/status`.
pub(super) fn parse_tgid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads `/proc/ID/FILE` as text, with the kernel's errors as
/// [`StackError`]s naming `tid` (the thread asked about).
pub(super) fn read_proc(tid: u32, id: u32, file: &str) -> Result<String, StackError> {
    let path = format!("/proc/{id}/{file}");
    std::fs::read(&path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| StackError::from_io(tid, &path, e))
}

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Mapping {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub executable: bool,
    /// Offset in the file of the first byte mapped.
    pub offset: u64,
    /// Device (major, minor) and inode of the file; (0, 0) and 0 when none.
    pub dev: (u32, u32),
    pub inode: u64,
    /// The file's path (with ` (deleted)` when it was unlinked), `[stack]`,
    /// `[vdso]`..., or empty for anonymous memory.
    pub path: String,
}

impl Mapping {
    /// True when the mapping is of a file (not anonymous, not `[vdso]`).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.starts_with('/')
    }

    /// True when the file was unlinked (or replaced) since it was mapped.
    pub fn is_deleted(&self) -> bool {
        self.path.ends_with(" (deleted)")
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// Parses the text of `/proc/PID/maps`; lines that cannot be understood
/// are skipped (and logged). The kernel lists mappings by address.
pub(super) fn parse_maps(text: &str) -> Vec<Mapping> {
    let mut maps: Vec<Mapping> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| {
            let m = parse_maps_line(line);
            if m.is_none() {
                log::debug!("durafs: stacks: skipping a maps line: {line}");
            }
            m
        })
        .collect();
    maps.sort_by_key(|m| m.start);
    maps
}

fn parse_maps_line(line: &str) -> Option<Mapping> {
    // "start-end perms offset major:minor inode   path": the path (which
    // may hold spaces) starts after the fifth field's run of blanks.
    let mut rest = line;
    let mut fields = [""; 5];
    for field in fields.iter_mut() {
        rest = rest.trim_start_matches(' ');
        let end = rest.find(' ').unwrap_or(rest.len());
        *field = &rest[..end];
        rest = &rest[end..];
    }
    let path = rest.trim_start_matches(' ').to_string();
    let (start, end) = fields[0].split_once('-')?;
    let perms = fields[1].as_bytes();
    let (major, minor) = fields[3].split_once(':')?;
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        readable: perms.first() == Some(&b'r'),
        executable: perms.get(2) == Some(&b'x'),
        offset: u64::from_str_radix(fields[2], 16).ok()?,
        dev: (
            u32::from_str_radix(major, 16).ok()?,
            u32::from_str_radix(minor, 16).ok()?,
        ),
        inode: fields[4].parse().ok()?,
        path,
    })
}

/// The mapping that holds `addr`, in mappings sorted by address.
pub(super) fn find_mapping(maps: &[Mapping], addr: u64) -> Option<&Mapping> {
    let i = maps.partition_point(|m| m.start <= addr);
    let m = maps.get(i.checked_sub(1)?)?;
    m.contains(addr).then_some(m)
}

/// The device numbers (major, minor) of a `st_dev`, as glibc encodes them.
pub(super) fn dev_numbers(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Reads another process's memory.
pub(super) trait Memory {
    /// Fills `buf` from `addr`; false when any of it cannot be read.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> bool;

    /// The little-endian 64-bit word at `addr`.
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b).then(|| u64::from_le_bytes(b))
    }
}

const PAGE: u64 = 4096;
/// At most this many pages are read from one process per capture: a
/// bound on the cost of a stack scan.
const MAX_PAGES: usize = 1024;

/// Memory of process `pid` read page by page with `process_vm_readv(2)`,
/// each page once (the thread is blocked: its stack does not change).
pub(super) struct ProcessMemory {
    pid: u32,
    pages: HashMap<u64, Option<Box<[u8]>>>,
    /// Set when the process was found gone (`ESRCH`).
    pub gone: bool,
    /// Set when reading was refused (`EPERM`: no right to ptrace it).
    pub denied: bool,
}

impl ProcessMemory {
    pub fn new(pid: u32) -> ProcessMemory {
        ProcessMemory {
            pid,
            pages: HashMap::new(),
            gone: false,
            denied: false,
        }
    }

    fn page(&mut self, base: u64) -> Option<&[u8]> {
        if !self.pages.contains_key(&base) {
            if self.pages.len() >= MAX_PAGES {
                return None;
            }
            let page = self.read_page(base);
            self.pages.insert(base, page);
        }
        self.pages.get(&base)?.as_deref()
    }

    fn read_page(&mut self, base: u64) -> Option<Box<[u8]>> {
        let mut buf = vec![0u8; PAGE as usize].into_boxed_slice();
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: base as usize as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` points at `buf`, alive and of `iov_len` bytes;
        // the remote address is only read by the kernel, which checks it.
        let n =
            unsafe { libc::process_vm_readv(self.pid as libc::pid_t, &local, 1, &remote, 1, 0) };
        if n < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::ESRCH) => self.gone = true,
                Some(libc::EPERM) => self.denied = true,
                _ => {}
            }
            return None;
        }
        (n as u64 == PAGE).then_some(buf)
    }
}

impl Memory for ProcessMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> bool {
        let mut done = 0usize;
        while done < buf.len() {
            let Some(at) = addr.checked_add(done as u64) else {
                return false;
            };
            let base = at & !(PAGE - 1);
            let within = (at - base) as usize;
            let Some(page) = self.page(base) else {
                return false;
            };
            let n = (page.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[within..within + n]);
            done += n;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_lines_of_the_three_forms_are_understood() {
        assert_eq!(parse_syscall("running\n"), Some(SyscallState::Running));
        assert_eq!(
            parse_syscall("-1 0x7ffd1c1e6a68 0x7f0b5c6e5a2c\n"),
            Some(SyscallState::NotInSyscall)
        );
        let line = "0 0x3 0x7ffc 0x1 0x0 0x0 0x0 0x7ffd1c1e6a68 0x7f0b5c6e57e2\n";
        assert_eq!(
            parse_syscall(line),
            Some(SyscallState::InSyscall {
                nr: 0,
                sp: 0x7ffd1c1e6a68,
                pc: 0x7f0b5c6e57e2
            })
        );
        for bad in [
            "",
            "0 0x1",
            "x 0x1 0x2",
            "0 0x3 0x7ffc 0x1 0x0 0x0 0x0 0xzz 0x1",
        ] {
            assert_eq!(parse_syscall(bad), None, "{bad}");
        }
    }

    #[test]
    fn tgid_is_read_from_status() {
        let status =
            "Name:\tcat\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4243\n";
        assert_eq!(parse_tgid(status), Some(4242));
        assert_eq!(parse_tgid("Name:\tcat\n"), None);
    }

    #[test]
    fn maps_lines_with_spaces_deleted_files_and_pseudo_files_are_parsed() {
        let text = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fe:00 247030                     /usr/bin/my prog
55d0c0a02000-55d0c0a07000 r-xp 00002000 fe:00 247030                     /usr/bin/my prog
7f0b5c600000-7f0b5c628000 r-xp 00028000 08:01 1234 /tmp/lib.so (deleted)
7ffd1c1c7000-7ffd1c1e8000 rw-p 00000000 00:00 0                          [stack]
7ffd1c1f4000-7ffd1c1f6000 r-xp 00000000 00:00 0                          [vdso]
garbage line
7f0000000000-7f0000001000 rw-p 00000000 00:00 0
";
        let maps = parse_maps(text);
        // By address: the anonymous mapping comes third.
        assert_eq!(maps.len(), 6);
        assert_eq!(maps[0].path, "/usr/bin/my prog");
        assert!(maps[1].executable && maps[1].readable && maps[1].is_file());
        assert_eq!(maps[1].offset, 0x2000);
        assert_eq!(maps[1].dev, (0xfe, 0));
        assert_eq!(maps[1].inode, 247030);
        assert_eq!(maps[2].path, "");
        assert!(!maps[2].is_file() && !maps[2].executable);
        assert!(maps[3].is_deleted() && maps[3].is_file());
        assert_eq!(maps[3].dev, (8, 1));
        assert_eq!(maps[4].path, "[stack]");
        assert!(!maps[5].is_file() && maps[5].path == "[vdso]");
        let m = find_mapping(&maps, 0x55d0c0a02010).map(|m| m.offset);
        assert_eq!(m, Some(0x2000));
        assert!(find_mapping(&maps, 0x55d0c0a07000).is_none());
        assert!(find_mapping(&maps, 0x10).is_none());
    }

    #[test]
    fn device_numbers_are_decoded_as_glibc_encodes_them() {
        // makedev(0xfe, 0) and makedev(259, 70000).
        assert_eq!(dev_numbers(0xfe00), (0xfe, 0));
        let dev: u64 = 0x1111_0370;
        assert_eq!(dev_numbers(dev), (259, 70000));
    }

    #[test]
    fn own_memory_is_read_across_pages_and_unmapped_memory_is_refused() {
        let data: Vec<u8> = (0..3 * PAGE).map(|i| i as u8).collect();
        let addr = data.as_ptr() as u64 + PAGE - 3;
        let mut mem = ProcessMemory::new(std::process::id());
        let mut buf = [0u8; 10];
        assert!(mem.read(addr, &mut buf));
        assert_eq!(&buf[..], &data[PAGE as usize - 3..PAGE as usize + 7]);
        assert!(mem.read_u64(8).is_none());
        assert!(!mem.gone && !mem.denied);
    }
}
