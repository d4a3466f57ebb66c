//! Which Bursar account a fine is charged to (SPEC 4.4).

use serde::{Deserialize, Serialize};

use crate::records::FeeType;

/// One rule: every condition it names must hold. Rules are tried in
/// order and the first match wins; matching is case-sensitive, and a fine
/// without a location code matches no location condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRule {
    pub account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_starts_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_contains: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_type: Option<FeeType>,
}

/// The account rules of the configuration, with a fallback account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRules {
    pub rules: Vec<AccountRule>,
    pub default_account: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountRuleError {
    #[error(
        "setting `account_rules.rules[{index}]` has no condition; give location_starts_with, location_contains or fee_type (or use default_account)"
    )]
    NoCondition { index: usize },
    #[error("setting `account_rules.rules[{index}]` has an empty account number")]
    EmptyAccount { index: usize },
    #[error("setting `account_rules.default_account` is empty")]
    EmptyDefault,
}

impl Default for AccountRules {
    /// The spec's rules: law-library locations, then lost-item replacement
    /// fees, then everything else.
    fn default() -> Self {
        let law = "531000000005";
        AccountRules {
            rules: vec![
                AccountRule {
                    account: law.into(),
                    location_starts_with: Some("law".into()),
                    location_contains: None,
                    fee_type: None,
                },
                AccountRule {
                    account: law.into(),
                    location_starts_with: None,
                    location_contains: Some("_lw_".into()),
                    fee_type: None,
                },
                AccountRule {
                    account: "531000000001".into(),
                    location_starts_with: None,
                    location_contains: None,
                    fee_type: Some(FeeType::LostItemReplacementFee),
                },
            ],
            default_account: "531000000002".into(),
        }
    }
}

impl AccountRule {
    fn matches(&self, fee_type: FeeType, location: Option<&str>) -> bool {
        let location_ok = |condition: &Option<String>, test: fn(&str, &str) -> bool| {
            condition
                .as_deref()
                .is_none_or(|wanted| location.is_some_and(|code| test(code, wanted)))
        };
        location_ok(&self.location_starts_with, |code, wanted| {
            code.starts_with(wanted)
        }) && location_ok(&self.location_contains, |code, wanted| {
            code.contains(wanted)
        }) && self.fee_type.is_none_or(|wanted| wanted == fee_type)
    }
}

impl AccountRules {
    pub fn validate(&self) -> Result<(), AccountRuleError> {
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.location_starts_with.is_none()
                && rule.location_contains.is_none()
                && rule.fee_type.is_none()
            {
                return Err(AccountRuleError::NoCondition { index });
            }
            if rule.account.trim().is_empty() {
                return Err(AccountRuleError::EmptyAccount { index });
            }
        }
        if self.default_account.trim().is_empty() {
            return Err(AccountRuleError::EmptyDefault);
        }
        Ok(())
    }

    /// The account of a fine with this type and location code.
    pub fn account_for(&self, fee_type: FeeType, location: Option<&str>) -> &str {
        self.rules
            .iter()
            .find(|rule| rule.matches(fee_type, location))
            .map_or(self.default_account.as_str(), |rule| rule.account.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_follow_the_spec() {
        let rules = AccountRules::default();
        assert_eq!(rules.validate(), Ok(()));
        let cases = [
            (FeeType::OverdueFine, Some("law"), "531000000005"),
            (FeeType::OverdueFine, Some("lawres"), "531000000005"),
            (FeeType::OverdueFine, Some("main_lw_stacks"), "531000000005"),
            // Law wins over the replacement-fee rule: first match wins.
            (FeeType::LostItemReplacementFee, Some("law"), "531000000005"),
            (
                FeeType::LostItemReplacementFee,
                Some("main"),
                "531000000001",
            ),
            (FeeType::LostItemReplacementFee, None, "531000000001"),
            (FeeType::LostItemProcessFee, Some("main"), "531000000002"),
            // Case-sensitive, prefix only, and no location matches nothing.
            (FeeType::OverdueFine, Some("LAW"), "531000000002"),
            (FeeType::OverdueFine, Some("outlaw"), "531000000002"),
            (FeeType::OverdueFine, Some("main_LW_x"), "531000000002"),
            (FeeType::OverdueFine, None, "531000000002"),
            (FeeType::CardRenewal, Some(""), "531000000002"),
        ];
        for (fee_type, location, account) in cases {
            assert_eq!(
                rules.account_for(fee_type, location),
                account,
                "{fee_type} at {location:?}"
            );
        }
    }

    #[test]
    fn a_rule_needs_all_its_conditions() {
        let rules = AccountRules {
            rules: vec![AccountRule {
                account: "A".into(),
                location_starts_with: Some("sci".into()),
                location_contains: None,
                fee_type: Some(FeeType::DamagedItemFee),
            }],
            default_account: "D".into(),
        };
        assert_eq!(
            rules.account_for(FeeType::DamagedItemFee, Some("sci1")),
            "A"
        );
        assert_eq!(rules.account_for(FeeType::OverdueFine, Some("sci1")), "D");
        assert_eq!(rules.account_for(FeeType::DamagedItemFee, Some("art")), "D");
    }

    #[test]
    fn a_rule_without_condition_is_refused() {
        let rules = AccountRules {
            rules: vec![AccountRule {
                account: "A".into(),
                location_starts_with: None,
                location_contains: None,
                fee_type: None,
            }],
            default_account: "D".into(),
        };
        assert_eq!(
            rules.validate(),
            Err(AccountRuleError::NoCondition { index: 0 })
        );
    }
}
