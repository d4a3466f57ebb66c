//! The state of the sync behind one trait.
//!
//! Stages never write record by record. Each stage reads what it needs
//! (the ledger of a fine, the payment records of a file), computes with the
//! pure rules of `sync-core` what must change, and hands the store one
//! [`ChangeSet`] that is written all-or-nothing. A crash therefore leaves
//! the store either before or after a stage's step, never half-way, and a
//! re-run recomputes the same changes from the same inputs. Records are
//! upserted by their natural keys (fine id, Alma transaction key, Bursar
//! reference and number, export sequence, payment key), so applying the
//! same change set twice is harmless.
//!
//! One rule guards the Bursar from hearing of a charge twice: a Bursar
//! transaction that went out in an export is frozen. [`FineStore::apply`]
//! may write it again only unchanged; a change set that would alter it (for
//! instance put it back to pending) is refused whole with
//! [`StoreError::Conflict`].
//!
//! Two implementations pass one conformance suite (`tests/conformance.rs`):
//! [`MongoStore`] for production and [`SqliteStore`], an embedded SQLite
//! file, the zero-setup default. Each module's documentation says how it
//! keeps the all-or-nothing promise.

mod mongo;
mod sqlite;

pub use mongo::{MongoConfig, MongoStore};
pub use sqlite::SqliteStore;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sync_core::records::{
    AlmaTransaction, BursarAccountLine, BursarTransaction, Export, Fine, FineId, Job, JobKind,
    LoanId, Patron, PatronId, PaymentRecord,
};

/// Everything the store holds about one fine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FineLedger {
    pub fine: Fine,
    /// In creation order (then by key, for equal times).
    pub alma: Vec<AlmaTransaction>,
    /// Normally exactly one; none for a standalone credit fine.
    pub lines: Vec<BursarAccountLine>,
    /// Ordered by reference, then by `n`.
    pub bursar: Vec<BursarTransaction>,
}

/// Records to upsert, by natural key, in one all-or-nothing write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// By patron id.
    pub patrons: Vec<Patron>,
    /// By fine id.
    pub fines: Vec<Fine>,
    /// By [`AlmaTransaction::key`].
    pub alma_transactions: Vec<AlmaTransaction>,
    /// By reference.
    pub account_lines: Vec<BursarAccountLine>,
    /// By (reference, n).
    pub bursar_transactions: Vec<BursarTransaction>,
    /// Keys ([`AlmaTransaction::key`]) of stored Alma transactions now
    /// reconciled to the Bursar ledger: only their `pending` flag is
    /// cleared, written after everything else of the change set. The
    /// export settles a million of them at once, where rewriting whole
    /// records would cost most of its time.
    pub reconciled_alma: Vec<String>,
    /// Whole ledgers of fines new to the store, written with every record
    /// in them. An import of a whole institution moves its ledgers here
    /// as they are, where spreading them into the lists above would hold
    /// a second copy of a million transactions.
    pub new_ledgers: Vec<FineLedger>,
}

impl ChangeSet {
    /// Every fine to write: [`Self::fines`] and those of the new ledgers.
    pub fn all_fines(&self) -> impl Iterator<Item = &Fine> {
        self.fines
            .iter()
            .chain(self.new_ledgers.iter().map(|l| &l.fine))
    }

    /// Every Alma transaction to write.
    pub fn all_alma_transactions(&self) -> impl Iterator<Item = &AlmaTransaction> {
        self.alma_transactions
            .iter()
            .chain(self.new_ledgers.iter().flat_map(|l| &l.alma))
    }

    /// Every account line to write.
    pub fn all_account_lines(&self) -> impl Iterator<Item = &BursarAccountLine> {
        self.account_lines
            .iter()
            .chain(self.new_ledgers.iter().flat_map(|l| &l.lines))
    }

    /// Every Bursar transaction to write.
    pub fn all_bursar_transactions(&self) -> impl Iterator<Item = &BursarTransaction> {
        self.bursar_transactions
            .iter()
            .chain(self.new_ledgers.iter().flat_map(|l| &l.bursar))
    }

    /// The same changes with the new ledgers spread into the record lists,
    /// each list in fine id order (records of one fine in their order):
    /// one form to compare change sets by.
    pub fn flattened(self) -> ChangeSet {
        let ChangeSet {
            patrons,
            mut fines,
            mut alma_transactions,
            mut account_lines,
            mut bursar_transactions,
            reconciled_alma,
            new_ledgers,
        } = self;
        for ledger in new_ledgers {
            fines.push(ledger.fine);
            alma_transactions.extend(ledger.alma);
            account_lines.extend(ledger.lines);
            bursar_transactions.extend(ledger.bursar);
        }
        // Stable sorts: a fine's records keep their order.
        fines.sort_by(|a, b| a.id.cmp(&b.id));
        alma_transactions.sort_by(|a, b| a.fine_id.cmp(&b.fine_id));
        account_lines.sort_by(|a, b| a.reference.cmp(&b.reference));
        bursar_transactions.sort_by(|a, b| a.reference.cmp(&b.reference));
        ChangeSet {
            patrons,
            fines,
            alma_transactions,
            account_lines,
            bursar_transactions,
            reconciled_alma,
            new_ledgers: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.new_ledgers.is_empty()
            && self.patrons.is_empty()
            && self.fines.is_empty()
            && self.alma_transactions.is_empty()
            && self.account_lines.is_empty()
            && self.bursar_transactions.is_empty()
            && self.reconciled_alma.is_empty()
    }
}

/// A Bursar transaction with what its file line needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportItem {
    pub transaction: BursarTransaction,
    pub line: BursarAccountLine,
}

/// Every record of the store, for backups. Collections are ordered by
/// their natural keys so that two dumps of equal stores are equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreDump {
    pub patrons: Vec<Patron>,
    pub fines: Vec<Fine>,
    pub alma_transactions: Vec<AlmaTransaction>,
    pub account_lines: Vec<BursarAccountLine>,
    pub bursar_transactions: Vec<BursarTransaction>,
    pub exports: Vec<Export>,
    pub payments: Vec<PaymentRecord>,
    pub jobs: Vec<Job>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the operation. The message
    /// ends with what to check for this kind of store.
    #[error(
        "store {store} unavailable during {operation}: {message}; {}",
        unavailable_advice(.store)
    )]
    Unavailable {
        store: String,
        operation: &'static str,
        message: String,
    },
    /// A stored record could not be read back (edited by hand, or written
    /// by a newer version).
    #[error("store {store}: record {record} is unreadable: {message}")]
    Corrupt {
        store: String,
        record: String,
        message: String,
    },
    /// The embedded store's file was written by a newer version of the
    /// tool than this one.
    #[error(
        "store {store} has schema version {found}, this tool knows up to {supported}; upgrade alma-bursar-sync"
    )]
    SchemaTooNew {
        store: String,
        found: u32,
        supported: u32,
    },
    /// The caller asked for something that contradicts the stored state,
    /// e.g. committing an export whose sequence number is taken.
    #[error("store {store}: {message}")]
    Conflict { store: String, message: String },
}

/// What to check when a store is unavailable, by the kind of store its
/// description names: an embedded file fails for want of disk space,
/// permissions or a lock, a server for not running or not being reachable.
fn unavailable_advice(store: &str) -> &'static str {
    if store.starts_with("sqlite:") {
        "check that the disk holding the file has free space, that this account can write the file \
         and its folder, and that no other program holds it locked (setting `store.path`), then run again"
    } else {
        "check that the database server is running and reachable and that the settings `store.uri` \
         and `store.database` point at it, then run again"
    }
}

/// What a new export commits (SPEC 5.2): the export record, the account
/// lines whose first charge sets their billing, and the keys of the
/// pending-export Bursar transactions it takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCommit {
    pub export: Export,
    pub billed_lines: Vec<BursarAccountLine>,
    /// (reference, n) of every Bursar transaction in the export.
    pub transactions: Vec<(FineId, u32)>,
}

/// The state of the sync, as the stages need it.
#[async_trait]
pub trait FineStore: Send + Sync {
    /// A short description for messages, e.g. `sqlite:/var/lib/abs/state.db`
    /// or `mongodb:bursar_sync` (never a password).
    fn describe(&self) -> String;

    // ---- Direction 1, import (SPEC 4) ----

    /// The stored patrons among `ids`, ordered by id.
    async fn patrons(&self, ids: &[PatronId]) -> Result<Vec<Patron>, StoreError>;

    /// The ledgers of the stored fines among `ids`, ordered by fine id.
    async fn ledgers(&self, ids: &[FineId]) -> Result<Vec<FineLedger>, StoreError>;

    /// The ledgers of every fine on these loans, ordered by fine id.
    async fn ledgers_by_loan(&self, loans: &[LoanId]) -> Result<Vec<FineLedger>, StoreError>;

    /// Which of these credit fine ids are already taken in: stored as a
    /// fine, or the source of a stored Credit transaction (SPEC 4.5).
    /// Ordered by id, each once.
    async fn known_credit_sources(&self, ids: &[FineId]) -> Result<Vec<FineId>, StoreError>;

    /// Writes a stage's changes all-or-nothing, upserting each record by
    /// its natural key. Fails with `Conflict`, writing nothing, if the
    /// change set would alter a Bursar transaction that went out in an
    /// export (writing it again unchanged is fine), or if a key in
    /// `reconciled_alma` is not stored. Takes the change set by value: an
    /// import's holds every record of a first import, and a copy would
    /// double the memory the import needs.
    async fn apply(&self, changes: ChangeSet) -> Result<(), StoreError>;

    // ---- Direction 1, export and send (SPEC 5, 6) ----

    /// Every fine with at least one pending Alma transaction, ordered by
    /// id: the export reads their ledgers a slice at a time.
    async fn fines_with_pending_alma(&self) -> Result<Vec<FineId>, StoreError>;

    /// Every Bursar transaction pending export, with its account line,
    /// ordered by reference then `n`.
    async fn pending_export(&self) -> Result<Vec<ExportItem>, StoreError>;

    /// Commits a new export all-or-nothing: stores the export record, sets
    /// the billing of `billed_lines`, and marks each listed transaction as
    /// exported in it. Fails with `Conflict` if the sequence number exists
    /// or a listed transaction is no longer pending.
    async fn commit_export(&self, commit: &ExportCommit) -> Result<(), StoreError>;

    /// The items of an export, ordered by reference then `n`: what its
    /// files are rendered from, byte for byte the same on every render.
    async fn export_items(&self, seq: u64) -> Result<Vec<ExportItem>, StoreError>;

    async fn export(&self, seq: u64) -> Result<Option<Export>, StoreError>;

    /// The export with the highest sequence number.
    async fn last_export(&self) -> Result<Option<Export>, StoreError>;

    /// Exports not yet sent, oldest first.
    async fn unsent_exports(&self) -> Result<Vec<Export>, StoreError>;

    /// Every export that carried a transaction of this fine, oldest first.
    async fn exports_of_fine(&self, id: &FineId) -> Result<Vec<Export>, StoreError>;

    /// Records the export's sent time. Fails with `Conflict` if there is no
    /// export with this sequence number.
    async fn mark_export_sent(&self, seq: u64, at: DateTime<Utc>) -> Result<(), StoreError>;

    // ---- Direction 2, payments (SPEC 7) ----

    /// The stored payment records among `keys`, ordered by key.
    async fn payment_records(&self, keys: &[String]) -> Result<Vec<PaymentRecord>, StoreError>;

    /// Payment records matched to any of these fines, ordered by fine id,
    /// then oldest first (SPEC 4.7 asks whether an Alma payment was posted
    /// by Direction 2; an import asks it for every fine with a payment).
    async fn payment_records_of_fines(
        &self,
        ids: &[FineId],
    ) -> Result<Vec<PaymentRecord>, StoreError>;

    /// Payment records matched to this fine, oldest first.
    async fn payment_records_of_fine(&self, id: &FineId) -> Result<Vec<PaymentRecord>, StoreError> {
        self.payment_records_of_fines(std::slice::from_ref(id))
            .await
    }

    /// Upserts one payment record by key. Durable when it returns: the
    /// *posting* record must be on disk before the POST to Alma (7.5).
    async fn put_payment_record(&self, record: &PaymentRecord) -> Result<(), StoreError>;

    // ---- Jobs ----

    /// Records a new job In Progress with the next sequence number.
    async fn start_job(&self, kind: JobKind, at: DateTime<Utc>) -> Result<Job, StoreError>;

    /// Stores the job's final state (status, finish time, counts, problems),
    /// by its sequence number.
    async fn finish_job(&self, job: &Job) -> Result<(), StoreError>;

    /// The most recent job (highest sequence number) of this kind that
    /// succeeded.
    async fn last_successful_job(&self, kind: JobKind) -> Result<Option<Job>, StoreError>;

    /// The jobs still recorded In Progress, oldest first. A run that holds
    /// the run lock knows these are of runs that died before recording
    /// their end.
    async fn jobs_in_progress(&self) -> Result<Vec<Job>, StoreError>;

    // ---- Backups (SPEC 8) ----

    /// Every record, ordered by natural key.
    async fn dump(&self) -> Result<StoreDump, StoreError>;

    /// Replaces every record with the dump's, all-or-nothing: a failed
    /// load leaves the store as it was.
    async fn load(&self, dump: &StoreDump) -> Result<(), StoreError>;
}

/// The ledgers of `fines`, put together from their records (a record of
/// another fine is left out) and ordered as [`FineLedger`] documents.
pub(crate) fn assemble_ledgers(
    fines: Vec<Fine>,
    alma: Vec<AlmaTransaction>,
    lines: Vec<BursarAccountLine>,
    bursar: Vec<BursarTransaction>,
) -> Vec<FineLedger> {
    let mut ledgers: BTreeMap<FineId, FineLedger> = fines
        .into_iter()
        .map(|fine| {
            let ledger = FineLedger {
                fine,
                alma: Vec::new(),
                lines: Vec::new(),
                bursar: Vec::new(),
            };
            (ledger.fine.id.clone(), ledger)
        })
        .collect();
    distribute(&mut ledgers, alma, |t| &t.fine_id, |l| &mut l.alma);
    distribute(&mut ledgers, lines, |l| &l.reference, |l| &mut l.lines);
    distribute(&mut ledgers, bursar, |t| &t.reference, |l| &mut l.bursar);
    ledgers
        .into_values()
        .map(|mut ledger| {
            sort_ledger(&mut ledger);
            ledger
        })
        .collect()
}

/// Moves each record into its fine's ledger, each ledger's vector sized
/// once: pushed one by one, a vector holds room for at least four, and a
/// full re-import's 200,000 ledgers paid ~150 MiB for that slack.
fn distribute<T>(
    ledgers: &mut BTreeMap<FineId, FineLedger>,
    records: Vec<T>,
    fine_of: impl Fn(&T) -> &FineId,
    part: impl Fn(&mut FineLedger) -> &mut Vec<T>,
) {
    let mut counts: BTreeMap<&FineId, usize> = BTreeMap::new();
    for record in &records {
        *counts.entry(fine_of(record)).or_default() += 1;
    }
    for (id, count) in counts {
        if let Some(ledger) = ledgers.get_mut(id) {
            part(ledger).reserve_exact(count);
        }
    }
    for record in records {
        if let Some(ledger) = ledgers.get_mut(fine_of(&record)) {
            part(ledger).push(record);
        }
    }
}

/// Puts a ledger's parts in the order [`FineLedger`] documents.
pub(crate) fn sort_ledger(ledger: &mut FineLedger) {
    ledger.alma.sort_by_key(|t| (t.created_at, t.key()));
    ledger.lines.sort_by(|a, b| a.reference.cmp(&b.reference));
    ledger
        .bursar
        .sort_by(|a, b| (&a.reference, a.n).cmp(&(&b.reference, b.n)));
}

/// Puts every collection of a dump in natural-key order.
pub(crate) fn sort_dump(dump: &mut StoreDump) {
    dump.patrons.sort_by(|a, b| a.id.cmp(&b.id));
    dump.fines.sort_by(|a, b| a.id.cmp(&b.id));
    dump.alma_transactions.sort_by_key(AlmaTransaction::key);
    dump.account_lines
        .sort_by(|a, b| a.reference.cmp(&b.reference));
    dump.bursar_transactions
        .sort_by(|a, b| (&a.reference, a.n).cmp(&(&b.reference, b.n)));
    dump.exports.sort_by_key(|e| e.seq);
    dump.payments.sort_by(|a, b| a.key.cmp(&b.key));
    dump.jobs.sort_by_key(|j| j.seq);
}

/// The name a job kind is stored under (its serde name).
pub(crate) fn job_kind_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::AlmaImport => "AlmaImport",
        JobKind::BursExport => "BursExport",
        JobKind::BursSend => "BursSend",
        JobKind::BursarPayments => "BursarPayments",
        JobKind::Backup => "Backup",
        JobKind::Restore => "Restore",
    }
}

/// The name a job status is stored under (its serde name).
pub(crate) fn job_status_name(status: sync_core::records::JobStatus) -> &'static str {
    use sync_core::records::JobStatus;
    match status {
        JobStatus::InProgress => "InProgress",
        JobStatus::Success => "Success",
        JobStatus::Failed => "Failed",
    }
}

/// The duplicates in a list of keys, for refusing a commit that lists a
/// transaction twice.
/// The order of [`FineStore::payment_records_of_fines`].
pub(crate) fn sort_payment_records(records: &mut [PaymentRecord]) {
    records.sort_by(|a, b| {
        (&a.fine_id, a.first_seen_at, &a.key).cmp(&(&b.fine_id, b.first_seen_at, &b.key))
    });
}

pub(crate) fn first_duplicate<T: Ord + Clone>(items: &[T]) -> Option<T> {
    let mut seen = std::collections::BTreeSet::new();
    items.iter().find(|item| !seen.insert(*item)).cloned()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use sync_core::Money;
    use sync_core::records::{AlmaTxnId, AlmaTxnType, FeeType, ItemDetails};

    use super::*;

    fn fine(id: &str) -> Fine {
        let at = NaiveDate::from_ymd_opt(2024, 12, 1)
            .and_then(|d| d.and_hms_opt(10, 0, 0))
            .unwrap_or_default();
        Fine {
            id: FineId::new(id),
            patron_id: PatronId::new("P1"),
            loan_id: None,
            fee_type: FeeType::OverdueFine,
            closed: false,
            created_at: at,
            status_at: at,
            original_amount: Money::from_cents(500),
            remaining_amount: Money::from_cents(500),
            comment: None,
            item: ItemDetails::default(),
        }
    }

    fn txn(id: &str, fine: &Fine, minutes: i64) -> AlmaTransaction {
        AlmaTransaction {
            id: Some(AlmaTxnId::new(id)),
            fine_id: fine.id.clone(),
            kind: AlmaTxnType::Fine,
            amount: Money::from_cents(100),
            created_at: fine.created_at + chrono::TimeDelta::minutes(minutes),
            note: None,
            pending: false,
            source_credit_fine: None,
        }
    }

    /// Each ledger gets its own records, ordered, in vectors of exactly
    /// their size; a record of a fine not asked for is left out.
    #[test]
    fn ledgers_are_assembled_in_vectors_of_their_size() {
        let (f1, f2) = (fine("F1"), fine("F2"));
        let alma = vec![
            txn("T3", &f1, 3),
            txn("T9", &fine("F9"), 0),
            txn("T1", &f1, 1),
            txn("T2", &f2, 2),
        ];
        let ledgers = assemble_ledgers(vec![f2.clone(), f1.clone()], alma, vec![], vec![]);

        let ids: Vec<(&str, Vec<&str>)> = ledgers
            .iter()
            .map(|l| {
                let alma = l
                    .alma
                    .iter()
                    .filter_map(|t| t.id.as_ref())
                    .map(|id| id.0.as_str());
                (l.fine.id.as_str(), alma.collect())
            })
            .collect();
        assert_eq!(ids, [("F1", vec!["T1", "T3"]), ("F2", vec!["T2"])]);
        for ledger in &ledgers {
            assert_eq!(ledger.alma.capacity(), ledger.alma.len());
            assert_eq!(ledger.lines.capacity(), 0);
        }
    }
}
