//! Test support for `release`:
//! - [`emulator`]: starts moto's server on a free loopback port for one test and stops it on drop;
//! - [`memory`]: the in-memory cloud (every port, shared state, simulated time) for what the emulator cannot do;
//!   [`scaling`]: its launch templates and Auto Scaling groups;
//! - [`conformance`]: the one suite of port behaviour, run against both, so the in-memory cloud stays honest.

pub mod conformance;
pub mod emulator;
pub mod fixtures;
pub mod hooks;
pub mod http;
pub mod memory;
pub mod proxy;
pub mod scaling;
pub mod sinks;
