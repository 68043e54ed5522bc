//! Real captures: threads of this test process and C programs built with
//! gcc, each blocked in `read(2)` on a pipe nobody writes, at a known
//! line. The tests wait for the blocked state by polling
//! `/proc/.../syscall`, never by sleeping a fixed time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;

const SYS_READ: u64 = 0;

/// Waits until the thread whose `/proc` directory is `dir` is blocked in
/// system call `nr` with first argument `arg0`.
fn wait_blocked(dir: &str, nr: u64, arg0: u64) {
    let path = format!("{dir}/syscall");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        let arg = fields.get(1).and_then(|a| a.strip_prefix("0x"));
        if fields.first() == Some(&nr.to_string().as_str())
            && arg.and_then(|a| u64::from_str_radix(a, 16).ok()) == Some(arg0)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never showed the call: {text}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reads one byte from `fd`; sends the line of the read call first.
#[inline(never)]
fn blocked_read(fd: i32, line: &mpsc::Sender<u32>) -> isize {
    let mut byte = 0u8;
    let _ = line.send(line!() + 2);
    // SAFETY: a read of one byte into a local byte.
    let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
    // Used after the call: the read is no tail call, this frame stays.
    std::hint::black_box(&byte);
    n
}

/// A thread of this process blocked in [`blocked_read`]; dropping it
/// writes to the pipe and joins it.
struct BlockedThread {
    tid: u32,
    line: u32,
    write_fd: i32,
    handle: Option<std::thread::JoinHandle<isize>>,
}

impl BlockedThread {
    fn start() -> BlockedThread {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (read_fd, write_fd) = (fds[0], fds[1]);
        let (tid_tx, tid_rx) = mpsc::channel();
        let (line_tx, line_rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            // SAFETY: plain getter.
            let _ = tid_tx.send(unsafe { libc::gettid() } as u32);
            let n = blocked_read(read_fd, &line_tx);
            // SAFETY: this thread's descriptor, closed once.
            unsafe { libc::close(read_fd) };
            n
        });
        let tid = tid_rx.recv().unwrap();
        let line = line_rx.recv().unwrap();
        wait_blocked(&format!("/proc/self/task/{tid}"), SYS_READ, read_fd as u64);
        BlockedThread {
            tid,
            line,
            write_fd,
            handle: Some(handle),
        }
    }
}

impl Drop for BlockedThread {
    fn drop(&mut self) {
        // SAFETY: our descriptor; one byte from a local.
        unsafe {
            libc::write(self.write_fd, b"x".as_ptr().cast(), 1);
            libc::close(self.write_fd);
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn print_stack(caller: &Caller) {
    eprintln!(
        "{} (pid {}, tid {}):",
        caller.command, caller.pid, caller.tid
    );
    for (i, f) in caller.frames.iter().enumerate() {
        eprintln!("  #{i} {f}");
    }
}

#[test]
fn a_thread_of_this_process_is_found_at_its_read_call() {
    let t = BlockedThread::start();
    let caller = Stacks::new().capture(t.tid).unwrap();
    print_stack(&caller);
    assert_eq!(caller.pid, std::process::id());
    assert_eq!(caller.tid, t.tid);
    let exe = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(caller.command, exe.trim_end());
    assert_eq!(caller.frames[0].found_by, FoundBy::Registers);
    let module = caller.frames[0].module.as_deref().unwrap_or_default();
    assert!(is_system_module(module), "frame 0 in libc: {module}");
    let f = caller.program_frame().unwrap();
    assert_eq!(f.found_by, FoundBy::Cfi);
    assert!(f.file.as_deref().unwrap().ends_with(file!()), "{f}");
    assert_eq!(f.line, Some(t.line));
    assert!(
        f.function
            .as_deref()
            .unwrap()
            .ends_with("stacks::tests::blocked_read"),
        "{f}"
    );
    let location = caller.location().unwrap();
    assert!(location.ends_with(&format!(
        "{}:{} (durafs::stacks::tests::blocked_read)",
        file!(),
        t.line
    )));
    // The stack goes on to the thread's start, all by CFI (Rust code
    // here is compiled without frame pointers).
    assert!(caller.frames.len() > 4);
    assert!(caller.frames.iter().all(|f| f.found_by != FoundBy::Scan));
}

#[test]
fn threads_capture_at_once_through_one_stacks() {
    let t = BlockedThread::start();
    let stacks = Stacks::new();
    let results: Vec<Result<Caller, StackError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| stacks.capture(t.tid))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = results[0].as_ref().unwrap();
    for r in &results {
        assert_eq!(r.as_ref().unwrap(), first);
    }
    assert_eq!(first.program_frame().and_then(|f| f.line), Some(t.line));
}

#[test]
fn threads_not_blocked_in_a_system_call_are_errors() {
    let err = Stacks::new().capture(u32::MAX - 1).unwrap_err();
    assert!(matches!(err, StackError::NoSuchThread { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("there is no thread {} (it may have exited)", u32::MAX - 1)
    );

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let spin = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // SAFETY: plain getter.
            let _ = tx.send(unsafe { libc::gettid() } as u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    };
    let tid = rx.recv().unwrap();
    let err = Stacks::new().capture(tid).unwrap_err();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = spin.join();
    assert!(matches!(err, StackError::NotInSyscall { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!("thread {tid} is ")),
        "{err}"
    );
}

/// The C program: `wait_for_input` reads stdin at the READ line, called
/// from `main` at the CALL line; with argument `spin` it spins instead.
const PROG_C: &str = r#"#include <string.h>
#include <unistd.h>

__attribute__((noinline)) int wait_for_input(void) {
    char c;
    int n = read(0, &c, 1); /* READ */
    return n + 1;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "spin") == 0) {
        write(1, "s", 1);
        for (;;) {
        }
    }
    return wait_for_input() - 1; /* CALL */
}
"#;

fn line_of(marker: &str) -> u32 {
    let i = PROG_C.lines().position(|l| l.contains(marker)).unwrap();
    i as u32 + 1
}

/// Writes `prog.c` in `dir` and builds it with gcc and `flags`.
fn build_c(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join("prog.c");
    std::fs::write(&src, PROG_C).unwrap();
    let exe = dir.join(name);
    let out = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("gcc is needed for these tests");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// A C program blocked reading its stdin (a pipe kept open, unwritten);
/// killed on drop.
struct BlockedChild(Child);

impl BlockedChild {
    fn start(exe: &Path) -> BlockedChild {
        let child = Command::new(exe).stdin(Stdio::piped()).spawn().unwrap();
        wait_blocked(&format!("/proc/{}", child.id()), SYS_READ, 0);
        BlockedChild(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for BlockedChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn expect_c_location(caller: &Caller, src: &Path) {
    print_stack(caller);
    let want = format!(
        "{}:{} (wait_for_input)",
        src.display(),
        line_of("/* READ */")
    );
    assert_eq!(caller.location(), Some(want));
    let main = caller
        .frames
        .iter()
        .find(|f| f.function.as_deref() == Some("main"));
    let main = main.unwrap_or_else(|| panic!("no main frame"));
    assert_eq!(main.line, Some(line_of("/* CALL */")), "{main}");
}

#[test]
fn a_c_program_built_with_gcc_o0_is_found_at_its_read_call() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c(dir.path(), "prog", &["-g", "-O0"]);
    let child = BlockedChild::start(&exe);
    let caller = Stacks::new().capture(child.pid()).unwrap();
    expect_c_location(&caller, &dir.path().join("prog.c"));
    assert_eq!(caller.command, "prog");
    assert_eq!((caller.pid, caller.tid), (child.pid(), child.pid()));
    // The caller of the libc wrapper is exact; main, past a frame whose
    // CFA is rbp-based while rbp is unknown, is found by a scan.
    assert_eq!(caller.frames[1].found_by, FoundBy::Cfi);
    let main = caller
        .frames
        .iter()
        .find(|f| f.function.as_deref() == Some("main"));
    assert_eq!(main.map(|f| f.found_by), Some(FoundBy::Scan));
}

#[test]
fn a_c_program_built_with_gcc_o2_no_pie_unwinds_by_cfi_alone() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c(dir.path(), "prog", &["-g", "-O2", "-no-pie"]);
    let child = BlockedChild::start(&exe);
    let caller = Stacks::new().capture(child.pid()).unwrap();
    expect_c_location(&caller, &dir.path().join("prog.c"));
    let main = caller
        .frames
        .iter()
        .position(|f| f.function.as_deref() == Some("main"));
    let main = main.unwrap();
    assert!(
        caller.frames[..=main]
            .iter()
            .all(|f| f.found_by != FoundBy::Scan)
    );
}

#[test]
fn a_stripped_program_has_frames_with_modules_but_no_location() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c(dir.path(), "prog", &["-g", "-O2", "-s"]);
    let child = BlockedChild::start(&exe);
    let caller = Stacks::new().capture(child.pid()).unwrap();
    print_stack(&caller);
    assert_eq!(caller.location(), None);
    let f = &caller.frames[1];
    assert_eq!(f.module.as_deref(), Some(exe.to_str().unwrap()));
    assert_eq!(
        (&f.function, &f.file, f.found_by),
        (&None, &None, FoundBy::Cfi)
    );
}

#[test]
fn a_deleted_program_is_read_through_map_files_or_left_unnamed() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c(dir.path(), "prog", &["-g", "-O0"]);
    let child = BlockedChild::start(&exe);
    std::fs::remove_file(&exe).unwrap();
    let without = Stacks {
        use_map_files: false,
        ..Stacks::new()
    };
    let caller = without.capture(child.pid()).unwrap();
    assert_eq!(
        caller.location(),
        None,
        "a deleted file cannot be opened by path"
    );
    let module = caller.frames[1].module.clone().unwrap_or_default();
    assert!(module.ends_with(" (deleted)"), "{module}");
    if crate::sys::is_root() {
        let caller = Stacks::new().capture(child.pid()).unwrap();
        expect_c_location(&caller, &dir.path().join("prog.c"));
    }
}

#[test]
fn a_replaced_program_is_not_named_from_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c(dir.path(), "prog", &["-g", "-O0"]);
    let child = BlockedChild::start(&exe);
    // Another program, at the same path: other code at other addresses.
    let other = tempfile::tempdir().unwrap();
    let src = other.path().join("other.c");
    std::fs::write(&src, "int main(void) { return 42; }\n").unwrap();
    let status = Command::new("gcc")
        .args(["-g", "-O2", "-o"])
        .arg(other.path().join("other"))
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::rename(other.path().join("other"), &exe).unwrap();
    let without = Stacks {
        use_map_files: false,
        ..Stacks::new()
    };
    let caller = without.capture(child.pid()).unwrap();
    print_stack(&caller);
    assert_eq!(caller.location(), None);
    assert!(
        caller
            .frames
            .iter()
            .all(|f| f.function.as_deref() != Some("main"))
    );
    if crate::sys::is_root() {
        let caller = Stacks::new().capture(child.pid()).unwrap();
        expect_c_location(&caller, &dir.path().join("prog.c"));
    }
}

#[test]
fn a_stopped_process_is_not_in_a_system_call() {
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c(dir.path(), "prog", &["-O0"]);
    let mut child = Command::new(&exe)
        .arg("spin")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Its byte says it is past its system calls, spinning in main. A
    // stop at the end of the write would still show the write: stop it
    // until it is stopped out of any system call.
    let mut byte = [0u8; 1];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut byte).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let stopped = |want: bool| {
        while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('T') != want
        }) {
            assert!(Instant::now() < deadline, "the child never changed state");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    loop {
        // SAFETY: signals to our own child.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        stopped(true);
        let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap();
        if text.starts_with("-1 ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never stopped in user code: {text}"
        );
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        stopped(false);
    }
    let err = Stacks::new().capture(pid).unwrap_err();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        matches!(err, StackError::NotInSyscall { running: false, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("thread {pid} is not in a system call (it may be stopped)")
    );
}

#[test]
fn locations_skip_system_libraries_the_rust_library_and_frames_without_source() {
    let frame = |module: &str, file: Option<&str>, function: &str| Frame {
        address: 0x1000,
        module: Some(module.to_string()),
        function: Some(function.to_string()),
        file: file.map(str::to_string),
        line: Some(7),
        inlined: false,
        found_by: FoundBy::Cfi,
    };
    let mut caller = Caller {
        pid: 1,
        tid: 1,
        command: "t".to_string(),
        frames: vec![
            frame(
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                Some("../sysdeps/read.c"),
                "read",
            ),
            frame(
                "/usr/bin/t",
                Some("/rustc/abc/library/std/src/fs.rs"),
                "std::fs::read",
            ),
            frame("/usr/bin/t", None, "helper"),
            frame("/usr/bin/t", Some("/src/main.rs"), "t::main"),
        ],
    };
    assert_eq!(
        caller.location().as_deref(),
        Some("/src/main.rs:7 (t::main)")
    );
    caller.frames.pop();
    assert_eq!(caller.location(), None);
    for m in [
        "/lib64/ld-linux-x86-64.so.2",
        "[vdso]",
        "/lib/libpthread.so.0 (deleted)",
    ] {
        assert!(is_system_module(m), "{m}");
    }
    assert!(!is_system_module("/usr/lib/libcrypto.so.3"));
    let json = serde_json::to_string(&caller).unwrap();
    assert!(json.contains("\"found_by\":\"cfi\""), "{json}");
    assert_eq!(serde_json::from_str::<Caller>(&json).unwrap(), caller);
}

/// Not a check: the cost of a capture, cold (a new `Stacks`: files read,
/// tables built) and warm (cached), for this test binary (large, with
/// DWARF) and for a small C program. See it with
/// `cargo test -p durafs --lib stacks::tests::capture_cost -- --nocapture`.
#[test]
fn capture_cost() {
    fn measure(what: &str, tid: u32) {
        let cold_runs = 3;
        let start = Instant::now();
        for _ in 0..cold_runs {
            Stacks::new().capture(tid).unwrap();
        }
        let cold = start.elapsed() / cold_runs;
        let stacks = Stacks::new();
        let caller = stacks.capture(tid).unwrap();
        let warm_runs = 200;
        let start = Instant::now();
        for _ in 0..warm_runs {
            std::hint::black_box(stacks.capture(tid).unwrap());
        }
        let warm = start.elapsed() / warm_runs;
        let mut out = std::io::stderr().lock();
        let _ = writeln!(
            out,
            "capture cost, {what} ({} frames): cold {cold:?}, warm {warm:?}",
            caller.frames.len()
        );
    }
    let t = BlockedThread::start();
    measure("a thread of this test binary", t.tid);
    let dir = tempfile::tempdir().unwrap();
    let exe = build_c(dir.path(), "prog", &["-g", "-O0"]);
    let child = BlockedChild::start(&exe);
    measure("a gcc -O0 -g program", child.pid());
}

#[test]
fn errors_are_sentences_and_keep_their_cause() {
    use std::error::Error as _;
    let denied = StackError::from_io(7, "/proc/7/syscall", io::ErrorKind::PermissionDenied.into());
    assert_eq!(
        denied.to_string(),
        "not allowed to read /proc/7/syscall for thread 7: root, or the right to ptrace it, is needed"
    );
    let gone = StackError::from_io(7, "/proc/7/maps", io::Error::from_raw_os_error(libc::ESRCH));
    assert!(matches!(gone, StackError::NoSuchThread { tid: 7 }));
    let other = StackError::from_io(7, "/proc/7/maps", io::Error::from_raw_os_error(libc::EIO));
    assert!(
        other
            .to_string()
            .starts_with("could not read /proc/7/maps for thread 7: ")
    );
    assert!(other.source().is_some());
    assert_eq!(
        StackError::Moved { tid: 7 }.to_string(),
        "thread 7 left its system call while its stack was being read"
    );
    let malformed = StackError::Malformed {
        tid: 7,
        what: "/proc/7/syscall".to_string(),
        text: "what".to_string(),
    };
    assert_eq!(
        malformed.to_string(),
        "could not understand /proc/7/syscall for thread 7: 'what'"
    );
    assert!(
        StackError::UnsupportedArchitecture
            .to_string()
            .contains("only on x86_64")
    );
}
