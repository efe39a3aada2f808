//! The Docker executors against the real Docker daemon, through the real `wharf` binary:
//! steps in containers of their own, the DAG-level container, registry credentials.
//! Nothing here skips: without Docker these tests fail.

mod auth;
mod containers;
mod shared;
