//! Analytics report filters (sawx XML).

use chrono::NaiveDateTime;

/// A report filter in sawx XML. It is sent percent-encoded whole as the
/// `filter` parameter of the first request of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    xml: String,
}

impl Filter {
    /// Rows whose `column` is on or after `since`. `column` is the
    /// column's SQL expression, e.g.
    /// `"Fines and Fees Transactions"."Status Date"`; the report must have
    /// an "is prompted" filter on it (otherwise Alma answers 420033).
    pub fn on_or_after(column: &str, since: NaiveDateTime) -> Filter {
        let value = since.format("%Y-%m-%dT%H:%M:%S").to_string();
        Filter {
            xml: format!(
                concat!(
                    r#"<sawx:expr xsi:type="sawx:comparison" op="greaterOrEqual" "#,
                    r#"xmlns:saw="com.siebel.analytics.web/report/v1.1" "#,
                    r#"xmlns:sawx="com.siebel.analytics.web/expression/v1.1" "#,
                    r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" "#,
                    r#"xmlns:xsd="http://www.w3.org/2001/XMLSchema">"#,
                    r#"<sawx:expr xsi:type="sawx:sqlExpression">{}</sawx:expr>"#,
                    r#"<sawx:expr xsi:type="xsd:dateTime">{}</sawx:expr>"#,
                    r#"</sawx:expr>"#
                ),
                escape_text(column),
                escape_text(&value)
            ),
        }
    }

    /// A filter written by hand, sent as it is.
    pub fn from_xml(xml: impl Into<String>) -> Filter {
        Filter { xml: xml.into() }
    }

    pub fn as_xml(&self) -> &str {
        &self.xml
    }
}

/// Escapes element text. Quotes are legal in text and stay as they are, as
/// in Ex Libris' own examples.
fn escape_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_documented_comparison_with_escaped_values() {
        let since = chrono::NaiveDate::from_ymd_opt(2024, 5, 1)
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .unwrap();
        let filter = Filter::on_or_after(r#""Fines & Fees"."Status <Date>""#, since);
        assert_eq!(
            filter.as_xml(),
            "<sawx:expr xsi:type=\"sawx:comparison\" op=\"greaterOrEqual\" \
             xmlns:saw=\"com.siebel.analytics.web/report/v1.1\" \
             xmlns:sawx=\"com.siebel.analytics.web/expression/v1.1\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\
             <sawx:expr xsi:type=\"sawx:sqlExpression\">\"Fines &amp; Fees\".\"Status &lt;Date&gt;\"</sawx:expr>\
             <sawx:expr xsi:type=\"xsd:dateTime\">2024-05-01T00:00:00</sawx:expr>\
             </sawx:expr>"
        );
    }
}
