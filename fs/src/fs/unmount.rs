//! The last sync, when the kernel ends the session (FUSE `destroy`). Its
//! failure cannot fail the unmount any more, so it is recorded for the
//! daemon to hand on to `durafs umount` (a change that arrived after the
//! client's own sync, and could not be persisted, is never lost silently).

use super::DuraFs;

impl DuraFs {
    /// Persists everything as the session ends (not after a cut); on
    /// failure logs and records why ([`DuraFs::unmount_failure`]).
    pub fn sync_at_unmount(&self) {
        if self.is_cut() {
            return;
        }
        if let Some(d) = self.degraded() {
            let why = format!(
                "the volume degraded ({}): nothing unsynced was persisted",
                d.describe()
            );
            log::error!("durafs: at unmount: {why}");
            *self.unmount_failure.lock() = Some(why);
            return;
        }
        if let Err(e) = self.sync() {
            log::error!("durafs: persisting at unmount: {e}");
            *self.unmount_failure.lock() = Some(e.to_string());
        }
    }

    /// Why the sync of [`DuraFs::sync_at_unmount`] failed, if it did; what
    /// it could not persist is then what [`DuraFs::status`] lists.
    pub fn unmount_failure(&self) -> Option<String> {
        self.unmount_failure.lock().clone()
    }
}
