//! Read-only views of the world, built from the ports: what runs where, the environment's live name and weights,
//! load balancers, alarms, images, and the judgements made from them (readiness, strays, the pre-flight).
//! Nothing here writes.

pub mod alarms;
pub mod balancers;
pub mod groups;
pub mod images;
pub mod preflight;
pub mod world;
pub mod gates;
