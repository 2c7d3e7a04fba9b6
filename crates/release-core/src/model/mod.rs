//! The ground floor: plain data and pure functions, no async and no ports. Ids, clock values, errors, weights,
//! ledger records, the pipeline file and its parser, hook and event types, and what an instance is launched with.

pub mod clock;
pub mod error;
pub mod event;
pub mod hook;
pub mod ids;
pub mod ledger;
pub mod phase;
pub mod pipeline;
pub mod weights;
