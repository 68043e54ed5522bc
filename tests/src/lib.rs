//! Helpers for the mounted integration tests.
