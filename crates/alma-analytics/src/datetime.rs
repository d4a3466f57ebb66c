//! Dates and times as Analytics writes them.
//!
//! Analytics writes `2024-05-01T10:00:00` (sometimes with a fraction, or a
//! space for the `T`), dates as `2024-05-01` and times as `14:30:00`; a
//! full import reads about three million of them. chrono's `%`-format
//! parser interprets its format string for every value, which made it a
//! visible part of the import, so the exact fixed-width shapes are read
//! by hand here. Anything else, well-formed or not, goes to chrono with
//! the formats this crate has always used, so what is accepted, and how
//! it reads, is chrono's: the hand-written path only takes inputs whose
//! meaning under those formats is plain (fixed-width fields, a valid
//! date, seconds below 60, at most nine fraction digits) and builds the
//! same value chrono would.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

const DATE_TIME_FORMATS: [&str; 2] = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"];
const DATE_FORMAT: &str = "%Y-%m-%d";
const TIME_FORMATS: [&str; 2] = ["%H:%M:%S%.f", "%H:%M"];

/// `2024-05-01T10:00:00`, `2024-05-01 10:00:00`, either with a fraction
/// of a second.
pub(crate) fn parse_date_time(text: &str) -> Result<NaiveDateTime, String> {
    if let Some(at) = fixed_date_time(text.as_bytes()) {
        return Ok(at);
    }
    DATE_TIME_FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .ok_or_else(|| "not a date-time like 2024-05-01T10:00:00".to_string())
}

/// `2024-05-01`; a date-time's date part is accepted too.
pub(crate) fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let day = text.split(['T', ' ']).next().unwrap_or(text);
    if let Some(date) = fixed_date(day.as_bytes()) {
        return Ok(date);
    }
    NaiveDate::parse_from_str(day, DATE_FORMAT)
        .map_err(|_| "not a date like 2024-05-01".to_string())
}

/// `14:30:00` (with a fraction of a second or not), or `14:30`.
pub(crate) fn parse_time(text: &str) -> Result<NaiveTime, String> {
    if let Some(time) = fixed_time(text.as_bytes()) {
        return Ok(time);
    }
    TIME_FORMATS
        .iter()
        .find_map(|format| NaiveTime::parse_from_str(text, format).ok())
        .ok_or_else(|| "not a time like 14:30:00".to_string())
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.f]`, all of `text`.
fn fixed_date_time(text: &[u8]) -> Option<NaiveDateTime> {
    let (date, rest) = text.split_at_checked(10)?;
    let (separator, time) = rest.split_first()?;
    if !matches!(separator, b'T' | b' ') {
        return None;
    }
    // `HH:MM` alone is a time but not the time of a date-time.
    if time.len() < 8 {
        return None;
    }
    Some(fixed_date(date)?.and_time(fixed_time(time)?))
}

/// `YYYY-MM-DD`, all of `text`, a valid date.
fn fixed_date(text: &[u8]) -> Option<NaiveDate> {
    let &[y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2] = text else {
        return None;
    };
    let year = four_digits([y1, y2, y3, y4])?;
    NaiveDate::from_ymd_opt(
        i32::from(year),
        u32::from(two_digits(m1, m2)?),
        u32::from(two_digits(d1, d2)?),
    )
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.f` with one to nine fraction digits,
/// all of `text`, a valid time below the leap second (which chrono reads
/// in a way of its own, so it is left to chrono).
fn fixed_time(text: &[u8]) -> Option<NaiveTime> {
    let (hour, minute, rest) = match text {
        [h1, h2, b':', m1, m2, rest @ ..] => (two_digits(*h1, *h2)?, two_digits(*m1, *m2)?, rest),
        _ => return None,
    };
    let (second, fraction) = match rest {
        [] => (0, &[][..]),
        [b':', s1, s2, fraction @ ..] => (two_digits(*s1, *s2)?, fraction),
        _ => return None,
    };
    if second >= 60 {
        return None;
    }
    let nanos = match fraction {
        [] => 0,
        [b'.', digits @ ..] => nanos(digits)?,
        _ => return None,
    };
    NaiveTime::from_hms_nano_opt(u32::from(hour), u32::from(minute), u32::from(second), nanos)
}

fn digit(byte: u8) -> Option<u8> {
    byte.is_ascii_digit().then(|| byte - b'0')
}

fn two_digits(tens: u8, ones: u8) -> Option<u8> {
    Some(digit(tens)? * 10 + digit(ones)?)
}

fn four_digits(digits: [u8; 4]) -> Option<u16> {
    digits
        .into_iter()
        .try_fold(0u16, |sum, byte| Some(sum * 10 + u16::from(digit(byte)?)))
}

/// One to nine digits of a fraction of a second, as nanoseconds.
fn nanos(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let value = digits
        .iter()
        .try_fold(0u32, |sum, &byte| Some(sum * 10 + u32::from(digit(byte)?)))?;
    // Nine digits at most: the scale is at least 1 and the result below
    // one second.
    Some(value * 10u32.pow(9 - digits.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the crate did before the hand-written path: chrono alone.
    fn chrono_date_time(text: &str) -> Option<NaiveDateTime> {
        DATE_TIME_FORMATS
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    }

    fn chrono_date(text: &str) -> Option<NaiveDate> {
        let day = text.split(['T', ' ']).next().unwrap_or(text);
        NaiveDate::parse_from_str(day, DATE_FORMAT).ok()
    }

    fn chrono_time(text: &str) -> Option<NaiveTime> {
        TIME_FORMATS
            .iter()
            .find_map(|format| NaiveTime::parse_from_str(text, format).ok())
    }

    /// The hand-written path agrees with chrono wherever it answers.
    fn agrees(text: &str) {
        let fixed = fixed_date_time(text.as_bytes());
        if fixed.is_some() {
            assert_eq!(fixed, chrono_date_time(text), "date-time {text:?}");
        }
        let fixed = fixed_time(text.as_bytes());
        if fixed.is_some() {
            assert_eq!(fixed, chrono_time(text), "time {text:?}");
        }
        let day = text.split(['T', ' ']).next().unwrap_or(text);
        let fixed = fixed_date(day.as_bytes());
        if fixed.is_some() {
            assert_eq!(fixed, chrono_date(text), "date {text:?}");
        }
        assert_eq!(
            parse_date_time(text).ok(),
            chrono_date_time(text),
            "{text:?}"
        );
        assert_eq!(parse_date(text).ok(), chrono_date(text), "{text:?}");
        assert_eq!(parse_time(text).ok(), chrono_time(text), "{text:?}");
    }

    #[test]
    fn date_times_read_as_chrono_reads_them() {
        // (input, the date-time it is, or None when it is none)
        let cases: &[(&str, Option<&str>)] = &[
            ("2024-05-01T10:00:00", Some("2024-05-01 10:00:00")),
            ("2024-05-01 10:00:00", Some("2024-05-01 10:00:00")),
            ("2024-05-01T10:00:00.250", Some("2024-05-01 10:00:00.250")),
            ("2024-05-01T10:00:00.5", Some("2024-05-01 10:00:00.500")),
            (
                "2024-05-01T10:00:00.123456789",
                Some("2024-05-01 10:00:00.123456789"),
            ),
            // Past nine digits chrono ignores the rest.
            (
                "2024-05-01T10:00:00.1234567891",
                Some("2024-05-01 10:00:00.123456789"),
            ),
            ("2024-02-29T00:00:00", Some("2024-02-29 00:00:00")),
            ("0000-01-01T00:00:00", Some("0000-01-01 00:00:00")),
            ("2024-12-31T23:59:59", Some("2024-12-31 23:59:59")),
            // chrono's leap second.
            ("2024-06-30T23:59:60", Some("2024-06-30 23:59:60")),
            // chrono's `%`-formats do not insist on two digits.
            ("2024-5-1T1:2:3", Some("2024-05-01 01:02:03")),
            ("2024-02-30T10:00:00", None),
            ("2023-02-29T10:00:00", None),
            ("2024-13-01T10:00:00", None),
            ("2024-00-01T10:00:00", None),
            ("2024-05-00T10:00:00", None),
            ("2024-05-01T25:00:00", None),
            ("2024-05-01T24:00:00", None),
            ("2024-05-01T10:60:00", None),
            ("2024-05-01T10:00:61", None),
            ("2024-05-01T10:00", None),
            ("2024-05-01T10:00:00.", None),
            ("2024-05-01T10:00:00Z", None),
            ("2024-05-01T10:00:00+01:00", None),
            ("2024-05-01T10:00:00 x", None),
            ("2024-05-01t10:00:00", None),
            ("2024-05-01", None),
            ("2024-05", None),
            ("", None),
            ("01/05/2024 10:00", None),
            ("２０２４-05-01T10:00:00", None),
        ];
        for (text, expected) in cases {
            agrees(text);
            assert_eq!(
                parse_date_time(text)
                    .ok()
                    .map(|at| at.to_string())
                    .as_deref(),
                *expected,
                "{text:?}"
            );
        }
    }

    #[test]
    fn dates_and_times_read_as_chrono_reads_them() {
        let dates: &[(&str, Option<&str>)] = &[
            ("2024-05-01", Some("2024-05-01")),
            ("2024-05-01T10:00:00", Some("2024-05-01")),
            ("2024-05-01 anything", Some("2024-05-01")),
            ("2024-02-29", Some("2024-02-29")),
            ("2024-5-1", Some("2024-05-01")),
            ("2024-02-30", None),
            ("2024-13-01", None),
            ("2024-05-01x", None),
            ("2024-05", None),
            ("", None),
        ];
        for (text, expected) in dates {
            agrees(text);
            assert_eq!(
                parse_date(text).ok().map(|day| day.to_string()).as_deref(),
                *expected,
                "{text:?}"
            );
        }
        let times: &[(&str, Option<&str>)] = &[
            ("14:30:05", Some("14:30:05")),
            ("14:30", Some("14:30:00")),
            ("14:30:05.25", Some("14:30:05.250")),
            ("00:00:00", Some("00:00:00")),
            ("23:59:59.999999999", Some("23:59:59.999999999")),
            ("23:59:60", Some("23:59:60")),
            ("9:05", Some("09:05:00")),
            ("25:00", None),
            ("25:00:00", None),
            ("24:00:00", None),
            ("14:60", None),
            ("14", None),
            ("14:30:", None),
            ("14:30:05.", None),
            ("14:30:05 ", None),
            ("14:30:05pm", None),
            ("", None),
        ];
        for (text, expected) in times {
            agrees(text);
            assert_eq!(
                parse_time(text)
                    .ok()
                    .map(|time| time.to_string())
                    .as_deref(),
                *expected,
                "{text:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn fixed_shapes_agree_with_chrono(
            text in "[0-9]{4}-[0-9]{2}-[0-9]{2}[T t]?[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{0,11})?)?"
        ) {
            agrees(&text);
        }

        #[test]
        fn near_misses_agree_with_chrono(text in "[0-9T :.+-]{0,24}") {
            agrees(&text);
        }

        #[test]
        fn anything_agrees_with_chrono(text in "\\PC{0,24}") {
            agrees(&text);
        }
    }
}
