//! The channel through which activity outcomes reach hot instances in memory, bounded in
//! bytes for the whole process: while [`MAX_BYTES`] of outcomes wait to be taken, a
//! further one is refused and goes to its instance's inbox instead (durable, and read in
//! bounded batches), so that an orchestrator that does not wait while its activities
//! return large results cannot make the host hold them all.

use super::Delivery;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// The most bytes of outcomes waiting in memory for all instances together.
pub const MAX_BYTES: usize = 256 << 20;

/// The bytes waiting in every channel made with it.
#[derive(Clone, Debug, Default)]
pub struct Budget(Arc<AtomicUsize>);

impl Budget {
    #[cfg(test)]
    fn used(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// About the bytes a delivery holds: the activity's input and its outcome.
fn size(delivery: &Delivery) -> usize {
    delivery.item.input.len() + delivery.item.name.len() + delivery.completion.weight() + 128
}

/// A channel to one instance, drawing on `budget`.
pub fn channel(budget: &Budget) -> (Sender, Receiver) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (
        Sender {
            inner: sender,
            budget: budget.clone(),
        },
        Receiver {
            inner: receiver,
            budget: budget.clone(),
        },
    )
}

pub struct Sender {
    inner: mpsc::UnboundedSender<Delivery>,
    budget: Budget,
}

impl Sender {
    /// Hands `delivery` over (`None`), or gives it back if the instance no longer takes
    /// deliveries or the budget is spent.
    pub fn send(&self, delivery: Delivery) -> Option<Delivery> {
        let size = size(&delivery);
        let used = self.budget.0.fetch_add(size, Ordering::AcqRel);
        if used.saturating_add(size) > MAX_BYTES {
            self.budget.0.fetch_sub(size, Ordering::AcqRel);
            return Some(delivery);
        }
        let refused = self.inner.send(delivery).err()?;
        self.budget.0.fetch_sub(size, Ordering::AcqRel);
        Some(refused.0)
    }
}

pub struct Receiver {
    inner: mpsc::UnboundedReceiver<Delivery>,
    budget: Budget,
}

impl Receiver {
    fn taken(&self, delivery: Delivery) -> Delivery {
        self.budget.0.fetch_sub(size(&delivery), Ordering::AcqRel);
        delivery
    }

    pub async fn recv(&mut self) -> Option<Delivery> {
        let delivery = self.inner.recv().await?;
        Some(self.taken(delivery))
    }

    pub fn try_recv(&mut self) -> Result<Delivery, mpsc::error::TryRecvError> {
        let delivery = self.inner.try_recv()?;
        Ok(self.taken(delivery))
    }

    /// Takes no more deliveries; those already sent can still be received.
    pub fn close(&mut self) {
        self.inner.close();
    }
}

impl Drop for Receiver {
    /// What was sent and never taken no longer counts (its work items' leases are
    /// released, and the activities run again).
    fn drop(&mut self) {
        self.inner.close();
        while self.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Event, WorkItem};

    fn delivery(result_bytes: usize) -> Delivery {
        Delivery {
            item: WorkItem {
                id: 1,
                instance_id: "i".into(),
                task_id: 0,
                name: "A".into(),
                input: "null".into(),
                attempt: 1,
                recovered: false,
                crashes: 0,
                retry: None,
                first_attempt_at: chrono::Utc::now(),
            },
            completion: Event::TaskCompleted {
                task_id: 0,
                result: "x".repeat(result_bytes),
            },
        }
    }

    #[test]
    fn outcomes_past_the_budget_are_given_back_and_taking_them_frees_it() {
        let budget = Budget::default();
        let (sender, mut receiver) = channel(&budget);
        let big = MAX_BYTES / 3;
        assert!(sender.send(delivery(big)).is_none());
        assert!(sender.send(delivery(big)).is_none());
        assert!(sender.send(delivery(big)).is_some(), "over the budget");
        let (other, mut elsewhere) = channel(&budget);
        assert!(other.send(delivery(big)).is_some(), "the budget is shared");
        assert!(receiver.try_recv().is_ok());
        assert!(other.send(delivery(big)).is_none());
        assert!(elsewhere.try_recv().is_ok());
        drop(receiver);
        assert_eq!(
            budget.used(),
            0,
            "a dropped receiver frees what it never took"
        );
        assert!(
            sender.send(delivery(1)).is_some(),
            "nobody takes deliveries"
        );
    }
}
