//! pjdfstest, the POSIX conformance suite, in its quick mode on a fresh
//! `durafs mount --allow-other` volume (`tests/pjdfstest/run.sh --quick`;
//! the full suite: the same script without `--quick`, figures in
//! docs/reliability.md). Builds pjdfstest once into `target/pjdfstest/`,
//! installing its tool chain with apt-get when missing.

use durafs_tests::tools::require;
use std::path::Path;
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");

/// `(files, subtests, failed)` from the script's last line,
/// `pjdfstest: files=N subtests=M failed=K seconds=S`.
fn totals(stdout: &str) -> Option<(u64, u64, u64)> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("pjdfstest: files="))?;
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some((field("files")?, field("subtests")?, field("failed")?))
}

#[test]
fn totals_are_read_from_the_scripts_last_line() {
    let out = "building\npjdfstest: files=49 subtests=7514 failed=3 seconds=185\n";
    assert_eq!(totals(out), Some((49, 7514, 3)));
    assert_eq!(totals("Files=49, Tests=7514\n"), None);
}

#[test]
fn pjdfstest_quick_has_no_failed_subtest() {
    for (tool, package) in [
        ("autoreconf", "autoconf"),
        ("automake", "automake"),
        ("libtoolize", "libtool"),
        ("make", "make"),
        ("cc", "build-essential"),
        ("pkg-config", "pkg-config"),
        ("prove", "perl"),
        ("setpriv", "util-linux"),
    ] {
        require(tool, package);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tarball = root.join("../shared/third-party/pjdfstest-85a8aea.tar.gz");
    assert!(
        tarball.exists() || std::env::var_os("PJDFSTEST_TARBALL").is_some(),
        "pjdfstest's source is missing: expected {} (or set PJDFSTEST_TARBALL)",
        tarball.display()
    );
    let out = Command::new("bash")
        .arg(root.join("tests/pjdfstest/run.sh"))
        .args(["--quick", "--durafs", EXE])
        .output()
        .expect("running tests/pjdfstest/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let Some((files, subtests, failed)) = totals(&stdout) else {
        panic!(
            "run.sh printed no totals ({}):\n{stdout}\n{stderr}",
            out.status
        );
    };
    // The script prints prove's summary (the failing files) on stderr.
    assert_eq!(failed, 0, "failed subtests:\n{stderr}");
    assert!(
        out.status.success(),
        "run.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(files >= 40 && subtests >= 1000, "{stdout}");
}
