//! `durafs explore` as the tests run it: a scratch directory with the
//! binary on `PATH` as `durafs` and a starting tree, and the JSON report.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// A scratch directory with `bin/durafs` and `init/` (the starting tree).
pub struct Scratch {
    tmp: tempfile::TempDir,
    exe: &'static str,
}

impl Scratch {
    /// `exe`: the durafs binary (`env!("CARGO_BIN_EXE_durafs-cli")`).
    pub fn new(exe: &'static str, init: &[(&str, &str)]) -> Scratch {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir(tmp.path().join("bin")).expect("mkdir bin");
        std::os::unix::fs::symlink(exe, tmp.path().join("bin/durafs")).expect("symlink");
        fs::create_dir(tmp.path().join("init")).expect("mkdir init");
        for (name, content) in init {
            fs::write(tmp.path().join("init").join(name), content).expect("init file");
        }
        Scratch { tmp, exe }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `durafs ARGS` with `bin/` first on PATH, in the scratch directory.
    pub fn durafs(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(self.exe)
            .args(args)
            .current_dir(self.path())
            .env("PATH", path)
            .output()
            .expect("running durafs")
    }

    /// `durafs explore --init init [extra] --check CHECK -- sh -c WORKLOAD`.
    pub fn explore(&self, extra: &[&str], check: &str, workload: &str) -> Explored {
        let mut args = vec!["explore", "--init", "init", "--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--check", check, "--", "sh", "-c", workload]);
        let out = self.durafs(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
        Explored {
            code: out.status.code(),
            json,
            stderr,
        }
    }
}

pub struct Explored {
    pub code: Option<i32>,
    pub json: serde_json::Value,
    pub stderr: String,
}

impl Explored {
    pub fn failed(&self) -> u64 {
        self.json["states_failed"]
            .as_u64()
            .unwrap_or_else(|| panic!("no report (exit {:?}): {}", self.code, self.stderr))
    }

    pub fn tried(&self) -> u64 {
        self.json["states_tried"].as_u64().unwrap_or(0)
    }

    /// Expects some failures and exit 1.
    pub fn finds_the_bug(&self) -> &serde_json::Value {
        assert!(self.failed() > 0, "no state failed: {}", self.json);
        assert_eq!(self.code, Some(1), "{}", self.stderr);
        &self.json["failures"][0]
    }

    /// Expects no failures among several states, and exit 0.
    pub fn passes(&self) {
        assert_eq!(self.failed(), 0, "{:#}", self.json["failures"]);
        assert!(self.tried() > 1, "{}", self.json);
        assert_eq!(self.code, Some(0), "{}", self.stderr);
    }
}
