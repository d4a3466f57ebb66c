//! Rendering the charges and reversals files of an export (SPEC 5.4-5.5).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sync_core::Money;
use sync_core::records::{FineId, PatronId};

use crate::layout::{FieldKind, Layout, pad};
use crate::template::{self, PatternError};

/// The two files of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileSide {
    /// Charges (`.1` by default): amounts the Bursar bills.
    Charges,
    /// Reversals (`.2` by default): waives and credits of billed charges.
    Reversals,
}

impl FileSide {
    fn label(self) -> &'static str {
        match self {
            FileSide::Charges => "charges",
            FileSide::Reversals => "reversals",
        }
    }
}

impl std::fmt::Display for FileSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One Bursar transaction as the file shows it: plain data assembled by
/// the export stage from the account line and the transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BursarLine {
    pub patron_id: PatronId,
    pub account: String,
    /// Signed: positive for a charge, negative for a reversal. The file
    /// carries the absolute value.
    pub amount: Money,
    /// Set on charges; `None` on reversals (unless the layout puts dates
    /// on reversals).
    pub due_date: Option<NaiveDate>,
    pub billing_date: Option<NaiveDate>,
    pub term_code: String,
    pub reversal: bool,
    /// The Bursar reference id (the Alma root fine id).
    pub reference: FineId,
}

/// A rendered file, ready to be written under `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedFile {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Detail lines, header and trailer not counted.
    pub line_count: usize,
    /// Sum of the absolute amounts of the detail lines.
    pub total: Money,
}

/// Why a file cannot be rendered. Line errors name the fine (the Bursar
/// reference id), the field and the value; nothing is ever truncated or
/// silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(
        "fine {reference}: {field} {value:?} is {len} characters, wider than its {width}-character field \
         (layout fields[{index}]); nothing is truncated: correct the value in Alma or widen the field in the layout"
    )]
    TooWide {
        reference: String,
        field: FieldKind,
        index: usize,
        value: String,
        len: usize,
        width: usize,
    },
    #[error(
        "fine {reference}: {field} {value:?} has a character that is not printable ASCII; the Bursar file is \
         fixed-width ASCII: correct the value in Alma"
    )]
    NotPrintable {
        reference: String,
        field: FieldKind,
        value: String,
    },
    #[error("fine {reference}: {field} is empty; every Bursar line needs one")]
    EmptyValue { reference: String, field: FieldKind },
    #[error("fine {reference}: a {} line was given for the {side} file", if *reversal { "reversal" } else { "charge" })]
    WrongSide {
        reference: String,
        side: FileSide,
        reversal: bool,
    },
    #[error(
        "fine {reference}: amount {amount} cannot go in the {side} file: charges are positive, reversals negative, \
         and neither is zero or beyond 100,000,000,000.00"
    )]
    BadAmount {
        reference: String,
        amount: Money,
        side: FileSide,
    },
    #[error(
        "fine {reference}: the {side} line has no {field}; the export sets it from the run date (SPEC 5.2)"
    )]
    MissingDate {
        reference: String,
        field: FieldKind,
        side: FileSide,
    },
    #[error(
        "fine {reference}: the reversal carries a {field} but the layout leaves dates blank on reversals \
         (dates_on_reversals = false); pass no dates on reversals"
    )]
    DateOnReversal { reference: String, field: FieldKind },
    #[error("bursar layout setting `{setting}`: {message}")]
    Pattern { setting: String, message: String },
    #[error("the total of the {side} file overflows; split the export")]
    TotalOverflow { side: FileSide },
}

impl From<PatternError> for RenderError {
    fn from(error: PatternError) -> RenderError {
        RenderError::Pattern {
            setting: error.setting,
            message: error.message,
        }
    }
}

/// Renders one side of an export: the file name from the layout's pattern,
/// the header, one line per `lines` entry ordered by reference id and then
/// by input order (give them in creation order), and the trailer.
///
/// Returns `Ok(None)` when `lines` is empty: there is no file for an empty
/// side (SPEC 5.4). Rendering is a pure function of its inputs, so an
/// interrupted export renders byte for byte the same files again (SPEC 5.6).
pub fn render_file(
    layout: &Layout,
    lines: &[BursarLine],
    side: FileSide,
    export_seq: u64,
    run_date: NaiveDate,
) -> Result<Option<RenderedFile>, RenderError> {
    if lines.is_empty() {
        return Ok(None);
    }
    let mut ordered: Vec<&BursarLine> = lines.iter().collect();
    // `sort_by` is stable: equal references keep their input order.
    ordered.sort_by(|a, b| a.reference.cmp(&b.reference));

    let mut total_cents: i64 = 0;
    let mut body = String::new();
    let ending = layout.config().line_ending.as_str();
    for line in &ordered {
        check_side(line, side)?;
        total_cents = total_cents
            .checked_add(line.amount.cents().abs())
            .ok_or(RenderError::TotalOverflow { side })?;
        body.push_str(&render_line(layout, line)?);
        body.push_str(ending);
    }
    let total = Money::from_cents(total_cents);
    let values = layout.values(run_date, export_seq, ordered.len(), total);
    let mut text = String::new();
    if let Some(header) = layout.header() {
        text.push_str(&header.render(&values)?);
        text.push_str(ending);
    }
    text.push_str(&body);
    if let Some(trailer) = layout.trailer() {
        text.push_str(&trailer.render(&values)?);
        text.push_str(ending);
    }
    Ok(Some(RenderedFile {
        name: layout.file_name(side, export_seq, run_date)?,
        bytes: text.into_bytes(),
        line_count: ordered.len(),
        total,
    }))
}

fn check_side(line: &BursarLine, side: FileSide) -> Result<(), RenderError> {
    let reference = || line.reference.as_str().to_string();
    if line.reversal != (side == FileSide::Reversals) {
        return Err(RenderError::WrongSide {
            reference: reference(),
            side,
            reversal: line.reversal,
        });
    }
    let cents = line.amount.cents();
    let sign_ok = match side {
        FileSide::Charges => cents > 0,
        FileSide::Reversals => cents < 0,
    };
    if !sign_ok || cents.unsigned_abs() > Money::MAX_ABS_CENTS.unsigned_abs() {
        return Err(RenderError::BadAmount {
            reference: reference(),
            amount: line.amount,
            side,
        });
    }
    Ok(())
}

/// Renders one detail line, without its line ending. Checks every value
/// against its field; it does not check the line against a file side (see
/// [`render_file`]).
pub fn render_line(layout: &Layout, line: &BursarLine) -> Result<String, RenderError> {
    let config = layout.config();
    let reference = || line.reference.as_str().to_string();
    let side = if line.reversal {
        FileSide::Reversals
    } else {
        FileSide::Charges
    };
    let mut out = String::with_capacity(layout.line_width());
    for (i, field) in layout.fields().iter().enumerate() {
        if i > 0 {
            out.push_str(&config.separator);
        }
        let date =
            |value: Option<NaiveDate>| -> Result<String, RenderError> {
                let blank = line.reversal && !config.dates_on_reversals;
                match (value, blank) {
                    (Some(_), true) => Err(RenderError::DateOnReversal {
                        reference: reference(),
                        field: field.kind,
                    }),
                    (None, true) => Ok(String::new()),
                    (None, false) => Err(RenderError::MissingDate {
                        reference: reference(),
                        field: field.kind,
                        side,
                    }),
                    (Some(date), false) => template::format_date(date, &config.date_format)
                        .ok_or_else(|| RenderError::Pattern {
                            setting: "date_format".to_string(),
                            message: format!("{:?} cannot format a date", config.date_format),
                        }),
                }
            };
        let required = |value: &str| -> Result<String, RenderError> {
            if value.is_empty() {
                Err(RenderError::EmptyValue {
                    reference: reference(),
                    field: field.kind,
                })
            } else {
                Ok(value.to_string())
            }
        };
        let value = match field.kind {
            FieldKind::PatronId => required(line.patron_id.as_str())?,
            FieldKind::Account => required(&line.account)?,
            FieldKind::Amount => match config.amount_style {
                // Display never overflows, unlike `abs` on the extreme value.
                crate::AmountStyle::Decimal => {
                    line.amount.to_string().trim_start_matches('-').to_string()
                }
                crate::AmountStyle::Cents => line.amount.cents().unsigned_abs().to_string(),
            },
            FieldKind::DueDate => date(line.due_date)?,
            FieldKind::BillingDate => date(line.billing_date)?,
            FieldKind::TermCode => required(&line.term_code)?,
            FieldKind::ReversalFlag => {
                if line.reversal {
                    config.reversal_flag.clone()
                } else {
                    config.charge_flag.clone()
                }
            }
            FieldKind::Reference => required(line.reference.as_str())?,
            FieldKind::Literal => field.text.clone(),
            FieldKind::Filler => String::new(),
        };
        if !value.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            return Err(RenderError::NotPrintable {
                reference: reference(),
                field: field.kind,
                value,
            });
        }
        if value.len() > field.width {
            return Err(RenderError::TooWide {
                reference: reference(),
                field: field.kind,
                index: field.index,
                len: value.len(),
                value,
                width: field.width,
            });
        }
        out.push_str(&pad(&value, field.width, field.justify, field.pad));
    }
    Ok(out)
}
