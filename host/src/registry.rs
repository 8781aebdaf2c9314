//! Function names to the components that provide them.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A loaded component that provides named functions.
pub trait Provider {
    /// Where the component came from, for messages.
    fn origin(&self) -> &str;
    /// The function names it provides.
    fn names(&self) -> &[String];
}

/// Names to components, over every loaded component of one kind.
pub struct Registry<C> {
    by_name: BTreeMap<String, Arc<C>>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            by_name: BTreeMap::new(),
        }
    }
}

impl<C: Provider> Registry<C> {
    /// Adds a component's functions; a name that is already provided keeps its first
    /// provider.
    pub fn add(&mut self, component: C) {
        let component = Arc::new(component);
        for name in component.names() {
            if let Some(existing) = self.by_name.get(name) {
                tracing::warn!(
                    "{name} is provided by {} and {}; using the first",
                    existing.origin(),
                    component.origin()
                );
                continue;
            }
            self.by_name.insert(name.clone(), component.clone());
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<C>> {
        self.by_name.get(name)
    }

    /// Every name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// Every name, sorted, joined for an error message.
    pub fn known(&self) -> String {
        if self.by_name.is_empty() {
            return "(none loaded)".to_string();
        }
        self.names().join(", ")
    }
}
