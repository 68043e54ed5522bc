//! The ELF files a process maps (its executable, its shared libraries):
//! finding the very file that is mapped, reading it once, and what is
//! kept of it: its load segments (for the load bias), its call frame
//! information (for unwinding) and its symbols (for names and lines).
//!
//! Files are read into memory, not mapped: a mapped file that another
//! process truncates would kill the daemon with `SIGBUS`.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object::{Object, ObjectSection, ObjectSegment};

use super::proc::{Mapping, Memory, dev_numbers};
use super::symbols::Symbols;
use super::unwind::Cfi;

/// The reader of DWARF sections: slices of a file read into memory.
pub(super) type Reader = gimli::EndianArcSlice<gimli::LittleEndian>;

/// Files larger than this are not read (no unwind information, no names).
const MAX_FILE: u64 = 1 << 30;

/// One ELF file, as the unwinder and the symboliser need it.
pub(super) struct Module {
    /// The `PT_LOAD` segments: file offset, virtual address, size in
    /// file, executable.
    loads: Vec<(u64, u64, u64, bool)>,
    /// Call frame information; None when the file has none.
    pub cfi: Option<Cfi>,
    pub symbols: Symbols,
}

impl Module {
    /// A module known only by its mappings: no file could be read.
    pub fn empty() -> Module {
        Module {
            loads: Vec::new(),
            cfi: None,
            symbols: Symbols::none(),
        }
    }

    /// Parses an ELF file read in `data`; `path` is where it lives (to
    /// look for a separate debug file beside it); `lines` says whether to
    /// read its DWARF for source files and lines, or keep only its
    /// symbol table. Errors are sentences.
    pub fn parse(data: Arc<[u8]>, path: Option<&Path>, lines: bool) -> Result<Module, String> {
        let obj = object::File::parse(&*data).map_err(|e| format!("not an object file: {e}"))?;
        if obj.format() != object::BinaryFormat::Elf {
            return Err("not an ELF file".to_string());
        }
        let loads = obj
            .segments()
            .map(|s| {
                let (offset, size) = s.file_range();
                (offset, s.address(), size, s.permissions().executable())
            })
            .collect();
        let cfi = Cfi::from_object(&obj, &data);
        let separate = if obj.section_by_name(".debug_info").is_some() {
            None
        } else {
            find_debug_file(&obj, path)
        };
        let symbols = match &separate {
            Some(debug) => match object::File::parse(&**debug) {
                Ok(dobj) => Symbols::from_objects(&dobj, debug, &obj, lines),
                Err(_) => Symbols::from_objects(&obj, &data, &obj, lines),
            },
            None => Symbols::from_objects(&obj, &data, &obj, lines),
        };
        Ok(Module {
            loads,
            cfi,
            symbols,
        })
    }

    /// The load bias of this module in a process, from one of its
    /// mappings: what is added to an address of the file (an SVMA) to
    /// get the address in the process (an AVMA). None when no load
    /// segment holds the mapping's offset.
    ///
    /// Segments may share a page of the file (lld packs them so): of
    /// those that hold the mapped offset, the one of the mapping's
    /// permission (executable or not) is taken, then the last one.
    pub fn bias(&self, mapping: &Mapping) -> Option<u64> {
        let &(p_offset, p_vaddr, _, _) = self
            .loads
            .iter()
            .filter(|&&(off, _, size, _)| {
                let first_page = off & !0xfff;
                first_page <= mapping.offset && mapping.offset < off.saturating_add(size.max(1))
            })
            .max_by_key(|&&(off, _, _, exec)| (exec == mapping.executable, off))?;
        Some(
            mapping
                .start
                .wrapping_sub(mapping.offset)
                .wrapping_add(p_offset)
                .wrapping_sub(p_vaddr),
        )
    }
}

/// A reader over section `name` of `obj` (read into `data`): a slice of
/// `data` when the section is stored as is, its decompressed bytes
/// otherwise; with the section's address. None when it is absent or
/// cannot be read.
pub(super) fn section(
    obj: &object::File<'_>,
    data: &Arc<[u8]>,
    name: &str,
) -> Option<(Reader, u64)> {
    let s = obj.section_by_name(name)?;
    let range = s.compressed_file_range().ok()?;
    let endian = gimli::LittleEndian;
    let reader = if range.format == object::CompressionFormat::None {
        let start = usize::try_from(range.offset).ok()?;
        let end = start.checked_add(usize::try_from(range.compressed_size).ok()?)?;
        if end > data.len() {
            return None;
        }
        Reader::new(data.clone(), endian).range(start..end)
    } else {
        if range.uncompressed_size > MAX_FILE {
            return None;
        }
        let bytes = s.uncompressed_data().ok()?;
        Reader::new(Arc::from(&*bytes), endian)
    };
    Some((reader, s.address()))
}

/// Reads a whole file, unless it is larger than [`MAX_FILE`], straight
/// into the shared buffer (an `Arc::from(Vec)` would copy it again: for a
/// 90 MB test binary, a third of a cold capture).
pub(super) fn read_file(file: File) -> Result<Arc<[u8]>, String> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len > MAX_FILE {
        return Err(format!("{len} bytes: too large to read"));
    }
    let mut data = Arc::<[u8]>::new_uninit_slice(len as usize);
    let Some(slots) = Arc::get_mut(&mut data) else {
        return Err("a new buffer is shared".to_string());
    };
    // SAFETY: `slots` is the new buffer's `len` bytes, ours alone; writing
    // zeros to them makes them initialised bytes.
    let bytes = unsafe {
        std::ptr::write_bytes(slots.as_mut_ptr(), 0, slots.len());
        &mut *(std::ptr::from_mut(slots) as *mut [u8])
    };
    file.read_exact_at(bytes, 0).map_err(|e| e.to_string())?;
    // SAFETY: every byte was initialised above.
    Ok(unsafe { data.assume_init() })
}

/// Opens the file behind `mapping` of process `pid`, making sure it is
/// the file the process maps, not one put at the same path since.
/// Tries `/proc/PID/map_files/` (the mapped file itself, even deleted;
/// needs root), then the path, accepted when its device and inode are
/// the mapping's, or else when its first page is what the process has
/// at the module's first mapping (`first`). Errors are sentences.
pub(super) fn open_mapped(
    pid: u32,
    mapping: &Mapping,
    first: &Mapping,
    mem: &mut dyn Memory,
    use_map_files: bool,
) -> Result<(File, std::fs::Metadata), String> {
    if use_map_files {
        let link = format!(
            "/proc/{pid}/map_files/{:x}-{:x}",
            mapping.start, mapping.end
        );
        if let Ok(file) = File::open(&link)
            && let Ok(meta) = file.metadata()
        {
            return Ok((file, meta));
        }
    }
    if mapping.is_deleted() {
        return Err("the file was deleted since it was mapped".to_string());
    }
    let file = File::open(&mapping.path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if dev_numbers(meta.dev()) == mapping.dev && meta.ino() == mapping.inode {
        return Ok((file, meta));
    }
    if same_first_page(&file, first, mem) {
        return Ok((file, meta));
    }
    Err("the file at that path is not the mapped one (replaced)".to_string())
}

/// True when the bytes at the start of `first` (a mapping of the file at
/// some offset) in the process are those of `file` at that offset.
fn same_first_page(file: &File, first: &Mapping, mem: &mut dyn Memory) -> bool {
    use std::os::unix::fs::FileExt;
    let len = (first.end - first.start).min(4096) as usize;
    let mut in_file = vec![0u8; len];
    let mut in_memory = vec![0u8; len];
    first.readable
        && file.read_exact_at(&mut in_file, first.offset).is_ok()
        && mem.read(first.start, &mut in_memory)
        && in_file == in_memory
}

/// The separate debug file of `obj`, if installed: by build id under
/// `/usr/lib/debug/.build-id/`, then by `.gnu_debuglink` beside the file,
/// in its `.debug/` and under `/usr/lib/debug/`. A file whose build id
/// differs from `obj`'s is not taken.
fn find_debug_file(obj: &object::File<'_>, path: Option<&Path>) -> Option<Arc<[u8]>> {
    let build_id = obj.build_id().ok().flatten();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(id) = build_id.filter(|id| id.len() > 1) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        candidates
            .push(format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]).into());
    }
    if let (Some((name, _crc)), Some(dir)) = (
        obj.gnu_debuglink().ok().flatten(),
        path.and_then(Path::parent),
    ) {
        let name = String::from_utf8_lossy(name).into_owned();
        candidates.push(dir.join(&name));
        candidates.push(dir.join(".debug").join(&name));
        let relative = dir.strip_prefix("/").unwrap_or(dir);
        candidates.push(Path::new("/usr/lib/debug").join(relative).join(&name));
    }
    candidates.into_iter().find_map(|c| {
        if Some(c.as_path()) == path {
            return None;
        }
        let data = read_file(File::open(&c).ok()?).ok()?;
        let dobj = object::File::parse(&*data).ok()?;
        let same = match (build_id, dobj.build_id().ok().flatten()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let useful = dobj.section_by_name(".debug_info").is_some();
        (same && useful).then(|| {
            log::debug!("durafs: stacks: debug information from {}", c.display());
            data.clone()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(start: u64, offset: u64) -> Mapping {
        Mapping {
            start,
            end: start + 0x1000,
            readable: true,
            executable: true,
            offset,
            dev: (0, 0),
            inode: 1,
            path: "/x".to_string(),
        }
    }

    #[test]
    fn the_bias_comes_from_the_segment_holding_the_mapped_offset() {
        let mut m = Module::empty();
        // A PIE: text at file offset 0x1040, address 0x1040; data at file
        // offset 0x2df0, address 0x3df0.
        m.loads = vec![
            (0, 0, 0x6f8, false),
            (0x1000, 0x1000, 0x1bd, true),
            (0x2df0, 0x3df0, 0x220, false),
        ];
        let text = mapping(0x5555_5555_5000, 0x1000);
        assert_eq!(m.bias(&text), Some(0x5555_5555_4000));
        let mut data = mapping(0x5555_5555_7000, 0x2000);
        data.executable = false;
        assert_eq!(m.bias(&data), Some(0x5555_5555_4000));
        // lld: the text segment starts in the last page of the first one,
        // one page further in memory than in the file.
        m.loads = vec![
            (0, 0, 0x17ade8, false),
            (0x17adf0, 0x17bdf0, 0x3c5de0, true),
        ];
        let text = mapping(0x5555_5568_0000, 0x17a000);
        assert_eq!(m.bias(&text), Some(0x5555_5568_0000 - 0x17b000));
        // Not PIE: addresses are the file's.
        m.loads = vec![(0, 0x400000, 0x6f8, false), (0x1000, 0x401000, 0x1bd, true)];
        assert_eq!(m.bias(&mapping(0x401000, 0x1000)), Some(0));
        assert_eq!(m.bias(&mapping(0x409000, 0x9000)), None);
    }

    #[test]
    fn a_file_is_opened_only_when_it_is_the_mapped_one() {
        use super::super::proc::{ProcessMemory, parse_maps};
        let pid = std::process::id();
        let maps = parse_maps(&std::fs::read_to_string("/proc/self/maps").unwrap());
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let first = maps
            .iter()
            .filter(|m| Path::new(&m.path) == exe)
            .min_by_key(|m| m.offset)
            .unwrap()
            .clone();
        let mut mem = ProcessMemory::new(pid);
        // The very file, by device and inode.
        assert!(open_mapped(pid, &first, &first, &mut mem, false).is_ok());
        // Another inode than the mapping's (as overlayfs may show): the
        // same first page as the process maps.
        let mut other = first.clone();
        other.inode += 1;
        assert!(open_mapped(pid, &other, &other, &mut mem, false).is_ok());
        // Another file at the path: refused.
        let dir = tempfile::tempdir().unwrap();
        let impostor = dir.path().join("prog");
        std::fs::write(&impostor, vec![0x7fu8; 8192]).unwrap();
        other.path = impostor.to_str().unwrap().to_string();
        let err = open_mapped(pid, &other, &other, &mut mem, false).unwrap_err();
        assert_eq!(
            err,
            "the file at that path is not the mapped one (replaced)"
        );
        // A deleted file: only through /proc/PID/map_files (root).
        let mut deleted = first.clone();
        deleted.path.push_str(" (deleted)");
        let err = open_mapped(pid, &deleted, &first, &mut mem, false).unwrap_err();
        assert_eq!(err, "the file was deleted since it was mapped");
        if crate::sys::is_root() {
            assert!(open_mapped(pid, &deleted, &first, &mut mem, true).is_ok());
        }
    }

    #[test]
    fn a_file_that_is_not_elf_is_refused_with_a_sentence() {
        let err = Module::parse(Arc::from(&b"#!/bin/sh\necho hi\n"[..]), None, true)
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("not an"), "{err}");
    }

    #[test]
    fn this_test_binary_has_unwind_information_and_symbols() {
        let exe = std::env::current_exe().unwrap();
        let data = read_file(File::open(&exe).unwrap()).unwrap();
        let m = Module::parse(data.clone(), Some(&exe), true).unwrap();
        assert!(m.cfi.is_some());
        assert!(m.symbols.has_dwarf());
        assert!(!m.loads.is_empty());
        let m = Module::parse(data, Some(&exe), false).unwrap();
        assert!(!m.symbols.has_dwarf());
    }
}
