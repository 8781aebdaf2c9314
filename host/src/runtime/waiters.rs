//! Who waits for which instance to end: a client's wait is woken by its own instance
//! only, so that many waiting clients cost nothing while other instances end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// The waits in progress, by instance id.
#[derive(Default)]
pub(super) struct Waiters(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

impl Waiters {
    /// Starts waiting for `id`; the wait ends when the returned [`Waiting`] is dropped.
    pub(super) fn wait_for(&self, id: &str) -> Waiting {
        let notify = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_string())
            .or_default()
            .clone();
        Waiting {
            waiters: self.0.clone(),
            id: id.to_string(),
            notify,
        }
    }

    /// Wakes the waits for `id`, if any.
    pub(super) fn wake(&self, id: &str) {
        if let Some(notify) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            notify.notify_waiters();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// One wait for an instance.
pub(super) struct Waiting {
    waiters: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    id: String,
    notify: Arc<Notify>,
}

impl Waiting {
    /// Resolves at the first [`Waiters::wake`] for this instance after this call. Call it
    /// before checking whether the instance has ended, and `enable` it, so that no end
    /// between the check and the wait is missed.
    pub(super) fn next(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // This wait's reference goes under the lock, so that of two waits that end at
        // once, the second sees the first gone.
        drop(std::mem::replace(&mut self.notify, Arc::new(Notify::new())));
        // Only the map's reference is left: no other wait for the instance remains.
        if waiters
            .get(&self.id)
            .is_some_and(|notify| Arc::strong_count(notify) == 1)
        {
            waiters.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn a_wake_reaches_only_its_instance_and_finished_waits_leave_nothing() {
        let waiters = Waiters::default();
        let (a1, a2, b) = (
            waiters.wait_for("a"),
            waiters.wait_for("a"),
            waiters.wait_for("b"),
        );
        let mut woken_a1 = Box::pin(a1.next());
        woken_a1.as_mut().enable();
        let mut woken_a2 = Box::pin(a2.next());
        woken_a2.as_mut().enable();
        let mut woken_b = Box::pin(b.next());
        woken_b.as_mut().enable();
        waiters.wake("a");
        waiters.wake("nobody");
        assert!(woken_a1.now_or_never().is_some());
        assert!(woken_a2.now_or_never().is_some());
        assert!(woken_b.as_mut().now_or_never().is_none());
        drop(a1);
        assert_eq!(waiters.len(), 2, "a2 still waits for a");
        drop(a2);
        drop(woken_b);
        drop(b);
        assert_eq!(waiters.len(), 0);
    }
}
