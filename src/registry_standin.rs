//! STAND-IN — to be replaced by the runtime's op registry.
//!
//! `#[db_op]` registers every op with `inventory::submit!(OpRegistration(&SPEC))` (issue 4,
//! item 6). The runtime side (`rt.ops()`, start-up checks of each op's names) is not written
//! yet; until it is, the registration type and its collection live here so the generated code
//! compiles and the registrations can be listed. Move `OpRegistration` and `collect!` into the
//! runtime's `op` module and re-export it from `__private` instead.

use sqlx_resilience_runtime::OpSpec;

/// One op declared with `#[db_op]`, collected with `inventory`.
#[derive(Debug)]
pub struct OpRegistration(pub &'static OpSpec);

inventory::collect!(OpRegistration);

/// Every op declared with `#[db_op]` in the program.
pub fn registered_ops() -> impl Iterator<Item = &'static OpSpec> {
    inventory::iter::<OpRegistration>().map(|r| r.0)
}
