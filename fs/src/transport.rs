//! How FUSE requests travel between the kernel and durafs.
//!
//! Two transports serve the same [`crate::fs::DuraFs`] through the same
//! fuser callbacks; only the path of a request differs:
//!
//! - [`Transport::Dev`]: each request is a `read` of `/dev/fuse` and each
//!   reply a `writev` (every kernel).
//! - [`Transport::Uring`]: FUSE over io_uring (Linux 6.14 and later). One
//!   ring per CPU, each served by its own thread; a request and its reply
//!   share one entry, and one `io_uring_enter` both answers the requests
//!   served and waits for the next ones; a lone commit is submitted as
//!   `SCHED_IDLE` so that the caller it wakes stays on its CPU. Measured on
//!   this project's kernel (6.18), durafs's own bench: 1.14 to 1.71 x the
//!   classic transport on the rows that stay in memory, random 4 KiB
//!   writes 1.32 x (`docs/fuse-over-io-uring.md`).
//!   Needs `/sys/module/fuse/parameters/enable_uring`, which durafs turns
//!   on when it may (root) and the kernel has it.

use std::fmt;
use std::io;
use std::str::FromStr;

/// The environment variable a mount without an explicit transport reads
/// (`dev` or `uring`), so a whole test suite can run on either.
pub const TRANSPORT_ENV: &str = "DURAFS_TRANSPORT";

/// The kernel's switch for FUSE over io_uring (Linux 6.14 and later, built
/// with `CONFIG_FUSE_IO_URING`); read when a mount starts.
pub const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// How FUSE requests travel between the kernel and durafs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// `read` and `writev` on `/dev/fuse`, one pair per request.
    #[default]
    Dev,
    /// FUSE over io_uring: per-CPU rings (Linux 6.14 and later).
    Uring,
}

impl Transport {
    /// The transport [`TRANSPORT_ENV`] names; `Ok(None)` when it is unset
    /// or empty.
    pub fn from_env() -> io::Result<Option<Transport>> {
        match std::env::var(TRANSPORT_ENV) {
            Ok(v) if v.trim().is_empty() => Ok(None),
            Ok(v) => v.parse().map(Some).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{TRANSPORT_ENV}: {e}"))
            }),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{TRANSPORT_ENV} is not UTF-8"),
            )),
        }
    }

    /// `explicit`, else [`TRANSPORT_ENV`], else [`Transport::Dev`].
    pub fn resolve(explicit: Option<Transport>) -> io::Result<Transport> {
        match explicit {
            Some(t) => Ok(t),
            None => Ok(Transport::from_env()?.unwrap_or_default()),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Dev => "dev",
            Transport::Uring => "uring",
        })
    }
}

impl FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "dev" => Ok(Transport::Dev),
            "uring" | "io_uring" => Ok(Transport::Uring),
            other => Err(format!(
                "unknown transport {other:?}: dev (/dev/fuse) or uring (FUSE over io_uring)"
            )),
        }
    }
}

/// Whether the kernel switch reads as on (`Y` or `1`).
fn switch_is_on(text: &str) -> bool {
    matches!(text.trim(), "Y" | "y" | "1")
}

/// Makes sure the kernel offers FUSE over io_uring to the next mount:
/// turns [`ENABLE_URING`] on when it is off (root only; logged), and says
/// what is missing otherwise.
pub fn enable_uring() -> io::Result<()> {
    let text = match std::fs::read_to_string(ENABLE_URING) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "this kernel has no FUSE over io_uring ({ENABLE_URING} is missing: it needs \
                     Linux 6.14 or later built with CONFIG_FUSE_IO_URING); use --transport dev"
                ),
            ));
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("reading {ENABLE_URING}: {e}"),
            ));
        }
    };
    if switch_is_on(&text) {
        return Ok(());
    }
    std::fs::write(ENABLE_URING, "1").map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "FUSE over io_uring is off in the kernel and turning it on failed ({e}); as root: \
                 echo 1 > {ENABLE_URING}"
            ),
        )
    })?;
    log::info!("durafs: turned FUSE over io_uring on ({ENABLE_URING} = 1)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_and_print_as_their_names() {
        for t in [Transport::Dev, Transport::Uring] {
            assert_eq!(t.to_string().parse::<Transport>(), Ok(t));
        }
        assert_eq!("io_uring".parse::<Transport>(), Ok(Transport::Uring));
        let e = "fast".parse::<Transport>().unwrap_err();
        assert!(e.contains("\"fast\"") && e.contains("uring"), "{e}");
    }

    #[test]
    fn an_explicit_transport_wins_over_the_default() {
        assert_eq!(
            Transport::resolve(Some(Transport::Uring)).unwrap(),
            Transport::Uring
        );
        assert_eq!(
            Transport::resolve(Some(Transport::Dev)).unwrap(),
            Transport::Dev
        );
    }

    #[test]
    fn the_kernel_switch_reads_as_the_module_prints_it() {
        assert!(switch_is_on("Y\n") && switch_is_on("1"));
        assert!(!switch_is_on("N\n") && !switch_is_on("0") && !switch_is_on(""));
    }
}
