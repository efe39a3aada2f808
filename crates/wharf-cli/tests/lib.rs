//! Tests that drive the real `wharf` binary.

mod common;
mod docker;
mod dry;
mod run;
mod shared;
mod stop;
mod validate;
