//! One page of an Analytics answer, read with a streaming XML parser.
//!
//! Elements are matched by local name only: the rowset namespace has been
//! removed and prefixed at times, and nothing here depends on it.

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
    /// Each row as `(ColumnN, value)` for the elements present with a
    /// non-blank value. `Column0` (a dummy) is left out.
    pub rows: Vec<Vec<(String, String)>>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PageError {
    /// The body is not a `<report>`: Analytics is down or answered
    /// something else. Carries the start of the body.
    NoReport(String),
    /// A `<report>` that is not well-formed, for example cut off.
    Malformed(String),
}

fn local_name(element: &BytesStart<'_>) -> String {
    element.local_name().into_inner().to_string()
}

fn excerpt(text: &str) -> String {
    let text: String = text.trim().chars().take(200).collect();
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text
    }
}

pub(crate) fn parse_page(body: &[u8]) -> Result<RawPage, PageError> {
    let text = std::str::from_utf8(body)
        .map_err(|error| PageError::Malformed(format!("the answer is not UTF-8: {error}")))?;
    let mut reader = Reader::from_str(text);
    let mut page = RawPage::default();
    let mut stack: Vec<String> = Vec::new();
    let mut value = String::new();
    let mut row: Option<Vec<(String, String)>> = None;
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
                let name = local_name(&element);
                if stack.is_empty() {
                    if name != "report" {
                        return Err(PageError::NoReport(excerpt(text)));
                    }
                    saw_report = true;
                }
                match name.as_str() {
                    "element" if stack.iter().any(|open| open == "schema") => {
                        schema_heading(&element, &mut page.headings)?;
                    }
                    "Row" => row = Some(Vec::new()),
                    _ => {}
                }
                stack.push(name);
                value.clear();
            }
            Event::Empty(element) => {
                let name = local_name(&element);
                if stack.is_empty() {
                    // `<report/>` or any other empty document.
                    return Err(PageError::NoReport(excerpt(text)));
                }
                match name.as_str() {
                    "element" if stack.iter().any(|open| open == "schema") => {
                        schema_heading(&element, &mut page.headings)?;
                    }
                    // A row whose every column is null.
                    "Row" => page.rows.push(Vec::new()),
                    // An empty column, an empty ResultXml: nothing.
                    _ => {}
                }
            }
            Event::Text(text) => value.push_str(&text.xml10_content()),
            Event::CData(text) => value.push_str(&text.xml10_content()),
            Event::GeneralRef(reference) => {
                if let Ok(Some(ch)) = reference.resolve_char_ref() {
                    value.push(ch);
                } else if let Some(resolved) =
                    quick_xml::escape::resolve_predefined_entity(&reference)
                {
                    value.push_str(resolved);
                } else {
                    return Err(PageError::Malformed(format!(
                        "unknown entity &{};",
                        &*reference
                    )));
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let parent = stack.last().map(String::as_str);
                match name.as_str() {
                    "ResumptionToken" => {
                        let token = value.trim();
                        if !token.is_empty() {
                            page.token = Some(token.to_string());
                        }
                    }
                    "IsFinished" => {
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
                    "Row" => page.rows.extend(row.take()),
                    column if parent == Some("Row") => {
                        if let Some(row) = row.as_mut()
                            && column != "Column0"
                            && !value.trim().is_empty()
                        {
                            row.push((column.to_string(), value.clone()));
                        }
                    }
                    _ => {}
                }
                value.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_report {
        return Err(PageError::NoReport(excerpt(text)));
    }
    if let Some(open) = stack.last() {
        return Err(PageError::Malformed(format!(
            "the answer is cut off inside <{open}> ({} bytes)",
            body.len()
        )));
    }
    Ok(page)
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
        let key = attribute.key.local_name().into_inner().to_string();
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
            page.rows,
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
}
