//! The stages of alma-bursar-sync, composed from the library crates.
//!
//! Each stage is a short sequence of steps, and every step either reads
//! (reports, the store, a remote folder) or commits one all-or-nothing
//! change. What a step changes is decided by a pure planning function
//! ([`import_plan`], [`export_plan`]) over the values read, so the planning
//! is tested without any service and the I/O around it stays thin. The
//! steps are ordered so that a crash between any two of them leaves work
//! that a re-run completes without repeating: nothing is billed twice and
//! nothing is lost.

pub mod export_plan;
pub mod import_plan;

pub mod error;
pub mod export;
pub mod import;
pub mod jobs;
pub mod payments;
pub mod send;

pub use error::StageError;
