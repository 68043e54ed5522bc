//! Plain types shared by the model, its operations and its crash states.

use std::fmt;

/// An inode number. [`ROOT`] is the root directory. Numbers are never reused
/// within one model.
pub type Ino = u64;

/// The root directory's inode number (FUSE's `FUSE_ROOT_ID`).
pub const ROOT: Ino = 1;

/// A directory entry name: raw bytes, never empty, never containing `/` or NUL.
pub type Name = Vec<u8>;

/// Longest name accepted (as Linux's `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Longest extended attribute name, prefix included (Linux's
/// `XATTR_NAME_MAX`).
pub const XATTR_NAME_MAX: usize = 255;

/// Largest extended attribute value (Linux's `XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: usize = 65536;

/// How `setxattr` treats an existing attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XattrMode {
    /// Create or replace.
    #[default]
    Any,
    /// Fail with [`FsError::Exists`] if it exists (`XATTR_CREATE`).
    Create,
    /// Fail with [`FsError::NoData`] if it does not exist (`XATTR_REPLACE`).
    Replace,
}

/// What an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

impl Kind {
    /// True for kinds whose content is a byte array (only regular files).
    pub fn has_data(self) -> bool {
        self == Kind::File
    }
}

/// A point in time, as seconds and nanoseconds since the Unix epoch. The model
/// reads no clock: callers pass the time in.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// The attributes `fsync` makes durable and `fdatasync` may leave behind.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Attrs {
    /// Permission bits (`0o7777`), without the file-type bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device number for character and block devices.
    pub rdev: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

/// A changes-only attribute update (`setattr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetAttrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<Timestamp>,
    pub mtime: Option<Timestamp>,
}

/// What a caller sees of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub nlink: u32,
    pub attrs: Attrs,
}

/// `renameat2` flags the model honours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RenameFlags {
    /// Fail with [`FsError::Exists`] if the target exists.
    pub noreplace: bool,
    /// Swap source and target atomically; both must exist.
    pub exchange: bool,
}

/// `fallocate` modes the model honours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fallocate {
    /// Allocate and extend the size to cover the range.
    Default,
    /// Allocate without changing the size (`FALLOC_FL_KEEP_SIZE`).
    KeepSize,
    /// Deallocate: the range reads as zeros; size unchanged
    /// (`FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`).
    PunchHole,
    /// The range reads as zeros and the size grows to cover it
    /// (`FALLOC_FL_ZERO_RANGE`).
    ZeroRange,
    /// The range reads as zeros; size unchanged
    /// (`FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE`).
    ZeroRangeKeepSize,
}

/// The model: which filesystem's crash behaviour a volume follows. Each
/// profile's rules are in [`super::profile`] and `docs/durability.md`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// The union of what POSIX filesystems may show: a name is durable only
    /// once its directory is fsynced, metadata survives in any subset.
    #[default]
    Posix,
    /// ext4 `data=ordered`: one journal, so fsync or fdatasync of any file
    /// or directory also commits every earlier namespace operation, and
    /// journaled metadata survives as an in-order prefix. `journal` (the
    /// name of this model before the profiles) is an alias.
    #[serde(alias = "journal")]
    Ext4,
    /// xfs: the journal rules of `ext4`, and a write's size change on disk
    /// only with all its data.
    Xfs,
    /// btrfs: copy-on-write data in whole pages, a write's size change on
    /// disk only with all its data, names by the posix rules.
    Btrfs,
}

impl Persistence {
    /// Every model, in the order `--help` lists them.
    pub const ALL: [Persistence; 4] = [
        Persistence::Posix,
        Persistence::Ext4,
        Persistence::Xfs,
        Persistence::Btrfs,
    ];

    /// The model's name on the command line and in traces.
    pub fn name(self) -> &'static str {
        match self {
            Persistence::Posix => "posix",
            Persistence::Ext4 => "ext4",
            Persistence::Xfs => "xfs",
            Persistence::Btrfs => "btrfs",
        }
    }

    /// True when fsync or fdatasync of any file or directory commits every
    /// earlier namespace operation (one journal for the whole volume).
    pub fn fsync_commits_names(self) -> bool {
        matches!(self, Persistence::Ext4 | Persistence::Xfs)
    }

    /// True when fsync and fdatasync of a file also commit the pending
    /// namespace changes that link it (btrfs: the log tree gets the inode
    /// with its new names, `btrfs_log_inode_parent`; calibration: a new
    /// file's name, a rename's and a link's survive fsync of the file
    /// without its directory's fsync, `docs/durability.md`).
    pub fn fsync_commits_own_names(self) -> bool {
        self == Persistence::Btrfs
    }

    /// True when fdatasync commits the journal only up to the file's last
    /// pending data or size change, and nothing when its data is clean
    /// (ext4: `ext4_sync_file` forces `i_datasync_tid`; calibration
    /// seed-1-12, `ln A dir/C; sync -d dir/C`, lost the link).
    pub fn datasync_forces_only_data(self) -> bool {
        self == Persistence::Ext4
    }
}

impl fmt::Display for Persistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Persistence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "journal" {
            return Ok(Persistence::Ext4);
        }
        Persistence::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown model {s:?} (expected posix, ext4, xfs or btrfs; journal is ext4)")
            })
    }
}

/// Errors the model returns; each maps to one errno ([`FsError::errno`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsError {
    /// No such file or directory (`ENOENT`).
    NotFound,
    /// The name already exists (`EEXIST`).
    Exists,
    /// A path component is not a directory (`ENOTDIR`).
    NotDir,
    /// The operation needs a non-directory (`EISDIR`).
    IsDir,
    /// The directory is not empty (`ENOTEMPTY`).
    NotEmpty,
    /// The request makes no sense, e.g. moving a directory into itself (`EINVAL`).
    Invalid,
    /// A name is longer than [`NAME_MAX`] (`ENAMETOOLONG`).
    NameTooLong,
    /// Past the maximum file size (`EFBIG`).
    TooBig,
    /// Too many links (`EMLINK`).
    TooManyLinks,
    /// The operation is not permitted on this object (`EPERM`).
    NotPermitted,
    /// The filesystem was cut and serves nothing more (`EIO`).
    Cut,
    /// No such extended attribute (`ENODATA`).
    NoData,
    /// An extended attribute name is empty or too long, or a reply does not
    /// fit the caller's buffer (`ERANGE`).
    Range,
    /// An extended attribute value is too large (`E2BIG`).
    ValueTooBig,
    /// Not supported here, e.g. an extended attribute namespace durafs
    /// does not store (`EOPNOTSUPP`).
    NotSupported,
    /// More than the backing store can ever hold, e.g. an extended
    /// attribute larger than its filesystem takes (`ENOSPC`).
    NoSpace,
}

impl FsError {
    /// The errno a real filesystem returns for this error.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::Invalid => libc::EINVAL,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::TooBig => libc::EFBIG,
            FsError::TooManyLinks => libc::EMLINK,
            FsError::NotPermitted => libc::EPERM,
            FsError::Cut => libc::EIO,
            FsError::NoData => libc::ENODATA,
            FsError::Range => libc::ERANGE,
            FsError::ValueTooBig => libc::E2BIG,
            FsError::NotSupported => libc::EOPNOTSUPP,
            FsError::NoSpace => libc::ENOSPC,
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsError::NotFound => "no such file or directory",
            FsError::Exists => "file exists",
            FsError::NotDir => "not a directory",
            FsError::IsDir => "is a directory",
            FsError::NotEmpty => "directory not empty",
            FsError::Invalid => "invalid argument",
            FsError::NameTooLong => "file name too long",
            FsError::TooBig => "file too large",
            FsError::TooManyLinks => "too many links",
            FsError::NotPermitted => "operation not permitted",
            FsError::Cut => "the power was cut: this mount serves nothing more",
            FsError::NoData => "no such attribute",
            FsError::Range => "result out of range",
            FsError::ValueTooBig => "attribute value too large",
            FsError::NotSupported => "operation not supported",
            FsError::NoSpace => "no space left on device",
        })
    }
}

impl std::error::Error for FsError {}

/// Result alias for model calls.
pub type FsResult<T> = Result<T, FsError>;

/// Checks a directory entry name.
pub fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(FsError::Invalid);
    }
    if name.len() > NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    Ok(())
}

/// Checks an extended attribute name: the namespaces durafs stores are
/// `user.` and `trusted.` (see `docs/durability.md`); `security.` and
/// `system.` (POSIX ACLs) are [`FsError::NotSupported`].
pub fn check_xattr_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(FsError::Range);
    }
    if name.contains(&0) {
        return Err(FsError::Invalid);
    }
    let stored = [&b"user."[..], &b"trusted."[..]]
        .iter()
        .any(|p| name.len() > p.len() && name.starts_with(p));
    if stored {
        Ok(())
    } else {
        Err(FsError::NotSupported)
    }
}
