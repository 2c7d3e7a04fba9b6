//! The operations, one module each: observe -> plan (a value) -> apply inside the runner. An operation composes
//! steps; it never imports another operation (what two need lives a floor down).

pub mod bake;
pub mod gc;
pub mod promote;
pub mod provision;
pub mod status;
pub mod switch;
pub mod gates;
