//! Tests that drive the real `wharf` binary.

mod builtin;
mod common;
mod composition;
mod dialect;
mod dry;
mod faults;
mod language;
mod migrate;
mod run;
mod security;
mod server;
mod sql;
mod stop;
mod swarm;
mod validate;
