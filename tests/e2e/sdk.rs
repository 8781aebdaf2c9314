//! The components written with the guest SDK (`weft-sdk`) have exactly their own world:
//! the SDK generates the bindings of both worlds, and a component that embedded the other
//! world's exports, or imported its interfaces, would be refused or export the wrong
//! thing.

use crate::patterns::{BACKUP_ORCHESTRATOR, SAMPLES_ACTIVITIES, SAMPLES_ORCHESTRATOR};
use crate::support::BACKUP_ACTIVITIES;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// The `weft:` interfaces a component imports and exports, by name without the version.
fn weft_interfaces(path: &str) -> (Vec<String>, Vec<String>) {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config).expect("an engine");
    let component = Component::from_file(&engine, path).expect("a component");
    let ty = component.component_type();
    let weft = |name: &str| {
        name.strip_prefix("weft:orchestration/")
            .map(|rest| rest.split('@').next().unwrap_or_default().to_string())
    };
    let mut imports: Vec<String> = ty
        .imports(&engine)
        .filter_map(|(name, _)| weft(name))
        .collect();
    let mut exports: Vec<String> = ty
        .exports(&engine)
        .filter_map(|(name, _)| weft(name))
        .collect();
    imports.sort();
    exports.sort();
    (imports, exports)
}

#[test]
fn sdk_components_import_and_export_only_their_own_world() {
    for orchestrator in [BACKUP_ORCHESTRATOR, SAMPLES_ORCHESTRATOR] {
        let (imports, exports) = weft_interfaces(orchestrator);
        assert_eq!(imports, ["context", "types"], "{orchestrator}");
        assert_eq!(exports, ["orchestrator"], "{orchestrator}");
    }
    // Both activity components use `log`, `fs` and `blob`.
    for activities in [BACKUP_ACTIVITIES, SAMPLES_ACTIVITIES] {
        let (imports, exports) = weft_interfaces(activities);
        assert_eq!(imports, ["blob", "fs", "log", "types"], "{activities}");
        assert_eq!(exports, ["activity"], "{activities}");
    }
}
