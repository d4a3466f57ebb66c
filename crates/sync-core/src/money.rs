//! Money as an exact number of cents.
//!
//! Alma and the Bursar both speak in decimal strings ("12.5", "-3.00",
//! "65"). We parse them straight into integer cents and never go through a
//! float: a float cannot hold 0.10 exactly, and a student billed 0.01 too
//! much is a real complaint.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of money in integer cents, signed.
///
/// Parsed amounts are bounded by [`Money::MAX_ABS_CENTS`] (one hundred
/// billion dollars), so that sums of any realistic number of them cannot
/// overflow `i64`; arithmetic on `Money` therefore uses plain operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a decimal string is not an amount of money. Every variant carries
/// the input as it was given, so an operator can find it in the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount is empty; expected a decimal like 12.50")]
    Empty,
    #[error(
        "amount {input:?} is not a decimal number like 12.50 (digits, one optional '.', optional leading '-')"
    )]
    NotDecimal { input: String },
    #[error(
        "amount {input:?} has a non-zero digit past the second decimal place; cents are the smallest unit"
    )]
    SubCent { input: String },
    #[error("amount {input:?} is out of range (more than 100,000,000,000.00 in magnitude)")]
    OutOfRange { input: String },
}

impl Money {
    pub const ZERO: Money = Money(0);
    /// One hundred billion dollars, in cents.
    pub const MAX_ABS_CENTS: i64 = 10_000_000_000_000;

    pub const fn from_cents(cents: i64) -> Money {
        Money(cents)
    }

    pub const fn cents(self) -> i64 {
        self.0
    }

    pub const fn abs(self) -> Money {
        Money(self.0.abs())
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Parses a decimal amount: optional surrounding whitespace, an
    /// optional sign, at least one digit, and an optional fraction. Digits
    /// past the second decimal are accepted only when they are zeros
    /// (`12.500`), because some reports pad to three or four places.
    pub fn parse(input: &str) -> Result<Money, MoneyError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(MoneyError::Empty);
        }
        let not_decimal = || MoneyError::NotDecimal {
            input: input.to_string(),
        };
        let (negative, unsigned) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (unsigned, None),
        };
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) {
            return Err(not_decimal());
        }
        let fraction = fraction.unwrap_or("00");
        if fraction.is_empty() || !all_digits(fraction) {
            return Err(not_decimal());
        }
        let (cents_digits, rest) = fraction.split_at(fraction.len().min(2));
        if rest.bytes().any(|b| b != b'0') {
            return Err(MoneyError::SubCent {
                input: input.to_string(),
            });
        }
        let out_of_range = || MoneyError::OutOfRange {
            input: input.to_string(),
        };
        let whole = whole.trim_start_matches('0');
        // 13 digits of dollars is already beyond the bound; stop before
        // the integer parse could overflow.
        if whole.len() > 12 {
            return Err(out_of_range());
        }
        let dollars: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| not_decimal())?
        };
        let mut cents: i64 = cents_digits.parse().map_err(|_| not_decimal())?;
        if cents_digits.len() == 1 {
            cents *= 10;
        }
        let magnitude = dollars * 100 + cents;
        if magnitude > Money::MAX_ABS_CENTS {
            return Err(out_of_range());
        }
        Ok(Money(if negative { -magnitude } else { magnitude }))
    }
}

impl fmt::Display for Money {
    /// Two decimals, a leading `-` when negative, no thousands separator:
    /// `65.00`, `-3.10`, `0.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let text = format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100);
        f.pad(&text)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Money, MoneyError> {
        Money::parse(s)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0 + rhs.0)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        self.0 += rhs.0;
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0 - rhs.0)
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        self.0 -= rhs.0;
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

/// Stored and exchanged as the decimal string, so that a MongoDB document
/// or a backup archive reads `"12.50"`, never a float.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        let text = String::deserialize(deserializer)?;
        Money::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_alma_and_the_bursar_send() {
        let cases = [
            ("12.5", 1250),
            ("-3.00", -300),
            ("65", 6500),
            (" 7.10 ", 710),
            ("12.500", 1250),
            ("0.05", 5),
            ("+4.2", 420),
            ("-0.00", 0),
            ("0009.99", 999),
            ("100000000000.00", Money::MAX_ABS_CENTS),
            ("750", 75000),
            ("9.0", 900),
        ];
        for (input, cents) in cases {
            assert_eq!(
                Money::parse(input),
                Ok(Money::from_cents(cents)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_two_decimal_amount() {
        let not_decimal = |s: &str| MoneyError::NotDecimal { input: s.into() };
        let cases = [
            ("", MoneyError::Empty),
            ("   ", MoneyError::Empty),
            ("NaN", not_decimal("NaN")),
            ("inf", not_decimal("inf")),
            ("1e3", not_decimal("1e3")),
            ("1.5E2", not_decimal("1.5E2")),
            ("12.", not_decimal("12.")),
            (".50", not_decimal(".50")),
            ("-", not_decimal("-")),
            ("--1", not_decimal("--1")),
            ("1,000.00", not_decimal("1,000.00")),
            ("$5.00", not_decimal("$5.00")),
            ("5.00 USD", not_decimal("5.00 USD")),
            ("1.2.3", not_decimal("1.2.3")),
            (
                "12.505",
                MoneyError::SubCent {
                    input: "12.505".into(),
                },
            ),
            (
                "0.001",
                MoneyError::SubCent {
                    input: "0.001".into(),
                },
            ),
            (
                "100000000000.01",
                MoneyError::OutOfRange {
                    input: "100000000000.01".into(),
                },
            ),
            (
                "99999999999999999999999",
                MoneyError::OutOfRange {
                    input: "99999999999999999999999".into(),
                },
            ),
        ];
        for (input, error) in cases {
            assert_eq!(Money::parse(input), Err(error), "{input:?}");
        }
    }

    #[test]
    fn errors_name_the_input() {
        let message = Money::parse("12.345").unwrap_err().to_string();
        assert!(message.contains("\"12.345\""), "{message}");
    }

    #[test]
    fn formats_two_decimals() {
        let cases = [
            (6500, "65.00"),
            (-310, "-3.10"),
            (5, "0.05"),
            (-5, "-0.05"),
            (0, "0.00"),
        ];
        for (cents, text) in cases {
            assert_eq!(Money::from_cents(cents).to_string(), text);
        }
        assert_eq!(format!("{:>10}", Money::from_cents(6500)), "     65.00");
    }

    #[test]
    fn serializes_as_the_decimal_string_and_rejects_bad_ones() {
        let json = serde_json::to_string(&Money::from_cents(1250)).unwrap();
        assert_eq!(json, "\"12.50\"");
        let back: Money = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Money::from_cents(1250));
        let error = serde_json::from_str::<Money>("\"1.234\"").unwrap_err();
        assert!(error.to_string().contains("1.234"), "{error}");
    }
}
