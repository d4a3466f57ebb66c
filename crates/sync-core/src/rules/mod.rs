//! The reconciliation rules, one module per section of the spec. Each is a
//! function of plain values; the stages supply the values from the store
//! and the reports, and write back what the rules decide.

pub mod accounts;
pub mod calendar;
pub mod credits;
pub mod export;
pub mod opening;
pub mod payments;
