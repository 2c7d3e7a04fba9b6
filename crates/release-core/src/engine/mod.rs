//! The machinery every operation runs in: the session (who acts, signals, progress), the environment's lock, the
//! queue for it, event delivery, and the runner that wraps an operation's apply in all of them.

pub mod delivery;
pub mod lock;
pub mod queue;
pub mod runner;
pub mod session;
