//! The `metadata` workload, in process (no fio): create N files of 4 KiB
//! (each written and closed), rename each, unlink each; the figure is
//! 3N operations over the time all three phases took.

use crate::workload::check_interrupted;
use crate::{Result, err};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Runs the workload on `n` files in `dir` (which must exist and hold none
/// of its names); operations per second.
pub fn run(dir: &Path, n: usize) -> Result<f64> {
    let e =
        |op: &str, p: &Path, x: std::io::Error| err(format!("metadata: {op} {}: {x}", p.display()));
    let block = [0x5au8; 4096];
    let started = Instant::now();
    for i in 0..n {
        let p = dir.join(format!("f{i}"));
        let mut f = fs::File::create_new(&p).map_err(|x| e("creating", &p, x))?;
        f.write_all(&block).map_err(|x| e("writing", &p, x))?;
    }
    check_interrupted()?;
    for i in 0..n {
        let (from, to) = (dir.join(format!("f{i}")), dir.join(format!("g{i}")));
        fs::rename(&from, &to).map_err(|x| e("renaming", &from, x))?;
    }
    check_interrupted()?;
    for i in 0..n {
        let p = dir.join(format!("g{i}"));
        fs::remove_file(&p).map_err(|x| e("unlinking", &p, x))?;
    }
    let secs = started.elapsed().as_secs_f64();
    ops_per_sec(3 * n, secs)
}

/// `ops / secs`, an error when nothing was timed.
fn ops_per_sec(ops: usize, secs: f64) -> Result<f64> {
    if ops == 0 || secs <= 0.0 {
        return Err(err("metadata: nothing measured"));
    }
    Ok(ops as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_the_directory_empty_and_counts_three_ops_per_file() {
        let d = tempfile::tempdir().unwrap();
        let rate = run(d.path(), 50).unwrap();
        assert!(rate > 0.0);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
        assert_eq!(ops_per_sec(30, 2.0).unwrap(), 15.0);
        assert!(ops_per_sec(0, 1.0).is_err());
        assert!(run(&d.path().join("missing"), 1).is_err());
    }
}
