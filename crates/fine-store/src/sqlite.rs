//! The embedded store: one SQLite file, the zero-setup default.
//!
//! One table per record kind, keyed by the record's natural key. The record
//! itself is stored whole as JSON (its serde form: money as a decimal
//! string, never a float); next to it sit only the columns the lookups
//! need (a fine's loan, an Alma transaction's fine, pending flag and credit
//! source, a Bursar transaction's export state, a payment's fine, a job's
//! kind and status), each indexed. Reads parse the JSON, so the columns are
//! never a second truth about a record's content.
//!
//! The file runs in WAL mode with `synchronous = FULL`: every commit is
//! fsynced before it returns, so [`FineStore::put_payment_record`] is on
//! disk when it returns (SPEC 7.5) and a power cut loses no committed
//! write. The cost is one fsync per commit, and stages commit whole change
//! sets, so it is negligible. `apply`, `commit_export`, `load` and
//! `start_job` each run in one `BEGIN IMMEDIATE` transaction: a crash leaves
//! the file before or after them, never in between.
//!
//! The schema version is `PRAGMA user_version`; `MIGRATIONS` lists the
//! steps in order, and a file written by a newer version is refused with
//! [`StoreError::SchemaTooNew`] rather than misread.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool over
//! one connection behind a mutex (SQLite serialises writers anyway).

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, Statement, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sync_core::records::{
    AlmaTransaction, BursarAccountLine, BursarTransaction, Export, ExportState, Fine, FineId, Job,
    JobKind, JobStatus, LoanId, Patron, PatronId, PaymentRecord,
};

use crate::{
    ChangeSet, ExportCommit, ExportItem, FineLedger, FineStore, StoreDump, StoreError,
    assemble_ledgers, first_duplicate, job_kind_name, job_status_name, sort_payment_records,
};

/// Schema steps, in order: entry `i` takes `user_version` from `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[SCHEMA_V1];

const SCHEMA_V1: &str = "
CREATE TABLE patrons (id TEXT PRIMARY KEY NOT NULL, record TEXT NOT NULL);
CREATE TABLE fines (id TEXT PRIMARY KEY NOT NULL, loan_id TEXT, record TEXT NOT NULL);
CREATE INDEX fines_by_loan ON fines (loan_id) WHERE loan_id IS NOT NULL;
CREATE TABLE alma_transactions (
    key TEXT PRIMARY KEY NOT NULL,
    fine_id TEXT NOT NULL,
    pending INTEGER NOT NULL,
    source_credit_fine TEXT,
    record TEXT NOT NULL
);
CREATE INDEX alma_by_fine ON alma_transactions (fine_id);
CREATE INDEX alma_pending ON alma_transactions (fine_id) WHERE pending = 1;
CREATE INDEX alma_by_credit_source ON alma_transactions (source_credit_fine)
    WHERE source_credit_fine IS NOT NULL;
CREATE TABLE account_lines (reference TEXT PRIMARY KEY NOT NULL, record TEXT NOT NULL);
CREATE TABLE bursar_transactions (
    reference TEXT NOT NULL,
    n INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    export_seq INTEGER,
    record TEXT NOT NULL,
    PRIMARY KEY (reference, n)
);
CREATE INDEX bursar_pending ON bursar_transactions (reference, n) WHERE pending = 1;
CREATE INDEX bursar_by_export ON bursar_transactions (export_seq, reference, n)
    WHERE export_seq IS NOT NULL;
CREATE TABLE exports (seq INTEGER PRIMARY KEY NOT NULL, sent INTEGER NOT NULL, record TEXT NOT NULL);
CREATE INDEX exports_unsent ON exports (seq) WHERE sent = 0;
CREATE TABLE payments (key TEXT PRIMARY KEY NOT NULL, fine_id TEXT, record TEXT NOT NULL);
CREATE INDEX payments_by_fine ON payments (fine_id) WHERE fine_id IS NOT NULL;
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX jobs_by_kind ON jobs (kind, status, seq);
";

const INSERT_PATRON: &str = "INSERT INTO patrons (id, record) VALUES (?1, ?2)";
const INSERT_FINE: &str = "INSERT INTO fines (id, loan_id, record) VALUES (?1, ?2, ?3)";
const INSERT_ALMA: &str = "INSERT INTO alma_transactions \
    (key, fine_id, pending, source_credit_fine, record) VALUES (?1, ?2, ?3, ?4, ?5)";
const INSERT_LINE: &str = "INSERT INTO account_lines (reference, record) VALUES (?1, ?2)";
const INSERT_BURSAR: &str = "INSERT INTO bursar_transactions \
    (reference, n, pending, export_seq, record) VALUES (?1, ?2, ?3, ?4, ?5)";
const INSERT_EXPORT: &str = "INSERT INTO exports (seq, sent, record) VALUES (?1, ?2, ?3)";
const INSERT_PAYMENT: &str = "INSERT INTO payments (key, fine_id, record) VALUES (?1, ?2, ?3)";
const INSERT_JOB: &str = "INSERT INTO jobs (seq, kind, status, record) VALUES (?1, ?2, ?3, ?4)";

const UPSERT_PATRON: &str = "INSERT INTO patrons (id, record) VALUES (?1, ?2) \
    ON CONFLICT (id) DO UPDATE SET record = excluded.record";
const UPSERT_FINE: &str = "INSERT INTO fines (id, loan_id, record) VALUES (?1, ?2, ?3) \
    ON CONFLICT (id) DO UPDATE SET loan_id = excluded.loan_id, record = excluded.record";
const UPSERT_ALMA: &str = "INSERT INTO alma_transactions \
    (key, fine_id, pending, source_credit_fine, record) VALUES (?1, ?2, ?3, ?4, ?5) \
    ON CONFLICT (key) DO UPDATE SET fine_id = excluded.fine_id, pending = excluded.pending, \
    source_credit_fine = excluded.source_credit_fine, record = excluded.record";
const UPSERT_LINE: &str = "INSERT INTO account_lines (reference, record) VALUES (?1, ?2) \
    ON CONFLICT (reference) DO UPDATE SET record = excluded.record";
/// An exported Bursar transaction is frozen: the update only happens when
/// the stored one is not exported, or is written again unchanged. Zero
/// changed rows therefore means a refused change.
const UPSERT_BURSAR: &str = "INSERT INTO bursar_transactions \
    (reference, n, pending, export_seq, record) VALUES (?1, ?2, ?3, ?4, ?5) \
    ON CONFLICT (reference, n) DO UPDATE SET pending = excluded.pending, \
    export_seq = excluded.export_seq, record = excluded.record \
    WHERE bursar_transactions.export_seq IS NULL OR bursar_transactions.record = excluded.record";
const UPSERT_PAYMENT: &str = "INSERT INTO payments (key, fine_id, record) VALUES (?1, ?2, ?3) \
    ON CONFLICT (key) DO UPDATE SET fine_id = excluded.fine_id, record = excluded.record";
const UPSERT_JOB: &str = "INSERT INTO jobs (seq, kind, status, record) VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (seq) DO UPDATE SET kind = excluded.kind, status = excluded.status, \
    record = excluded.record";

/// The state in one SQLite file. Cheap to share: clone the `Arc` you keep
/// it in, not the store.
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// The schema version this build writes and understands.
    pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

    /// Opens the store at `path`, creating the file (and its folder) on
    /// first use and bringing an older schema up to date. Blocks briefly
    /// (file open and, at most, a migration).
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let store = describe_path(&path);
        let unavailable = |message: String| StoreError::Unavailable {
            store: store.clone(),
            operation: "open",
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                unavailable(format!(
                    "cannot create the folder {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let mut conn = Connection::open(&path).map_err(|e| unavailable(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| unavailable(e.to_string()))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| unavailable(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(unavailable(format!(
                "cannot switch the file to WAL mode (it stays in {mode:?} mode)"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| unavailable(e.to_string()))?;
        // 64 MiB of page cache: a change set of a million rows stays in
        // memory until its commit instead of spilling.
        conn.pragma_update(None, "cache_size", -65536)
            .map_err(|e| unavailable(e.to_string()))?;
        migrate(&mut conn, &store)?;
        Ok(SqliteStore {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `work` on the blocking pool with the connection.
    async fn run<T, F>(&self, operation: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Ctx) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let ctx = Ctx {
            store: self.describe(),
            operation,
        };
        let store = ctx.store.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock rolled its transaction back
            // when the transaction was dropped; the connection is sound.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn, &ctx)
        })
        .await
        .map_err(|e| StoreError::Unavailable {
            store,
            operation,
            message: format!("the database task failed: {e}"),
        })?
    }
}

fn describe_path(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

fn migrate(conn: &mut Connection, store: &str) -> Result<(), StoreError> {
    let unavailable = |e: rusqlite::Error| StoreError::Unavailable {
        store: store.to_string(),
        operation: "schema migration",
        message: e.to_string(),
    };
    let supported = SqliteStore::SCHEMA_VERSION;
    for step in 0..supported {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        // Read under the write lock: another process may have migrated.
        let found: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(unavailable)?;
        let found = u32::try_from(found).map_err(|_| StoreError::Corrupt {
            store: store.to_string(),
            record: "schema version (PRAGMA user_version)".into(),
            message: format!("{found} is not a version number"),
        })?;
        if found > supported {
            return Err(StoreError::SchemaTooNew {
                store: store.to_string(),
                found,
                supported,
            });
        }
        if found > step {
            continue;
        }
        let sql = MIGRATIONS
            .get(step as usize)
            .ok_or_else(|| StoreError::Corrupt {
                store: store.to_string(),
                record: "schema migrations".into(),
                message: format!("no migration to version {}", step + 1),
            })?;
        tx.execute_batch(sql).map_err(unavailable)?;
        tx.pragma_update(None, "user_version", step + 1)
            .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
    }
    // An up-to-date file skips every step above; a newer one must still
    // be refused.
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(unavailable)?;
    if found > i64::from(supported) {
        return Err(StoreError::SchemaTooNew {
            store: store.to_string(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
            supported,
        });
    }
    Ok(())
}

/// What an error needs to name: the store and the operation.
struct Ctx {
    store: String,
    operation: &'static str,
}

impl Ctx {
    fn sql(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Unavailable {
            store: self.store.clone(),
            operation: self.operation,
            message: e.to_string(),
        }
    }

    fn corrupt(&self, record: impl Into<String>, message: impl Display) -> StoreError {
        StoreError::Corrupt {
            store: self.store.clone(),
            record: record.into(),
            message: message.to_string(),
        }
    }

    fn conflict(&self, message: impl Into<String>) -> StoreError {
        StoreError::Conflict {
            store: self.store.clone(),
            message: message.into(),
        }
    }

    fn json<T: Serialize>(
        &self,
        record: impl FnOnce() -> String,
        value: &T,
    ) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|e| self.corrupt(record(), e))
    }

    fn parse<T: DeserializeOwned>(
        &self,
        record: impl FnOnce() -> String,
        text: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| self.corrupt(record(), e))
    }

    fn int(&self, what: impl FnOnce() -> String, value: u64) -> Result<i64, StoreError> {
        i64::try_from(value)
            .map_err(|_| self.conflict(format!("{} is too large for the store", what())))
    }

    /// A constraint failure while loading a dump means the dump holds a
    /// key twice; anything else is the database's own trouble.
    fn load_error(&self, what: impl FnOnce() -> String, e: rusqlite::Error) -> StoreError {
        if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) {
            self.conflict(format!("the dump holds {} more than once", what()))
        } else {
            self.sql(e)
        }
    }
}

fn alma_name(key: &str) -> String {
    format!("Alma transaction {key}")
}

fn bursar_name(reference: &FineId, n: u32) -> String {
    format!("Bursar transaction {reference}#{n}")
}

/// `(pending, export_seq)` columns of an export state.
fn export_columns(ctx: &Ctx, txn: &BursarTransaction) -> Result<(bool, Option<i64>), StoreError> {
    Ok(match txn.export {
        ExportState::Pending => (true, None),
        ExportState::Exported(seq) => (
            false,
            Some(ctx.int(|| format!("export sequence {seq}"), seq)?),
        ),
        ExportState::NotExported => (false, None),
    })
}

// ---- Writers: one per table, for an INSERT or an UPSERT statement ----

fn put_patron(
    stmt: &mut Statement<'_>,
    ctx: &Ctx,
    patron: &Patron,
) -> Result<usize, rusqlite::Error> {
    let name = || format!("patron {}", patron.id);
    let record = ctx.json(name, patron).map_err(to_sql_error)?;
    stmt.execute(params![patron.id.as_str(), record])
}

fn put_fine(stmt: &mut Statement<'_>, ctx: &Ctx, fine: &Fine) -> Result<usize, rusqlite::Error> {
    let record = ctx
        .json(|| format!("fine {}", fine.id), fine)
        .map_err(to_sql_error)?;
    stmt.execute(params![
        fine.id.as_str(),
        fine.loan_id.as_ref().map(LoanId::as_str),
        record
    ])
}

fn put_alma(
    stmt: &mut Statement<'_>,
    ctx: &Ctx,
    txn: &AlmaTransaction,
) -> Result<usize, rusqlite::Error> {
    let key = txn.key();
    let record = ctx.json(|| alma_name(&key), txn).map_err(to_sql_error)?;
    stmt.execute(params![
        key,
        txn.fine_id.as_str(),
        txn.pending,
        txn.source_credit_fine.as_ref().map(FineId::as_str),
        record
    ])
}

fn put_line(
    stmt: &mut Statement<'_>,
    ctx: &Ctx,
    line: &BursarAccountLine,
) -> Result<usize, rusqlite::Error> {
    let name = || format!("account line {}", line.reference);
    let record = ctx.json(name, line).map_err(to_sql_error)?;
    stmt.execute(params![line.reference.as_str(), record])
}

fn put_bursar(
    stmt: &mut Statement<'_>,
    ctx: &Ctx,
    txn: &BursarTransaction,
) -> Result<usize, rusqlite::Error> {
    let (pending, export_seq) = export_columns(ctx, txn).map_err(to_sql_error)?;
    let record = ctx
        .json(|| bursar_name(&txn.reference, txn.n), txn)
        .map_err(to_sql_error)?;
    stmt.execute(params![
        txn.reference.as_str(),
        txn.n,
        pending,
        export_seq,
        record
    ])
}

fn put_export(
    stmt: &mut Statement<'_>,
    ctx: &Ctx,
    export: &Export,
) -> Result<usize, rusqlite::Error> {
    let name = || format!("export {}", export.seq);
    let seq = ctx.int(name, export.seq).map_err(to_sql_error)?;
    let record = ctx.json(name, export).map_err(to_sql_error)?;
    stmt.execute(params![seq, export.sent_at.is_some(), record])
}

fn put_payment(
    stmt: &mut Statement<'_>,
    ctx: &Ctx,
    payment: &PaymentRecord,
) -> Result<usize, rusqlite::Error> {
    let name = || format!("payment record {}", payment.key);
    let record = ctx.json(name, payment).map_err(to_sql_error)?;
    stmt.execute(params![
        payment.key,
        payment.fine_id.as_ref().map(FineId::as_str),
        record
    ])
}

fn put_job(stmt: &mut Statement<'_>, ctx: &Ctx, job: &Job) -> Result<usize, rusqlite::Error> {
    let name = || format!("job {}", job.seq);
    let seq = ctx.int(name, job.seq).map_err(to_sql_error)?;
    let record = ctx.json(name, job).map_err(to_sql_error)?;
    stmt.execute(params![
        seq,
        job_kind_name(job.kind),
        job_status_name(job.status),
        record
    ])
}

/// Carries one of our errors through a rusqlite-typed writer; see
/// [`from_sql_error`].
fn to_sql_error(e: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Unwraps an error of ours carried by [`to_sql_error`], or names the
/// database's error.
fn from_sql_error(ctx: &Ctx, e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::ToSqlConversionFailure(inner) => match inner.downcast::<StoreError>() {
            Ok(ours) => *ours,
            Err(other) => ctx.sql(rusqlite::Error::ToSqlConversionFailure(other)),
        },
        other => ctx.sql(other),
    }
}

// ---- Readers ----

/// Parses the `(name, record)` rows of a query.
fn read_rows<T: DeserializeOwned>(
    conn: &Connection,
    ctx: &Ctx,
    sql: &str,
    params: impl rusqlite::Params,
    name: impl Fn(&str) -> String,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(|e| ctx.sql(e))?;
    let rows = stmt
        .query_map(params, |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(|e| ctx.sql(e))?;
    let mut out = Vec::new();
    for row in rows {
        let (key, record) = row.map_err(|e| ctx.sql(e))?;
        out.push(ctx.parse(|| name(&key), &record)?);
    }
    Ok(out)
}

fn read_one<T: DeserializeOwned>(
    conn: &Connection,
    ctx: &Ctx,
    sql: &str,
    params: impl rusqlite::Params,
    name: impl Fn(&str) -> String,
) -> Result<Option<T>, StoreError> {
    Ok(read_rows(conn, ctx, sql, params, name)?.into_iter().next())
}

/// Ids per `IN (...)` query: well under SQLite's limit of host parameters,
/// and large enough that a 200,000-fine import makes few round trips.
const IN_CHUNK: usize = 500;

/// `?1, ?2, ... ?n`.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of `SELECT key, record ... WHERE column IN (ids)`, `ids` taken
/// [`IN_CHUNK`] at a time; `sql` has one `{in}` for the placeholders.
fn read_rows_in<T: DeserializeOwned>(
    conn: &Connection,
    ctx: &Ctx,
    sql: &str,
    ids: &[&str],
    name: impl Fn(&str) -> String,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = sql.replace("{in}", &placeholders(chunk.len()));
        out.extend(read_rows(
            conn,
            ctx,
            &sql,
            rusqlite::params_from_iter(chunk),
            &name,
        )?);
    }
    Ok(out)
}

/// The ledgers of the stored fines among `ids`, ordered by fine id.
fn ledgers_of(conn: &Connection, ctx: &Ctx, ids: &[FineId]) -> Result<Vec<FineLedger>, StoreError> {
    let mut ids: Vec<&str> = ids.iter().map(FineId::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut ledgers = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let fines: Vec<Fine> = read_rows_in(
            conn,
            ctx,
            "SELECT id, record FROM fines WHERE id IN ({in})",
            chunk,
            |key| format!("fine {key}"),
        )?;
        let alma: Vec<AlmaTransaction> = read_rows_in(
            conn,
            ctx,
            "SELECT key, record FROM alma_transactions WHERE fine_id IN ({in})",
            chunk,
            alma_name,
        )?;
        let lines: Vec<BursarAccountLine> = read_rows_in(
            conn,
            ctx,
            "SELECT reference, record FROM account_lines WHERE reference IN ({in})",
            chunk,
            |key| format!("account line {key}"),
        )?;
        let bursar: Vec<BursarTransaction> = read_rows_in(
            conn,
            ctx,
            "SELECT reference || '#' || n, record FROM bursar_transactions \
             WHERE reference IN ({in})",
            chunk,
            |key| format!("Bursar transaction {key}"),
        )?;
        ledgers.extend(assemble_ledgers(fines, alma, lines, bursar));
    }
    Ok(ledgers)
}

/// Export items selected by `condition` on `b` (the Bursar transaction).
fn export_items_where(
    conn: &Connection,
    ctx: &Ctx,
    condition: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<ExportItem>, StoreError> {
    let sql = format!(
        "SELECT b.reference, b.n, b.record, l.record FROM bursar_transactions b \
         LEFT JOIN account_lines l ON l.reference = b.reference \
         WHERE {condition} ORDER BY b.reference, b.n"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(|e| ctx.sql(e))?;
    let rows = stmt
        .query_map(params, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
            ))
        })
        .map_err(|e| ctx.sql(e))?;
    let mut items = Vec::new();
    for row in rows {
        let (reference, n, transaction, line) = row.map_err(|e| ctx.sql(e))?;
        let name = || format!("Bursar transaction {reference}#{n}");
        let transaction: BursarTransaction = ctx.parse(name, &transaction)?;
        let line = line.ok_or_else(|| ctx.corrupt(name(), "its account line is missing"))?;
        let line: BursarAccountLine = ctx.parse(|| format!("account line {reference}"), &line)?;
        items.push(ExportItem { transaction, line });
    }
    Ok(items)
}

fn read_export(conn: &Connection, ctx: &Ctx, seq: i64) -> Result<Option<Export>, StoreError> {
    read_one(
        conn,
        ctx,
        "SELECT CAST(seq AS TEXT), record FROM exports WHERE seq = ?1",
        [seq],
        |key| format!("export {key}"),
    )
}

// ---- The operations, each on one connection ----

fn apply_changes(conn: &mut Connection, ctx: &Ctx, changes: &ChangeSet) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| ctx.sql(e))?;
    {
        let err = |e| from_sql_error(ctx, e);
        let mut stmt = tx.prepare_cached(UPSERT_PATRON).map_err(err)?;
        for patron in &changes.patrons {
            put_patron(&mut stmt, ctx, patron).map_err(err)?;
        }
        let mut stmt = tx.prepare_cached(UPSERT_LINE).map_err(err)?;
        for line in changes.all_account_lines() {
            put_line(&mut stmt, ctx, line).map_err(err)?;
        }
        let mut stmt = tx.prepare_cached(UPSERT_BURSAR).map_err(err)?;
        for txn in changes.all_bursar_transactions() {
            if put_bursar(&mut stmt, ctx, txn).map_err(err)? == 0 {
                return Err(ctx.conflict(format!(
                    "{} went out in an export and cannot be changed; nothing of the change set was written",
                    bursar_name(&txn.reference, txn.n)
                )));
            }
        }
        let mut stmt = tx.prepare_cached(UPSERT_FINE).map_err(err)?;
        for fine in changes.all_fines() {
            put_fine(&mut stmt, ctx, fine).map_err(err)?;
        }
        let mut stmt = tx.prepare_cached(UPSERT_ALMA).map_err(err)?;
        for txn in changes.all_alma_transactions() {
            put_alma(&mut stmt, ctx, txn).map_err(err)?;
        }
        // The flag lives in the column (for the index) and in the record
        // (what is read back); both change together. A text replace, not
        // json_set (which parses and rewrites a million records): records
        // are serde_json's compact form, where `"pending":true` can only be
        // the field itself, since a quote inside a string is escaped.
        let mut stmt = tx
            .prepare_cached(
                "UPDATE alma_transactions \
                 SET pending = 0, record = replace(record, '\"pending\":true', '\"pending\":false') \
                 WHERE key = ?1",
            )
            .map_err(err)?;
        for key in &changes.reconciled_alma {
            if stmt.execute([key]).map_err(err)? == 0 {
                return Err(ctx.conflict(format!(
                    "{} is not stored and cannot be marked reconciled; nothing of the change set was written",
                    alma_name(key)
                )));
            }
        }
    }
    tx.commit().map_err(|e| ctx.sql(e))
}

fn commit(conn: &mut Connection, ctx: &Ctx, commit: &ExportCommit) -> Result<(), StoreError> {
    let seq = commit.export.seq;
    let seq_column = ctx.int(|| format!("export {seq}"), seq)?;
    if let Some((reference, n)) = first_duplicate(&commit.transactions) {
        return Err(ctx.conflict(format!(
            "export {seq} lists {} twice",
            bursar_name(&reference, n)
        )));
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| ctx.sql(e))?;
    if read_export(&tx, ctx, seq_column)?.is_some() {
        return Err(ctx.conflict(format!(
            "export sequence number {seq} is taken already; nothing was committed"
        )));
    }
    {
        let err = |e| from_sql_error(ctx, e);
        let mut stmt = tx.prepare_cached(INSERT_EXPORT).map_err(err)?;
        put_export(&mut stmt, ctx, &commit.export).map_err(err)?;
        let mut stmt = tx.prepare_cached(UPSERT_LINE).map_err(err)?;
        for line in &commit.billed_lines {
            put_line(&mut stmt, ctx, line).map_err(err)?;
        }
        let mut mark = tx
            .prepare_cached(
                "UPDATE bursar_transactions SET pending = 0, export_seq = ?3, record = ?4 \
                 WHERE reference = ?1 AND n = ?2 AND pending = 1",
            )
            .map_err(err)?;
        for (reference, n) in &commit.transactions {
            let name = || bursar_name(reference, *n);
            let stored: Option<BursarTransaction> = read_one(
                &tx,
                ctx,
                "SELECT reference, record FROM bursar_transactions \
                 WHERE reference = ?1 AND n = ?2 AND pending = 1",
                params![reference.as_str(), n],
                |_| name(),
            )?;
            let Some(mut txn) = stored else {
                return Err(ctx.conflict(format!(
                    "{} is not pending export (exported already, or not stored); export {seq} was not committed",
                    name()
                )));
            };
            txn.export = ExportState::Exported(seq);
            let record = ctx.json(name, &txn)?;
            mark.execute(params![reference.as_str(), n, seq_column, record])
                .map_err(err)?;
        }
    }
    tx.commit().map_err(|e| ctx.sql(e))
}

fn load_dump(conn: &mut Connection, ctx: &Ctx, dump: &StoreDump) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| ctx.sql(e))?;
    for table in [
        "patrons",
        "fines",
        "alma_transactions",
        "account_lines",
        "bursar_transactions",
        "exports",
        "payments",
        "jobs",
    ] {
        tx.execute(&format!("DELETE FROM {table}"), [])
            .map_err(|e| ctx.sql(e))?;
    }
    {
        let err = |e| from_sql_error(ctx, e);
        let mut stmt = tx.prepare_cached(INSERT_PATRON).map_err(err)?;
        for patron in &dump.patrons {
            put_patron(&mut stmt, ctx, patron)
                .map_err(|e| ctx.load_error(|| format!("patron {}", patron.id), e))?;
        }
        let mut stmt = tx.prepare_cached(INSERT_FINE).map_err(err)?;
        for fine in &dump.fines {
            put_fine(&mut stmt, ctx, fine)
                .map_err(|e| ctx.load_error(|| format!("fine {}", fine.id), e))?;
        }
        let mut stmt = tx.prepare_cached(INSERT_ALMA).map_err(err)?;
        for txn in &dump.alma_transactions {
            put_alma(&mut stmt, ctx, txn)
                .map_err(|e| ctx.load_error(|| alma_name(&txn.key()), e))?;
        }
        let mut stmt = tx.prepare_cached(INSERT_LINE).map_err(err)?;
        for line in &dump.account_lines {
            put_line(&mut stmt, ctx, line)
                .map_err(|e| ctx.load_error(|| format!("account line {}", line.reference), e))?;
        }
        let mut stmt = tx.prepare_cached(INSERT_BURSAR).map_err(err)?;
        for txn in &dump.bursar_transactions {
            put_bursar(&mut stmt, ctx, txn)
                .map_err(|e| ctx.load_error(|| bursar_name(&txn.reference, txn.n), e))?;
        }
        let mut stmt = tx.prepare_cached(INSERT_EXPORT).map_err(err)?;
        for export in &dump.exports {
            put_export(&mut stmt, ctx, export)
                .map_err(|e| ctx.load_error(|| format!("export {}", export.seq), e))?;
        }
        let mut stmt = tx.prepare_cached(INSERT_PAYMENT).map_err(err)?;
        for payment in &dump.payments {
            put_payment(&mut stmt, ctx, payment)
                .map_err(|e| ctx.load_error(|| format!("payment record {}", payment.key), e))?;
        }
        let mut stmt = tx.prepare_cached(INSERT_JOB).map_err(err)?;
        for job in &dump.jobs {
            put_job(&mut stmt, ctx, job)
                .map_err(|e| ctx.load_error(|| format!("job {}", job.seq), e))?;
        }
    }
    tx.commit().map_err(|e| ctx.sql(e))
}

fn dump_all(conn: &mut Connection, ctx: &Ctx) -> Result<StoreDump, StoreError> {
    // One read transaction: a consistent snapshot even if another process
    // writes meanwhile.
    let tx = conn.transaction().map_err(|e| ctx.sql(e))?;
    let dump = StoreDump {
        patrons: read_rows(
            &tx,
            ctx,
            "SELECT id, record FROM patrons ORDER BY id",
            [],
            |k| format!("patron {k}"),
        )?,
        fines: read_rows(
            &tx,
            ctx,
            "SELECT id, record FROM fines ORDER BY id",
            [],
            |k| format!("fine {k}"),
        )?,
        alma_transactions: read_rows(
            &tx,
            ctx,
            "SELECT key, record FROM alma_transactions ORDER BY key",
            [],
            alma_name,
        )?,
        account_lines: read_rows(
            &tx,
            ctx,
            "SELECT reference, record FROM account_lines ORDER BY reference",
            [],
            |k| format!("account line {k}"),
        )?,
        bursar_transactions: read_rows(
            &tx,
            ctx,
            "SELECT reference || '#' || n, record FROM bursar_transactions ORDER BY reference, n",
            [],
            |k| format!("Bursar transaction {k}"),
        )?,
        exports: read_rows(
            &tx,
            ctx,
            "SELECT CAST(seq AS TEXT), record FROM exports ORDER BY seq",
            [],
            |k| format!("export {k}"),
        )?,
        payments: read_rows(
            &tx,
            ctx,
            "SELECT key, record FROM payments ORDER BY key",
            [],
            |k| format!("payment record {k}"),
        )?,
        jobs: read_rows(
            &tx,
            ctx,
            "SELECT CAST(seq AS TEXT), record FROM jobs ORDER BY seq",
            [],
            |k| format!("job {k}"),
        )?,
    };
    tx.commit().map_err(|e| ctx.sql(e))?;
    Ok(dump)
}

#[async_trait]
impl FineStore for SqliteStore {
    fn describe(&self) -> String {
        describe_path(&self.path)
    }

    async fn patrons(&self, ids: &[PatronId]) -> Result<Vec<Patron>, StoreError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        self.run("read patrons", move |conn, ctx| {
            let ids: Vec<&str> = ids.iter().map(PatronId::as_str).collect();
            let mut patrons: Vec<Patron> = read_rows_in(
                conn,
                ctx,
                "SELECT id, record FROM patrons WHERE id IN ({in})",
                &ids,
                |k| format!("patron {k}"),
            )?;
            patrons.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(patrons)
        })
        .await
    }

    async fn ledgers(&self, ids: &[FineId]) -> Result<Vec<FineLedger>, StoreError> {
        let ids = ids.to_vec();
        self.run("read ledgers", move |conn, ctx| {
            let tx = conn.transaction().map_err(|e| ctx.sql(e))?;
            let ledgers = ledgers_of(&tx, ctx, &ids)?;
            tx.commit().map_err(|e| ctx.sql(e))?;
            Ok(ledgers)
        })
        .await
    }

    async fn ledgers_by_loan(&self, loans: &[LoanId]) -> Result<Vec<FineLedger>, StoreError> {
        let loans = loans.to_vec();
        self.run("read ledgers by loan", move |conn, ctx| {
            let tx = conn.transaction().map_err(|e| ctx.sql(e))?;
            let mut ids = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached("SELECT id FROM fines WHERE loan_id = ?1")
                    .map_err(|e| ctx.sql(e))?;
                for loan in &loans {
                    let rows = stmt
                        .query_map([loan.as_str()], |row| row.get::<_, String>(0))
                        .map_err(|e| ctx.sql(e))?;
                    for row in rows {
                        ids.push(FineId::new(row.map_err(|e| ctx.sql(e))?));
                    }
                }
            }
            let ledgers = ledgers_of(&tx, ctx, &ids)?;
            tx.commit().map_err(|e| ctx.sql(e))?;
            Ok(ledgers)
        })
        .await
    }

    async fn known_credit_sources(&self, ids: &[FineId]) -> Result<Vec<FineId>, StoreError> {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        self.run("read known credit sources", move |conn, ctx| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM fines WHERE id = ?1) \
                     OR EXISTS (SELECT 1 FROM alma_transactions WHERE source_credit_fine = ?1)",
                )
                .map_err(|e| ctx.sql(e))?;
            let mut known = Vec::new();
            for id in ids {
                let taken: bool = stmt
                    .query_row([id.as_str()], |row| row.get(0))
                    .map_err(|e| ctx.sql(e))?;
                if taken {
                    known.push(id);
                }
            }
            Ok(known)
        })
        .await
    }

    async fn apply(&self, changes: ChangeSet) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.run("apply a change set", move |conn, ctx| {
            apply_changes(conn, ctx, &changes)
        })
        .await
    }

    async fn fines_with_pending_alma(&self) -> Result<Vec<FineId>, StoreError> {
        self.run("read fines with pending Alma transactions", |conn, ctx| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT DISTINCT fine_id FROM alma_transactions WHERE pending = 1 \
                     ORDER BY fine_id",
                )
                .map_err(|e| ctx.sql(e))?;
            let rows = stmt
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(|e| ctx.sql(e))?;
            let mut ids = Vec::new();
            for row in rows {
                ids.push(FineId::new(row.map_err(|e| ctx.sql(e))?));
            }
            Ok(ids)
        })
        .await
    }

    async fn pending_export(&self) -> Result<Vec<ExportItem>, StoreError> {
        self.run("read transactions pending export", |conn, ctx| {
            export_items_where(conn, ctx, "b.pending = 1", [])
        })
        .await
    }

    async fn commit_export(&self, export: &ExportCommit) -> Result<(), StoreError> {
        let export = export.clone();
        self.run("commit an export", move |conn, ctx| {
            commit(conn, ctx, &export)
        })
        .await
    }

    async fn export_items(&self, seq: u64) -> Result<Vec<ExportItem>, StoreError> {
        self.run("read the items of an export", move |conn, ctx| {
            let seq = ctx.int(|| format!("export {seq}"), seq)?;
            export_items_where(conn, ctx, "b.export_seq = ?1", [seq])
        })
        .await
    }

    async fn export(&self, seq: u64) -> Result<Option<Export>, StoreError> {
        self.run("read an export", move |conn, ctx| {
            let seq = ctx.int(|| format!("export {seq}"), seq)?;
            read_export(conn, ctx, seq)
        })
        .await
    }

    async fn last_export(&self) -> Result<Option<Export>, StoreError> {
        self.run("read the last export", |conn, ctx| {
            read_one(
                conn,
                ctx,
                "SELECT CAST(seq AS TEXT), record FROM exports ORDER BY seq DESC LIMIT 1",
                [],
                |k| format!("export {k}"),
            )
        })
        .await
    }

    async fn unsent_exports(&self) -> Result<Vec<Export>, StoreError> {
        self.run("read unsent exports", |conn, ctx| {
            read_rows(
                conn,
                ctx,
                "SELECT CAST(seq AS TEXT), record FROM exports WHERE sent = 0 ORDER BY seq",
                [],
                |k| format!("export {k}"),
            )
        })
        .await
    }

    async fn exports_of_fine(&self, id: &FineId) -> Result<Vec<Export>, StoreError> {
        let id = id.clone();
        self.run("read the exports of a fine", move |conn, ctx| {
            read_rows(
                conn,
                ctx,
                "SELECT CAST(seq AS TEXT), record FROM exports WHERE seq IN \
                 (SELECT export_seq FROM bursar_transactions \
                  WHERE reference = ?1 AND export_seq IS NOT NULL) ORDER BY seq",
                [id.as_str()],
                |k| format!("export {k}"),
            )
        })
        .await
    }

    async fn mark_export_sent(&self, seq: u64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.run("mark an export sent", move |conn, ctx| {
            let seq_column = ctx.int(|| format!("export {seq}"), seq)?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| ctx.sql(e))?;
            let Some(mut export) = read_export(&tx, ctx, seq_column)? else {
                return Err(ctx.conflict(format!("there is no export {seq} to mark sent")));
            };
            export.sent_at = Some(at);
            let record = ctx.json(|| format!("export {seq}"), &export)?;
            tx.execute(
                "UPDATE exports SET sent = 1, record = ?2 WHERE seq = ?1",
                params![seq_column, record],
            )
            .map_err(|e| ctx.sql(e))?;
            tx.commit().map_err(|e| ctx.sql(e))
        })
        .await
    }

    async fn payment_records(&self, keys: &[String]) -> Result<Vec<PaymentRecord>, StoreError> {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        self.run("read payment records", move |conn, ctx| {
            let mut out = Vec::new();
            for key in &keys {
                if let Some(record) = read_one(
                    conn,
                    ctx,
                    "SELECT key, record FROM payments WHERE key = ?1",
                    [key],
                    |k| format!("payment record {k}"),
                )? {
                    out.push(record);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn payment_records_of_fines(
        &self,
        ids: &[FineId],
    ) -> Result<Vec<PaymentRecord>, StoreError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        self.run("read the payment records of fines", move |conn, ctx| {
            let ids: Vec<&str> = ids.iter().map(FineId::as_str).collect();
            let mut records: Vec<PaymentRecord> = read_rows_in(
                conn,
                ctx,
                "SELECT key, record FROM payments WHERE fine_id IN ({in})",
                &ids,
                |k| format!("payment record {k}"),
            )?;
            sort_payment_records(&mut records);
            Ok(records)
        })
        .await
    }

    async fn put_payment_record(&self, record: &PaymentRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.run("write a payment record", move |conn, ctx| {
            // One autocommit statement; synchronous = FULL makes it durable
            // before `execute` returns.
            let mut stmt = conn
                .prepare_cached(UPSERT_PAYMENT)
                .map_err(|e| ctx.sql(e))?;
            put_payment(&mut stmt, ctx, &record).map_err(|e| from_sql_error(ctx, e))?;
            Ok(())
        })
        .await
    }

    async fn start_job(&self, kind: JobKind, at: DateTime<Utc>) -> Result<Job, StoreError> {
        self.run("start a job", move |conn, ctx| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| ctx.sql(e))?;
            let last: i64 = tx
                .query_row("SELECT COALESCE(MAX(seq), 0) FROM jobs", [], |row| {
                    row.get(0)
                })
                .map_err(|e| ctx.sql(e))?;
            let seq = u64::try_from(last)
                .ok()
                .and_then(|last| last.checked_add(1))
                .ok_or_else(|| {
                    ctx.corrupt(
                        "jobs",
                        format!("the last job number {last} cannot be followed"),
                    )
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
            {
                let mut stmt = tx.prepare_cached(INSERT_JOB).map_err(|e| ctx.sql(e))?;
                put_job(&mut stmt, ctx, &job).map_err(|e| from_sql_error(ctx, e))?;
            }
            tx.commit().map_err(|e| ctx.sql(e))?;
            Ok(job)
        })
        .await
    }

    async fn finish_job(&self, job: &Job) -> Result<(), StoreError> {
        let job = job.clone();
        self.run("finish a job", move |conn, ctx| {
            let mut stmt = conn.prepare_cached(UPSERT_JOB).map_err(|e| ctx.sql(e))?;
            put_job(&mut stmt, ctx, &job).map_err(|e| from_sql_error(ctx, e))?;
            Ok(())
        })
        .await
    }

    async fn last_successful_job(&self, kind: JobKind) -> Result<Option<Job>, StoreError> {
        self.run("read the last successful job", move |conn, ctx| {
            read_one(
                conn,
                ctx,
                "SELECT CAST(seq AS TEXT), record FROM jobs WHERE kind = ?1 AND status = ?2 \
                 ORDER BY seq DESC LIMIT 1",
                params![job_kind_name(kind), job_status_name(JobStatus::Success)],
                |k| format!("job {k}"),
            )
        })
        .await
    }

    async fn jobs_in_progress(&self) -> Result<Vec<Job>, StoreError> {
        self.run("read the jobs in progress", move |conn, ctx| {
            read_rows(
                conn,
                ctx,
                "SELECT CAST(seq AS TEXT), record FROM jobs WHERE status = ?1 ORDER BY seq",
                params![job_status_name(JobStatus::InProgress)],
                |k| format!("job {k}"),
            )
        })
        .await
    }

    async fn dump(&self) -> Result<StoreDump, StoreError> {
        self.run("dump the store", dump_all).await
    }

    async fn load(&self, dump: &StoreDump) -> Result<(), StoreError> {
        let dump = dump.clone();
        self.run("load a dump", move |conn, ctx| load_dump(conn, ctx, &dump))
            .await
    }
}
