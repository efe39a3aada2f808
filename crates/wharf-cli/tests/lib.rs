//! Tests that drive the real `wharf` binary.

mod auth;
mod common;
mod docker;
mod dry;
mod faults;
mod run;
mod security;
mod server;
mod shared;
mod stop;
mod validate;
