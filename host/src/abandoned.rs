//! A flag that the future waiting on a blocking thread sets when it is dropped (its
//! attempt timed out, or its instance ended) while the thread still runs, so that the
//! thread can stop, or leave undone what would now be wrong (a `file://` copy does not
//! put its blob in place; a file listing stops walking).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Debug, Default)]
pub struct Abandoned(Arc<AtomicBool>);

impl Abandoned {
    /// A guard that sets this when dropped: held by the waiting future.
    pub fn on_drop(&self) -> impl Drop + use<> {
        struct Guard(Arc<AtomicBool>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        Guard(self.0.clone())
    }

    /// Whether the waiting future is gone.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
