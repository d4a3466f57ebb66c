//! One page of an Analytics answer, read with a streaming XML parser.
//!
//! Elements are matched by local name only: the rowset namespace has been
//! removed and prefixed at times, and nothing here depends on it.
//!
//! A page of All Transactions is 1,000 rows of about nine columns, and a
//! full import reads a thousand of them, so the reader is written not to
//! allocate per element or per cell: it keeps a stack of small
//! [`Kind`]s (not of names), writes every cell value into one text buffer
//! of the page and records each cell as a span of it, tagged with the
//! column's *slot* (the index of its element name among the row elements
//! seen on the page).

use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

/// What one answer of `GET /analytics/reports` says.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RawPage {
    /// `ResumptionToken`, trimmed; `None` when absent or empty.
    pub token: Option<String>,
    /// `IsFinished`; `None` when the element is missing.
    pub is_finished: Option<bool>,
    /// `(ColumnN, heading)` from the `xsd:schema`, headings trimmed; empty
    /// when the page has no schema or the schema has no headings.
    pub headings: Vec<(String, String)>,
    /// The element names of the row cells, by slot, in the order first
    /// seen (`Column1`, `Column2`, ... on a real answer).
    pub slots: Vec<String>,
    /// Every kept cell value of the page, one after the other, as the XML
    /// said it (entities resolved, line ends normalised, not trimmed).
    pub text: String,
    /// The cells with a non-blank value, in document order. `Column0` (a
    /// dummy) is left out.
    pub cells: Vec<Cell>,
    /// Each row as a range of `cells`, in document order; an empty range
    /// is a row whose every column is null.
    pub rows: Vec<Range<usize>>,
}

/// One cell: which column and where its value is in [`RawPage::text`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cell {
    /// As parsed, a slot of [`RawPage::slots`]; the pager turns it into an
    /// index of the report's headings in place, so that one vector serves
    /// both.
    pub column: usize,
    pub start: usize,
    pub end: usize,
}

/// The buffers of a page that has been read, to read the next one into:
/// a report is a thousand pages of the same size, and fresh buffers for
/// each would be grown, and their memory faulted in, a thousand times.
#[derive(Debug, Default)]
pub(crate) struct Spare {
    pub text: String,
    pub cells: Vec<Cell>,
    pub rows: Vec<Range<usize>>,
}

impl RawPage {
    /// Its buffers, for the next page.
    pub fn into_spare(self) -> Spare {
        Spare {
            text: self.text,
            cells: self.cells,
            rows: self.rows,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PageError {
    /// The body is not a `<report>`: Analytics is down or answered
    /// something else. Carries the start of the body.
    NoReport(String),
    /// A `<report>` that is not well-formed, for example cut off.
    Malformed(String),
}

/// What an open element is, as far as the page is concerned. Decided once
/// at its start tag so that its end tag needs no name comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Token,
    IsFinished,
    Row,
    /// A child of a `Row`: a cell of the column in this slot.
    Cell(usize),
    /// `Column0`, Analytics' dummy column, which is not kept.
    Column0,
    Other,
}

/// One open element.
struct Open {
    kind: Kind,
    /// It is an `xsd:schema`: its `element`s name the columns.
    schema: bool,
    /// Where its local name starts in the name buffer, which is kept only
    /// to say where a cut-off answer stopped.
    name_start: usize,
}

/// Slots of the row elements of one page. `ColumnN` with a short,
/// canonical number (what Analytics sends) is found by its number without
/// comparing names; any other name by comparison, so that every distinct
/// element name keeps a column of its own as it always had.
#[derive(Default)]
struct Slots {
    names: Vec<String>,
    /// Slot of `ColumnN` at index N, `usize::MAX` for none yet.
    by_number: Vec<usize>,
}

/// Column numbers up to this are looked up by number; Analytics reports
/// have a few dozen columns.
const NUMBERED_COLUMNS: usize = 1024;

impl Slots {
    fn slot(&mut self, name: &str) -> usize {
        match column_number(name).filter(|number| *number < NUMBERED_COLUMNS) {
            Some(number) => {
                if self.by_number.len() <= number {
                    self.by_number.resize(number + 1, usize::MAX);
                }
                if self.by_number[number] == usize::MAX {
                    self.by_number[number] = self.names.len();
                    self.names.push(name.to_string());
                }
                self.by_number[number]
            }
            None => match self.names.iter().position(|known| known == name) {
                Some(slot) => slot,
                None => {
                    self.names.push(name.to_string());
                    self.names.len() - 1
                }
            },
        }
    }
}

/// N of `ColumnN` when N is written canonically (no sign, no leading
/// zero): only then does the number stand for exactly one element name.
fn column_number(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("Column")?;
    let canonical = match digits.as_bytes() {
        [] => false,
        [b'0'] => true,
        [first, ..] => *first != b'0' && digits.bytes().all(|b| b.is_ascii_digit()),
    };
    if canonical { digits.parse().ok() } else { None }
}

fn excerpt(text: &str) -> String {
    let text: String = text.trim().chars().take(200).collect();
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text
    }
}

/// Reads one answer, into the buffers of `spare` (emptied first).
pub(crate) fn parse_page(body: &[u8], spare: Spare) -> Result<RawPage, PageError> {
    let input = std::str::from_utf8(body)
        .map_err(|error| PageError::Malformed(format!("the answer is not UTF-8: {error}")))?;
    let mut reader = Reader::from_str(input);
    let Spare {
        mut text,
        mut cells,
        mut rows,
    } = spare;
    text.clear();
    cells.clear();
    rows.clear();
    let mut page = RawPage {
        text,
        cells,
        rows,
        ..RawPage::default()
    };
    let mut slots = Slots::default();
    let mut stack: Vec<Open> = Vec::new();
    let mut names = String::new();
    let mut schema_depth = 0usize;
    // The value being read is `page.text[value_start..]`: text and
    // references are appended there, a kept cell value stays and moves
    // `value_start` past it, anything else is cut off again.
    let mut value_start = 0usize;
    // The first cell of the row being read; `None` outside a row.
    let mut row_start: Option<usize> = None;
    let mut saw_report = false;
    loop {
        let event = reader.read_event().map_err(|error| {
            PageError::Malformed(format!(
                "XML error at byte {}: {error}",
                reader.buffer_position()
            ))
        })?;
        match event {
            Event::Start(element) => {
                let name = element.local_name().into_inner();
                if stack.is_empty() {
                    if name != "report" {
                        return Err(PageError::NoReport(excerpt(input)));
                    }
                    saw_report = true;
                }
                if schema_depth > 0 && name == "element" {
                    schema_heading(&element, &mut page.headings)?;
                }
                let parent_is_row = stack.last().is_some_and(|open| open.kind == Kind::Row);
                let kind = match name {
                    "ResumptionToken" => Kind::Token,
                    "IsFinished" => Kind::IsFinished,
                    "Row" => {
                        row_start = Some(page.cells.len());
                        Kind::Row
                    }
                    "Column0" if parent_is_row => Kind::Column0,
                    column if parent_is_row => Kind::Cell(slots.slot(column)),
                    _ => Kind::Other,
                };
                let schema = name == "schema";
                if schema {
                    schema_depth += 1;
                }
                stack.push(Open {
                    kind,
                    schema,
                    name_start: names.len(),
                });
                names.push_str(name);
                page.text.truncate(value_start);
            }
            Event::Empty(element) => {
                if stack.is_empty() {
                    // `<report/>` or any other empty document.
                    return Err(PageError::NoReport(excerpt(input)));
                }
                match element.local_name().into_inner() {
                    "element" if schema_depth > 0 => {
                        schema_heading(&element, &mut page.headings)?;
                    }
                    // A row whose every column is null.
                    "Row" => page.rows.push(page.cells.len()..page.cells.len()),
                    // An empty column, an empty ResultXml: nothing.
                    _ => {}
                }
            }
            Event::Text(text) => page.text.push_str(&text.xml10_content()),
            Event::CData(text) => page.text.push_str(&text.xml10_content()),
            Event::GeneralRef(reference) => {
                if let Ok(Some(ch)) = reference.resolve_char_ref() {
                    page.text.push(ch);
                } else if let Some(resolved) =
                    quick_xml::escape::resolve_predefined_entity(&reference)
                {
                    page.text.push_str(resolved);
                } else {
                    return Err(PageError::Malformed(format!(
                        "unknown entity &{};",
                        &*reference
                    )));
                }
            }
            Event::End(_) => {
                // The reader checks that end tags match, so the top of the
                // stack is the element that ends.
                let Some(open) = stack.pop() else {
                    page.text.truncate(value_start);
                    continue;
                };
                names.truncate(open.name_start);
                if open.schema {
                    schema_depth = schema_depth.saturating_sub(1);
                }
                let value = &page.text[value_start..];
                match open.kind {
                    Kind::Token => {
                        let token = value.trim();
                        if !token.is_empty() {
                            page.token = Some(token.to_string());
                        }
                    }
                    Kind::IsFinished => {
                        page.is_finished = Some(match value.trim() {
                            flag if flag.eq_ignore_ascii_case("true") => true,
                            flag if flag.eq_ignore_ascii_case("false") => false,
                            other => {
                                return Err(PageError::Malformed(format!(
                                    "IsFinished is {other:?}, not true or false"
                                )));
                            }
                        });
                    }
                    Kind::Row => {
                        if let Some(start) = row_start.take() {
                            page.rows.push(start..page.cells.len());
                        }
                    }
                    Kind::Cell(slot) => {
                        if row_start.is_some() && !value.trim().is_empty() {
                            page.cells.push(Cell {
                                column: slot,
                                start: value_start,
                                end: page.text.len(),
                            });
                            value_start = page.text.len();
                        }
                    }
                    Kind::Column0 | Kind::Other => {}
                }
                page.text.truncate(value_start);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_report {
        return Err(PageError::NoReport(excerpt(input)));
    }
    if let Some(open) = stack.last() {
        return Err(PageError::Malformed(format!(
            "the answer is cut off inside <{}> ({} bytes)",
            &names[open.name_start..],
            body.len()
        )));
    }
    page.text.truncate(value_start);
    page.slots = slots.names;
    Ok(page)
}

/// What the top of a page says about paging, read without its rows.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// As [`RawPage::token`].
    pub token: Option<String>,
    /// As [`RawPage::is_finished`].
    pub is_finished: Option<bool>,
    /// A `Row` follows, so the full read has rows (or fails).
    pub has_rows: bool,
}

/// Reads `ResumptionToken` and `IsFinished` up to the first `Row`, the
/// way [`parse_page`] reads them, so that the pager can ask for the next
/// page before parsing this one (both elements come before the rows).
///
/// `None` when it cannot be sure the full read will say the same: the
/// body is not UTF-8 or not a report; a value holds anything but plain
/// text (an entity, a comment, CDATA, an element), where the full read's
/// handling is not mirrored here; or either name appears anywhere after
/// the first `Row`, where only the full read would see it. A page that
/// is later found malformed fails as a whole anyway.
pub(crate) fn scan_head(body: &[u8]) -> Option<Head> {
    let input = std::str::from_utf8(body).ok()?;
    let mut reader = Reader::from_str(input);
    let mut head = Head {
        token: None,
        is_finished: None,
        has_rows: false,
    };
    let mut depth = 0usize;
    loop {
        match reader.read_event().ok()? {
            Event::Start(element) => {
                let name = element.local_name().into_inner();
                if depth == 0 && name != "report" {
                    return None;
                }
                match name {
                    // Both consume their end tag: depth is unchanged.
                    "ResumptionToken" => {
                        let value = plain_text(&mut reader)?;
                        let token = value.trim();
                        if !token.is_empty() {
                            head.token = Some(token.to_string());
                        }
                    }
                    "IsFinished" => {
                        let value = plain_text(&mut reader)?;
                        head.is_finished = Some(match value.trim() {
                            flag if flag.eq_ignore_ascii_case("true") => true,
                            flag if flag.eq_ignore_ascii_case("false") => false,
                            // The full read fails on it.
                            _ => return None,
                        });
                    }
                    "Row" => {
                        head.has_rows = true;
                        break;
                    }
                    _ => depth += 1,
                }
            }
            Event::Empty(element) => {
                if depth == 0 {
                    return None;
                }
                if element.local_name().into_inner() == "Row" {
                    head.has_rows = true;
                    break;
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => return Some(head),
            _ => {}
        }
    }
    let rest = usize::try_from(reader.buffer_position())
        .ok()
        .and_then(|position| input.get(position..))?;
    if rest.contains("IsFinished") || rest.contains("ResumptionToken") {
        return None;
    }
    Some(head)
}

/// The text of the element just opened, up to and including its end tag;
/// `None` when anything but text comes first.
fn plain_text(reader: &mut Reader<&[u8]>) -> Option<String> {
    let mut value = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Text(text) => value.push_str(&text.xml10_content()),
            Event::End(_) => return Some(value),
            _ => return None,
        }
    }
}

/// Reads `name="ColumnN"` and `saw-sql:columnHeading="..."` (any prefix)
/// of an `xsd:element`.
fn schema_heading(
    element: &BytesStart<'_>,
    headings: &mut Vec<(String, String)>,
) -> Result<(), PageError> {
    let mut column = None;
    let mut heading = None;
    for attribute in element.attributes() {
        let attribute = attribute
            .map_err(|error| PageError::Malformed(format!("schema attribute: {error}")))?;
        let key = attribute.key.local_name().into_inner();
        if key != "name" && key != "columnHeading" {
            continue;
        }
        let text = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|error| PageError::Malformed(format!("schema attribute {key}: {error}")))?
            .trim()
            .to_string();
        if key == "name" {
            column = Some(text);
        } else {
            heading = Some(text);
        }
    }
    if let (Some(column), Some(heading)) = (column, heading)
        && column.starts_with("Column")
        && !heading.is_empty()
    {
        headings.push((column, heading));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RawPage {
        /// Each row as `(element name, value)` pairs, in document order.
        fn named_rows(&self) -> Vec<Vec<(String, String)>> {
            self.rows
                .iter()
                .map(|cells| {
                    self.cells[cells.clone()]
                        .iter()
                        .map(|cell| {
                            (
                                self.slots[cell.column].clone(),
                                self.text[cell.start..cell.end].to_string(),
                            )
                        })
                        .collect()
                })
                .collect()
        }
    }

    /// A page read into fresh buffers.
    fn parse_page(body: &[u8]) -> Result<RawPage, PageError> {
        super::parse_page(body, Spare::default())
    }

    #[test]
    fn reads_token_flag_schema_and_rows_by_local_name() {
        let body = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<report><QueryResult>
<ResumptionToken>
  0A1B2C3D
</ResumptionToken>
<IsFinished>false</IsFinished>
<ResultXml><rs:rowset xmlns:rs="urn:schemas-microsoft-com:xml-analysis:rowset">
<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:saw-sql="urn:saw-sql">
<xsd:complexType name="Row"><xsd:sequence>
<xsd:element name="Column0" type="xsd:string" saw-sql:columnHeading="0"/>
<xsd:element name="Column1" type="xsd:string" saw-sql:columnHeading=" Fine &amp; Fee Id"/>
<xsd:element name="Column2" type="xsd:string"/>
</xsd:sequence></xsd:complexType></xsd:schema>
<rs:Row><rs:Column0>0</rs:Column0><rs:Column1>12 &lt; 13</rs:Column1><rs:Column2/></rs:Row>
<rs:Row><rs:Column0>0</rs:Column0><rs:Column2>  </rs:Column2></rs:Row>
</rs:rowset></ResultXml></QueryResult></report>"#;
        let page = parse_page(body).unwrap();
        assert_eq!(page.token.as_deref(), Some("0A1B2C3D"));
        assert_eq!(page.is_finished, Some(false));
        assert_eq!(
            page.headings,
            vec![
                ("Column0".to_string(), "0".to_string()),
                ("Column1".to_string(), "Fine & Fee Id".to_string())
            ]
        );
        assert_eq!(
            page.named_rows(),
            vec![vec![("Column1".to_string(), "12 < 13".to_string())], vec![]]
        );
    }

    #[test]
    fn tells_a_missing_report_from_a_cut_off_one() {
        assert!(matches!(
            parse_page(b"<html><body>Service Unavailable</body></html>"),
            Err(PageError::NoReport(_))
        ));
        assert!(matches!(parse_page(b""), Err(PageError::NoReport(_))));
        assert!(matches!(
            parse_page(b"<report><QueryResult><IsFinished>true</IsFinished><ResultXml><rowset><Row><Column1>4"),
            Err(PageError::Malformed(_))
        ));
        assert!(matches!(
            parse_page(
                b"<report><QueryResult><IsFinished>true</IsFinished><ResultXml><rowset><Row><Colu"
            ),
            Err(PageError::Malformed(_))
        ));
    }

    #[test]
    fn a_cut_off_answer_names_the_innermost_open_element() {
        let cut = parse_page(b"<report><QueryResult><ResultXml><rs:rowset><rs:Row><rs:Column3>4");
        assert_eq!(
            cut,
            Err(PageError::Malformed(
                "the answer is cut off inside <Column3> (64 bytes)".to_string()
            ))
        );
    }

    #[test]
    fn values_keep_their_spaces_entities_and_markup_free_text() {
        // Values are kept as sent (callers trim); a value split by a
        // comment or CDATA is one value; text before a nested element is
        // dropped as it always was, the text after it kept.
        let body = b"<report><QueryResult><ResultXml><rowset>\
<Row><Column1>  a &amp; b </Column1><Column2>x<!-- c -->y<![CDATA[<z>]]></Column2>\
<Column3>gone<b>inner</b>kept</Column3><Extra>e</Extra><Column1>again</Column1></Row>\
<Row/>\
<Row><Column10>ten</Column10><Column01>zero-one</Column01><Extra>f</Extra></Row>\
</rowset></ResultXml></QueryResult></report>";
        let page = parse_page(body).unwrap();
        let owned = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            page.named_rows(),
            vec![
                owned(&[
                    ("Column1", "  a & b "),
                    ("Column2", "xy<z>"),
                    ("Column3", "kept"),
                    ("Extra", "e"),
                    ("Column1", "again"),
                ]),
                vec![],
                owned(&[
                    ("Column10", "ten"),
                    ("Column01", "zero-one"),
                    ("Extra", "f")
                ]),
            ]
        );
        // One slot per distinct element name.
        assert_eq!(
            page.slots,
            vec![
                "Column1", "Column2", "Column3", "Extra", "Column10", "Column01"
            ]
        );
    }

    #[test]
    fn column_numbers_are_canonical_only() {
        assert_eq!(column_number("Column0"), Some(0));
        assert_eq!(column_number("Column21"), Some(21));
        assert_eq!(column_number("Column01"), None);
        assert_eq!(column_number("Column+1"), None);
        assert_eq!(column_number("Column"), None);
        assert_eq!(column_number("column1"), None);
        assert_eq!(column_number("Column99999999999999999999999"), None);
    }

    fn head(token: Option<&str>, is_finished: Option<bool>, has_rows: bool) -> Option<Head> {
        Some(Head {
            token: token.map(str::to_string),
            is_finished,
            has_rows,
        })
    }

    #[test]
    fn the_head_of_real_pages_is_read_without_their_rows() {
        let fixture = |name: &str| {
            let path = format!(
                "{}/../../fixtures/alma/analytics/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            std::fs::read(&path).unwrap()
        };
        assert_eq!(
            scan_head(&fixture("fines_page1.xml")),
            head(
                Some("9672D715A8E2EB6BBA4C8B57B5C6EBC1AA40C0EB02D8D7F37C7D5C11D4C5E5C3"),
                Some(false),
                true
            )
        );
        assert_eq!(
            scan_head(&fixture("fines_page2.xml")),
            head(None, Some(true), true)
        );
        assert_eq!(
            scan_head(&fixture("still_preparing.xml")),
            head(None, Some(false), false)
        );
        assert_eq!(
            scan_head(&fixture("balances_missing_is_finished.xml")),
            head(None, None, true)
        );
        // A middle page as Alma (and the simulation) sends it: no token.
        assert_eq!(
            scan_head(b"<report><QueryResult><IsFinished>false</IsFinished><ResultXml><rowset><Row><Column1>a</Column1></Row></rowset></ResultXml></QueryResult></report>"),
            head(None, Some(false), true)
        );
    }

    #[test]
    fn the_head_is_undecided_when_the_full_read_could_differ() {
        for body in [
            // Either name again after the first row.
            "<report><QueryResult><IsFinished>false</IsFinished><ResultXml><rowset><Row><Column1>a</Column1></Row></rowset></ResultXml><IsFinished>true</IsFinished></QueryResult></report>",
            "<report><QueryResult><IsFinished>false</IsFinished><ResultXml><rowset><Row><IsFinished>true</IsFinished></Row></rowset></ResultXml></QueryResult></report>",
            "<report><QueryResult><IsFinished>false</IsFinished><ResultXml><rowset><Row/><ResumptionToken>B</ResumptionToken></rowset></ResultXml></QueryResult></report>",
            // Values this quick read does not follow.
            "<report><QueryResult><IsFinished>tr<!-- -->ue</IsFinished><ResultXml><rowset><Row/></rowset></ResultXml></QueryResult></report>",
            "<report><QueryResult><IsFinished>&#116;rue</IsFinished><ResultXml><rowset><Row/></rowset></ResultXml></QueryResult></report>",
            "<report><QueryResult><IsFinished><![CDATA[true]]></IsFinished><ResultXml><rowset><Row/></rowset></ResultXml></QueryResult></report>",
            "<report><QueryResult><IsFinished><b/>true</IsFinished><ResultXml><rowset><Row/></rowset></ResultXml></QueryResult></report>",
            "<report><QueryResult><ResumptionToken>A&amp;B</ResumptionToken><IsFinished>false</IsFinished><ResultXml><rowset><Row/></rowset></ResultXml></QueryResult></report>",
            "<report><QueryResult><IsFinished>maybe</IsFinished><ResultXml><rowset><Row/></rowset></ResultXml></QueryResult></report>",
            // Not a report, not XML, not UTF-8.
            "<html><IsFinished>false</IsFinished><Row/></html>",
            "<report><QueryResult><IsFinished>false</Finished>",
        ] {
            assert_eq!(scan_head(body.as_bytes()), None, "{body}");
        }
        assert_eq!(scan_head(b"<report>\xff</report>"), None);
    }

    mod agreement {
        use super::*;
        use proptest::prelude::*;

        /// Pieces of answers, ordinary and odd, put together at random.
        fn header_piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("<IsFinished>false</IsFinished>".to_string()),
                Just("<IsFinished>true</IsFinished>".to_string()),
                Just("<IsFinished>\n  FALSE \n</IsFinished>".to_string()),
                Just("<IsFinished>True</IsFinished>".to_string()),
                Just("<IsFinished/>".to_string()),
                Just("<IsFinished></IsFinished>".to_string()),
                Just("<IsFinished>fa<!-- x -->lse</IsFinished>".to_string()),
                Just("<IsFinished><![CDATA[false]]></IsFinished>".to_string()),
                Just("<IsFinished>&#102;alse</IsFinished>".to_string()),
                Just("<IsFinished><x>true</x>false</IsFinished>".to_string()),
                Just("<ResumptionToken> T1 </ResumptionToken>".to_string()),
                Just("<ResumptionToken>T2</ResumptionToken>".to_string()),
                Just("<ResumptionToken>  </ResumptionToken>".to_string()),
                Just("<ResumptionToken/>".to_string()),
                Just("<ResumptionToken>T&amp;3</ResumptionToken>".to_string()),
                Just("<ResumptionToken>T<!-- c -->4</ResumptionToken>".to_string()),
                Just("<rs:IsFinished xmlns:rs=\"urn:x\">true</rs:IsFinished>".to_string()),
                Just("<!-- <IsFinished>true</IsFinished> -->".to_string()),
                Just("<Other>IsFinished</Other>".to_string()),
                Just("<Other><IsFinished>true</IsFinished></Other>".to_string()),
            ]
        }

        fn row_piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("<Row><Column0>0</Column0><Column1>a</Column1></Row>".to_string()),
                Just("<Row/>".to_string()),
                Just("<rs:Row xmlns:rs=\"urn:x\"><rs:Column1>b</rs:Column1></rs:Row>".to_string()),
                Just("<Row><IsFinished>true</IsFinished></Row>".to_string()),
                Just("<Row><ResumptionToken>R</ResumptionToken></Row>".to_string()),
                Just("<Row><Column1>IsFinished &lt;true&gt;</Column1></Row>".to_string()),
                Just("<Row><Row><Column1>c</Column1></Row></Row>".to_string()),
                Just("<IsFinished>true</IsFinished>".to_string()),
                Just("<ResumptionToken>Z</ResumptionToken>".to_string()),
                Just(
                    "<xsd:schema xmlns:xsd=\"urn:s\"><xsd:complexType name=\"Row\"/></xsd:schema>"
                        .to_string()
                ),
            ]
        }

        fn body() -> impl Strategy<Value = String> {
            (
                prop::collection::vec(header_piece(), 0..4),
                prop::collection::vec(row_piece(), 0..4),
                prop::collection::vec(header_piece(), 0..2),
                prop::option::of(any::<prop::sample::Index>()),
                prop::bool::weighted(0.05),
            )
                .prop_map(|(header, rows, trailer, cut, wrong_root)| {
                    let root = if wrong_root { "html" } else { "report" };
                    let body = format!(
                        "<?xml version=\"1.0\"?>\n<{root}><QueryResult>{}<ResultXml><rowset>{}</rowset></ResultXml>{}</QueryResult></{root}>",
                        header.concat(),
                        rows.concat(),
                        trailer.concat()
                    );
                    // Every piece is ASCII: any byte is a cut point.
                    match cut {
                        Some(index) => body[..index.index(body.len() + 1)].to_string(),
                        None => body,
                    }
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Whatever the quick read decides, the full read of the same
            /// page either fails or says the same: the pager asks for the
            /// next page on the quick read's word.
            #[test]
            fn the_quick_read_never_contradicts_the_full_read(body in body()) {
                if let Some(head) = scan_head(body.as_bytes())
                    && let Ok(page) = parse_page(body.as_bytes())
                {
                    prop_assert_eq!(&page.token, &head.token, "{}", body);
                    prop_assert_eq!(page.is_finished, head.is_finished, "{}", body);
                    prop_assert_eq!(!page.rows.is_empty(), head.has_rows, "{}", body);
                }
            }
        }
    }
}
