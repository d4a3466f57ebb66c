//! The small pattern language of file names, headers and trailers.
//!
//! A pattern is literal text with placeholders in braces:
//!
//! - `{date}` or `{date:%Y%m%d}`: the run date, in the layout's
//!   `date_format` or in the given chrono `strftime` format;
//! - `{export}`: the export sequence number;
//! - `{count}`: the number of detail lines in the file (headers and
//!   trailers only);
//! - `{total}`: the sum of the amounts in the file, two decimals, e.g.
//!   `130.00` (headers and trailers only);
//! - `{total_cents}`: the same sum in integer cents, e.g. `13000`.
//!
//! Numbers take an optional width spec after a colon, a subset of Rust's:
//! `{count:6}` or `{count:>6}` right-justifies in 6 characters with spaces,
//! `{count:<6}` left-justifies, `{count:06}` pads with zeros. A number
//! wider than its width is an error, never truncated. `{{` and `}}` are
//! literal braces.
//!
//! Patterns are parsed and checked once, when the layout is built; the
//! setting's name travels with every error.

use std::fmt::Write as _;

use chrono::NaiveDate;
use sync_core::Money;

use crate::layout::{Justify, LayoutError};

/// Which placeholders a pattern may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatternUse {
    FileName,
    HeaderTrailer,
}

impl PatternUse {
    fn allowed(self) -> &'static [&'static str] {
        match self {
            PatternUse::FileName => &["date", "export"],
            PatternUse::HeaderTrailer => &["date", "export", "count", "total", "total_cents"],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Number {
    Export,
    Count,
    Total,
    TotalCents,
}

impl Number {
    fn name(self) -> &'static str {
        match self {
            Number::Export => "export",
            Number::Count => "count",
            Number::Total => "total",
            Number::TotalCents => "total_cents",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Width {
    width: usize,
    justify: Justify,
    zero: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `None`: the layout's `date_format`.
    Date(Option<String>),
    Number(Number, Option<Width>),
}

/// The values a pattern is rendered with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Values<'a> {
    pub run_date: NaiveDate,
    pub export_seq: u64,
    pub count: usize,
    pub total: Money,
    pub layout_date_format: &'a str,
}

/// A parsed, checked pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    setting: String,
    pieces: Vec<Piece>,
}

impl Pattern {
    pub(crate) fn parse(
        setting: &str,
        text: &str,
        usage: PatternUse,
    ) -> Result<Pattern, LayoutError> {
        let error = |message: String| LayoutError::Setting {
            setting: setting.to_string(),
            message,
        };
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(error(format!(
                        "pattern {text:?} has a '}}' with no matching '{{'; write '}}}}' for a literal brace"
                    )));
                }
                '{' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(error(format!(
                            "pattern {text:?} has a '{{' that is never closed; write '{{{{' for a literal brace"
                        )));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(parse_placeholder(&inner, text, usage).map_err(error)?);
                }
                c => {
                    if !(c.is_ascii_graphic() || c == ' ') {
                        return Err(error(format!(
                            "pattern {text:?} contains {c:?}; only printable ASCII characters are allowed"
                        )));
                    }
                    literal.push(c);
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Pattern {
            setting: setting.to_string(),
            pieces,
        })
    }

    pub(crate) fn setting(&self) -> &str {
        &self.setting
    }

    pub(crate) fn uses_export(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Number(Number::Export, _)))
    }

    /// The literal text of the pattern, placeholders left out.
    pub(crate) fn literal_text(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Text(t) => Some(t.as_str()),
            _ => None,
        })
    }

    pub(crate) fn render(&self, values: &Values<'_>) -> Result<String, PatternError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Date(format) => {
                    let format = format.as_deref().unwrap_or(values.layout_date_format);
                    let date =
                        format_date(values.run_date, format).ok_or_else(|| PatternError {
                            setting: self.setting.clone(),
                            message: format!("date format {format:?} cannot format a date"),
                        })?;
                    out.push_str(&date);
                }
                Piece::Number(number, width) => {
                    let text = match number {
                        Number::Export => values.export_seq.to_string(),
                        Number::Count => values.count.to_string(),
                        Number::Total => values.total.to_string(),
                        Number::TotalCents => values.total.cents().to_string(),
                    };
                    match width {
                        None => out.push_str(&text),
                        Some(w) => {
                            if text.len() > w.width {
                                return Err(PatternError {
                                    setting: self.setting.clone(),
                                    message: format!(
                                        "{{{}}} is {text:?}, {} characters, wider than its width of {}; \
                                         nothing is truncated: widen it in the pattern",
                                        number.name(),
                                        text.len(),
                                        w.width
                                    ),
                                });
                            }
                            let pad = if w.zero { '0' } else { ' ' };
                            out.push_str(&crate::layout::pad(&text, w.width, w.justify, pad));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A pattern that cannot be rendered with the values of this file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PatternError {
    pub setting: String,
    pub message: String,
}

fn parse_placeholder(inner: &str, pattern: &str, usage: PatternUse) -> Result<Piece, String> {
    let (name, spec) = match inner.split_once(':') {
        Some((name, spec)) => (name.trim(), Some(spec)),
        None => (inner.trim(), None),
    };
    let allowed = usage.allowed();
    if !allowed.contains(&name) {
        return Err(format!(
            "pattern {pattern:?} has an unknown placeholder {{{inner}}}; known here: {}",
            allowed
                .iter()
                .map(|n| format!("{{{n}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let number = match name {
        "date" => {
            return match spec {
                None => Ok(Piece::Date(None)),
                Some(format) => {
                    check_date_format(format).map_err(|m| format!("pattern {pattern:?}: {m}"))?;
                    Ok(Piece::Date(Some(format.to_string())))
                }
            };
        }
        "export" => Number::Export,
        "count" => Number::Count,
        "total" => Number::Total,
        _ => Number::TotalCents,
    };
    let width = match spec {
        None => None,
        Some(spec) => Some(parse_width(spec).ok_or_else(|| {
            format!(
                "pattern {pattern:?}: width spec {spec:?} of {{{name}}} is not one of \
                 N, >N, <N or 0N (N a positive number of characters)"
            )
        })?),
    };
    Ok(Piece::Number(number, width))
}

fn parse_width(spec: &str) -> Option<Width> {
    let (justify, rest) = match spec.as_bytes().first() {
        Some(b'<') => (Justify::Left, &spec[1..]),
        Some(b'>') => (Justify::Right, &spec[1..]),
        _ => (Justify::Right, spec),
    };
    let (zero, digits) = match rest.strip_prefix('0') {
        Some(digits) if justify == Justify::Right => (true, digits),
        _ => (false, rest),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let width: usize = digits.parse().ok()?;
    (width > 0).then_some(Width {
        width,
        justify,
        zero,
    })
}

/// Formats a date without ever panicking: chrono's `to_string` panics on
/// a format it cannot apply (a time field on a date), `write!` does not.
pub(crate) fn format_date(date: NaiveDate, format: &str) -> Option<String> {
    let mut out = String::new();
    write!(out, "{}", date.format(format)).ok()?;
    Some(out)
}

/// A chrono date format usable on a date alone, with printable ASCII
/// output.
pub(crate) fn check_date_format(format: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if format.is_empty() {
        return Err("the date format is empty; e.g. \"%m%d%Y\"".to_string());
    }
    if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        return Err(format!(
            "date format {format:?} is not a valid chrono strftime format (e.g. \"%m%d%Y\")"
        ));
    }
    let sample = NaiveDate::from_ymd_opt(2000, 9, 27).ok_or("sample date")?;
    match format_date(sample, format) {
        None => Err(format!(
            "date format {format:?} cannot format a date (does it ask for a time or a time zone?)"
        )),
        Some(text) if !text.chars().all(|c| c.is_ascii_graphic() || c == ' ') => Err(format!(
            "date format {format:?} produces {text:?}; only printable ASCII characters are allowed"
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values<'static> {
        Values {
            run_date: NaiveDate::from_ymd_opt(2024, 12, 10).unwrap(),
            export_seq: 7,
            count: 3,
            total: Money::from_cents(13_050),
            layout_date_format: "%m%d%Y",
        }
    }

    fn render(text: &str) -> String {
        Pattern::parse("t", text, PatternUse::HeaderTrailer)
            .unwrap()
            .render(&values())
            .unwrap()
    }

    #[test]
    fn renders_placeholders_widths_and_escapes() {
        assert_eq!(
            render("LIB_charges.dat.{date:%Y%m%d}.{export}.1"),
            "LIB_charges.dat.20241210.7.1"
        );
        assert_eq!(render("{date}"), "12102024");
        assert_eq!(
            render("[{count:6}|{count:>6}|{count:<6}|{count:06}]"),
            "[     3|     3|3     |000003]"
        );
        assert_eq!(
            render("{total:>10}|{total_cents:010}"),
            "    130.50|0000013050"
        );
        assert_eq!(render("{{x}}"), "{x}");
        assert_eq!(render(""), "");
    }

    #[test]
    fn a_number_wider_than_its_width_is_an_error() {
        let pattern = Pattern::parse("trailer", "{total:5}", PatternUse::HeaderTrailer).unwrap();
        let error = pattern.render(&values()).unwrap_err();
        assert_eq!(error.setting, "trailer");
        assert!(error.message.contains("\"130.50\""), "{}", error.message);
    }

    #[test]
    fn rejects_bad_patterns_naming_the_setting() {
        let bad = [
            (
                "{count}",
                PatternUse::FileName,
                "unknown placeholder {count}",
            ),
            (
                "{dat}",
                PatternUse::HeaderTrailer,
                "unknown placeholder {dat}",
            ),
            ("{export", PatternUse::FileName, "never closed"),
            ("a}b", PatternUse::FileName, "no matching"),
            ("{export:x3}", PatternUse::FileName, "width spec"),
            ("{export:0}", PatternUse::FileName, "width spec"),
            ("{date:%Q}", PatternUse::FileName, "not a valid chrono"),
            ("{date:%H}", PatternUse::FileName, "cannot format a date"),
            ("a\tb", PatternUse::FileName, "printable ASCII"),
        ];
        for (text, usage, expected) in bad {
            let error = Pattern::parse("charges_file", text, usage).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("charges_file"), "{message}");
            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }
}
