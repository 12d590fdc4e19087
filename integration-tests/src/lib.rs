//! Test image builder, engine harness and conformance suite for bottle.
pub mod image;
