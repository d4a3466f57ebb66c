//! The bytes of the Bursar's files.
//!
//! Two formats cross the boundary between the library and the Bursar, and
//! this crate owns both, as pure functions from plain data to bytes and
//! back. It knows nothing of SFTP, the store or Alma: the export stage hands
//! it [`BursarLine`]s and writes the [`RenderedFile`]s it gets back; the
//! payments stage hands it a reader and gets [`PaymentRow`]s.
//!
//! **Charges and reversals (SPEC 5.4-5.5).** Each export produces up to two
//! fixed-width files, charges and reversals. What a line looks like (which
//! fields, their widths and justification, the separator, the date format,
//! the reversal flag, the line ending, an optional header and trailer line,
//! and the file names) is a [`Layout`], deserialized from the configuration
//! and checked once when it is built: a zero width, a duplicate field, an
//! unknown placeholder or a date format that cannot fill its field is an
//! error naming the setting, before any work starts. [`Layout::default`] is
//! the 97-character layout of the spec, so another university's Bursar
//! format is a configuration change, not a code change. [`render_file`]
//! orders the lines by reference id (stably, so the caller's creation order
//! survives within a fine), renders every value into its field, and refuses
//! rather than truncates: a value wider than its field is an error naming
//! the fine, the field and the value. Rendering is deterministic, so an
//! interrupted export renders the same bytes again (SPEC 5.6).
//!
//! File names, headers and trailers use a small pattern language:
//! literal text with `{date}`, `{date:%Y%m%d}`, `{export}`, and in headers
//! and trailers also `{count}`, `{total}` and `{total_cents}`; numbers take
//! a width such as `{count:06}` or `{total:>12}`; `{{` and `}}` are braces.
//! File name patterns must contain `{export}` and no path separator.
//!
//! **Payments (SPEC 7.2-7.3).** [`read_payments`] reads the Bursar's CSV
//! report by header name (configurable, case-insensitive, any order, extra
//! columns ignored). A missing column is an error for the whole file; a bad
//! row (an amount with sub-cent digits, a date that is not one, an empty
//! Emplid...) becomes a [`BadRow`] with its line number and the rest of the
//! file still goes through. [`keyed_rows`] gives each row its
//! [`PaymentKey`], counting identical rows so two genuine equal payments
//! stay two, and [`external_transaction_id`] derives from a key the stable
//! id posted to Alma with the payment.
//!
//! Money is [`sync_core::Money`] throughout: integer cents, never a float.

mod layout;
mod payments;
mod render;
mod template;

pub use layout::{
    AmountStyle, Field, FieldConfig, FieldKind, Justify, Layout, LayoutConfig, LayoutError,
};
pub use payments::{
    BadRow, EXTERNAL_ID_PREFIX, PaymentColumns, PaymentKey, PaymentRow, PaymentsError,
    PaymentsFile, external_transaction_id, keyed_rows, parse_date, read_payments,
};
pub use render::{BursarLine, FileSide, RenderError, RenderedFile, render_file, render_line};
