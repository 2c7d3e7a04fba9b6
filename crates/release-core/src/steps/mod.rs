//! The only callers of the ports that change the world, each effect in one place and guarding itself: the Route53
//! flip ([`dns`]), launching, registering and retiring instances ([`fleet`]), running a hook ([`hooks`]), the alarm
//! watch ([`watch`]) and removing an image ([`images`]). Steps take model values, never an operation's plan.

pub mod dns;
pub mod fleet;
pub mod groups;
pub mod hooks;
pub mod images;
pub mod watch;
pub mod records;
pub mod infra;
pub mod gates;
