//! The records of the sync (SPEC section 3), as plain data.
//!
//! These types cross every boundary of the workspace (store, stages,
//! backups), so they are plain, serde-serializable values with no
//! behaviour beyond small accessors; the rules live in [`crate::rules`].

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::money::Money;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub CompactString);

        impl $name {
            pub fn new(id: impl AsRef<str>) -> Self {
                Self(CompactString::new(id))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
    };
}

id_type!(
    /// Alma primary identifier of a patron: the university ID, "Emplid" at
    /// the Bursar.
    PatronId
);
id_type!(
    /// Alma fine/fee id. The *root* id of a fine; it is also the Bursar
    /// reference id of the fine's account line.
    FineId
);
id_type!(
    /// Alma item loan id.
    LoanId
);
id_type!(
    /// Alma fine fee transaction id.
    AlmaTxnId
);

/// A patron as the Bursar knows them, with Alma's balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patron {
    pub id: PatronId,
    pub balance: Money,
}

/// The fee types Alma reports. An unknown type is an error at import (it
/// names the row), so that a new kind of fee is looked at by a person
/// before it is billed.
/// Serialized as the Analytics label, so configuration and stored records
/// read the way Alma shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeeType {
    LostItemReplacementFee,
    LostItemProcessFee,
    OverdueFine,
    RecalledOverdueFine,
    CardRenewal,
    DamagedItemFee,
    Other,
    RegistrationFee,
    Credit,
}

/// A fee type label that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown fee type {0:?}; known types: {known}",
    known = FeeType::ALL.map(FeeType::label).join(", ")
)]
pub struct UnknownFeeType(pub String);

impl FeeType {
    pub const ALL: [FeeType; 9] = [
        FeeType::LostItemReplacementFee,
        FeeType::LostItemProcessFee,
        FeeType::OverdueFine,
        FeeType::RecalledOverdueFine,
        FeeType::CardRenewal,
        FeeType::DamagedItemFee,
        FeeType::Other,
        FeeType::RegistrationFee,
        FeeType::Credit,
    ];
    /// The label Alma Analytics uses, e.g. `Lost item replacement fee`.
    pub fn label(self) -> &'static str {
        match self {
            FeeType::LostItemReplacementFee => "Lost item replacement fee",
            FeeType::LostItemProcessFee => "Lost item process fee",
            FeeType::OverdueFine => "Overdue fine",
            FeeType::RecalledOverdueFine => "Recalled Overdue fine",
            FeeType::CardRenewal => "Card renewal",
            FeeType::DamagedItemFee => "Damaged item fee",
            FeeType::Other => "Other",
            FeeType::RegistrationFee => "Registration fee",
            FeeType::Credit => "Credit",
        }
    }

    /// Parses Analytics' label. Case and surrounding space are forgiven,
    /// since report edits in Alma have changed capitalisation before.
    pub fn from_label(label: &str) -> Result<FeeType, UnknownFeeType> {
        let wanted = label.trim();
        FeeType::ALL
            .into_iter()
            .find(|fee_type| fee_type.label().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownFeeType(label.to_string()))
    }
}

impl Serialize for FeeType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.label())
    }
}

impl<'de> Deserialize<'de> for FeeType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FeeType, D::Error> {
        let label = String::deserialize(deserializer)?;
        FeeType::from_label(&label).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for FeeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

/// What is known of the item a fine is about. Everything is optional:
/// card renewals and registration fees have no item.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDetails {
    pub title: Option<String>,
    pub author: Option<String>,
    pub call_number: Option<String>,
    pub barcode: Option<String>,
    pub location_code: Option<String>,
    pub loaned_at: Option<NaiveDateTime>,
    pub due_at: Option<NaiveDateTime>,
    pub returned_at: Option<NaiveDateTime>,
}

/// A fine or fee in Alma.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fine {
    pub id: FineId,
    pub patron_id: PatronId,
    pub loan_id: Option<LoanId>,
    pub fee_type: FeeType,
    /// Closed in Alma (paid, waived or otherwise ended).
    pub closed: bool,
    pub created_at: NaiveDateTime,
    pub status_at: NaiveDateTime,
    pub original_amount: Money,
    pub remaining_amount: Money,
    pub comment: Option<String>,
    pub item: ItemDetails,
}

/// Alma transaction types. Amounts are signed by type: Fine positive;
/// Payment, Waive and Credit negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlmaTxnType {
    Fine,
    Payment,
    Waive,
    Credit,
}

/// A transaction type label that is none of Fine, Payment, Waive, Credit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transaction type {0:?}; expected one of Fine, Payment, Waive, Credit")]
pub struct UnknownTxnType(pub String);

impl AlmaTxnType {
    /// Alma reports magnitudes; the type gives the sign.
    pub fn signed(self, magnitude: Money) -> Money {
        match self {
            AlmaTxnType::Fine => magnitude.abs(),
            AlmaTxnType::Payment | AlmaTxnType::Waive | AlmaTxnType::Credit => -magnitude.abs(),
        }
    }

    /// Case and surrounding space are forgiven. Compared in place rather
    /// than lower-cased into a new string: the import reads a label for
    /// each of about a million report rows.
    pub fn from_label(label: &str) -> Result<AlmaTxnType, UnknownTxnType> {
        let wanted = label.trim();
        [
            ("fine", AlmaTxnType::Fine),
            ("payment", AlmaTxnType::Payment),
            ("waive", AlmaTxnType::Waive),
            ("credit", AlmaTxnType::Credit),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
        .map(|(_, kind)| kind)
        .ok_or_else(|| UnknownTxnType(label.to_string()))
    }
}

/// A transaction on a fine in Alma.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlmaTransaction {
    /// None only for a synthetic opening transaction (SPEC 4.3) that no
    /// report row lent its id to.
    pub id: Option<AlmaTxnId>,
    pub fine_id: FineId,
    pub kind: AlmaTxnType,
    /// Signed: see [`AlmaTxnType::signed`].
    pub amount: Money,
    pub created_at: NaiveDateTime,
    pub note: Option<String>,
    /// Not yet reconciled to the Bursar ledger.
    pub pending: bool,
    /// For a Credit made by distributing a Credit-type fine over the fines
    /// of its loan (SPEC 4.5): that credit fine's id, so the next import
    /// knows the credit was already taken in.
    pub source_credit_fine: Option<FineId>,
}

impl AlmaTransaction {
    /// The transaction's identity in the store: Alma's id; for a Credit
    /// made by distributing a credit fine, the credit's and the target
    /// fine's ids (one share per fine); for a synthetic opening transaction,
    /// its fine's id (a fine has at most one).
    pub fn key(&self) -> String {
        match (&self.id, &self.source_credit_fine) {
            (Some(id), _) => id.0.to_string(),
            (None, Some(source)) => format!("credit:{source}:{}", self.fine_id),
            (None, None) => format!("opening:{}", self.fine_id),
        }
    }

    /// `self.key() == key`, without building the key: the import compares
    /// keys of a million transactions.
    pub fn has_key(&self, key: &str) -> bool {
        match (&self.id, &self.source_credit_fine) {
            (Some(id), _) => id.as_str() == key,
            (None, Some(source)) => {
                key.strip_prefix("credit:")
                    .and_then(|rest| rest.strip_prefix(source.as_str()))
                    .and_then(|rest| rest.strip_prefix(':'))
                    == Some(self.fine_id.as_str())
            }
            (None, None) => key.strip_prefix("opening:") == Some(self.fine_id.as_str()),
        }
    }

    /// Whether two transactions have the same key.
    pub fn same_key(&self, other: &AlmaTransaction) -> bool {
        match (&self.id, &self.source_credit_fine) {
            (Some(id), _) => other.has_key(id.as_str()),
            _ => other.id.is_none() && self.has_key(&other.key()),
        }
    }
}

/// What the Bursar holds for one fine: normally exactly one per fine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BursarAccountLine {
    /// Bursar reference id: the Alma root fine id.
    pub reference: FineId,
    pub patron_id: PatronId,
    pub account: String,
    pub replacement_fee: bool,
    /// Set by the first charge, reused by every later reversal.
    pub billing: Option<Billing>,
}

/// Dates and term a line was first charged with (SPEC 5.2, 5.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    pub billing_date: NaiveDate,
    pub due_date: NaiveDate,
    pub term_code: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BursarTxnType {
    Fine,
    Waive,
    Credit,
    Payment,
}

/// Where a Bursar transaction stands with respect to exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExportState {
    /// Waiting for the next export.
    Pending,
    /// Went out in the export with this sequence number.
    Exported(u64),
    /// Never exported: a Payment records money the Bursar already holds.
    NotExported,
}

/// A transaction on a Bursar account line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BursarTransaction {
    pub reference: FineId,
    /// 1 for the line's first transaction, then 2, 3, ...: with the
    /// reference, the transaction's identity and its creation order.
    pub n: u32,
    pub kind: BursarTxnType,
    /// Signed: Fine positive; Waive, Credit, Payment negative.
    pub amount: Money,
    pub created_at: DateTime<Utc>,
    pub export: ExportState,
}

/// One Direction 1 export: the charges and reversals files of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub seq: u64,
    pub created_at: DateTime<Utc>,
    pub billing_date: NaiveDate,
    pub charges_file: Option<String>,
    pub reversals_file: Option<String>,
    pub line_count: u64,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The end a Bursar payment row came to in Direction 2 (SPEC 7.3, 7.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentOutcome {
    /// Written before the POST to Alma; settled on the next run (7.5).
    Posting,
    Paid,
    PaidCapped,
    ZeroDollarCharge,
    ZeroDollarPayment,
    AlreadyClosed,
    NotFound,
    PatronMismatch,
    AlmaError {
        message: String,
    },
}

impl PaymentOutcome {
    /// A final outcome is never worked again; the others are retried on
    /// every run.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            PaymentOutcome::Paid
                | PaymentOutcome::PaidCapped
                | PaymentOutcome::ZeroDollarCharge
                | PaymentOutcome::ZeroDollarPayment
                | PaymentOutcome::AlreadyClosed
        )
    }
}

/// One Bursar payment row ever seen, by its key (SPEC 7.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub key: String,
    pub fine_id: Option<FineId>,
    pub patron_id: PatronId,
    pub paid_amount: Money,
    pub outcome: PaymentOutcome,
    /// Alma's balance read just before posting.
    pub balance_read: Option<Money>,
    /// What was (or is about to be) posted to Alma.
    pub amount_posted: Option<Money>,
    pub external_transaction_id: String,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobKind {
    AlmaImport,
    BursExport,
    BursSend,
    BursarPayments,
    Backup,
    Restore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    InProgress,
    Success,
    Failed,
}

/// One run of one stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub seq: u64,
    pub kind: JobKind,
    pub status: JobStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Named counts, e.g. `fines_new`, in the order the stage reports them.
    pub counts: Vec<(String, u64)>,
    /// Problems reported by id (a quarantined fine, an unmatched credit).
    pub problems: Vec<String>,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_key_and_same_key_agree_with_key() {
        let txn = |id: Option<&str>, fine: &str, source: Option<&str>| AlmaTransaction {
            id: id.map(AlmaTxnId::new),
            fine_id: FineId::new(fine),
            kind: AlmaTxnType::Credit,
            amount: Money::from_cents(-100),
            created_at: NaiveDateTime::default(),
            note: None,
            pending: true,
            source_credit_fine: source.map(FineId::new),
        };
        let all = [
            txn(Some("T1"), "F1", None),
            txn(Some("T1"), "F2", Some("C1")),
            txn(None, "F1", Some("C1")),
            txn(None, "F1", Some("C1:F1")),
            txn(None, "F1", None),
            txn(None, "F2", None),
            txn(None, "F1", Some("C2")),
        ];
        let keys = [
            "T1",
            "T2",
            "F1",
            "opening:F1",
            "opening:F12",
            "opening:",
            "credit:C1:F1",
            "credit:C1:F1:F1",
            "credit:C1",
            "credit::F1",
            "credit:C2:F1",
            "",
        ];
        for a in &all {
            for key in keys {
                assert_eq!(a.has_key(key), a.key() == key, "{a:?} has key {key:?}");
            }
            for b in &all {
                assert_eq!(a.same_key(b), a.key() == b.key(), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn fee_type_labels_round_trip_and_unknown_is_named() {
        for fee_type in FeeType::ALL {
            assert_eq!(FeeType::from_label(fee_type.label()), Ok(fee_type));
        }
        assert_eq!(
            FeeType::from_label(" overdue FINE "),
            Ok(FeeType::OverdueFine)
        );
        let error = FeeType::from_label("Parking ticket").unwrap_err();
        assert!(error.to_string().contains("\"Parking ticket\""), "{error}");
    }

    #[test]
    fn transaction_type_gives_the_sign() {
        let five = Money::from_cents(500);
        assert_eq!(AlmaTxnType::Fine.signed(five), five);
        assert_eq!(AlmaTxnType::Payment.signed(five), -five);
        assert_eq!(AlmaTxnType::Waive.signed(five), -five);
        assert_eq!(AlmaTxnType::Credit.signed(-five), -five);
        assert_eq!(AlmaTxnType::from_label("Waive"), Ok(AlmaTxnType::Waive));
        assert_eq!(
            AlmaTxnType::from_label("Refund"),
            Err(UnknownTxnType("Refund".into()))
        );
    }

    #[test]
    fn only_settled_payment_outcomes_are_final() {
        let final_ones = [
            PaymentOutcome::Paid,
            PaymentOutcome::PaidCapped,
            PaymentOutcome::ZeroDollarCharge,
            PaymentOutcome::ZeroDollarPayment,
            PaymentOutcome::AlreadyClosed,
        ];
        let retried = [
            PaymentOutcome::Posting,
            PaymentOutcome::NotFound,
            PaymentOutcome::PatronMismatch,
            PaymentOutcome::AlmaError {
                message: "x".into(),
            },
        ];
        assert!(final_ones.iter().all(PaymentOutcome::is_final));
        assert!(!retried.iter().any(PaymentOutcome::is_final));
    }
}
