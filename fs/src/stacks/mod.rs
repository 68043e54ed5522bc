//! Where in a program a system call was made: the user-space call stack
//! of a thread blocked in a system call, unwound and symbolised to
//! function, source file and line.
//!
//! When durafs serves a FUSE request, the thread that made the system
//! call (`rename`, `write`, `fsync`...) waits in the kernel until durafs
//! answers; `Request::pid()` names that thread (its tid).
//! [`Stacks::capture`] tells who it is and where in its code it made the
//! call, so that a crash-test report can say "the rename at main.c:12 may
//! persist before the write at main.c:9" ([`Caller::location`]).
//!
//! # What it reads
//!
//! * `/proc/TID/syscall`: whether the thread is in a system call and, if
//!   so, its user stack pointer and instruction pointer (the only user
//!   registers the kernel shows without stopping the thread);
//! * `/proc/TID/status` (its process, the tgid), `/proc/PID/comm` (the
//!   command) and `/proc/PID/maps` (which file is mapped where);
//! * the stack, with `process_vm_readv(2)`, a page at a time, only the
//!   words the unwinder asks for;
//! * the mapped ELF files (through `/proc/PID/map_files/` when allowed, so
//!   that a deleted or replaced file is still the one that runs), read
//!   once and cached in the [`Stacks`]: their call frame information
//!   (`.eh_frame`, `.debug_frame`), DWARF line tables and symbols, and a
//!   separate debug file under `/usr/lib/debug` when one is installed.
//!
//! Nothing stops or traces the thread: no `ptrace`, no signal.
//!
//! # Why it is sound
//!
//! The thread is blocked in the system call while its stack is read: its
//! registers and its stack do not change until the call returns, and for
//! a call durafs serves, that is when durafs answers, after the capture.
//! To catch a thread that was not held (a call served elsewhere, or
//! interrupted), `/proc/TID/syscall` is read again after the stack: if it
//! changed, the capture is refused ([`StackError::Moved`]); a thread that
//! exited is [`StackError::NoSuchThread`].
//!
//! The first frame is exact (the kernel's instruction pointer). The
//! second, the caller of the libc wrapper, is exact whenever the wrapper
//! has call frame information (libc's wrappers do: their frame address
//! is relative to the stack pointer). Each further frame is exact while
//! the call frame information can be evaluated with the registers known;
//! where it needs `rbp` before any frame has restored it (code built with
//! frame pointers, such as `gcc -O0`), or there is none, a stack scan
//! looks for the return address and the frame is marked
//! [`FoundBy::Scan`]: best-effort (see the `unwind` module).
//!
//! # Cost
//!
//! Measured on this project's 2-core machine by
//! `cargo test -p durafs --lib stacks::tests::capture_cost -- --nocapture`:
//! a capture with its files cached takes about 0.1 ms (six frames of a C
//! program) to 0.2 ms (fifteen frames of the 90 MB test binary), mostly
//! reading `/proc` and symbolising; the first capture that meets a file
//! pays for reading it and indexing its DWARF, once per [`Stacks`]:
//! about 6 ms for a small C program and its libc, 0.2 to 0.25 s for the 90 MB
//! test binary.
//!
//! # Limits
//!
//! * x86_64 only: elsewhere, [`StackError::UnsupportedArchitecture`].
//! * At most [`MAX_FRAMES`] frames; a stack scan looks 64 KiB up at most.
//! * Code without unwind information (JIT code, the vdso) is crossed by
//!   scanning only; signal frames (CFA by DWARF expression) likewise.
//! * Names need a symbol table, lines need DWARF (`-g`); split DWARF
//!   (`.dwo`) and `dwz` supplementary files are not read. Frames in the C
//!   library and the dynamic loader get names only, never lines: those
//!   are never the program's location, and their DWARF (when installed)
//!   is slow to load.
//! * A file mapped by the process but deleted since can be read only
//!   through `/proc/PID/map_files/` (root): else its frames have an
//!   address and a module but no name. A file replaced at its path is
//!   used only when it is the same file (device and inode, or the same
//!   first page as the process maps).

mod module;
mod proc;
mod symbols;
#[cfg(test)]
mod tests;
mod unwind;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use module::Module;
use proc::{Mapping, ProcessMemory, SyscallState};

/// The deepest stack captured, in frames (inlined functions not counted).
pub const MAX_FRAMES: usize = 64;
/// Modules cached before the cache is emptied (a long-lived daemon sees
/// programs rebuilt again and again, each build a new file).
const MAX_MODULES: usize = 256;

/// Who made a call: the process and thread, and where in its code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The process (thread group) id.
    pub pid: u32,
    /// The thread id.
    pub tid: u32,
    /// The process's command name (`/proc/PID/comm`).
    pub command: String,
    /// The stack, innermost first: frame 0 is where the thread entered
    /// the kernel (usually a libc wrapper), frame 1 its caller...
    pub frames: Vec<Frame>,
}

/// One frame of a stack, or one function inlined at a frame's address
/// (then `inlined` is true and the next frame has the same address).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The instruction pointer (frame 0) or the return address.
    pub address: u64,
    /// The mapped file (`/usr/lib/x86_64-linux-gnu/libc.so.6`,
    /// `/tmp/prog (deleted)`) or pseudo-file (`[vdso]`) holding the
    /// address; None for anonymous memory.
    pub module: Option<String>,
    /// The function, demangled; None without symbols.
    pub function: Option<String>,
    /// The source file, as the debugging information names it.
    pub file: Option<String>,
    /// The line in `file`: for a return address, the line of the call.
    pub line: Option<u32>,
    /// True when `function` was inlined into the next frame's function.
    pub inlined: bool,
    /// How the frame was found, i.e. how far it can be trusted.
    pub found_by: FoundBy,
}

/// How a frame's address was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    /// The kernel's instruction pointer: exact.
    Registers,
    /// The call frame information of the frame below: exact, if the
    /// frames below it are.
    Cfi,
    /// A scan of the stack for a return address: best-effort.
    Scan,
}

impl Caller {
    /// The first frame in the program's own code: skipping the C
    /// library, the dynamic loader, the vdso, the Rust standard library
    /// and frames without a source file.
    pub fn program_frame(&self) -> Option<&Frame> {
        self.frames.iter().find(|f| is_program_frame(f))
    }

    /// [`Caller::program_frame`] as `file:line (function)`; None when
    /// there is none.
    pub fn location(&self) -> Option<String> {
        let f = self.program_frame()?;
        let mut s = f.file.clone().unwrap_or_default();
        if let Some(line) = f.line {
            s.push_str(&format!(":{line}"));
        }
        if let Some(function) = &f.function {
            s.push_str(&format!(" ({function})"));
        }
        Some(s)
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#x} {}",
            self.address,
            self.function.as_deref().unwrap_or("??")
        )?;
        if let Some(file) = &self.file {
            write!(f, " at {file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
        }
        if let Some(module) = &self.module {
            write!(f, " in {module}")?;
        }
        if self.inlined {
            write!(f, " (inlined)")?;
        }
        if self.found_by == FoundBy::Scan {
            write!(f, " (found by a stack scan)")?;
        }
        Ok(())
    }
}

fn is_program_frame(f: &Frame) -> bool {
    let Some(file) = &f.file else {
        return false;
    };
    !f.module.as_deref().is_some_and(is_system_module) && !is_toolchain_source(file)
}

/// True for the C library's files (glibc's and musl's), the dynamic
/// loader's and the vdso.
fn is_system_module(path: &str) -> bool {
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    let name = path.rsplit('/').next().unwrap_or(path);
    let prefixes = [
        "libc.so",
        "libc-",
        "ld-linux",
        "ld-musl",
        "ld64.so",
        "libpthread",
        "libdl.",
        "libdl-",
        "librt.",
        "librt-",
        "libm.",
        "libm-",
    ];
    name == "[vdso]" || prefixes.iter().any(|p| name.starts_with(p))
}

/// True for the sources of the Rust standard library (`/rustc/HASH/...`
/// in the toolchain's debugging information).
fn is_toolchain_source(file: &str) -> bool {
    file.starts_with("/rustc/")
        || [
            "/library/std/src/",
            "/library/core/src/",
            "/library/alloc/src/",
        ]
        .iter()
        .any(|p| file.contains(p))
}

/// Why a stack could not be captured.
#[derive(Debug)]
#[non_exhaustive]
pub enum StackError {
    /// This machine's architecture is not supported (only x86_64 is).
    UnsupportedArchitecture,
    /// No thread has that id (it may have exited).
    NoSuchThread { tid: u32 },
    /// The thread is not blocked in a system call; `running` when it is
    /// on a CPU, else in the kernel for another reason (stopped...).
    NotInSyscall { tid: u32, running: bool },
    /// This process may not read the thread's state or memory.
    Denied { tid: u32, what: String },
    /// The thread left its system call while its stack was being read.
    Moved { tid: u32 },
    /// A file of `/proc` could not be read.
    Unreadable {
        tid: u32,
        what: String,
        error: io::Error,
    },
    /// A file of `/proc` said something this code does not understand.
    Malformed {
        tid: u32,
        what: String,
        text: String,
    },
}

impl StackError {
    /// The error for a failed read of `what` about thread `tid`.
    fn from_io(tid: u32, what: &str, error: io::Error) -> StackError {
        let what = what.to_string();
        match (error.kind(), error.raw_os_error()) {
            (io::ErrorKind::NotFound, _) | (_, Some(libc::ESRCH)) => {
                StackError::NoSuchThread { tid }
            }
            (io::ErrorKind::PermissionDenied, _) => StackError::Denied { tid, what },
            _ => StackError::Unreadable { tid, what, error },
        }
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::UnsupportedArchitecture => write!(
                f,
                "capturing call stacks is not supported on {}: only on x86_64",
                std::env::consts::ARCH
            ),
            StackError::NoSuchThread { tid } => {
                write!(f, "there is no thread {tid} (it may have exited)")
            }
            StackError::NotInSyscall { tid, running: true } => {
                write!(f, "thread {tid} is running, not blocked in a system call")
            }
            StackError::NotInSyscall {
                tid,
                running: false,
            } => {
                write!(
                    f,
                    "thread {tid} is not in a system call (it may be stopped)"
                )
            }
            StackError::Denied { tid, what } => write!(
                f,
                "not allowed to read {what} for thread {tid}: root, or the right to ptrace it, is needed"
            ),
            StackError::Moved { tid } => write!(
                f,
                "thread {tid} left its system call while its stack was being read"
            ),
            StackError::Unreadable { tid, what, error } => {
                write!(f, "could not read {what} for thread {tid}: {error}")
            }
            StackError::Malformed { tid, what, text } => {
                write!(f, "could not understand {what} for thread {tid}: '{text}'")
            }
        }
    }
}

impl std::error::Error for StackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StackError::Unreadable { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A file's identity in the module cache: the mapping's path, device and
/// inode, and the file's modification time and size (an inode number is
/// reused when a program is rebuilt).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ModuleKey {
    path: String,
    dev: (u32, u32),
    inode: u64,
    mtime: (i64, i64),
    size: u64,
}

/// Captures call stacks; keeps what it read of ELF files (unwind tables,
/// symbols) for the next captures. Shared by threads (`&self`).
pub struct Stacks {
    modules: DashMap<ModuleKey, Arc<OnceLock<Arc<Module>>>>,
    /// Whether to open mapped files through `/proc/PID/map_files/`.
    use_map_files: bool,
}

impl Default for Stacks {
    fn default() -> Self {
        Stacks::new()
    }
}

impl Stacks {
    pub fn new() -> Stacks {
        Stacks {
            modules: DashMap::new(),
            use_map_files: true,
        }
    }

    /// Captures the stack of thread `tid`, which must be blocked in a
    /// system call: who it is, and its frames, unwound and symbolised.
    /// Never panics; every failure is a [`StackError`]. A stack that
    /// cannot be unwound to its end is not an error: its frames stop
    /// where the unwinding did.
    pub fn capture(&self, tid: u32) -> Result<Caller, StackError> {
        if !cfg!(target_arch = "x86_64") {
            return Err(StackError::UnsupportedArchitecture);
        }
        let (before, sp, pc) = blocked(tid)?;
        let status = proc::read_proc(tid, tid, "status")?;
        let pid = proc::parse_tgid(&status).ok_or_else(|| StackError::Malformed {
            tid,
            what: format!("/proc/{tid}/status"),
            text: status.lines().take(8).collect::<Vec<_>>().join("; "),
        })?;
        let command = proc::read_proc(tid, pid, "comm")?.trim_end().to_string();
        let maps = proc::parse_maps(&proc::read_proc(tid, pid, "maps")?);
        let process = Process::new(self, pid, maps);
        let mut mem = ProcessMemory::new(pid);
        let raw = unwind::unwind(unwind::Regs::new(pc, sp), &process, &mut mem, MAX_FRAMES);
        let (after, _, _) = blocked(tid)?;
        if after != before {
            return Err(StackError::Moved { tid });
        }
        if mem.gone {
            return Err(StackError::NoSuchThread { tid });
        }
        if mem.denied {
            return Err(StackError::Denied {
                tid,
                what: format!("the memory of process {pid}"),
            });
        }
        let frames = process.symbolise(&raw);
        Ok(Caller {
            pid,
            tid,
            command,
            frames,
        })
    }

    /// The module of a mapping (read, or from the cache) and its load
    /// bias; None when no ELF file could be read for it.
    fn module(
        &self,
        pid: u32,
        mapping: &Mapping,
        maps: &[Mapping],
        mem: &mut ProcessMemory,
    ) -> Option<(Arc<Module>, u64)> {
        if !mapping.is_file() {
            return None;
        }
        let first = maps
            .iter()
            .filter(|m| m.path == mapping.path && m.inode == mapping.inode && m.dev == mapping.dev)
            .min_by_key(|m| m.offset)
            .unwrap_or(mapping);
        let (file, meta) = match module::open_mapped(pid, mapping, first, mem, self.use_map_files) {
            Ok(opened) => opened,
            Err(e) => {
                log::debug!("durafs: stacks: no symbols for {}: {e}", mapping.path);
                return None;
            }
        };
        let key = ModuleKey {
            path: mapping.path.clone(),
            dev: mapping.dev,
            inode: mapping.inode,
            mtime: (meta.mtime(), meta.mtime_nsec()),
            size: meta.len(),
        };
        if self.modules.len() >= MAX_MODULES && !self.modules.contains_key(&key) {
            log::debug!("durafs: stacks: {MAX_MODULES} modules cached: emptying the cache");
            self.modules.clear();
        }
        // The slot is taken out of the map before the (slow) load, so
        // that loading one file holds no lock of the map.
        let slot = self.modules.entry(key).or_default().clone();
        let module = slot.get_or_init(|| Arc::new(load(file, mapping)));
        let bias = module.bias(mapping)?;
        Some((module.clone(), bias))
    }
}

/// Reads an opened ELF file into a module (for system libraries, with
/// names but no lines); a file that cannot be read or parsed is a module
/// without unwind information or symbols.
fn load(file: std::fs::File, mapping: &Mapping) -> Module {
    let path = std::path::Path::new(&mapping.path);
    // The C library's lines are never the program's location, and its
    // DWARF (with libc6-dbg) costs ~100 ms to load: its names suffice.
    let lines = !is_system_module(&mapping.path);
    let parsed = module::read_file(file).and_then(|data| Module::parse(data, Some(path), lines));
    if let Ok(m) = &parsed {
        log::debug!(
            "durafs: stacks: read {}: {} FDEs, DWARF: {}",
            mapping.path,
            m.cfi.as_ref().map_or(0, |c| c.len()),
            m.symbols.has_dwarf()
        );
    }
    parsed.unwrap_or_else(|e| {
        log::debug!("durafs: stacks: {}: {e}", mapping.path);
        Module::empty()
    })
}

/// The text of `/proc/TID/syscall` and the stack and instruction pointers
/// it gives, when the thread is blocked in a system call.
fn blocked(tid: u32) -> Result<(String, u64, u64), StackError> {
    let text = proc::read_proc(tid, tid, "syscall")?;
    match proc::parse_syscall(&text) {
        Some(SyscallState::InSyscall { sp, pc, .. }) => Ok((text, sp, pc)),
        Some(SyscallState::Running) => Err(StackError::NotInSyscall { tid, running: true }),
        Some(SyscallState::NotInSyscall) => Err(StackError::NotInSyscall {
            tid,
            running: false,
        }),
        None => Err(StackError::Malformed {
            tid,
            what: format!("/proc/{tid}/syscall"),
            text: text.trim().to_string(),
        }),
    }
}

/// A module and its load bias in a process; None when no ELF file could
/// be read for a mapping.
type Loaded = Option<(Arc<Module>, u64)>;

/// One capture's view of a process: its mappings and their modules.
struct Process<'a> {
    stacks: &'a Stacks,
    pid: u32,
    maps: Vec<Mapping>,
    /// Modules already found in this capture, by mapping start.
    found: Mutex<HashMap<u64, Loaded>>,
    /// Memory for comparing files with what is mapped (the unwinder has
    /// its own).
    mem: Mutex<ProcessMemory>,
}

impl<'a> Process<'a> {
    fn new(stacks: &'a Stacks, pid: u32, maps: Vec<Mapping>) -> Process<'a> {
        Process {
            stacks,
            pid,
            maps,
            found: Mutex::new(HashMap::new()),
            mem: Mutex::new(ProcessMemory::new(pid)),
        }
    }

    /// The mapping holding `addr` and, when its file could be read, its
    /// module and load bias.
    fn module_at(&self, addr: u64) -> Option<(&Mapping, Loaded)> {
        let mapping = proc::find_mapping(&self.maps, addr)?;
        let mut found = self.found.lock();
        let module = found
            .entry(mapping.start)
            .or_insert_with(|| {
                let mut mem = self.mem.lock();
                self.stacks.module(self.pid, mapping, &self.maps, &mut mem)
            })
            .clone();
        Some((mapping, module))
    }

    /// Names, files and lines for the frames the unwinder found.
    fn symbolise(&self, raw: &[(u64, FoundBy)]) -> Vec<Frame> {
        let mut frames = Vec::with_capacity(raw.len());
        for (i, &(address, found_by)) in raw.iter().enumerate() {
            // A return address is past its call: look the call up.
            let probe = if i == 0 {
                address
            } else {
                address.wrapping_sub(1)
            };
            let (module, resolved) = match self.module_at(address) {
                Some((mapping, module)) => {
                    let name = (!mapping.path.is_empty()).then(|| mapping.path.clone());
                    let resolved = module
                        .map(|(m, bias)| m.symbols.lookup(probe.wrapping_sub(bias)))
                        .unwrap_or_default();
                    (name, resolved)
                }
                None => (None, Vec::new()),
            };
            let resolved = if resolved.is_empty() {
                vec![Default::default()]
            } else {
                resolved
            };
            frames.extend(resolved.into_iter().map(|r: symbols::Resolved| Frame {
                address,
                module: module.clone(),
                function: r.function,
                file: r.file,
                line: r.line,
                inlined: r.inlined,
                found_by,
            }));
        }
        frames
    }
}

impl unwind::Code for Process<'_> {
    fn row(&self, addr: u64) -> Option<unwind::Row> {
        let (mapping, module) = self.module_at(addr)?;
        if !mapping.executable {
            return None;
        }
        let (module, bias) = module?;
        let row = module.cfi.as_ref()?.row(addr.wrapping_sub(bias))?;
        Some(row.rebased(bias))
    }

    fn is_code(&self, addr: u64) -> bool {
        proc::find_mapping(&self.maps, addr).is_some_and(|m| m.executable)
    }

    fn stack_end(&self, sp: u64) -> u64 {
        proc::find_mapping(&self.maps, sp).map_or(sp, |m| m.end)
    }
}
