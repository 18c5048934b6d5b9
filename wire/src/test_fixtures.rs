//! Where the golden fixtures live, for the workspace's tests. Not part of the API.
//!
//! This is the one definition of [`fixtures_dir`] in the workspace. It sits in the wire
//! library (hidden) rather than in `socketioxide-cluster-test-support` because the wire
//! crate's own tests cannot use the test-support crate: test-support depends on the root
//! crate, which depends on wire, so wire's tests would pull in (and build) the adapter,
//! socketioxide and axum, and link a second copy of wire whose types differ from the
//! ones under test. Unit tests (`#[cfg(test)]`) and integration tests (`wire/tests/`)
//! both see a public item of the library; test-support re-exports it for everyone else.

use std::path::PathBuf;

/// `shared/wire-fixtures/` next to the repository (`../shared/wire-fixtures` from the
/// repository root): the payloads captured from the real Node packages.
///
/// Panics, saying how to get them, if the directory is missing.
pub fn fixtures_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/wire-fixtures");
    assert!(
        dir.is_dir(),
        "golden fixtures not found at {}: the tests read them from `shared/wire-fixtures/` \
         next to the repository (clone the repository next to `shared/`)",
        dir.display()
    );
    dir
}
