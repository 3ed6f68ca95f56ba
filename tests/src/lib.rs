//! Shared helpers for q8's integration and property tests (problem generators, tier coverage).
