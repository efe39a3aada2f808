//! Tests that drive the real `wharf` binary.

mod auth;
mod common;
mod docker;
mod dry;
mod run;
mod server;
mod shared;
mod stop;
mod validate;
