//! The production store: MongoDB.
//!
//! One collection per record kind (`patrons`, `fines`, `alma_transactions`,
//! `account_lines`, `bursar_transactions`, `exports`, `payments`, `jobs`).
//! Each record is stored as its own serde form as a BSON document (money as
//! a decimal string, never a double), with its natural key as `_id`, which
//! makes the key unique: fine id, Alma transaction key, account line
//! reference, `reference#n` for a Bursar transaction (plus a unique index
//! on `(reference, n)`), export seq, payment key, job seq. Bursar
//! transactions carry two derived fields for the lookups, `export_pending`
//! and `export_seq`, and exports a derived `sent`; reads ignore them. The
//! indexes the lookups need are created on [`MongoStore::connect`].
//! Results are sorted in Rust, so orderings do not depend on the server's
//! collation.
//!
//! Batches are written with the `update` command, up to [`BATCH`] upserts
//! per round trip; it works on every server version (`client.bulk_write`
//! needs MongoDB 8).
//!
//! ## All-or-nothing
//!
//! When the server runs transactions (a replica set, even of one node, or
//! a sharded cluster: production should be one), `apply`, `commit_export`,
//! `load` and `start_job` each run in one session transaction, committed
//! with write concern majority and journal; a transaction that fails with
//! a transient error (for example a write conflict with a transaction left
//! open by a process that died) is retried from the start with backoff for
//! up to [`TRANSIENT_RETRY_FOR`].
//!
//! On a standalone server without transactions the same writes run one
//! batch at a time, checks first, in an order chosen so that a crash
//! between two of them leaves nothing that a re-run cannot complete:
//!
//! - `apply`: first every check (an exported Bursar transaction the change
//!   set would alter refuses it whole), then patrons, account lines, Bursar
//!   transactions, fines, and Alma transactions last. The markers that tell
//!   a re-run "this was done" come last: an Alma transaction stops being
//!   pending only after the Bursar transactions computed from it are
//!   stored, so the re-run sees A - B = 0 and just clears the flag, a
//!   credit's distributed transactions (`source_credit_fine`) are written
//!   after the other records, and the `reconciled_alma` flags last. A
//!   crash inside one batch can still leave part of a credit's
//!   distribution: use a replica set.
//! - `commit_export`: checks, then the export record, then the billing of
//!   the lines, then the transactions are marked exported. A crash leaves
//!   an export record whose items are a subset of what was planned (its
//!   files render from the stored items, so each charge still goes out in
//!   exactly one export), and the unmarked transactions stay pending for
//!   the next export.
//! - `load`: every collection is emptied, then filled; re-running the
//!   restore completes it.
//! - `start_job`: the job number is claimed by an insert with a unique
//!   `_id`, so two runs never share one.
//!
//! `put_payment_record` is one document written with write concern
//! majority and journal: durable when it returns (SPEC 7.5).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::action::Action;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{
    ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};
use mongodb::options::{Acknowledgment, IndexOptions, TransactionOptions, WriteConcern};
use mongodb::{Client, ClientSession, Database, IndexModel};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sync_core::records::{
    AlmaTransaction, BursarAccountLine, BursarTransaction, Export, ExportState, Fine, FineId, Job,
    JobKind, JobStatus, LoanId, Patron, PatronId, PaymentRecord,
};

use crate::{
    ChangeSet, ExportCommit, ExportItem, FineLedger, FineStore, StoreDump, StoreError,
    assemble_ledgers, first_duplicate, job_kind_name, job_status_name, sort_dump,
    sort_payment_records,
};

/// Upserts per `update` command.
pub const BATCH: usize = 500;
/// Ids per `$in` filter.
const IN_CHUNK: usize = 1000;
/// How long a transaction failing with a transient error is retried.
pub const TRANSIENT_RETRY_FOR: Duration = Duration::from_secs(90);

const PATRONS: &str = "patrons";
const FINES: &str = "fines";
const ALMA: &str = "alma_transactions";
const LINES: &str = "account_lines";
const BURSAR: &str = "bursar_transactions";
const EXPORTS: &str = "exports";
const PAYMENTS: &str = "payments";
const JOBS: &str = "jobs";
const COLLECTIONS: [&str; 8] = [PATRONS, FINES, ALMA, LINES, BURSAR, EXPORTS, PAYMENTS, JOBS];

const DUPLICATE_KEY: i64 = 11000;

/// Where the MongoDB store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MongoConfig {
    /// A MongoDB connection string, e.g.
    /// `mongodb://user:password@db1,db2/?replicaSet=rs0`.
    pub uri: String,
    /// The database holding the collections, e.g. `bursar_sync`.
    pub database: String,
}

/// The state in a MongoDB database.
pub struct MongoStore {
    client: Client,
    db: Database,
    database: String,
    transactions: bool,
}

/// Why an internal step failed, before it is named for the caller.
enum Fail {
    Driver(mongodb::error::Error),
    /// A write error reported in a command's reply.
    Write {
        record: String,
        code: i64,
        message: String,
    },
    Store(StoreError),
}

impl From<mongodb::error::Error> for Fail {
    fn from(e: mongodb::error::Error) -> Fail {
        Fail::Driver(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

impl Fail {
    fn transient(&self) -> bool {
        matches!(self, Fail::Driver(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR))
    }
}

type Session = Option<ClientSession>;

impl MongoStore {
    /// Connects, checks that the server answers, learns whether it runs
    /// transactions, and creates the indexes (a no-op when they exist).
    pub async fn connect(config: &MongoConfig) -> Result<MongoStore, StoreError> {
        let store = describe_database(&config.database);
        let unavailable = |e: mongodb::error::Error| StoreError::Unavailable {
            store: store.clone(),
            operation: "connect",
            message: redact(&config.uri, &e.to_string()),
        };
        let client = Client::with_uri_str(&config.uri)
            .await
            .map_err(unavailable)?;
        let db = client.database(&config.database);
        let hello = db
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(unavailable)?;
        let transactions = hello.contains_key("setName")
            || hello.get_str("msg").is_ok_and(|msg| msg == "isdbgrid");
        if !transactions {
            tracing::warn!(
                store = %store,
                "the MongoDB server runs no transactions (standalone); writes fall back to an ordered, re-runnable sequence. Run a replica set (one node is enough) for all-or-nothing writes"
            );
        }
        let mongo = MongoStore {
            client,
            db,
            database: config.database.clone(),
            transactions,
        };
        mongo.create_indexes().await.map_err(unavailable)?;
        Ok(mongo)
    }

    /// Whether multi-document writes run in transactions.
    pub fn uses_transactions(&self) -> bool {
        self.transactions
    }

    /// Writes without transactions even when the server has them: the
    /// standalone fallback, so that tests can exercise it.
    #[doc(hidden)]
    pub fn without_transactions(mut self) -> MongoStore {
        self.transactions = false;
        self
    }

    async fn create_indexes(&self) -> mongodb::error::Result<()> {
        let index = |keys: Document, unique: bool| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(unique).build())
                .build()
        };
        let wanted = [
            (FINES, index(doc! { "loan_id": 1 }, false)),
            (ALMA, index(doc! { "fine_id": 1 }, false)),
            (ALMA, index(doc! { "pending": 1, "fine_id": 1 }, false)),
            (ALMA, index(doc! { "source_credit_fine": 1 }, false)),
            (BURSAR, index(doc! { "reference": 1, "n": 1 }, true)),
            (BURSAR, index(doc! { "export_pending": 1 }, false)),
            (BURSAR, index(doc! { "export_seq": 1 }, false)),
            (EXPORTS, index(doc! { "sent": 1 }, false)),
            (PAYMENTS, index(doc! { "fine_id": 1 }, false)),
            (
                JOBS,
                index(doc! { "kind": 1, "status": 1, "_id": -1 }, false),
            ),
        ];
        for (collection, model) in wanted {
            self.db
                .collection::<Document>(collection)
                .create_index(model)
                .await?;
        }
        Ok(())
    }

    fn error(&self, operation: &'static str, fail: Fail) -> StoreError {
        match fail {
            Fail::Store(e) => e,
            Fail::Driver(e) => StoreError::Unavailable {
                store: self.describe(),
                operation,
                message: e.to_string(),
            },
            Fail::Write {
                record,
                code,
                message,
            } => StoreError::Unavailable {
                store: self.describe(),
                operation,
                message: format!("writing {record} failed (code {code}): {message}"),
            },
        }
    }

    fn conflict(&self, message: impl Into<String>) -> Fail {
        Fail::Store(StoreError::Conflict {
            store: self.describe(),
            message: message.into(),
        })
    }

    fn corrupt(&self, record: impl Into<String>, message: impl std::fmt::Display) -> Fail {
        Fail::Store(StoreError::Corrupt {
            store: self.describe(),
            record: record.into(),
            message: message.to_string(),
        })
    }

    // ---- Transactions ----

    async fn begin(&self) -> Result<Session, Fail> {
        if !self.transactions {
            return Ok(None);
        }
        let mut session = self.client.start_session().await?;
        session
            .start_transaction()
            .with_options(
                TransactionOptions::builder()
                    .write_concern(durable())
                    .build(),
            )
            .await?;
        Ok(Some(session))
    }

    async fn finish<T>(&self, session: Session, result: Result<T, Fail>) -> Result<T, Fail> {
        let Some(mut session) = session else {
            return result;
        };
        match result {
            Ok(value) => {
                let mut attempts = 0;
                loop {
                    match session.commit_transaction().await {
                        Ok(()) => return Ok(value),
                        Err(e)
                            if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                                && attempts < 5 =>
                        {
                            attempts += 1;
                        }
                        Err(e) => return Err(Fail::Driver(e)),
                    }
                }
            }
            Err(fail) => {
                // The server may have aborted it already; either way the
                // transaction's writes are gone.
                let _ = session.abort_transaction().await;
                Err(fail)
            }
        }
    }

    /// Runs `attempt` (which begins and finishes its own transaction)
    /// again while it fails with a transient transaction error.
    async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        attempt: F,
    ) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Fail>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match attempt().await {
                Err(fail) if fail.transient() && started.elapsed() < TRANSIENT_RETRY_FOR => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(3));
                }
                result => return result.map_err(|fail| self.error(operation, fail)),
            }
        }
    }

    // ---- Plumbing ----

    async fn command(&self, session: &mut Session, command: Document) -> Result<Document, Fail> {
        let action = self.db.run_command(command);
        Ok(match session {
            Some(session) => action.session(session).await?,
            None => action.await?,
        })
    }

    async fn find(
        &self,
        session: &mut Session,
        collection: &str,
        filter: Document,
    ) -> Result<Vec<Document>, Fail> {
        self.find_projected(session, collection, filter, None).await
    }

    async fn find_projected(
        &self,
        session: &mut Session,
        collection: &str,
        filter: Document,
        projection: Option<Document>,
    ) -> Result<Vec<Document>, Fail> {
        let coll = self.db.collection::<Document>(collection);
        let action = coll
            .find(filter)
            .optional(projection, |a, p| a.projection(p));
        Ok(match session {
            Some(session) => {
                let mut cursor = action.session(&mut *session).await?;
                cursor.stream(session).try_collect().await?
            }
            None => action.await?.try_collect().await?,
        })
    }

    /// The string values of `field` in the documents where `in_field` is
    /// one of `values` (and `extra` holds), read in chunks.
    async fn strings_in(
        &self,
        session: &mut Session,
        collection: &str,
        in_field: &str,
        values: &[Bson],
        extra: &Document,
        field: &str,
    ) -> Result<Vec<String>, Fail> {
        let mut found = Vec::new();
        for chunk in values.chunks(IN_CHUNK) {
            let mut filter = doc! { in_field: { "$in": chunk.to_vec() } };
            filter.extend(extra.clone());
            let projection = doc! { field: 1 };
            for document in self
                .find_projected(session, collection, filter, Some(projection))
                .await?
            {
                found.push(self.string_field(collection, &document, field)?);
            }
        }
        Ok(found)
    }

    fn string_field(
        &self,
        collection: &str,
        document: &Document,
        field: &str,
    ) -> Result<String, Fail> {
        match document.get(field) {
            Some(Bson::String(value)) => Ok(value.clone()),
            other => {
                let id = document
                    .get("_id")
                    .map_or_else(|| "without _id".into(), bson_display);
                Err(self.corrupt(
                    format!("{} {id}", record_kind(collection)),
                    format!("field {field} is {other:?}, expected a string"),
                ))
            }
        }
    }

    /// The one document with the highest `_id` matching `filter`.
    async fn find_last(
        &self,
        session: &mut Session,
        collection: &str,
        filter: Document,
    ) -> Result<Option<Document>, Fail> {
        let coll = self.db.collection::<Document>(collection);
        let action = coll.find(filter).sort(doc! { "_id": -1 }).limit(1);
        Ok(match session {
            Some(session) => {
                let mut cursor = action.session(&mut *session).await?;
                cursor.next(session).await.transpose()?
            }
            None => action.await?.try_next().await?,
        })
    }

    /// `find` with `{field: {$in: values}}` in chunks.
    async fn find_in(
        &self,
        session: &mut Session,
        collection: &str,
        field: &str,
        values: &[Bson],
        extra: &Document,
    ) -> Result<Vec<Document>, Fail> {
        let mut found = Vec::new();
        for chunk in values.chunks(IN_CHUNK) {
            let mut filter = doc! { field: { "$in": chunk.to_vec() } };
            filter.extend(extra.clone());
            found.extend(self.find(session, collection, filter).await?);
        }
        Ok(found)
    }

    /// Runs `update` commands of up to [`BATCH`] statements; `updates` are
    /// (record name, `{q, u, upsert}`) pairs.
    async fn update_batches(
        &self,
        session: &mut Session,
        collection: &str,
        updates: Vec<(String, Document)>,
    ) -> Result<(), Fail> {
        for chunk in updates.chunks(BATCH) {
            let statements: Vec<Bson> = chunk
                .iter()
                .map(|(_, statement)| Bson::Document(statement.clone()))
                .collect();
            let reply = self
                .command(
                    session,
                    doc! { "update": collection, "updates": statements, "ordered": true },
                )
                .await?;
            if let Ok(errors) = reply.get_array("writeErrors")
                && let Some(Bson::Document(first)) = errors.first()
            {
                let index = bson_int(first.get("index")).unwrap_or(0);
                let record = usize::try_from(index)
                    .ok()
                    .and_then(|i| chunk.get(i))
                    .map_or_else(
                        || format!("a record of {collection}"),
                        |(name, _)| name.clone(),
                    );
                return Err(Fail::Write {
                    record,
                    code: bson_int(first.get("code")).unwrap_or(0),
                    message: first.get_str("errmsg").unwrap_or("no message").to_string(),
                });
            }
            if let Ok(error) = reply.get_document("writeConcernError") {
                return Err(Fail::Write {
                    record: format!("a batch of {collection}"),
                    code: bson_int(error.get("code")).unwrap_or(0),
                    message: error.get_str("errmsg").unwrap_or("no message").to_string(),
                });
            }
        }
        Ok(())
    }

    fn parse<T: DeserializeOwned>(&self, collection: &str, document: Document) -> Result<T, Fail> {
        let id = document
            .get("_id")
            .map_or_else(|| "without _id".to_string(), bson_display);
        bson::from_document(document)
            .map_err(|e| self.corrupt(format!("{} {id}", record_kind(collection)), e))
    }

    fn parse_all<T: DeserializeOwned>(
        &self,
        collection: &str,
        documents: Vec<Document>,
    ) -> Result<Vec<T>, Fail> {
        documents
            .into_iter()
            .map(|document| self.parse(collection, document))
            .collect()
    }

    fn to_doc<T: Serialize>(&self, record: &str, value: &T) -> Result<Document, Fail> {
        bson::to_document(value).map_err(|e| self.corrupt(record, e))
    }

    fn seq(&self, what: &str, seq: u64) -> Result<i64, Fail> {
        i64::try_from(seq)
            .map_err(|_| self.conflict(format!("{what} {seq} is too large for the store")))
    }

    // ---- Documents ----

    fn patron_doc(&self, patron: &Patron) -> Result<Document, Fail> {
        let mut document = self.to_doc(&format!("patron {}", patron.id), patron)?;
        document.insert("_id", patron.id.as_str());
        Ok(document)
    }

    fn fine_doc(&self, fine: &Fine) -> Result<Document, Fail> {
        let mut document = self.to_doc(&format!("fine {}", fine.id), fine)?;
        document.insert("_id", fine.id.as_str());
        Ok(document)
    }

    fn alma_doc(&self, txn: &AlmaTransaction) -> Result<Document, Fail> {
        let key = txn.key();
        let mut document = self.to_doc(&format!("Alma transaction {key}"), txn)?;
        document.insert("_id", key);
        Ok(document)
    }

    fn line_doc(&self, line: &BursarAccountLine) -> Result<Document, Fail> {
        let mut document = self.to_doc(&format!("account line {}", line.reference), line)?;
        document.insert("_id", line.reference.as_str());
        Ok(document)
    }

    fn bursar_doc(&self, txn: &BursarTransaction) -> Result<Document, Fail> {
        let name = bursar_name(&txn.reference, txn.n);
        let mut document = self.to_doc(&name, txn)?;
        document.insert("_id", bursar_id(&txn.reference, txn.n));
        let (pending, seq) = match txn.export {
            ExportState::Pending => (true, Bson::Null),
            ExportState::Exported(seq) => (false, Bson::Int64(self.seq("export", seq)?)),
            ExportState::NotExported => (false, Bson::Null),
        };
        document.insert("export_pending", pending);
        document.insert("export_seq", seq);
        Ok(document)
    }

    fn export_doc(&self, export: &Export) -> Result<Document, Fail> {
        let mut document = self.to_doc(&format!("export {}", export.seq), export)?;
        document.insert("_id", self.seq("export", export.seq)?);
        document.insert("sent", export.sent_at.is_some());
        Ok(document)
    }

    fn payment_doc(&self, payment: &PaymentRecord) -> Result<Document, Fail> {
        let mut document = self.to_doc(&format!("payment record {}", payment.key), payment)?;
        document.insert("_id", payment.key.as_str());
        Ok(document)
    }

    fn job_doc(&self, job: &Job) -> Result<Document, Fail> {
        let mut document = self.to_doc(&format!("job {}", job.seq), job)?;
        document.insert("_id", self.seq("job", job.seq)?);
        Ok(document)
    }

    /// Plain upserts by `_id` of (name, document) pairs.
    async fn upsert(
        &self,
        session: &mut Session,
        collection: &str,
        documents: Vec<(String, Document)>,
    ) -> Result<(), Fail> {
        let updates = documents
            .into_iter()
            .map(|(name, document)| {
                let id = document.get("_id").cloned().unwrap_or(Bson::Null);
                (
                    name,
                    doc! { "q": { "_id": id }, "u": document, "upsert": true },
                )
            })
            .collect();
        self.update_batches(session, collection, updates).await
    }

    // ---- Operations inside (or without) a transaction ----

    async fn ledgers_of(
        &self,
        session: &mut Session,
        ids: &[FineId],
    ) -> Result<Vec<FineLedger>, Fail> {
        let ids: BTreeSet<&FineId> = ids.iter().collect();
        let keys: Vec<Bson> = ids.iter().map(|id| Bson::from(id.as_str())).collect();
        let none = Document::new();
        let fines: Vec<Fine> = self.parse_all(
            FINES,
            self.find_in(session, FINES, "_id", &keys, &none).await?,
        )?;
        let stored: Vec<Bson> = fines.iter().map(|f| Bson::from(f.id.as_str())).collect();
        let alma: Vec<AlmaTransaction> = self.parse_all(
            ALMA,
            self.find_in(session, ALMA, "fine_id", &stored, &none)
                .await?,
        )?;
        let lines: Vec<BursarAccountLine> = self.parse_all(
            LINES,
            self.find_in(session, LINES, "_id", &stored, &none).await?,
        )?;
        let bursar: Vec<BursarTransaction> = self.parse_all(
            BURSAR,
            self.find_in(session, BURSAR, "reference", &stored, &none)
                .await?,
        )?;
        Ok(assemble_ledgers(fines, alma, lines, bursar))
    }

    /// Bursar transactions matching `filter`, with their lines, ordered.
    async fn items_where(&self, filter: Document) -> Result<Vec<ExportItem>, Fail> {
        let mut session = None;
        let mut transactions: Vec<BursarTransaction> =
            self.parse_all(BURSAR, self.find(&mut session, BURSAR, filter).await?)?;
        transactions.sort_by(|a, b| (&a.reference, a.n).cmp(&(&b.reference, b.n)));
        let references: BTreeSet<&str> =
            transactions.iter().map(|t| t.reference.as_str()).collect();
        let references: Vec<Bson> = references.into_iter().map(Bson::from).collect();
        let lines: Vec<BursarAccountLine> = self.parse_all(
            LINES,
            self.find_in(&mut session, LINES, "_id", &references, &Document::new())
                .await?,
        )?;
        let lines: BTreeMap<FineId, BursarAccountLine> = lines
            .into_iter()
            .map(|line| (line.reference.clone(), line))
            .collect();
        transactions
            .into_iter()
            .map(|transaction| {
                let line = lines.get(&transaction.reference).cloned().ok_or_else(|| {
                    self.corrupt(
                        bursar_name(&transaction.reference, transaction.n),
                        "its account line is missing",
                    )
                })?;
                Ok(ExportItem { transaction, line })
            })
            .collect()
    }

    /// Refuses a change set that would alter an exported Bursar
    /// transaction, before anything is written.
    async fn check_frozen(&self, session: &mut Session, changes: &ChangeSet) -> Result<(), Fail> {
        let ids: Vec<Bson> = changes
            .all_bursar_transactions()
            .map(|t| Bson::from(bursar_id(&t.reference, t.n)))
            .collect();
        let exported = self
            .find_in(
                session,
                BURSAR,
                "_id",
                &ids,
                &doc! { "export_seq": { "$ne": null } },
            )
            .await?;
        let stored: Vec<BursarTransaction> = self.parse_all(BURSAR, exported)?;
        let stored: BTreeMap<(FineId, u32), BursarTransaction> = stored
            .into_iter()
            .map(|t| ((t.reference.clone(), t.n), t))
            .collect();
        for txn in changes.all_bursar_transactions() {
            if let Some(old) = stored.get(&(txn.reference.clone(), txn.n))
                && old != txn
            {
                return Err(self.frozen(txn));
            }
        }
        Ok(())
    }

    /// Refuses a change set that would mark an unstored Alma transaction
    /// reconciled, naming it, before anything is written. Returns the keys
    /// to mark, each once, in order.
    async fn check_reconciled<'c>(
        &self,
        session: &mut Session,
        changes: &'c ChangeSet,
    ) -> Result<Vec<&'c str>, Fail> {
        let reconciled: BTreeSet<&str> =
            changes.reconciled_alma.iter().map(String::as_str).collect();
        let keys: Vec<Bson> = reconciled.iter().map(|key| Bson::from(*key)).collect();
        let stored: BTreeSet<String> = self
            .strings_in(session, ALMA, "_id", &keys, &Document::new(), "_id")
            .await?
            .into_iter()
            .collect();
        if let Some(missing) = reconciled.iter().find(|key| !stored.contains(**key)) {
            return Err(self.conflict(format!(
                "Alma transaction {missing} is not stored and cannot be marked reconciled; nothing of the change set was written"
            )));
        }
        Ok(reconciled.into_iter().collect())
    }

    fn frozen(&self, txn: &BursarTransaction) -> Fail {
        self.conflict(format!(
            "{} went out in an export and cannot be changed; nothing of the change set was written",
            bursar_name(&txn.reference, txn.n)
        ))
    }

    async fn apply_in(&self, session: &mut Session, changes: &ChangeSet) -> Result<(), Fail> {
        if session.is_none() {
            self.check_frozen(session, changes).await?;
        }
        let reconciled = self.check_reconciled(session, changes).await?;
        let patrons = changes
            .patrons
            .iter()
            .map(|p| Ok((format!("patron {}", p.id), self.patron_doc(p)?)))
            .collect::<Result<Vec<_>, Fail>>()?;
        self.upsert(session, PATRONS, patrons).await?;
        let lines = changes
            .all_account_lines()
            .map(|l| Ok((format!("account line {}", l.reference), self.line_doc(l)?)))
            .collect::<Result<Vec<_>, Fail>>()?;
        self.upsert(session, LINES, lines).await?;

        // An exported transaction matches only when written unchanged;
        // otherwise the upsert collides with its `_id` and is refused.
        let mut bursar = Vec::new();
        for txn in changes.all_bursar_transactions() {
            let document = self.bursar_doc(txn)?;
            let id = bursar_id(&txn.reference, txn.n);
            let field = |name: &str| document.get(name).cloned().unwrap_or(Bson::Null);
            let unchanged = doc! {
                "kind": field("kind"),
                "amount": field("amount"),
                "created_at": field("created_at"),
                "export_pending": field("export_pending"),
                "export_seq": field("export_seq"),
            };
            let filter = doc! {
                "_id": id,
                "$or": [ { "export_seq": null }, unchanged ],
            };
            bursar.push((
                bursar_name(&txn.reference, txn.n),
                doc! { "q": filter, "u": document, "upsert": true },
            ));
        }
        match self.update_batches(session, BURSAR, bursar).await {
            Err(Fail::Write { code, record, .. }) if code == DUPLICATE_KEY => {
                return Err(self.conflict(format!(
                    "{record} went out in an export and cannot be changed; nothing of the change set was written"
                )));
            }
            other => other?,
        }

        let fines = changes
            .all_fines()
            .map(|f| Ok((format!("fine {}", f.id), self.fine_doc(f)?)))
            .collect::<Result<Vec<_>, Fail>>()?;
        self.upsert(session, FINES, fines).await?;
        // Credit distributions last: they mark a credit fine as taken in.
        let mut alma: Vec<&AlmaTransaction> = changes.all_alma_transactions().collect();
        alma.sort_by_key(|t| t.source_credit_fine.is_some());
        let alma = alma
            .into_iter()
            .map(|t| Ok((format!("Alma transaction {}", t.key()), self.alma_doc(t)?)))
            .collect::<Result<Vec<_>, Fail>>()?;
        self.upsert(session, ALMA, alma).await?;
        // Last of all: a reconciled flag says the Bursar side is written.
        let coll = self.db.collection::<Document>(ALMA);
        for chunk in reconciled.chunks(IN_CHUNK) {
            let filter = doc! { "_id": { "$in": chunk.to_vec() } };
            let update = doc! { "$set": { "pending": false } };
            let result = match session {
                Some(s) => coll.update_many(filter, update).session(s).await?,
                None => coll.update_many(filter, update).await?,
            };
            if result.matched_count != chunk.len() as u64 {
                return Err(self.conflict(format!(
                    "{} of {} Alma transactions to mark reconciled are not stored; nothing of the change set was written",
                    chunk.len() as u64 - result.matched_count,
                    chunk.len()
                )));
            }
        }
        Ok(())
    }

    async fn commit_in(&self, session: &mut Session, commit: &ExportCommit) -> Result<(), Fail> {
        let seq = commit.export.seq;
        let seq_id = self.seq("export", seq)?;
        if let Some((reference, n)) = first_duplicate(&commit.transactions) {
            return Err(self.conflict(format!(
                "export {seq} lists {} twice",
                bursar_name(&reference, n)
            )));
        }
        if !self
            .find(session, EXPORTS, doc! { "_id": seq_id })
            .await?
            .is_empty()
        {
            return Err(self.conflict(format!(
                "export sequence number {seq} is taken already; nothing was committed"
            )));
        }
        let ids: Vec<Bson> = commit
            .transactions
            .iter()
            .map(|(reference, n)| Bson::from(bursar_id(reference, *n)))
            .collect();
        let pending: BTreeSet<String> = self
            .strings_in(
                session,
                BURSAR,
                "_id",
                &ids,
                &doc! { "export_pending": true },
                "_id",
            )
            .await?
            .into_iter()
            .collect();
        if let Some((reference, n)) = commit
            .transactions
            .iter()
            .find(|(reference, n)| !pending.contains(&bursar_id(reference, *n)))
        {
            return Err(self.conflict(format!(
                "{} is not pending export (exported already, or not stored); export {seq} was not committed",
                bursar_name(reference, *n)
            )));
        }

        // The export record first, then billing, then the transactions
        // (the order matters without transactions; see the module doc).
        let document = self.export_doc(&commit.export)?;
        let inserted = match session {
            Some(s) => {
                self.db
                    .collection::<Document>(EXPORTS)
                    .insert_one(document)
                    .session(s)
                    .await
            }
            None => {
                self.db
                    .collection::<Document>(EXPORTS)
                    .insert_one(document)
                    .await
            }
        };
        match inserted {
            Err(e) if duplicate_key(&e) => {
                return Err(self.conflict(format!(
                    "export sequence number {seq} is taken already; nothing was committed"
                )));
            }
            other => {
                other?;
            }
        }
        let lines = commit
            .billed_lines
            .iter()
            .map(|l| Ok((format!("account line {}", l.reference), self.line_doc(l)?)))
            .collect::<Result<Vec<_>, Fail>>()?;
        self.upsert(session, LINES, lines).await?;

        let export_state = bson::to_bson(&ExportState::Exported(seq))
            .map_err(|e| self.corrupt(format!("export {seq}"), e))?;
        for chunk in ids.chunks(IN_CHUNK) {
            let filter = doc! { "_id": { "$in": chunk.to_vec() }, "export_pending": true };
            let update = doc! { "$set": {
                "export": export_state.clone(),
                "export_pending": false,
                "export_seq": seq_id,
            } };
            let coll = self.db.collection::<Document>(BURSAR);
            let result = match session {
                Some(s) => coll.update_many(filter, update).session(s).await?,
                None => coll.update_many(filter, update).await?,
            };
            if result.matched_count != chunk.len() as u64 {
                return Err(self.conflict(format!(
                    "a transaction of export {seq} stopped being pending while it was committed"
                )));
            }
        }
        Ok(())
    }

    async fn load_in(&self, session: &mut Session, dump: &StoreDump) -> Result<(), Fail> {
        for collection in COLLECTIONS {
            let coll = self.db.collection::<Document>(collection);
            match session {
                Some(s) => coll.delete_many(doc! {}).session(s).await?,
                None => coll.delete_many(doc! {}).await?,
            };
        }
        let batches: Vec<(&str, Vec<Document>)> = vec![
            (
                PATRONS,
                dump.patrons
                    .iter()
                    .map(|r| self.patron_doc(r))
                    .collect::<Result<_, _>>()?,
            ),
            (
                FINES,
                dump.fines
                    .iter()
                    .map(|r| self.fine_doc(r))
                    .collect::<Result<_, _>>()?,
            ),
            (
                ALMA,
                dump.alma_transactions
                    .iter()
                    .map(|r| self.alma_doc(r))
                    .collect::<Result<_, _>>()?,
            ),
            (
                LINES,
                dump.account_lines
                    .iter()
                    .map(|r| self.line_doc(r))
                    .collect::<Result<_, _>>()?,
            ),
            (
                BURSAR,
                dump.bursar_transactions
                    .iter()
                    .map(|r| self.bursar_doc(r))
                    .collect::<Result<_, _>>()?,
            ),
            (
                EXPORTS,
                dump.exports
                    .iter()
                    .map(|r| self.export_doc(r))
                    .collect::<Result<_, _>>()?,
            ),
            (
                PAYMENTS,
                dump.payments
                    .iter()
                    .map(|r| self.payment_doc(r))
                    .collect::<Result<_, _>>()?,
            ),
            (
                JOBS,
                dump.jobs
                    .iter()
                    .map(|r| self.job_doc(r))
                    .collect::<Result<_, _>>()?,
            ),
        ];
        for (collection, documents) in batches {
            if documents.is_empty() {
                continue;
            }
            let coll = self.db.collection::<Document>(collection);
            match session {
                Some(s) => coll.insert_many(documents).session(s).await?,
                None => coll.insert_many(documents).await?,
            };
        }
        Ok(())
    }
}

/// Write concern for what must survive a crash of the database server.
fn durable() -> WriteConcern {
    WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .journal(true)
        .build()
}

fn describe_database(database: &str) -> String {
    format!("mongodb:{database}")
}

fn bursar_id(reference: &FineId, n: u32) -> String {
    format!("{reference}#{n}")
}

fn bursar_name(reference: &FineId, n: u32) -> String {
    format!("Bursar transaction {reference}#{n}")
}

fn record_kind(collection: &str) -> &'static str {
    match collection {
        PATRONS => "patron",
        FINES => "fine",
        ALMA => "Alma transaction",
        LINES => "account line",
        BURSAR => "Bursar transaction",
        EXPORTS => "export",
        PAYMENTS => "payment record",
        JOBS => "job",
        _ => "record",
    }
}

fn bson_display(value: &Bson) -> String {
    match value {
        Bson::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn bson_int(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        _ => None,
    }
}

fn duplicate_key(error: &mongodb::error::Error) -> bool {
    let dup = |code: i32| i64::from(code) == DUPLICATE_KEY;
    match error.kind.as_ref() {
        ErrorKind::Command(e) => dup(e.code),
        ErrorKind::Write(WriteFailure::WriteError(e)) => dup(e.code),
        ErrorKind::InsertMany(e) => e
            .write_errors
            .as_ref()
            .is_some_and(|errors| errors.iter().any(|e| dup(e.code))),
        _ => false,
    }
}

/// Removes the password of `uri` from a message about it.
fn redact(uri: &str, message: &str) -> String {
    let password = uri
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(rest))
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|password| !password.is_empty());
    match password {
        Some(password) => message.replace(password, "***"),
        None => message.to_string(),
    }
}

#[async_trait]
impl FineStore for MongoStore {
    fn describe(&self) -> String {
        describe_database(&self.database)
    }

    async fn patrons(&self, ids: &[PatronId]) -> Result<Vec<Patron>, StoreError> {
        let keys: Vec<Bson> = ids.iter().map(|id| Bson::from(id.as_str())).collect();
        let read = async {
            let found = self
                .find_in(&mut None, PATRONS, "_id", &keys, &Document::new())
                .await?;
            let mut patrons: Vec<Patron> = self.parse_all(PATRONS, found)?;
            patrons.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(patrons)
        };
        read.await.map_err(|fail| self.error("read patrons", fail))
    }

    async fn ledgers(&self, ids: &[FineId]) -> Result<Vec<FineLedger>, StoreError> {
        self.ledgers_of(&mut None, ids)
            .await
            .map_err(|fail| self.error("read ledgers", fail))
    }

    async fn ledgers_by_loan(&self, loans: &[LoanId]) -> Result<Vec<FineLedger>, StoreError> {
        let read = async {
            let keys: Vec<Bson> = loans.iter().map(|id| Bson::from(id.as_str())).collect();
            let ids: Vec<FineId> = self
                .strings_in(&mut None, FINES, "loan_id", &keys, &Document::new(), "_id")
                .await?
                .into_iter()
                .map(FineId::new)
                .collect();
            self.ledgers_of(&mut None, &ids).await
        };
        read.await
            .map_err(|fail| self.error("read ledgers by loan", fail))
    }

    async fn known_credit_sources(&self, ids: &[FineId]) -> Result<Vec<FineId>, StoreError> {
        let read = async {
            let keys: Vec<Bson> = ids.iter().map(|id| Bson::from(id.as_str())).collect();
            let none = Document::new();
            let mut known = BTreeSet::new();
            known.extend(
                self.strings_in(&mut None, FINES, "_id", &keys, &none, "_id")
                    .await?,
            );
            let source = "source_credit_fine";
            known.extend(
                self.strings_in(&mut None, ALMA, source, &keys, &none, source)
                    .await?,
            );
            Ok(known.into_iter().map(FineId::new).collect())
        };
        read.await
            .map_err(|fail| self.error("read known credit sources", fail))
    }

    async fn apply(&self, changes: ChangeSet) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let changes = &changes;
        self.retrying("apply a change set", || async {
            let mut session = self.begin().await?;
            let result = self.apply_in(&mut session, changes).await;
            self.finish(session, result).await
        })
        .await
    }

    async fn fines_with_pending_alma(&self) -> Result<Vec<FineId>, StoreError> {
        let read = async {
            let pending = self
                .find_projected(
                    &mut None,
                    ALMA,
                    doc! { "pending": true },
                    Some(doc! { "fine_id": 1 }),
                )
                .await?;
            let ids = pending
                .iter()
                .map(|document| {
                    self.string_field(ALMA, document, "fine_id")
                        .map(FineId::new)
                })
                .collect::<Result<BTreeSet<_>, Fail>>()?;
            Ok(ids.into_iter().collect())
        };
        read.await
            .map_err(|fail| self.error("read fines with pending Alma transactions", fail))
    }

    async fn pending_export(&self) -> Result<Vec<ExportItem>, StoreError> {
        self.items_where(doc! { "export_pending": true })
            .await
            .map_err(|fail| self.error("read transactions pending export", fail))
    }

    async fn commit_export(&self, commit: &ExportCommit) -> Result<(), StoreError> {
        self.retrying("commit an export", || async {
            let mut session = self.begin().await?;
            let result = self.commit_in(&mut session, commit).await;
            self.finish(session, result).await
        })
        .await
    }

    async fn export_items(&self, seq: u64) -> Result<Vec<ExportItem>, StoreError> {
        let read = async {
            let seq = self.seq("export", seq)?;
            self.items_where(doc! { "export_seq": seq }).await
        };
        read.await
            .map_err(|fail| self.error("read the items of an export", fail))
    }

    async fn export(&self, seq: u64) -> Result<Option<Export>, StoreError> {
        let read = async {
            let id = self.seq("export", seq)?;
            let found = self.find(&mut None, EXPORTS, doc! { "_id": id }).await?;
            let exports: Vec<Export> = self.parse_all(EXPORTS, found)?;
            Ok(exports.into_iter().next())
        };
        read.await
            .map_err(|fail| self.error("read an export", fail))
    }

    async fn last_export(&self) -> Result<Option<Export>, StoreError> {
        let read = async {
            match self.find_last(&mut None, EXPORTS, doc! {}).await? {
                Some(document) => Ok(Some(self.parse(EXPORTS, document)?)),
                None => Ok(None),
            }
        };
        read.await
            .map_err(|fail| self.error("read the last export", fail))
    }

    async fn unsent_exports(&self) -> Result<Vec<Export>, StoreError> {
        let read = async {
            let found = self
                .find(&mut None, EXPORTS, doc! { "sent": false })
                .await?;
            let mut exports: Vec<Export> = self.parse_all(EXPORTS, found)?;
            exports.sort_by_key(|e| e.seq);
            Ok(exports)
        };
        read.await
            .map_err(|fail| self.error("read unsent exports", fail))
    }

    async fn exports_of_fine(&self, id: &FineId) -> Result<Vec<Export>, StoreError> {
        let read = async {
            let carried = self
                .find_projected(
                    &mut None,
                    BURSAR,
                    doc! { "reference": id.as_str(), "export_seq": { "$ne": null } },
                    Some(doc! { "export_seq": 1 }),
                )
                .await?;
            let seqs = carried
                .iter()
                .map(|document| {
                    bson_int(document.get("export_seq")).ok_or_else(|| {
                        self.corrupt(
                            format!("Bursar transactions of fine {id}"),
                            "export_seq is not a number",
                        )
                    })
                })
                .collect::<Result<BTreeSet<i64>, Fail>>()?;
            let seqs: Vec<Bson> = seqs.into_iter().map(Bson::Int64).collect();
            let found = self
                .find_in(&mut None, EXPORTS, "_id", &seqs, &Document::new())
                .await?;
            let mut exports: Vec<Export> = self.parse_all(EXPORTS, found)?;
            exports.sort_by_key(|e| e.seq);
            Ok(exports)
        };
        read.await
            .map_err(|fail| self.error("read the exports of a fine", fail))
    }

    async fn mark_export_sent(&self, seq: u64, at: DateTime<Utc>) -> Result<(), StoreError> {
        let write = async {
            let id = self.seq("export", seq)?;
            let sent_at =
                bson::to_bson(&Some(at)).map_err(|e| self.corrupt(format!("export {seq}"), e))?;
            let result = self
                .db
                .collection::<Document>(EXPORTS)
                .update_one(
                    doc! { "_id": id },
                    doc! { "$set": { "sent_at": sent_at, "sent": true } },
                )
                .write_concern(durable())
                .await?;
            if result.matched_count == 0 {
                return Err(self.conflict(format!("there is no export {seq} to mark sent")));
            }
            Ok(())
        };
        write
            .await
            .map_err(|fail| self.error("mark an export sent", fail))
    }

    async fn payment_records(&self, keys: &[String]) -> Result<Vec<PaymentRecord>, StoreError> {
        let read = async {
            let keys: Vec<Bson> = keys.iter().map(|k| Bson::from(k.as_str())).collect();
            let found = self
                .find_in(&mut None, PAYMENTS, "_id", &keys, &Document::new())
                .await?;
            let mut records: Vec<PaymentRecord> = self.parse_all(PAYMENTS, found)?;
            records.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(records)
        };
        read.await
            .map_err(|fail| self.error("read payment records", fail))
    }

    async fn payment_records_of_fines(
        &self,
        ids: &[FineId],
    ) -> Result<Vec<PaymentRecord>, StoreError> {
        let read = async {
            let ids: BTreeSet<&str> = ids.iter().map(FineId::as_str).collect();
            let keys: Vec<Bson> = ids.into_iter().map(Bson::from).collect();
            let found = self
                .find_in(&mut None, PAYMENTS, "fine_id", &keys, &Document::new())
                .await?;
            let mut records: Vec<PaymentRecord> = self.parse_all(PAYMENTS, found)?;
            sort_payment_records(&mut records);
            Ok(records)
        };
        read.await
            .map_err(|fail| self.error("read the payment records of fines", fail))
    }

    async fn put_payment_record(&self, record: &PaymentRecord) -> Result<(), StoreError> {
        let write = async {
            let document = self.payment_doc(record)?;
            self.db
                .collection::<Document>(PAYMENTS)
                .replace_one(doc! { "_id": record.key.as_str() }, document)
                .upsert(true)
                .write_concern(durable())
                .await?;
            Ok(())
        };
        write
            .await
            .map_err(|fail| self.error("write a payment record", fail))
    }

    async fn start_job(&self, kind: JobKind, at: DateTime<Utc>) -> Result<Job, StoreError> {
        let write = async {
            // Claim the next number by inserting it; a concurrent start
            // that took it first makes the insert fail, and we try the next.
            for _ in 0..20 {
                let last = self.find_last(&mut None, JOBS, doc! {}).await?;
                let last = match last {
                    Some(document) => self.parse::<Job>(JOBS, document)?.seq,
                    None => 0,
                };
                let seq = last.checked_add(1).ok_or_else(|| {
                    self.corrupt("jobs", "the last job number cannot be followed")
                })?;
                let job = Job {
                    seq,
                    kind,
                    status: JobStatus::InProgress,
                    started_at: at,
                    finished_at: None,
                    counts: Vec::new(),
                    problems: Vec::new(),
                    error: None,
                };
                let document = self.job_doc(&job)?;
                match self
                    .db
                    .collection::<Document>(JOBS)
                    .insert_one(document)
                    .write_concern(durable())
                    .await
                {
                    Ok(_) => return Ok(job),
                    Err(e) if duplicate_key(&e) => continue,
                    Err(e) => return Err(Fail::Driver(e)),
                }
            }
            Err(self.conflict("could not claim a job number: too many concurrent starts"))
        };
        write.await.map_err(|fail| self.error("start a job", fail))
    }

    async fn finish_job(&self, job: &Job) -> Result<(), StoreError> {
        let write = async {
            let document = self.job_doc(job)?;
            self.db
                .collection::<Document>(JOBS)
                .replace_one(doc! { "_id": self.seq("job", job.seq)? }, document)
                .upsert(true)
                .write_concern(durable())
                .await?;
            Ok(())
        };
        write.await.map_err(|fail| self.error("finish a job", fail))
    }

    async fn last_successful_job(&self, kind: JobKind) -> Result<Option<Job>, StoreError> {
        let read = async {
            let filter = doc! {
                "kind": job_kind_name(kind),
                "status": job_status_name(JobStatus::Success),
            };
            match self.find_last(&mut None, JOBS, filter).await? {
                Some(document) => Ok(Some(self.parse(JOBS, document)?)),
                None => Ok(None),
            }
        };
        read.await
            .map_err(|fail| self.error("read the last successful job", fail))
    }

    async fn jobs_in_progress(&self) -> Result<Vec<Job>, StoreError> {
        let read = async {
            let filter = doc! { "status": job_status_name(JobStatus::InProgress) };
            let mut jobs: Vec<Job> =
                self.parse_all(JOBS, self.find(&mut None, JOBS, filter).await?)?;
            jobs.sort_by_key(|job| job.seq);
            Ok(jobs)
        };
        read.await
            .map_err(|fail| self.error("read the jobs in progress", fail))
    }

    async fn dump(&self) -> Result<StoreDump, StoreError> {
        let read = async {
            let mut session = None;
            let all = doc! {};
            let mut dump = StoreDump {
                patrons: self.parse_all(
                    PATRONS,
                    self.find(&mut session, PATRONS, all.clone()).await?,
                )?,
                fines: self.parse_all(FINES, self.find(&mut session, FINES, all.clone()).await?)?,
                alma_transactions: self
                    .parse_all(ALMA, self.find(&mut session, ALMA, all.clone()).await?)?,
                account_lines: self
                    .parse_all(LINES, self.find(&mut session, LINES, all.clone()).await?)?,
                bursar_transactions: self
                    .parse_all(BURSAR, self.find(&mut session, BURSAR, all.clone()).await?)?,
                exports: self.parse_all(
                    EXPORTS,
                    self.find(&mut session, EXPORTS, all.clone()).await?,
                )?,
                payments: self.parse_all(
                    PAYMENTS,
                    self.find(&mut session, PAYMENTS, all.clone()).await?,
                )?,
                jobs: self.parse_all(JOBS, self.find(&mut session, JOBS, all).await?)?,
            };
            sort_dump(&mut dump);
            Ok(dump)
        };
        read.await
            .map_err(|fail| self.error("dump the store", fail))
    }

    async fn load(&self, dump: &StoreDump) -> Result<(), StoreError> {
        if let Some(message) = dump_duplicate(dump) {
            return Err(StoreError::Conflict {
                store: self.describe(),
                message,
            });
        }
        self.retrying("load a dump", || async {
            let mut session = self.begin().await?;
            let result = self.load_in(&mut session, dump).await;
            self.finish(session, result).await
        })
        .await
    }
}

/// The first key a dump holds twice, named; checked before anything of a
/// load is written.
fn dump_duplicate(dump: &StoreDump) -> Option<String> {
    let twice = |what: &str, key: Option<String>| {
        key.map(|key| format!("the dump holds {what} {key} more than once"))
    };
    let ids = |keys: Vec<String>| first_duplicate(&keys);
    twice(
        "patron",
        ids(dump.patrons.iter().map(|r| r.id.0.to_string()).collect()),
    )
    .or_else(|| {
        twice(
            "fine",
            ids(dump.fines.iter().map(|r| r.id.0.to_string()).collect()),
        )
    })
    .or_else(|| {
        twice(
            "Alma transaction",
            ids(dump
                .alma_transactions
                .iter()
                .map(AlmaTransaction::key)
                .collect()),
        )
    })
    .or_else(|| {
        twice(
            "account line",
            ids(dump
                .account_lines
                .iter()
                .map(|r| r.reference.0.to_string())
                .collect()),
        )
    })
    .or_else(|| {
        twice(
            "Bursar transaction",
            ids(dump
                .bursar_transactions
                .iter()
                .map(|r| bursar_id(&r.reference, r.n))
                .collect()),
        )
    })
    .or_else(|| {
        twice(
            "export",
            ids(dump.exports.iter().map(|r| r.seq.to_string()).collect()),
        )
    })
    .or_else(|| {
        twice(
            "payment record",
            ids(dump.payments.iter().map(|r| r.key.clone()).collect()),
        )
    })
    .or_else(|| {
        twice(
            "job",
            ids(dump.jobs.iter().map(|r| r.seq.to_string()).collect()),
        )
    })
}
