//! Billing calendar: the due date (SPEC 5.2) and the term code (5.3) a
//! charge is sent with, both computed from the export's billing date.

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

/// A calendar rule that cannot work, named by its setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarRuleError {
    #[error(
        "setting `{setting}` is {value}; it must be between 1 and 28 so that the day exists in every month"
    )]
    DayOutOfRange { setting: &'static str, value: u32 },
    #[error(
        "setting `term_rule.seasons` does not cover month {month}; every month 1-12 needs exactly one season"
    )]
    MonthUncovered { month: u32 },
    #[error(
        "setting `term_rule.seasons` covers month {month} twice; every month 1-12 needs exactly one season"
    )]
    MonthCoveredTwice { month: u32 },
    #[error("setting `term_rule.seasons` has an empty code for months {from}-{to}")]
    EmptySeasonCode { from: u32, to: u32 },
}

/// When a charge is due: on `day_of_month` of the next month, or of the
/// month after next when the billing day is `late_from_day` or later (so a
/// student billed at the end of a month still gets about four weeks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DueDateRule {
    pub day_of_month: u32,
    pub late_from_day: u32,
}

impl Default for DueDateRule {
    fn default() -> Self {
        DueDateRule {
            day_of_month: 25,
            late_from_day: 26,
        }
    }
}

impl DueDateRule {
    pub fn validate(&self) -> Result<(), CalendarRuleError> {
        for (setting, value) in [
            ("due_date.day_of_month", self.day_of_month),
            ("due_date.late_from_day", self.late_from_day),
        ] {
            if !(1..=28).contains(&value) {
                return Err(CalendarRuleError::DayOutOfRange { setting, value });
            }
        }
        Ok(())
    }

    /// The due date of a charge billed on `billing_date`. Assumes a
    /// validated rule; a day past 28 is clamped rather than panicking.
    pub fn due_date(&self, billing_date: NaiveDate) -> NaiveDate {
        let months_ahead = if billing_date.day() >= self.late_from_day {
            2
        } else {
            1
        };
        let first_of_month = billing_date.with_day(1).unwrap_or(billing_date);
        let target_month = first_of_month + Months::new(months_ahead);
        let day = self.day_of_month.clamp(1, 28);
        target_month.with_day(day).unwrap_or(target_month)
    }
}

/// One season of the academic year: billing months `from_month` to
/// `to_month` (inclusive) carry `code` as the term's last digit(s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermSeason {
    pub from_month: u32,
    pub to_month: u32,
    pub code: String,
}

/// The term code: `prefix` + last two digits of the billing year + the
/// season's code. The default gives `2` + `24` + `1` (Jan-May), `4`
/// (Jun-Jul) or `7` (Aug-Dec).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TermRule {
    pub prefix: String,
    pub seasons: Vec<TermSeason>,
}

impl Default for TermRule {
    fn default() -> Self {
        let season = |from_month, to_month, code: &str| TermSeason {
            from_month,
            to_month,
            code: code.to_string(),
        };
        TermRule {
            prefix: "2".to_string(),
            seasons: vec![season(1, 5, "1"), season(6, 7, "4"), season(8, 12, "7")],
        }
    }
}

impl TermRule {
    /// Every month covered by exactly one season with a code.
    pub fn validate(&self) -> Result<(), CalendarRuleError> {
        for season in &self.seasons {
            if season.code.is_empty() {
                return Err(CalendarRuleError::EmptySeasonCode {
                    from: season.from_month,
                    to: season.to_month,
                });
            }
        }
        for month in 1..=12 {
            match self.seasons_of(month).count() {
                0 => return Err(CalendarRuleError::MonthUncovered { month }),
                1 => {}
                _ => return Err(CalendarRuleError::MonthCoveredTwice { month }),
            }
        }
        Ok(())
    }

    fn seasons_of(&self, month: u32) -> impl Iterator<Item = &TermSeason> {
        self.seasons
            .iter()
            .filter(move |s| (s.from_month..=s.to_month).contains(&month))
    }

    /// The term code of a charge billed on `billing_date`. Assumes a
    /// validated rule (an uncovered month yields no season digit).
    pub fn term_code(&self, billing_date: NaiveDate) -> String {
        let season = self
            .seasons_of(billing_date.month())
            .next()
            .map(|s| s.code.as_str())
            .unwrap_or_default();
        let year = billing_date.year().rem_euclid(100);
        format!("{}{year:02}{season}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn due_date_is_the_25th_of_next_month_or_the_month_after_from_the_26th() {
        let rule = DueDateRule::default();
        let cases = [
            (date(2024, 5, 1), date(2024, 6, 25)),
            (date(2024, 5, 25), date(2024, 6, 25)),
            (date(2024, 5, 26), date(2024, 7, 25)),
            (date(2024, 5, 31), date(2024, 7, 25)),
            (date(2024, 11, 30), date(2025, 1, 25)),
            (date(2024, 12, 1), date(2025, 1, 25)),
            (date(2024, 12, 26), date(2025, 2, 25)),
            (date(2024, 1, 31), date(2024, 3, 25)),
            (date(2024, 2, 29), date(2024, 4, 25)),
        ];
        for (billing, due) in cases {
            assert_eq!(rule.due_date(billing), due, "billed {billing}");
        }
    }

    #[test]
    fn term_code_follows_the_season_of_the_billing_month() {
        let rule = TermRule::default();
        let cases = [
            (date(2024, 1, 2), "2241"),
            (date(2024, 5, 31), "2241"),
            (date(2024, 6, 1), "2244"),
            (date(2024, 7, 31), "2244"),
            (date(2024, 8, 1), "2247"),
            (date(2024, 12, 31), "2247"),
            (date(2025, 3, 3), "2251"),
            (date(2009, 9, 9), "2097"),
            (date(2100, 1, 1), "2001"),
        ];
        for (billing, code) in cases {
            assert_eq!(rule.term_code(billing), code, "billed {billing}");
        }
        assert_eq!(rule.validate(), Ok(()));
    }

    #[test]
    fn bad_rules_are_named() {
        let due = DueDateRule {
            day_of_month: 31,
            late_from_day: 26,
        };
        assert_eq!(
            due.validate(),
            Err(CalendarRuleError::DayOutOfRange {
                setting: "due_date.day_of_month",
                value: 31
            })
        );
        let mut term = TermRule::default();
        term.seasons.pop();
        assert_eq!(
            term.validate(),
            Err(CalendarRuleError::MonthUncovered { month: 8 })
        );
        term.seasons.push(TermSeason {
            from_month: 7,
            to_month: 12,
            code: "7".into(),
        });
        assert_eq!(
            term.validate(),
            Err(CalendarRuleError::MonthCoveredTwice { month: 7 })
        );
    }
}
