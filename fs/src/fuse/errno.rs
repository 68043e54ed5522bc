//! The adapter's one errno mapping: every error a callback answers goes
//! through [`ToErrno`], which also logs why (debug for refusals, a warning
//! when the backing store failed).

use super::convert::Bad;
use crate::control::Refused;
use crate::fs::Error;
use crate::model::FsError;
use fuser::Errno;

/// The adapter's one errno mapping: model errors go through
/// [`FsError::errno`], backing failures are logged and become
/// [`Error::errno`], refusals of the control file [`Refused::errno`].
pub(super) trait ToErrno {
    fn to_errno(&self, op: &str) -> Errno;
}

impl ToErrno for Error {
    fn to_errno(&self, op: &str) -> Errno {
        match self {
            Error::Fs(FsError::Cut) => log::debug!("durafs: {op}: refused after the cut"),
            Error::Fs(err) => log::debug!("durafs: {op}: {err}"),
            Error::Backing(err) => log::warn!("durafs: {op}: backing store failed ({err})"),
            Error::Fault(_) | Error::WritebackFailed => log::debug!("durafs: {op}: {self}"),
        }
        Errno::from_i32(self.errno())
    }
}

impl ToErrno for Bad {
    fn to_errno(&self, op: &str) -> Errno {
        log::debug!("durafs: {op}: refused: {self:?}");
        match self {
            Bad::FileType(_) | Bad::XattrFlags(_) | Bad::Whiteout | Bad::Whence(_) => Errno::EINVAL,
            Bad::FallocateMode(_) => Errno::EOPNOTSUPP,
            Bad::NotDir => Errno::ENOTDIR,
            Bad::PastEnd => Errno::ENXIO,
            Bad::TooSmall => Errno::ERANGE,
        }
    }
}

impl ToErrno for Refused {
    fn to_errno(&self, op: &str) -> Errno {
        log::debug!("durafs: {op} of the control file refused: {self:?}");
        Errno::from_i32(self.errno())
    }
}
