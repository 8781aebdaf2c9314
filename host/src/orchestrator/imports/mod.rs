//! The host side of the orchestration world's imports, one file per WIT interface.

mod context;

impl crate::bindings::orchestration::weft::orchestration::types::Host
    for super::OrchestrationState
{
}
