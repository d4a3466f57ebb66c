//! The layout of the Bursar's fixed-width files, as configuration.
//!
//! [`LayoutConfig`] is what the TOML file says; [`Layout`] is the same
//! description checked once (widths, duplicate fields, patterns, date
//! format, flags) and then used unchanged for every file. A `Layout`
//! deserializes straight from the config (through `LayoutConfig`), so a bad
//! setting fails when the configuration is loaded, with the setting's name.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::template::{self, Pattern, PatternUse, Values};

/// What a fixed-width field carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// The Alma primary identifier of the patron (Emplid).
    PatronId,
    /// The charge account number.
    Account,
    /// The absolute value of the amount (see [`AmountStyle`]).
    Amount,
    /// The due date, in the layout's `date_format`.
    DueDate,
    /// The billing date, in the layout's `date_format`.
    BillingDate,
    /// The term code.
    TermCode,
    /// `reversal_flag` on reversals, `charge_flag` on charges.
    ReversalFlag,
    /// The Bursar reference id (the Alma root fine id).
    Reference,
    /// A constant: the field's `text`.
    Literal,
    /// Nothing: the field is all `pad` characters.
    Filler,
}

impl FieldKind {
    /// The name used in the configuration, e.g. `patron_id`.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::PatronId => "patron_id",
            FieldKind::Account => "account",
            FieldKind::Amount => "amount",
            FieldKind::DueDate => "due_date",
            FieldKind::BillingDate => "billing_date",
            FieldKind::TermCode => "term_code",
            FieldKind::ReversalFlag => "reversal_flag",
            FieldKind::Reference => "reference",
            FieldKind::Literal => "literal",
            FieldKind::Filler => "filler",
        }
    }

    fn is_data(self) -> bool {
        !matches!(self, FieldKind::Literal | FieldKind::Filler)
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a value sits in its field; the rest is padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Justify {
    Left,
    Right,
}

/// How an amount is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmountStyle {
    /// Two decimals with a point: `65.00` (the default).
    #[default]
    Decimal,
    /// Integer cents, the decimal point implied: `6500`.
    Cents,
}

/// One field as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    pub field: FieldKind,
    pub width: usize,
    /// Defaults to `right` for `amount` and `left` for everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justify: Option<Justify>,
    /// The padding character; defaults to a space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<char>,
    /// The constant of a `literal` field; not allowed on other fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl FieldConfig {
    fn new(field: FieldKind, width: usize, justify: Justify) -> FieldConfig {
        FieldConfig {
            field,
            width,
            justify: Some(justify),
            pad: None,
            text: None,
        }
    }
}

/// The layout as written in the configuration file. Every setting is
/// optional; the defaults are the layout of SPEC 5.4-5.5.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayoutConfig {
    /// The fields of a line, in order.
    pub fields: Vec<FieldConfig>,
    /// Between two fields; default one space.
    pub separator: String,
    /// A chrono `strftime` format; default `%m%d%Y` (MMDDYYYY).
    pub date_format: String,
    pub amount_style: AmountStyle,
    /// The `reversal_flag` field on reversals; default `Y`.
    pub reversal_flag: String,
    /// The `reversal_flag` field on charges; default blank.
    pub charge_flag: String,
    /// Whether reversal lines carry the due and billing dates. Default
    /// false: the date fields are blank on reversals (SPEC 5.5).
    pub dates_on_reversals: bool,
    /// `"\n"` (default) or `"\r\n"`, after every line.
    pub line_ending: String,
    /// A line before the detail lines; see the crate docs for placeholders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A line after the detail lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trailer: Option<String>,
    /// File name of the charges file.
    pub charges_file: String,
    /// File name of the reversals file.
    pub reversals_file: String,
}

impl Default for LayoutConfig {
    fn default() -> LayoutConfig {
        use FieldKind::*;
        use Justify::*;
        LayoutConfig {
            fields: vec![
                FieldConfig::new(PatronId, 11, Left),
                FieldConfig::new(Account, 12, Left),
                FieldConfig::new(Amount, 10, Right),
                FieldConfig::new(DueDate, 9, Left),
                FieldConfig::new(BillingDate, 9, Left),
                FieldConfig::new(TermCode, 5, Left),
                FieldConfig::new(ReversalFlag, 3, Left),
                FieldConfig::new(Reference, 31, Left),
            ],
            separator: " ".to_string(),
            date_format: "%m%d%Y".to_string(),
            amount_style: AmountStyle::Decimal,
            reversal_flag: "Y".to_string(),
            charge_flag: String::new(),
            dates_on_reversals: false,
            line_ending: "\n".to_string(),
            header: None,
            trailer: None,
            charges_file: "LIB_charges.dat.{date:%Y%m%d}.{export}.1".to_string(),
            reversals_file: "LIB_charges.dat.{date:%Y%m%d}.{export}.2".to_string(),
        }
    }
}

/// A bad layout setting. `setting` is the path of the setting inside the
/// layout table, e.g. `fields[2].width` or `charges_file`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("bursar layout setting `{setting}`: {message}")]
    Setting { setting: String, message: String },
}

impl LayoutError {
    fn new(setting: impl Into<String>, message: impl Into<String>) -> LayoutError {
        LayoutError::Setting {
            setting: setting.into(),
            message: message.into(),
        }
    }

    /// The setting at fault.
    pub fn setting(&self) -> &str {
        match self {
            LayoutError::Setting { setting, .. } => setting,
        }
    }
}

/// One checked field of a [`Layout`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub kind: FieldKind,
    /// Position in the layout's `fields` list, for error messages.
    pub index: usize,
    pub width: usize,
    pub justify: Justify,
    pub pad: char,
    /// The constant of a `literal` field; empty otherwise.
    pub text: String,
}

/// A checked layout. Build it with [`Layout::new`], by deserializing it, or
/// take [`Layout::default`], the layout of SPEC 5.5 (97 characters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LayoutConfig", into = "LayoutConfig")]
pub struct Layout {
    config: LayoutConfig,
    fields: Vec<Field>,
    header: Option<Pattern>,
    trailer: Option<Pattern>,
    charges_file: Pattern,
    reversals_file: Pattern,
}

impl Default for Layout {
    fn default() -> Layout {
        match Layout::new(LayoutConfig::default()) {
            Ok(layout) => layout,
            // The built-in layout is a constant, checked by a unit test.
            Err(error) => panic!("the built-in bursar layout is invalid: {error}"),
        }
    }
}

impl TryFrom<LayoutConfig> for Layout {
    type Error = LayoutError;
    fn try_from(config: LayoutConfig) -> Result<Layout, LayoutError> {
        Layout::new(config)
    }
}

impl From<Layout> for LayoutConfig {
    fn from(layout: Layout) -> LayoutConfig {
        layout.config
    }
}

fn printable(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_graphic() || c == ' ')
}

/// Pads `text` (ASCII, at most `width` long) to `width` characters.
pub(crate) fn pad(text: &str, width: usize, justify: Justify, pad: char) -> String {
    let fill: String = std::iter::repeat_n(pad, width.saturating_sub(text.len())).collect();
    match justify {
        Justify::Left => format!("{text}{fill}"),
        Justify::Right => format!("{fill}{text}"),
    }
}

impl Layout {
    /// Checks a configured layout. Every error names the setting at fault.
    pub fn new(config: LayoutConfig) -> Result<Layout, LayoutError> {
        if config.fields.is_empty() {
            return Err(LayoutError::new(
                "fields",
                "no fields: a line needs at least patron_id, amount and reference",
            ));
        }
        let mut fields = Vec::with_capacity(config.fields.len());
        for (index, fc) in config.fields.iter().enumerate() {
            let at = |name: &str| format!("fields[{index}].{name}");
            if fc.width == 0 {
                return Err(LayoutError::new(
                    at("width"),
                    format!("the {} field has width 0; give it at least 1", fc.field),
                ));
            }
            if let Some(first) = fields
                .iter()
                .find(|f: &&Field| f.kind == fc.field && fc.field.is_data())
            {
                return Err(LayoutError::new(
                    at("field"),
                    format!(
                        "{} appears twice (fields[{}] and fields[{index}]); each value has one place in the line",
                        fc.field, first.index
                    ),
                ));
            }
            let pad = fc.pad.unwrap_or(' ');
            if !(pad.is_ascii_graphic() || pad == ' ') {
                return Err(LayoutError::new(
                    at("pad"),
                    format!("{pad:?} is not a printable ASCII character"),
                ));
            }
            let text = match (fc.field, &fc.text) {
                (FieldKind::Literal, Some(text)) => {
                    if text.is_empty() || !printable(text) {
                        return Err(LayoutError::new(
                            at("text"),
                            format!("{text:?}: a literal must be non-empty printable ASCII"),
                        ));
                    }
                    if text.len() > fc.width {
                        return Err(LayoutError::new(
                            at("text"),
                            format!(
                                "literal {text:?} is {} characters, wider than its width of {}",
                                text.len(),
                                fc.width
                            ),
                        ));
                    }
                    text.clone()
                }
                (FieldKind::Literal, None) => {
                    return Err(LayoutError::new(
                        at("text"),
                        "a literal field needs its text, e.g. text = \"LIB\"",
                    ));
                }
                (kind, Some(_)) => {
                    return Err(LayoutError::new(
                        at("text"),
                        format!("only a literal field takes text, not {kind}"),
                    ));
                }
                (_, None) => String::new(),
            };
            let default_justify = if fc.field == FieldKind::Amount {
                Justify::Right
            } else {
                Justify::Left
            };
            fields.push(Field {
                kind: fc.field,
                index,
                width: fc.width,
                justify: fc.justify.unwrap_or(default_justify),
                pad,
                text,
            });
        }
        for required in [FieldKind::PatronId, FieldKind::Amount, FieldKind::Reference] {
            if !fields.iter().any(|f| f.kind == required) {
                return Err(LayoutError::new(
                    "fields",
                    format!("no {required} field; every line needs one"),
                ));
            }
        }
        if !printable(&config.separator) {
            return Err(LayoutError::new(
                "separator",
                format!("{:?} is not printable ASCII", config.separator),
            ));
        }
        template::check_date_format(&config.date_format)
            .map_err(|m| LayoutError::new("date_format", m))?;
        let sample = NaiveDate::from_ymd_opt(2000, 9, 27)
            .and_then(|d| template::format_date(d, &config.date_format))
            .unwrap_or_default();
        for f in fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::DueDate | FieldKind::BillingDate))
        {
            if sample.len() > f.width {
                return Err(LayoutError::new(
                    format!("fields[{}].width", f.index),
                    format!(
                        "date_format {:?} writes {} characters (e.g. {sample:?}), wider than the {} field's width of {}",
                        config.date_format,
                        sample.len(),
                        f.kind,
                        f.width
                    ),
                ));
            }
        }
        for (setting, flag) in [
            ("reversal_flag", &config.reversal_flag),
            ("charge_flag", &config.charge_flag),
        ] {
            if !printable(flag) {
                return Err(LayoutError::new(
                    setting,
                    format!("{flag:?} is not printable ASCII"),
                ));
            }
            if let Some(f) = fields.iter().find(|f| f.kind == FieldKind::ReversalFlag)
                && flag.len() > f.width
            {
                return Err(LayoutError::new(
                    setting,
                    format!(
                        "{flag:?} is wider than the reversal_flag field (fields[{}], width {})",
                        f.index, f.width
                    ),
                ));
            }
        }
        if fields.iter().any(|f| f.kind == FieldKind::ReversalFlag)
            && config.reversal_flag.trim() == config.charge_flag.trim()
        {
            return Err(LayoutError::new(
                "reversal_flag",
                format!(
                    "{:?} does not tell reversals from charges (charge_flag is {:?})",
                    config.reversal_flag, config.charge_flag
                ),
            ));
        }
        if config.line_ending != "\n" && config.line_ending != "\r\n" {
            return Err(LayoutError::new(
                "line_ending",
                format!("{:?}: use \"\\n\" or \"\\r\\n\"", config.line_ending),
            ));
        }
        let header = config
            .header
            .as_deref()
            .map(|t| Pattern::parse("header", t, PatternUse::HeaderTrailer))
            .transpose()?;
        let trailer = config
            .trailer
            .as_deref()
            .map(|t| Pattern::parse("trailer", t, PatternUse::HeaderTrailer))
            .transpose()?;
        let charges_file = file_pattern("charges_file", &config.charges_file)?;
        let reversals_file = file_pattern("reversals_file", &config.reversals_file)?;
        let layout = Layout {
            config,
            fields,
            header,
            trailer,
            charges_file,
            reversals_file,
        };
        let sample_date = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
        let name = |side| {
            layout.file_name(side, 1, sample_date).map_err(|e| match e {
                crate::RenderError::Pattern { setting, message } => {
                    LayoutError::new(setting, message)
                }
                other => LayoutError::new(layout.file_pattern(side).setting(), other.to_string()),
            })
        };
        if name(crate::FileSide::Charges)? == name(crate::FileSide::Reversals)? {
            return Err(LayoutError::new(
                "reversals_file",
                "gives the same file name as charges_file; the two files of an export need different names",
            ));
        }
        Ok(layout)
    }

    /// The checked fields, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The configuration this layout was built from.
    pub fn config(&self) -> &LayoutConfig {
        &self.config
    }

    /// Characters in a detail line, line ending excluded (97 for the
    /// default layout).
    pub fn line_width(&self) -> usize {
        let widths: usize = self.fields.iter().map(|f| f.width).sum();
        widths + self.config.separator.len() * self.fields.len().saturating_sub(1)
    }

    pub(crate) fn header(&self) -> Option<&Pattern> {
        self.header.as_ref()
    }

    pub(crate) fn trailer(&self) -> Option<&Pattern> {
        self.trailer.as_ref()
    }

    pub(crate) fn file_pattern(&self, side: crate::FileSide) -> &Pattern {
        match side {
            crate::FileSide::Charges => &self.charges_file,
            crate::FileSide::Reversals => &self.reversals_file,
        }
    }

    pub(crate) fn values(
        &self,
        run_date: NaiveDate,
        export_seq: u64,
        count: usize,
        total: sync_core::Money,
    ) -> Values<'_> {
        Values {
            run_date,
            export_seq,
            count,
            total,
            layout_date_format: &self.config.date_format,
        }
    }

    /// The name of one side's file of an export (SPEC 5.4), e.g.
    /// `LIB_charges.dat.20241210.7.1`.
    pub fn file_name(
        &self,
        side: crate::FileSide,
        export_seq: u64,
        run_date: NaiveDate,
    ) -> Result<String, crate::RenderError> {
        let pattern = self.file_pattern(side);
        let name = pattern.render(&self.values(run_date, export_seq, 0, sync_core::Money::ZERO))?;
        if name.contains(['/', '\\']) || name.is_empty() || name == "." || name == ".." {
            return Err(crate::RenderError::Pattern {
                setting: pattern.setting().to_string(),
                message: format!("gives the file name {name:?}, which is not a plain file name"),
            });
        }
        Ok(name)
    }
}

fn file_pattern(setting: &str, text: &str) -> Result<Pattern, LayoutError> {
    let pattern = Pattern::parse(setting, text, PatternUse::FileName)?;
    if !pattern.uses_export() {
        return Err(LayoutError::new(
            setting,
            format!(
                "pattern {text:?} has no {{export}}: two exports on one day would get the same file name"
            ),
        ));
    }
    if pattern.literal_text().any(|t| t.contains(['/', '\\', ' '])) {
        return Err(LayoutError::new(
            setting,
            format!(
                "pattern {text:?} is a file name: no '/', '\\' or spaces (the folder is configured separately)"
            ),
        ));
    }
    Ok(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_spec_layout() {
        let layout = Layout::default();
        assert_eq!(layout.line_width(), 97);
        let widths: Vec<_> = layout
            .fields()
            .iter()
            .map(|f| (f.kind, f.width, f.justify))
            .collect();
        use FieldKind::*;
        use Justify::*;
        assert_eq!(
            widths,
            [
                (PatronId, 11, Left),
                (Account, 12, Left),
                (Amount, 10, Right),
                (DueDate, 9, Left),
                (BillingDate, 9, Left),
                (TermCode, 5, Left),
                (ReversalFlag, 3, Left),
                (Reference, 31, Left),
            ]
        );
    }
}
