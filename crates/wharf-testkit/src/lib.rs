//! wharf's test kit, for every test binary of the workspace: the real `wharf` binary and a
//! place of its own for each test (`WHARF_HOME`, DAG files), the real Docker daemon with
//! names no other test uses and a guard that removes what a test created, registries and
//! servers of the tests' own on loopback, and faults to inject.

mod cli;
mod docker;
mod faults;
mod place;
mod server;
pub mod tls;

pub use cli::{Output, Wharf, wharf_bin};
pub use docker::{OWNER, Registry, Unique, b64, docker, images_are_built};
pub use faults::{DockerProxy, TinyFs};
pub use place::{Place, processes_with, step, step_error};
pub use server::{Server, url_encode};
