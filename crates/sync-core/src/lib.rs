//! The pure domain of alma-bursar-sync.
//!
//! Everything here is a value or a function of values: money in integer
//! cents, the records of the sync (SPEC section 3), and the rules that
//! decide what the Bursar must be told (SPEC sections 4.3-4.7, 5.1-5.3).
//! This crate does no I/O and knows no Alma XML, no MongoDB and no SFTP, so
//! every money rule can be tested exhaustively in memory; the stages load
//! records from the store, ask these functions what to do, and write the
//! answer back.

pub mod money;
pub mod records;
pub mod rules;

pub use money::{Money, MoneyError};

#[cfg(test)]
mod properties;
#[cfg(test)]
mod testing;
