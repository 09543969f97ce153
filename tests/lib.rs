//! Cross-crate integration tests of phantom-engine live in `tests/`; this
//! library is empty so that cargo can host them.
