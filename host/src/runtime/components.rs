//! Loading components: each one is compiled (or taken from the cache) and sorted into
//! the orchestrator or the activity registry by the world it implements.

use super::{ComponentSource, Error};
use crate::activity::{self, ActivityComponent, Io};
use crate::engine;
use crate::orchestrator::{self, OrchestratorComponent};
use crate::registry::Registry;
use std::path::Path;
use std::sync::Arc;

/// The orchestrators and the activities that a host provides.
pub struct Components {
    pub orchestrators: Registry<OrchestratorComponent>,
    pub activities: Registry<ActivityComponent>,
}

/// Loads every component of `sources`; one that implements neither world is an error
/// that says why it fits neither.
pub async fn load(
    engine: &wasmtime::Engine,
    sources: &[ComponentSource],
    cache: &Path,
    io: &Arc<Io>,
) -> Result<Components, Error> {
    let mut orchestrators = Registry::default();
    let mut activities = Registry::default();
    for source in sources {
        let (component, origin) = match source {
            ComponentSource::File(path) => (
                engine::load_component_file(engine, path, Some(cache))?,
                path.display().to_string(),
            ),
            ComponentSource::Embedded { name, bytes } => (
                engine::load_component(engine, bytes, name, Some(cache))?,
                name.to_string(),
            ),
        };
        let as_orchestration = match OrchestratorComponent::new(engine, &component, &origin).await {
            Ok(orchestrator) => {
                orchestrators.add(orchestrator);
                continue;
            }
            Err(orchestrator::Error::WrongWorld { reason, .. }) => reason,
            Err(other) => return Err(other.into()),
        };
        match ActivityComponent::new(engine, &component, &origin, io.clone()).await {
            Ok(activity) => activities.add(activity),
            Err(activity::Error::WrongWorld {
                reason: as_activities,
                ..
            }) => {
                return Err(Error::UnknownWorld {
                    path: origin,
                    reason: format!(
                        "as an orchestration: {as_orchestration}; as activities: {as_activities}"
                    ),
                });
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(Components {
        orchestrators,
        activities,
    })
}
