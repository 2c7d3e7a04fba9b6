//! The domain of `release`: identifiers, pipeline files, the bake key and the engine, written against port
//! traits so that the same engine drives AWS (`release-aws`) and the in-memory cloud (`release-testkit`).
//! This crate never names an AWS SDK type; a test in `tests/` keeps it that way.

pub mod clock;
pub mod error;
pub mod ids;
pub mod pipeline;

pub use error::{Error, ErrorKind, Result};
pub mod ports;
pub mod provision;
pub mod bake;
pub mod ledger;
pub mod promote;
pub mod switch;
pub mod status;
