//! `lookup-fine` and `print-last-export`: what the store knows, as a
//! summary a person reads or as JSON (the store's own record shapes).

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDateTime, Utc};
use fine_store::{ExportItem, FineLedger, FineStore};
use serde::Serialize;
use sync_core::Money;
use sync_core::records::{
    AlmaTransaction, BursarAccountLine, BursarTransaction, Export, ExportState, Fine, FineId,
    LoanId, Patron, PaymentRecord,
};

use crate::error::AppError;

/// One fine with everything the store holds about it.
#[derive(Debug, Serialize)]
pub struct FineView {
    pub fine: Fine,
    pub patron: Option<Patron>,
    pub alma_transactions: Vec<AlmaTransaction>,
    pub account_lines: Vec<BursarAccountLine>,
    pub bursar_transactions: Vec<BursarTransaction>,
    pub exports: Vec<Export>,
    pub payment_records: Vec<PaymentRecord>,
}

#[derive(Debug, Serialize)]
pub struct LookupView {
    pub fines: Vec<FineView>,
}

#[derive(Debug, Serialize)]
pub struct ExportView {
    pub export: Export,
    pub items: Vec<ExportItem>,
}

/// Which fines to look up.
pub enum Lookup<'a> {
    Fine(&'a str),
    Loan(&'a str),
}

pub async fn lookup(store: &dyn FineStore, query: Lookup<'_>) -> Result<LookupView, AppError> {
    let ledgers = match query {
        Lookup::Fine(id) => store.ledgers(&[FineId::new(id)]).await,
        Lookup::Loan(id) => store.ledgers_by_loan(&[LoanId::new(id)]).await,
    }
    .map_err(AppError::StoreRead)?;
    if ledgers.is_empty() {
        let what = match query {
            Lookup::Fine(id) => format!("no fine {id}"),
            Lookup::Loan(id) => format!("no fine on loan {id}"),
        };
        return Err(AppError::NotFound(format!(
            "{what} in the store {}; the store knows the fines the import has read (import-alma-fines), and ignored fines are never stored",
            store.describe()
        )));
    }
    let mut fines = Vec::new();
    for ledger in ledgers {
        fines.push(view(store, ledger).await?);
    }
    Ok(LookupView { fines })
}

async fn view(store: &dyn FineStore, ledger: FineLedger) -> Result<FineView, AppError> {
    let FineLedger {
        fine,
        alma,
        lines,
        bursar,
    } = ledger;
    let patron = store
        .patrons(std::slice::from_ref(&fine.patron_id))
        .await
        .map_err(AppError::StoreRead)?
        .into_iter()
        .next();
    let exports = store
        .exports_of_fine(&fine.id)
        .await
        .map_err(AppError::StoreRead)?;
    let payment_records = store
        .payment_records_of_fine(&fine.id)
        .await
        .map_err(AppError::StoreRead)?;
    Ok(FineView {
        fine,
        patron,
        alma_transactions: alma,
        account_lines: lines,
        bursar_transactions: bursar,
        exports,
        payment_records,
    })
}

pub async fn last_export(store: &dyn FineStore) -> Result<Option<ExportView>, AppError> {
    let Some(export) = store.last_export().await.map_err(AppError::StoreRead)? else {
        return Ok(None);
    };
    let items = store
        .export_items(export.seq)
        .await
        .map_err(AppError::StoreRead)?;
    Ok(Some(ExportView { export, items }))
}

fn time(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn or_dash(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("-")
}

fn export_state(state: ExportState) -> String {
    match state {
        ExportState::Pending => "pending export".to_string(),
        ExportState::Exported(seq) => format!("exported in {seq}"),
        ExportState::NotExported => "not exported (money the Bursar holds)".to_string(),
    }
}

/// The readable summary of a lookup.
pub fn render_lookup(view: &LookupView) -> String {
    let mut out = String::new();
    for (index, fine) in view.fines.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        render_fine(&mut out, fine);
    }
    out
}

fn render_fine(out: &mut String, view: &FineView) {
    let fine = &view.fine;
    let state = if fine.closed { "closed" } else { "open" };
    let _ = writeln!(out, "Fine {} ({}), {state} in Alma", fine.id, fine.fee_type);
    let balance = view.patron.as_ref().map_or_else(
        || "balance unknown".to_string(),
        |p| format!("Alma balance {}", p.balance),
    );
    let _ = writeln!(out, "  Patron:     {}, {balance}", fine.patron_id);
    let _ = writeln!(
        out,
        "  Loan:       {}",
        or_dash(fine.loan_id.as_ref().map(LoanId::as_str))
    );
    let _ = writeln!(
        out,
        "  Amounts:    original {}, remaining {}",
        fine.original_amount, fine.remaining_amount
    );
    let _ = writeln!(
        out,
        "  Dates:      created {}, status {}",
        time(fine.created_at),
        time(fine.status_at)
    );
    if let Some(comment) = fine.comment.as_deref().filter(|c| !c.is_empty()) {
        let _ = writeln!(out, "  Comment:    {comment}");
    }
    let item = &fine.item;
    if item.title.is_some() || item.barcode.is_some() {
        let _ = writeln!(
            out,
            "  Item:       {} / {}",
            or_dash(item.title.as_deref()),
            or_dash(item.author.as_deref())
        );
        let _ = writeln!(
            out,
            "              call number {}, barcode {}, location {}",
            or_dash(item.call_number.as_deref()),
            or_dash(item.barcode.as_deref()),
            or_dash(item.location_code.as_deref())
        );
        let when = |at: Option<NaiveDateTime>| at.map_or_else(|| "-".to_string(), time);
        let _ = writeln!(
            out,
            "              loaned {}, due {}, returned {}",
            when(item.loaned_at),
            when(item.due_at),
            when(item.returned_at)
        );
    }

    let _ = writeln!(
        out,
        "  Alma transactions ({}):",
        view.alma_transactions.len()
    );
    for t in &view.alma_transactions {
        let id = t.id.as_ref().map_or("(opening)", |id| id.as_str());
        let pending = if t.pending { "pending" } else { "reconciled" };
        let mut line = format!(
            "    {id:<12} {:<8} {:>9}  {}  {pending}",
            format!("{:?}", t.kind),
            t.amount,
            time(t.created_at)
        );
        if let Some(source) = &t.source_credit_fine {
            let _ = write!(line, ", from credit {source}");
        }
        if let Some(note) = t.note.as_deref().filter(|n| !n.is_empty()) {
            let _ = write!(line, "  \"{note}\"");
        }
        let _ = writeln!(out, "{line}");
    }
    let alma_sum: Money = view.alma_transactions.iter().map(|t| t.amount).sum();
    let _ = writeln!(out, "    sum in Alma {alma_sum}");

    let _ = writeln!(out, "  Bursar ledger:");
    if view.account_lines.is_empty() {
        let _ = writeln!(
            out,
            "    no account line (a standalone credit is never billed)"
        );
    }
    for line in &view.account_lines {
        let billing = match &line.billing {
            Some(b) => format!(
                "billed {}, due {}, term {}",
                b.billing_date, b.due_date, b.term_code
            ),
            None => "not billed yet".to_string(),
        };
        let _ = writeln!(
            out,
            "    line {}, account {}, {billing}",
            line.reference, line.account
        );
        for t in view
            .bursar_transactions
            .iter()
            .filter(|t| t.reference == line.reference)
        {
            let _ = writeln!(
                out,
                "      {:>2} {:<8} {:>9}  {}  {}",
                t.n,
                format!("{:?}", t.kind),
                t.amount,
                utc(t.created_at),
                export_state(t.export)
            );
        }
    }
    let bursar_sum: Money = view.bursar_transactions.iter().map(|t| t.amount).sum();
    let _ = writeln!(out, "    owed at the Bursar {bursar_sum}");

    let _ = writeln!(out, "  Export history ({}):", view.exports.len());
    for export in &view.exports {
        let sent = export.sent_at.map_or_else(
            || "not sent yet".to_string(),
            |at| format!("sent {}", utc(at)),
        );
        let _ = writeln!(
            out,
            "    export {} of {}: charges {}, reversals {}; {sent}",
            export.seq,
            export.billing_date,
            or_dash(export.charges_file.as_deref()),
            or_dash(export.reversals_file.as_deref())
        );
    }
    let _ = writeln!(out, "  Bursar payments ({}):", view.payment_records.len());
    for record in &view.payment_records {
        let posted = record
            .amount_posted
            .map_or_else(|| "nothing posted".to_string(), |m| format!("posted {m}"));
        let _ = writeln!(
            out,
            "    paid {} at the Bursar by {}: {:?}, {posted}, {}",
            record.paid_amount,
            record.patron_id,
            record.outcome,
            utc(record.updated_at)
        );
    }
}

/// The readable summary of an export.
pub fn render_export(view: &ExportView) -> String {
    let export = &view.export;
    let mut out = String::new();
    let charges: Vec<&ExportItem> = view
        .items
        .iter()
        .filter(|i| i.transaction.amount.is_positive())
        .collect();
    let charged: Money = charges.iter().map(|i| i.transaction.amount).sum();
    let reversed: Money = view
        .items
        .iter()
        .filter(|i| !i.transaction.amount.is_positive())
        .map(|i| i.transaction.amount.abs())
        .sum();
    let _ = writeln!(out, "Export {}", export.seq);
    let _ = writeln!(out, "  Created:        {}", utc(export.created_at));
    let _ = writeln!(out, "  Billing date:   {}", export.billing_date);
    let _ = writeln!(
        out,
        "  Charges file:   {}",
        or_dash(export.charges_file.as_deref())
    );
    let _ = writeln!(
        out,
        "  Reversals file: {}",
        or_dash(export.reversals_file.as_deref())
    );
    let _ = writeln!(
        out,
        "  Lines:          {} ({} charges totalling {charged}, {} reversals totalling {reversed})",
        export.line_count,
        charges.len(),
        view.items.len() - charges.len()
    );
    let sent = export
        .sent_at
        .map_or_else(|| "not sent yet (sftp-to-burs sends it)".to_string(), utc);
    let _ = writeln!(out, "  Sent:           {sent}");
    let _ = writeln!(out, "  Transactions:");
    for item in &view.items {
        let t = &item.transaction;
        let _ = writeln!(
            out,
            "    {:<11} {:<12} {:<12} {:<7} {:>9}",
            item.line.patron_id,
            item.line.account,
            t.reference,
            format!("{:?}", t.kind),
            t.amount
        );
    }
    out
}
