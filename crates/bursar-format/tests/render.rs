#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Bursar's fixed-width files, byte for byte, against golden files
//! written by hand from the table of SPEC 5.5.

use bursar_format::{
    BursarLine, FieldKind, FileSide, Layout, LayoutConfig, LayoutError, RenderError, render_file,
    render_line,
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

const RUN: (i32, u32, u32) = (2024, 12, 10);

fn run_date() -> NaiveDate {
    date(RUN.0, RUN.1, RUN.2)
}

fn charge(patron: &str, account: &str, amount: &str, reference: &str) -> BursarLine {
    BursarLine {
        patron_id: PatronId::new(patron),
        account: account.to_string(),
        amount: Money::parse(amount).unwrap(),
        due_date: Some(date(2025, 1, 25)),
        billing_date: Some(run_date()),
        term_code: "2247".to_string(),
        reversal: false,
        reference: FineId::new(reference),
    }
}

fn reversal(patron: &str, account: &str, amount: &str, term: &str, reference: &str) -> BursarLine {
    BursarLine {
        patron_id: PatronId::new(patron),
        account: account.to_string(),
        amount: Money::parse(amount).unwrap(),
        due_date: None,
        billing_date: None,
        term_code: term.to_string(),
        reversal: true,
        reference: FineId::new(reference),
    }
}

const LONG_REF: &str = "1000000000000000000000000000001";

/// In creation order, deliberately not sorted by reference.
fn charges() -> Vec<BursarLine> {
    vec![
        charge("12345678901", "531000000002", "65.00", "9912345"),
        charge("2000123", "531000000011", "5.5", "2245678900004321"),
        charge("12345678901", "531000000004", "10", "9912345"),
        charge("1000001", "531000000002", "1234567.89", LONG_REF),
        charge("2000123", "531000000011", "0.05", "2245678900004321"),
    ]
}

fn reversals() -> Vec<BursarLine> {
    vec![
        reversal("12345678901", "531000000002", "-15.00", "2247", "9912345"),
        reversal(
            "2000123",
            "531000000011",
            "-5.50",
            "2241",
            "2245678900004321",
        ),
        reversal("12345678901", "531000000002", "-50.00", "2247", "9912345"),
    ]
}

#[test]
fn the_golden_files_have_the_spec_shape() {
    // Checks the golden files themselves against SPEC 5.5, independently of
    // the renderer: 97 characters and a '\n', fields at their positions.
    for name in [
        "LIB_charges.dat.20241210.7.1",
        "LIB_charges.dat.20241210.7.2",
    ] {
        let text = String::from_utf8(fixture(name)).unwrap();
        assert!(text.ends_with('\n'));
        for line in text.split_terminator('\n') {
            assert_eq!(line.len(), 97, "{name}: {line:?}");
            for separator in [11, 24, 35, 45, 55, 61, 65] {
                assert_eq!(&line[separator..=separator], " ", "{name}: {line:?}");
            }
        }
    }
    let charges = String::from_utf8(fixture("LIB_charges.dat.20241210.7.1")).unwrap();
    let line = charges.lines().nth(3).unwrap();
    assert_eq!(&line[0..11], "12345678901");
    assert_eq!(&line[12..24], "531000000002");
    assert_eq!(&line[25..35], "     65.00");
    assert_eq!(&line[36..45], "01252025 ");
    assert_eq!(&line[46..55], "12102024 ");
    assert_eq!(&line[56..61], "2247 ");
    assert_eq!(&line[62..65], "   ");
    assert_eq!(line[66..97].trim_end(), "9912345");
    let reversals = String::from_utf8(fixture("LIB_charges.dat.20241210.7.2")).unwrap();
    let line = reversals.lines().next().unwrap();
    assert_eq!(&line[25..35], "      5.50");
    assert_eq!(&line[36..55], " ".repeat(19));
    assert_eq!(&line[62..65], "Y  ");
}

#[test]
fn renders_the_charges_file_of_the_default_layout() {
    let layout = Layout::default();
    let file = render_file(&layout, &charges(), FileSide::Charges, 7, run_date())
        .unwrap()
        .unwrap();
    assert_eq!(file.name, "LIB_charges.dat.20241210.7.1");
    assert_eq!(
        String::from_utf8(file.bytes).unwrap(),
        String::from_utf8(fixture(&file.name)).unwrap()
    );
    assert_eq!(file.line_count, 5);
    assert_eq!(file.total, Money::parse("1234648.44").unwrap());
}

#[test]
fn renders_the_reversals_file_of_the_default_layout() {
    let layout = Layout::default();
    let file = render_file(&layout, &reversals(), FileSide::Reversals, 7, run_date())
        .unwrap()
        .unwrap();
    assert_eq!(file.name, "LIB_charges.dat.20241210.7.2");
    assert_eq!(
        String::from_utf8(file.bytes).unwrap(),
        String::from_utf8(fixture(&file.name)).unwrap()
    );
    assert_eq!(file.line_count, 3);
    assert_eq!(file.total, Money::parse("70.50").unwrap());
}

#[test]
fn rendering_again_gives_the_same_bytes() {
    let layout = Layout::default();
    let first = render_file(&layout, &charges(), FileSide::Charges, 7, run_date()).unwrap();
    let second = render_file(&layout, &charges(), FileSide::Charges, 7, run_date()).unwrap();
    assert_eq!(first, second);
}

#[test]
fn an_empty_side_has_no_file() {
    let file = render_file(&Layout::default(), &[], FileSide::Reversals, 7, run_date()).unwrap();
    assert_eq!(file, None);
}

#[test]
fn the_example_line_of_the_brief_with_its_fields_where_the_table_puts_them() {
    let line = charge("12345678901", "531000000002", "65.00", "9912345");
    assert_eq!(
        render_line(&Layout::default(), &line).unwrap(),
        format!(
            "12345678901 531000000002      65.00 01252025  12102024  2247      9912345{}",
            " ".repeat(24)
        )
    );
}

#[test]
fn a_value_wider_than_its_field_is_an_error_naming_field_value_and_fine() {
    let mut lines = charges();
    lines.push(charge(
        "123456789012",
        "531000000002",
        "1.00",
        "2245678900009999",
    ));
    let error =
        render_file(&Layout::default(), &lines, FileSide::Charges, 7, run_date()).unwrap_err();
    assert_eq!(
        error,
        RenderError::TooWide {
            reference: "2245678900009999".into(),
            field: FieldKind::PatronId,
            index: 0,
            value: "123456789012".into(),
            len: 12,
            width: 11,
        }
    );
    assert_eq!(
        error.to_string(),
        "fine 2245678900009999: patron_id \"123456789012\" is 12 characters, wider than its 11-character field \
         (layout fields[0]); nothing is truncated: correct the value in Alma or widen the field in the layout"
    );

    let too_much = charge("1000001", "531000000002", "12345678.90", "77");
    let error = render_line(&Layout::default(), &too_much).unwrap_err();
    assert!(
        matches!(&error, RenderError::TooWide { field: FieldKind::Amount, value, .. } if value == "12345678.90"),
        "{error}"
    );
    let long_ref = charge("1000001", "531000000002", "1.00", &format!("{LONG_REF}2"));
    let error = render_line(&Layout::default(), &long_ref).unwrap_err();
    assert!(
        matches!(
            &error,
            RenderError::TooWide {
                field: FieldKind::Reference,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn lines_that_do_not_belong_in_the_file_are_errors() {
    let layout = Layout::default();
    let render =
        |line: BursarLine, side| render_file(&layout, &[line], side, 7, run_date()).unwrap_err();

    let error = render(reversals().remove(0), FileSide::Charges);
    assert!(
        matches!(error, RenderError::WrongSide { reversal: true, .. }),
        "{error}"
    );

    let mut negative_charge = charges().remove(0);
    negative_charge.amount = Money::from_cents(-6500);
    assert!(matches!(
        render(negative_charge, FileSide::Charges),
        RenderError::BadAmount { .. }
    ));

    let mut zero = charges().remove(0);
    zero.amount = Money::ZERO;
    assert!(matches!(
        render(zero, FileSide::Charges),
        RenderError::BadAmount { .. }
    ));

    let mut positive_reversal = reversals().remove(0);
    positive_reversal.amount = Money::from_cents(1500);
    assert!(matches!(
        render(positive_reversal, FileSide::Reversals),
        RenderError::BadAmount { .. }
    ));

    let mut extreme = charges().remove(0);
    extreme.amount = Money::from_cents(i64::MIN);
    extreme.reversal = true;
    assert!(matches!(
        render(extreme, FileSide::Reversals),
        RenderError::BadAmount { .. }
    ));

    let mut undated = charges().remove(0);
    undated.due_date = None;
    let error = render(undated, FileSide::Charges);
    assert_eq!(
        error.to_string(),
        "fine 9912345: the charges line has no due_date; the export sets it from the run date (SPEC 5.2)"
    );

    let mut dated_reversal = reversals().remove(0);
    dated_reversal.billing_date = Some(run_date());
    let error = render(dated_reversal, FileSide::Reversals);
    assert!(
        matches!(
            error,
            RenderError::DateOnReversal {
                field: FieldKind::BillingDate,
                ..
            }
        ),
        "{error}"
    );

    let mut no_account = charges().remove(0);
    no_account.account.clear();
    let error = render(no_account, FileSide::Charges);
    assert_eq!(
        error.to_string(),
        "fine 9912345: account is empty; every Bursar line needs one"
    );

    let mut newline = charges().remove(0);
    newline.patron_id = PatronId::new("123\n45");
    assert!(matches!(
        render(newline, FileSide::Charges),
        RenderError::NotPrintable { .. }
    ));
}

const ALT_LAYOUT: &str = include_str!("../../../fixtures/bursar/layout_alt.toml");

#[test]
fn another_bursar_format_is_a_configuration_change() {
    let layout: Layout = toml::from_str(ALT_LAYOUT).unwrap();
    assert_eq!(layout.line_width(), 62);
    let charges = vec![
        BursarLine {
            patron_id: PatronId::new("200012345"),
            ..charge("", "531000000002", "65.00", "9912345")
        },
        charge("2000123", "531000000011", "5.50", "2245678900004321"),
        BursarLine {
            patron_id: PatronId::new("200012345"),
            ..charge("", "531000000004", "10.00", "9912345")
        },
    ];
    let file = render_file(&layout, &charges, FileSide::Charges, 7, run_date())
        .unwrap()
        .unwrap();
    assert_eq!(file.name, "UNIV_20241210_0007_CHG.txt");
    assert_eq!(
        String::from_utf8(file.bytes).unwrap(),
        String::from_utf8(fixture(&file.name)).unwrap()
    );
    assert_eq!((file.line_count, file.total), (3, Money::from_cents(8050)));

    let reversals = vec![reversal(
        "200012345",
        "531000000002",
        "-15.00",
        "2247",
        "9912345",
    )];
    let file = render_file(&layout, &reversals, FileSide::Reversals, 7, run_date())
        .unwrap()
        .unwrap();
    assert_eq!(file.name, "UNIV_20241210_0007_REV.txt");
    assert_eq!(
        String::from_utf8(file.bytes).unwrap(),
        String::from_utf8(fixture(&file.name)).unwrap()
    );
}

#[test]
fn an_empty_layout_table_is_the_spec_layout_and_round_trips() {
    let layout: Layout = toml::from_str("").unwrap();
    assert_eq!(layout, Layout::default());
    let alt: Layout = toml::from_str(ALT_LAYOUT).unwrap();
    let text = toml::to_string(&alt).unwrap();
    assert_eq!(toml::from_str::<Layout>(&text).unwrap(), alt);
}

#[test]
fn a_header_trailer_number_wider_than_its_width_is_an_error() {
    let layout: Layout = toml::from_str("trailer = 'T{count:06}{total:4}'").unwrap();
    let error = render_file(&layout, &charges(), FileSide::Charges, 7, run_date()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "bursar layout setting `trailer`: {total} is \"1234648.44\", 10 characters, wider than its width of 4; \
         nothing is truncated: widen it in the pattern"
    );
}

fn layout_error(toml_text: &str) -> LayoutError {
    let config: LayoutConfig = toml::from_str(toml_text).unwrap();
    Layout::new(config).unwrap_err()
}

#[test]
fn a_bad_layout_is_refused_once_naming_the_setting() {
    let spec_fields = |patch: &str| {
        let fields = [
            ("patron_id", 11),
            ("account", 12),
            ("amount", 10),
            ("due_date", 9),
            ("billing_date", 9),
            ("term_code", 5),
            ("reversal_flag", 3),
            ("reference", 31),
        ];
        let mut text = String::new();
        for (name, width) in fields {
            text.push_str(&format!(
                "[[fields]]\nfield = \"{name}\"\nwidth = {width}\n"
            ));
        }
        format!("{patch}\n{text}")
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            spec_fields("").replace("width = 12", "width = 0"),
            "fields[1].width",
            "account field has width 0",
        ),
        (
            spec_fields("") + "[[fields]]\nfield = \"amount\"\nwidth = 10\n",
            "fields[8].field",
            "amount appears twice (fields[2] and fields[8])",
        ),
        (
            spec_fields("").replace("\"reference\"", "\"filler\""),
            "fields",
            "no reference field",
        ),
        (
            spec_fields("date_format = '%Y-%m-%d %A'"),
            "fields[3].width",
            "wider than the due_date field",
        ),
        (
            spec_fields("date_format = '%H%M'"),
            "date_format",
            "cannot format a date",
        ),
        (
            spec_fields("reversal_flag = 'YES!'"),
            "reversal_flag",
            "wider than the reversal_flag field",
        ),
        (
            spec_fields("reversal_flag = ''"),
            "reversal_flag",
            "does not tell reversals from charges",
        ),
        (spec_fields("line_ending = '\\r'"), "line_ending", "use"),
        (
            spec_fields("header = 'H{lines}'"),
            "header",
            "unknown placeholder {lines}",
        ),
        (
            spec_fields("charges_file = 'LIB_{date:%Y%m%d}.1'"),
            "charges_file",
            "has no {export}",
        ),
        (
            spec_fields("charges_file = 'out/LIB.{export}'"),
            "charges_file",
            "no '/'",
        ),
        (
            spec_fields("charges_file = 'LIB.{count}'"),
            "charges_file",
            "unknown placeholder {count}",
        ),
        (
            spec_fields("reversals_file = 'LIB_charges.dat.{date:%Y%m%d}.{export}.1'"),
            "reversals_file",
            "same file name",
        ),
        (
            spec_fields("") + "[[fields]]\nfield = \"literal\"\nwidth = 2\ntext = \"LIB\"\n",
            "fields[8].text",
            "wider than its width of 2",
        ),
        (
            spec_fields("") + "[[fields]]\nfield = \"filler\"\nwidth = 2\ntext = \"x\"\n",
            "fields[8].text",
            "only a literal field takes text",
        ),
    ];
    for (text, setting, message) in cases {
        let error = layout_error(&text);
        assert_eq!(error.setting(), setting, "{error}");
        assert!(error.to_string().contains(message), "{error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("bursar layout setting `{setting}`: ")),
            "{error}"
        );
    }
}

#[test]
fn deserializing_a_bad_layout_fails_with_the_setting_name() {
    let error = toml::from_str::<Layout>("[[fields]]\nfield = 'amount'\nwidth = 0\n").unwrap_err();
    assert!(error.to_string().contains("`fields[0].width`"), "{error}");
    let error = toml::from_str::<Layout>("seperator = ''").unwrap_err();
    assert!(error.to_string().contains("seperator"), "{error}");
    let error =
        toml::from_str::<Layout>("[[fields]]\nfield = 'amount_due'\nwidth = 3\n").unwrap_err();
    assert!(error.to_string().contains("amount_due"), "{error}");
}
