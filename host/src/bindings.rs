//! The only `bindgen!` sites: one module per WIT world, with async and trapping imports
//! declared once.

/// The `orchestration` world: `context` imported, `orchestrator` exported. Waiting
/// imports are async so that a waiting orchestrator suspends without holding a thread.
pub mod orchestration {
    wasmtime::component::bindgen!({
        world: "orchestration",
        path: "../wit",
        imports: {
            "weft:orchestration/context.when-all": async | trappable,
            "weft:orchestration/context.when-any": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });
}

/// The `activities` world: `fs`, `blob` and `log` imported, `activity` exported. File
/// and blob imports are async so that I/O never blocks the runtime's threads.
pub mod activities {
    wasmtime::component::bindgen!({
        world: "activities",
        path: "../wit",
        imports: {
            "weft:orchestration/fs": async | trappable,
            "weft:orchestration/blob": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });
}
