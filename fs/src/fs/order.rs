//! The order between the backing store's readers and the calls that change
//! it.
//!
//! A durability point (fsync, fdatasync, fsyncdir, sync), a writeback the
//! dirty limit forces, the reclaim of orphans and a cut each hand effects
//! from the model to the store; they hold [`StoreOrder::applying`], so they
//! run one at a time and no read of the store sees one half done. A read
//! holds [`StoreOrder::reading`]: reads run side by side. Lock order: the
//! trace recorder's (`hooks`), then this one, then the model's (namespace,
//! then inodes by number).

use super::DuraFs;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The lock of this order.
#[derive(Debug, Default)]
pub(super) struct StoreOrder(RwLock<()>);

impl StoreOrder {
    /// Held while reading the store: no effects are being applied.
    pub(super) fn reading(&self) -> RwLockReadGuard<'_, ()> {
        self.0.read()
    }

    /// Held while applying effects (or cutting): alone with the store.
    pub(super) fn applying(&self) -> RwLockWriteGuard<'_, ()> {
        self.0.write()
    }
}

impl DuraFs {
    /// Runs durability point `f` alone with the store, then deletes the
    /// orphans it left that nothing can link again (`reclaim`).
    pub(super) fn durability_point<T>(
        &self,
        f: impl FnOnce() -> super::Result<T>,
    ) -> super::Result<T> {
        let _g = self.store_order.applying();
        let r = f();
        self.reclaim_orphans();
        r
    }
}
