//! A workload as a POSIX shell script: run with `sh` in the filesystem's
//! root, `$DURAFS` the durafs binary, `$DURAFS_MOUNT` the volume the marks
//! go to and, on a durafs volume, `$DURAFS_SYNC` the mount `dsync` also
//! syncs, `$DURAFS_WRITEBACK` set when `wb` is to write dirty pages
//! back before each step's mark (`$DURAFS_WRITEBACK_AT=K`: at its K-th
//! call only), and `$DURAFS_SETTLE` when it is to sync after that. Only
//! coreutils and util-linux are needed.

use super::workload::{Op, Persist, Step, Workload};

/// A step as the script's lines, joined by `; `.
pub fn step_line(step: &Step) -> String {
    match &step.persist {
        Some(p) => format!("{}; {}", op_line(&step.op), persist_line(p)),
        None => op_line(&step.op),
    }
}

fn op_line(op: &Op) -> String {
    match op {
        Op::Create(p) => format!("touch {p}"),
        Op::Mkdir(d) => format!("mkdir {d}"),
        Op::Write {
            path,
            offset,
            len,
            byte,
            ..
        } => format!("pw {path} {offset} {len} {}", *byte as char),
        Op::Truncate { path, size, .. } => format!("truncate -s {size} {path}"),
        Op::Fallocate { path, offset, len } => format!("fallocate -o {offset} -l {len} {path}"),
        Op::Rename { from, to } => format!("mv -f -T {from} {to}"),
        Op::Link { from, to } => format!("ln {from} {to}"),
        Op::Unlink(p) => format!("rm -f {p}"),
        Op::Rmdir(d) => format!("rmdir {d}"),
        Op::Symlink { target, path } => format!("ln -s {target} {path}"),
    }
}

pub(crate) fn persist_line(p: &Persist) -> String {
    match p {
        Persist::Fsync(p) => format!("sync {p}"),
        Persist::Fdatasync(p) => format!("sync -d {p}"),
        Persist::Fsyncdir(d) => format!("sync {d}"),
        Persist::Sync => "dsync".to_string(),
    }
}

/// The shell functions every script starts with.
pub const PRELUDE: &str = r#"set -e
# pw PATH OFFSET LEN CHAR: one write(2) of LEN bytes CHAR at OFFSET.
pw() { head -c "$3" /dev/zero | tr '\0' "$4" | dd of="$1" bs="$3" count=1 seek="$2" oflag=seek_bytes conv=notrunc iflag=fullblock status=none; }
# dsync: syncfs(2) here; FUSE never sees it, so a durafs mount is asked too.
dsync() { sync -f .; if [ -n "${DURAFS_SYNC:-}" ]; then "$DURAFS" sync "$DURAFS_SYNC"; fi; }
# wb: with $DURAFS_COMMIT set (calibrate --commits, real side only), wait
# for the journal's next timed commit; with $DURAFS_WRITEBACK set
# (--writeback), or at the call numbered $DURAFS_WRITEBACK_AT only
# (--timings), write back every file's dirty pages without a flush (and
# wait for a commit again); with $DURAFS_SETTLE set (--settle, both
# sides), sync last.
DURAFS_WB_CALLS=0
wb() {
  DURAFS_WB_CALLS=$((DURAFS_WB_CALLS + 1))
  if [ -n "${DURAFS_COMMIT:-}" ]; then "$DURAFS" wait-commit .; fi
  if [ -n "${DURAFS_WRITEBACK:-}" ] || [ "${DURAFS_WRITEBACK_AT:-}" = "$DURAFS_WB_CALLS" ]; then
    "$DURAFS" writeback-all .
    if [ -n "${DURAFS_COMMIT:-}" ]; then "$DURAFS" wait-commit .; fi
  fi
  if [ -n "${DURAFS_SETTLE:-}" ]; then dsync; fi
}
"#;

/// How many times `script` calls `wb` (lines whose first word it is).
pub fn wb_calls(script: &str) -> usize {
    script
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("wb"))
        .count()
}

impl Workload {
    /// The script: run with `sh` in the filesystem's root, `$DURAFS` the
    /// durafs binary and `$DURAFS_MOUNT` the volume the marks go to.
    pub fn script(&self) -> String {
        let mut s = format!(
            "#!/bin/sh\n# durafs calibrate workload {} (seq-{})\n{PRELUDE}",
            self.name,
            self.steps.len()
        );
        for op in &self.setup {
            s.push_str(&op_line(op));
            s.push('\n');
        }
        s.push_str("dsync\n\"$DURAFS\" mark start\n");
        for (k, step) in self.steps.iter().enumerate() {
            s.push_str(&op_line(&step.op));
            s.push('\n');
            if let Some(p) = &step.persist {
                s.push_str(&persist_line(p));
                s.push('\n');
            }
            s.push_str(&format!("wb\n\"$DURAFS\" mark step-{}\n", k + 1));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_workload_calls_wb_once_per_step() {
        let w = super::super::workload::generate(1, 19);
        assert!(!w.steps.is_empty());
        assert_eq!(wb_calls(&w.script()), w.steps.len());
        assert_eq!(wb_calls(PRELUDE), 0, "the definition is not a call");
    }

    /// `DURAFS_WRITEBACK_AT=K` writes back at the K-th `wb` only.
    #[test]
    fn wb_writes_back_at_the_numbered_call_only() {
        let fake = tempfile::tempdir().unwrap();
        let log = fake.path().join("log");
        let bin = fake.path().join("durafs");
        std::fs::write(
            &bin,
            format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = format!(
            "{PRELUDE}wb\necho one >> {0}\nwb\necho two >> {0}\nwb\n",
            log.display()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(fake.path())
            .env("DURAFS", &bin)
            .env("DURAFS_WRITEBACK_AT", "2")
            .env_remove("DURAFS_WRITEBACK")
            .env_remove("DURAFS_SETTLE")
            .env_remove("DURAFS_COMMIT")
            .status()
            .unwrap();
        assert!(out.success());
        let got = std::fs::read_to_string(&log).unwrap();
        assert_eq!(got, "one\nwriteback-all .\ntwo\n");
    }
}
