//! The SSH provisioner (work in progress).

mod plan;

pub use plan::{Gate, Plan, SshEntry, Target};
