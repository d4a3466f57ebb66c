#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Bursar's payments report (SPEC 7.2) and the payment keys (SPEC 7.3).

use bursar_format::{
    BadRow, PaymentColumns, PaymentKey, PaymentRow, PaymentsError, external_transaction_id,
    keyed_rows, parse_date, read_payments,
};
use chrono::NaiveDate;
use sync_core::Money;
use sync_core::records::{FineId, PatronId};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../fixtures/bursar/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

#[allow(clippy::too_many_arguments)]
fn row(
    line: u64,
    emplid: &str,
    date_paid: NaiveDate,
    reference: &str,
    charge: &str,
    paid: &str,
    item_type: &str,
    description: &str,
) -> PaymentRow {
    PaymentRow {
        line,
        emplid: PatronId::new(emplid),
        date_paid,
        reference: FineId::new(reference),
        charge_amount: money(charge),
        paid_amount: money(paid),
        item_type: item_type.to_string(),
        description: description.to_string(),
    }
}

const LONG_REF: &str = "1000000000000000000000000000001";

#[test]
fn reads_good_rows_and_reports_bad_ones_with_their_lines() {
    let file = read_payments(
        fixture("payments_basic.csv").as_slice(),
        "payments_basic.csv",
        &PaymentColumns::default(),
    )
    .unwrap();
    assert_eq!(
        file.rows,
        vec![
            row(
                2,
                "12345678901",
                date(2024, 5, 1),
                "9912345",
                "65.00",
                "65.00",
                "LIBFINE",
                "Overdue fine"
            ),
            row(
                3,
                "2000123",
                date(2024, 5, 1),
                "2245678900004321",
                "5.50",
                "5.50",
                "LIBFINE",
                "Lost item,\nreplacement"
            ),
            row(
                8,
                "1000001",
                date(2024, 5, 3),
                LONG_REF,
                "20.00",
                "10.00",
                "LIBFINE",
                "Partial"
            ),
            row(
                10,
                "1000001",
                date(2024, 5, 3),
                LONG_REF,
                "20.00",
                "10.00",
                "LIBFINE",
                "Partial again"
            ),
            row(
                12,
                "1000001",
                date(2024, 5, 4),
                LONG_REF,
                "20.00",
                "10.00",
                "LIBFINE",
                "Partial"
            ),
        ]
    );
    let bad = |line, message: &str| BadRow {
        line,
        message: message.to_string(),
    };
    assert_eq!(
        file.bad_rows,
        vec![
            bad(
                5,
                "Paid Amount \"12.345\": amount \"12.345\" has a non-zero digit past the second decimal place; \
                 cents are the smallest unit"
            ),
            bad(
                6,
                "Date Paid \"2024-13-01\" is not a date like 2024-05-01, 05/01/2024 or 5/1/2024 (a time may follow)"
            ),
            bad(7, "Emplid is empty"),
            bad(
                9,
                "Date Paid \"yesterday\" is not a date like 2024-05-01, 05/01/2024 or 5/1/2024 (a time may follow); \
                 Charge Amount \"abc\": amount \"abc\" is not a decimal number like 12.50 (digits, one optional '.', \
                 optional leading '-')"
            ),
            bad(
                11,
                "the row has 8 fields but the header has 7; is there an unquoted comma in a value?"
            ),
        ]
    );
}

#[test]
fn finds_columns_by_name_in_any_order_with_a_bom_and_crlf() {
    let file = read_payments(
        fixture("payments_bom_crlf.csv").as_slice(),
        "payments_bom_crlf.csv",
        &PaymentColumns::default(),
    )
    .unwrap();
    assert_eq!(file.bad_rows, vec![]);
    assert_eq!(
        file.rows,
        vec![
            row(
                2,
                "12345678901",
                date(2024, 6, 3),
                "9912345",
                "25.00",
                "25.00",
                "LIBFINE",
                "Overdue"
            ),
            row(
                3,
                "12345678901",
                date(2024, 6, 3),
                "9912345",
                "25.00",
                "25.00",
                "LIBFINE",
                "Overdue"
            ),
            row(
                4,
                "2000123",
                date(2024, 6, 4),
                "2245678900004321",
                "40.00",
                "0.00",
                "LIBFINE",
                "Lost item"
            ),
        ]
    );
}

#[test]
fn identical_rows_are_distinct_keys_and_the_ids_are_stable() {
    let file = read_payments(
        fixture("payments_bom_crlf.csv").as_slice(),
        "f.csv",
        &PaymentColumns::default(),
    )
    .unwrap();
    let keyed = keyed_rows(file.rows);
    let keys: Vec<String> = keyed.iter().map(|(key, _)| key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "12345678901|2024-06-03|9912345|25.00|25.00|1",
            "12345678901|2024-06-03|9912345|25.00|25.00|2",
            "2000123|2024-06-04|2245678900004321|40.00|0.00|1",
        ]
    );
    assert_eq!(keyed[1].1.line, 3);
    // Expected values computed outside Rust:
    //   printf '%s' '12345678901|2024-06-03|9912345|25.00|25.00|1' | sha256sum | cut -c1-32
    assert_eq!(
        external_transaction_id(&keyed[0].0),
        "bursar-119c4fc5c6d55a34b6008336b098d65f"
    );
    assert_eq!(
        external_transaction_id(&keyed[1].0),
        "bursar-28effcfac76ade76f64fc4cec493aff8"
    );
    assert!(
        keyed
            .iter()
            .all(|(key, _)| external_transaction_id(key).len() <= 40)
    );
}

#[test]
fn keys_compare_normalized_values_not_their_spelling() {
    // 05/03/2024 1:45:00 PM and 2024-05-03 are one date; 20.00/10.00 and
    // 20/10.0 are the same amounts; the description is not in the key.
    let file = read_payments(
        fixture("payments_basic.csv").as_slice(),
        "f.csv",
        &PaymentColumns::default(),
    )
    .unwrap();
    let keyed = keyed_rows(file.rows);
    let partial: Vec<(&PaymentKey, u64)> = keyed
        .iter()
        .filter(|(key, _)| key.reference.as_str() == LONG_REF)
        .map(|(key, row)| (key, row.line))
        .collect();
    let key = |d, n| PaymentKey {
        emplid: PatronId::new("1000001"),
        date_paid: d,
        reference: FineId::new(LONG_REF),
        charge_amount: money("20"),
        paid_amount: money("10"),
        n,
    };
    assert_eq!(
        partial,
        [
            (&key(date(2024, 5, 3), 1), 8),
            (&key(date(2024, 5, 3), 2), 10),
            (&key(date(2024, 5, 4), 1), 12)
        ]
    );
    assert_eq!(
        external_transaction_id(partial[0].0),
        "bursar-964d8591cb36312d97a31acdc5587ba3"
    );
    assert_eq!(
        external_transaction_id(partial[1].0),
        "bursar-ae03d3e0bca6f49fb75846a6ebed1cee"
    );
}

#[test]
fn the_key_string_escapes_its_separator() {
    let key = PaymentKey {
        emplid: PatronId::new("a|b"),
        date_paid: date(2024, 5, 1),
        reference: FineId::new("c\\"),
        charge_amount: money("1"),
        paid_amount: money("-1"),
        n: 3,
    };
    assert_eq!(key.key_string(), "a\\|b|2024-05-01|c\\\\|1.00|-1.00|3");
}

#[test]
fn a_missing_column_names_the_column_and_the_file() {
    let csv = "Emplid,Date Paid,Reference Number,Charge Amount,Item Type,Charge Description\n1,2024-05-01,2,3.00,X,Y\n";
    let error = read_payments(
        csv.as_bytes(),
        "ASUSASF_LIBRARY_REPORT_DTRANGE_1.csv",
        &PaymentColumns::default(),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "payments file ASUSASF_LIBRARY_REPORT_DTRANGE_1.csv: no column \"Paid Amount\" in the header (found: \
         \"Emplid\", \"Date Paid\", \"Reference Number\", \"Charge Amount\", \"Item Type\", \"Charge Description\"); \
         if the report renamed it, set payment column `paid_amount` in the configuration"
    );
}

#[test]
fn column_names_are_configuration() {
    let columns = PaymentColumns {
        paid_amount: "Amount Paid".to_string(),
        ..PaymentColumns::default()
    };
    let csv = "Emplid,Date Paid,Reference Number,Charge Amount,AMOUNT PAID,Item Type,Charge Description\n\
               7,2024-05-01,99,3.00,2.00,X,Y\n";
    let file = read_payments(csv.as_bytes(), "f.csv", &columns).unwrap();
    assert_eq!(
        file.rows,
        vec![row(
            2,
            "7",
            date(2024, 5, 1),
            "99",
            "3.00",
            "2.00",
            "X",
            "Y"
        )]
    );
}

#[test]
fn an_ambiguous_or_empty_header_is_an_error() {
    let csv = "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description,EMPLID\n";
    let error = read_payments(csv.as_bytes(), "f.csv", &PaymentColumns::default()).unwrap_err();
    assert!(
        matches!(
            error,
            PaymentsError::DuplicateColumn {
                first: 1,
                second: 8,
                ..
            }
        ),
        "{error}"
    );
    let error = read_payments(&b""[..], "f.csv", &PaymentColumns::default()).unwrap_err();
    assert!(matches!(error, PaymentsError::NoHeader { .. }), "{error}");
}

#[test]
fn a_file_with_only_a_header_has_no_rows() {
    let csv = "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\r\n";
    let file = read_payments(csv.as_bytes(), "f.csv", &PaymentColumns::default()).unwrap();
    assert_eq!((file.rows.len(), file.bad_rows.len()), (0, 0));
}

#[test]
fn invalid_utf8_is_a_bad_row_not_a_failed_file() {
    let mut csv = b"Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n".to_vec();
    csv.extend_from_slice(b"1,2024-05-01,2,3.00,3.00,X,caf\xe9\n3,2024-05-01,4,3.00,3.00,X,ok\n");
    let file = read_payments(csv.as_slice(), "f.csv", &PaymentColumns::default()).unwrap();
    assert_eq!(file.rows.len(), 1);
    assert_eq!(file.rows[0].line, 3);
    assert_eq!(file.bad_rows[0].line, 2);
    assert!(
        file.bad_rows[0].message.contains("Charge Description"),
        "{:?}",
        file.bad_rows
    );
}

#[test]
fn dates_in_the_shapes_reports_use() {
    let may_first = Some(date(2024, 5, 1));
    for text in [
        "2024-05-01",
        "05/01/2024",
        "5/1/2024",
        " 2024-05-01 ",
        "2024-05-01 13:45:00",
        "2024-05-01 13:45",
        "2024-05-01 00:00:00.0",
        "2024-05-01T13:45:00",
        "05/01/2024 1:45:00 PM",
        "5/1/2024 1:45 pm",
        "05/01/2024 13:45:00",
        "5/1/2024 12:00:00 AM",
    ] {
        assert_eq!(parse_date(text), may_first, "{text:?}");
    }
    for text in [
        "",
        "5/1/24",
        "2024-5-1x",
        "01.05.2024",
        "2024-02-30",
        "13/01/2024",
        "1/5/0024",
        "24-05-01",
    ] {
        assert_eq!(parse_date(text), None, "{text:?}");
    }
}

#[test]
fn line_numbers_are_the_lines_an_editor_shows() {
    // Blank lines, a CRLF inside a quoted value, and a bad row after them.
    let csv = "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\r\n\
               \r\n\
               1,2024-05-01,2,3.00,3.00,X,\"two\r\nlines\"\r\n\
               \r\n\
               \r\n\
               3,2024-05-01,4,3.00,3.001,X,late\r\n";
    let file = read_payments(csv.as_bytes(), "f.csv", &PaymentColumns::default()).unwrap();
    assert_eq!(file.rows.iter().map(|r| r.line).collect::<Vec<_>>(), [3]);
    assert_eq!(
        file.bad_rows.iter().map(|r| r.line).collect::<Vec<_>>(),
        [7]
    );
}

#[test]
fn a_quote_never_closed_is_a_bad_row_naming_the_lines_it_swallowed() {
    let header = "Emplid,Date Paid,Reference Number,Charge Amount,Paid Amount,Item Type,Charge Description\n";
    let good = "1,2024-05-01,2,3.00,3.00,X,\"quoted, closed\"\n";
    let open = "3,2024-05-01,4,3.00,3.00,X,\"never closed\n";
    let swallowed = "5,2024-05-01,6,3.00,3.00,X,y\n7,2024-05-01,8,3.00,3.00,X,z\n\n";
    let csv = format!("{header}{good}{open}{swallowed}");
    let file = read_payments(csv.as_bytes(), "f.csv", &PaymentColumns::default()).unwrap();
    assert_eq!(
        file.rows.iter().map(|row| row.line).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(
        file.bad_rows,
        [BadRow {
            line: 3,
            message:
                "a quote (\") opened in this row is never closed, so lines 3 to 5 (the end of \
                      the file) were read as one row: the rows after it are not read"
                    .to_string()
        }]
    );
    // On the last line it swallows nothing, and is still refused.
    let csv = format!("{header}{good}{open}");
    let file = read_payments(csv.as_bytes(), "f.csv", &PaymentColumns::default()).unwrap();
    assert_eq!(file.rows.len(), 1);
    assert_eq!(
        file.bad_rows,
        [BadRow {
            line: 3,
            message: "a quote (\") opened in this row is never closed".to_string()
        }]
    );
    // A quote inside an unquoted value, and an escaped quote at the end,
    // open nothing.
    let csv = format!(
        "{header}1,2024-05-01,2,3.00,3.00,X,12\" ruler\n3,2024-05-01,4,3.00,3.00,X,\"a \"\"b\"\"\""
    );
    let file = read_payments(csv.as_bytes(), "f.csv", &PaymentColumns::default()).unwrap();
    assert_eq!(file.bad_rows, []);
    assert_eq!(file.rows[0].description, "12\" ruler");
    assert_eq!(file.rows[1].description, "a \"b\"");
}
