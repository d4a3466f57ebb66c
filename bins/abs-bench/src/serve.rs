//! The mock Alma, in a process of its own so that the measured sync's
//! memory is its own.
//!
//! `abs-bench serve-alma` synthesizes the institution and serves its
//! reports (alma-sim, rendered page by page on request);
//! `abs-bench serve-fees` serves the fees API with a fixed latency and
//! keeps the payments it accepts (readable whole at `/bench/state`). Each
//! prints `URL <base url>` on its first line of standard output, then
//! serves until its standard input closes (so it never outlives the
//! process that started it).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alma_sim::SimulatedAlma;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::error::BenchError;
use crate::synth::{Institution, Size, fine_id, patron_id};

/// Analytics rows per page: Alma's maximum, which the client asks for.
pub const PAGE_SIZE: usize = 1000;

/// The catalog paths of the reports of `day`.
pub fn report_paths(day: u8) -> sync_stages::import::ReportPaths {
    paths_under(format!("/shared/Bench University/Reports/Bursar/day{day}"))
}

/// The paths of day 1's reports as Alma answers them to the incremental
/// re-run's since-filter (the start of the day-1 import minus the 7-day
/// overlap). alma-sim serves every row whatever the filter says, so the
/// filtered reports are served under paths of their own.
pub fn recent_report_paths() -> sync_stages::import::ReportPaths {
    paths_under("/shared/Bench University/Reports/Bursar/day1-recent".to_string())
}

/// The since-date of [`recent_report_paths`].
pub fn recent_since() -> chrono::NaiveDateTime {
    Institution::day1() - chrono::TimeDelta::days(7)
}

fn paths_under(base: String) -> sync_stages::import::ReportPaths {
    sync_stages::import::ReportPaths {
        fines: format!("{base}/All Fines"),
        transactions: format!("{base}/All Transactions"),
        balances: format!("{base}/All User Balances"),
    }
}

fn announce_and_wait(uri: &str) {
    println!("URL {uri}");
    let _ = std::io::stdout().flush();
    // Serve until the parent closes our standard input (or dies).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// `serve-alma`: the reports of the institution for each day in `days`.
pub async fn serve_alma(size: Size, days: &[u8]) -> Result<(), BenchError> {
    let started = Instant::now();
    let institution = Institution::generate(size);
    let sim = SimulatedAlma::start().await;
    for &day in days {
        let paths = report_paths(day);
        let fines = institution.fines_report(day, None);
        let transactions = institution.transactions_report(day, None);
        let balances = institution.balances_report(day);
        eprintln!(
            "serve-alma: day {day}: {} fines, {} transactions, {} balances (seed {})",
            fines.rows.len(),
            transactions.rows.len(),
            balances.rows.len(),
            size.seed
        );
        sim.serve_report(&paths.fines, fines, PAGE_SIZE);
        sim.serve_report(&paths.transactions, transactions, PAGE_SIZE);
        sim.serve_report(&paths.balances, balances, PAGE_SIZE);
    }
    if days.contains(&1) {
        let paths = recent_report_paths();
        let since = Some(recent_since());
        let fines = institution.fines_report(1, since);
        let transactions = institution.transactions_report(1, since);
        eprintln!(
            "serve-alma: day 1 since {}: {} fines, {} transactions",
            recent_since(),
            fines.rows.len(),
            transactions.rows.len()
        );
        sim.serve_report(&paths.fines, fines, PAGE_SIZE);
        sim.serve_report(&paths.transactions, transactions, PAGE_SIZE);
        sim.serve_report(&paths.balances, institution.balances_report(1), PAGE_SIZE);
    }
    drop(institution);
    eprintln!(
        "serve-alma: synthesized in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let uri = sim.uri();
    tokio::task::spawn_blocking(move || announce_and_wait(&uri))
        .await
        .map_err(|e| BenchError::Check(format!("serve-alma: {e}")))?;
    drop(sim);
    Ok(())
}

/// A payment the fees mock accepted, as Alma keeps it on the fee.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MockPayment {
    pub cents: i64,
    pub external_transaction_id: String,
    pub method: String,
    pub comment: String,
}

/// A fee of the fees mock. The balance is 0 once the fee is closed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MockFee {
    pub patron: String,
    pub original_cents: i64,
    pub balance_cents: i64,
    /// Every POST accepted, in order: what Alma's fee shows as its
    /// payment transactions.
    pub payments: Vec<MockPayment>,
    /// POSTs refused (amount not valid): never expected of the stage.
    pub refused_posts: u64,
}

/// The whole state of the fees mock, as `GET /bench/state` answers it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MockFees {
    pub fees: std::collections::BTreeMap<String, MockFee>,
}

/// Where the fees of `serve-fees` come from.
pub enum FeeSource {
    /// The payments benchmark's: `rows` fees of [`payment_fee`].
    Rows(u64),
    /// The fees of the synthesized institution after `day` (the crash
    /// test's Direction 2, which pays fines Direction 1 billed).
    Institution { size: Size, day: u8 },
}

impl FeeSource {
    fn fees(self) -> MockFees {
        let fee = |patron: String, original_cents: i64, balance_cents: i64| MockFee {
            patron,
            original_cents,
            balance_cents,
            payments: Vec::new(),
            refused_posts: 0,
        };
        let fees = match self {
            FeeSource::Rows(rows) => (1..=rows)
                .map(|n| {
                    let (id, patron, cents) = payment_fee(n);
                    (id, fee(patron, cents, cents))
                })
                .collect(),
            FeeSource::Institution { size, day } => Institution::generate(size)
                .fees(day)
                .into_iter()
                .map(|(id, patron, original, balance)| (id, fee(patron, original, balance)))
                .collect(),
        };
        MockFees { fees }
    }
}

/// The fees mock's state. It lives in the `serve-fees` process, which the
/// crash test never kills, so it outlasts the killed sync runs: what Alma
/// accepted before a kill is still there for the re-run to read.
struct FeeState {
    initial: MockFees,
    now: Mutex<MockFees>,
    gets: AtomicU64,
    posts: AtomicU64,
    latency: Duration,
}

struct FeesResponder(Arc<FeeState>);

fn json(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("Content-Type", "application/json")
        .set_body_string(body)
}

/// The fee as Alma's GET (and POST pay) answers it, with the payments
/// accepted so far as its transactions: the stage settles an interrupted
/// payment by looking for its external transaction id there.
fn fee_json(id: &str, fee: &MockFee) -> String {
    let status = if fee.balance_cents == 0 {
        "CLOSED"
    } else {
        "ACTIVE"
    };
    let transactions: Vec<serde_json::Value> = fee
        .payments
        .iter()
        .map(|payment| {
            serde_json::json!({
                "type": {"value": "PAYMENT", "desc": "Payment"},
                "amount": crate::synth::amount(payment.cents),
                "external_transaction_id": payment.external_transaction_id,
                "payment_method": {"value": payment.method},
                "comment": payment.comment,
            })
        })
        .collect();
    serde_json::json!({
        "id": id,
        "type": {"value": "OVERDUEFINE", "desc": "Overdue fine"},
        "status": {"value": status},
        "user_primary_id": {"value": fee.patron},
        "balance": crate::synth::amount(fee.balance_cents),
        "original_amount": crate::synth::amount(fee.original_cents),
        "creation_time": "2024-11-01T10:00:00Z",
        "status_time": "2024-11-01T10:00:00Z",
        "transaction": transactions,
    })
    .to_string()
}

fn alma_error(code: &str, message: &str) -> ResponseTemplate {
    json(
        400,
        format!(
            "{{\"errorsExist\":true,\"errorList\":{{\"error\":[{{\"errorCode\":\"{code}\",\"errorMessage\":\"{message}\",\"trackingId\":\"E01-BENCH\"}}]}},\"result\":null}}"
        ),
    )
}

impl FeesResponder {
    /// The answer, and the state change, of one fees request. The change
    /// is made here, as the request arrives; the latency is added to the
    /// answer after it, so a client killed while waiting has had its
    /// payment made (the window the crash test aims at).
    fn answer(&self, request: &Request) -> ResponseTemplate {
        let state = &self.0;
        let segments: Vec<&str> = request.url.path().split('/').collect();
        let (Some(user), Some(fee_id)) = (segments.get(4), segments.get(6)) else {
            return alma_error("402119", "General error.");
        };
        let Ok(mut now) = state.now.lock() else {
            return json(500, String::new());
        };
        let Some(fee) = now.fees.get_mut(*fee_id) else {
            return alma_error("401665", "Fine not found.");
        };
        if fee.patron != *user {
            return alma_error("401651", "User with identifier was not found.");
        }
        if fee.balance_cents == 0 {
            return alma_error(
                "401652",
                "Request failed: API does not support closed fees.",
            );
        }
        match request.method.as_str() {
            "GET" => {
                state.gets.fetch_add(1, Ordering::Relaxed);
                json(200, fee_json(fee_id, fee))
            }
            "POST" => {
                state.posts.fetch_add(1, Ordering::Relaxed);
                let query: HashMap<String, String> =
                    request.url.query_pairs().into_owned().collect();
                let amount = query
                    .get("amount")
                    .and_then(|text| sync_core::Money::parse(text).ok())
                    .map(sync_core::Money::cents);
                match amount {
                    Some(cents) if cents > 0 && cents <= fee.balance_cents => {
                        fee.balance_cents -= cents;
                        let text = |name: &str| query.get(name).cloned().unwrap_or_default();
                        fee.payments.push(MockPayment {
                            cents,
                            external_transaction_id: text("external_transaction_id"),
                            method: text("method"),
                            comment: text("comment"),
                        });
                        json(200, fee_json(fee_id, fee))
                    }
                    _ => {
                        fee.refused_posts += 1;
                        alma_error("401666", "amount parameter is not valid.")
                    }
                }
            }
            _ => alma_error("402119", "General error."),
        }
    }
}

impl Respond for FeesResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.answer(request).set_delay(self.0.latency)
    }
}

struct StatsResponder(Arc<FeeState>);

impl Respond for StatsResponder {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_string(format!(
            "{} {}",
            self.0.gets.load(Ordering::Relaxed),
            self.0.posts.load(Ordering::Relaxed)
        ))
    }
}

/// `GET /bench/state`: every fee with its balance and accepted payments.
struct StateResponder(Arc<FeeState>);

impl Respond for StateResponder {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let Ok(now) = self.0.now.lock() else {
            return json(500, String::new());
        };
        match serde_json::to_string(&*now) {
            Ok(body) => json(200, body),
            Err(error) => json(500, error.to_string()),
        }
    }
}

/// `POST /bench/reset`: back to the fees as they were at the start, for
/// the next run of a test that starts from scratch.
struct ResetResponder(Arc<FeeState>);

impl Respond for ResetResponder {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let Ok(mut now) = self.0.now.lock() else {
            return json(500, String::new());
        };
        *now = self.0.initial.clone();
        self.0.gets.store(0, Ordering::Relaxed);
        self.0.posts.store(0, Ordering::Relaxed);
        ResponseTemplate::new(200)
    }
}

/// The fee of payment row `n` (1-based): id, patron, balance in cents.
pub fn payment_fee(n: u64) -> (String, String, i64) {
    let cents = 500 + i64::try_from(n % 40).unwrap_or(0) * 25;
    (fine_id(n), patron_id(n % 10_000), cents)
}

/// `serve-fees`: the fees of `source`, every answer after `latency`.
pub async fn serve_fees(source: FeeSource, latency: Duration) -> Result<(), BenchError> {
    let initial = source.fees();
    let state = Arc::new(FeeState {
        now: Mutex::new(initial.clone()),
        initial,
        gets: AtomicU64::new(0),
        posts: AtomicU64::new(0),
        latency,
    });
    // Not recording requests: 40,000 of them would only cost memory.
    let server = MockServer::builder()
        .disable_request_recording()
        .start()
        .await;
    Mock::given(method("GET"))
        .and(path("/bench/stats"))
        .respond_with(StatsResponder(state.clone()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/bench/state"))
        .respond_with(StateResponder(state.clone()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/bench/reset"))
        .respond_with(ResetResponder(state.clone()))
        .mount(&server)
        .await;
    Mock::given(path_regex(r"^/almaws/v1/users/[^/]+/fees/[^/]+$"))
        .respond_with(FeesResponder(state))
        .mount(&server)
        .await;
    let uri = server.uri();
    tokio::task::spawn_blocking(move || announce_and_wait(&uri))
        .await
        .map_err(|e| BenchError::Check(format!("serve-fees: {e}")))?;
    drop(server);
    Ok(())
}

/// Reads the whole state of a `serve-fees` mock.
pub async fn mock_fees(uri: &str) -> Result<MockFees, BenchError> {
    let fail = |e: reqwest::Error| BenchError::Check(format!("reading the fees mock's state: {e}"));
    let body = reqwest::get(format!("{uri}/bench/state"))
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(fail)?
        .text()
        .await
        .map_err(fail)?;
    serde_json::from_str(&body)
        .map_err(|e| BenchError::Check(format!("the fees mock's state is not readable: {e}")))
}

/// Puts a `serve-fees` mock back to its fees at the start.
pub async fn reset_mock_fees(uri: &str) -> Result<(), BenchError> {
    reqwest::Client::new()
        .post(format!("{uri}/bench/reset"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| BenchError::Check(format!("resetting the fees mock: {e}")))?;
    Ok(())
}

/// A server child process; stopped when dropped.
pub struct ServerChild {
    pub child: Child,
    stdin: Option<ChildStdin>,
    pub uri: String,
}

/// The options that make a child synthesize the institution of `size`.
pub fn size_args(size: &Size) -> Vec<String> {
    vec![
        "--seed".into(),
        size.seed.to_string(),
        "--fines".into(),
        size.fines.to_string(),
        "--transactions".into(),
        size.transactions.to_string(),
        "--patrons".into(),
        size.patrons.to_string(),
    ]
}

impl ServerChild {
    /// Starts `abs-bench serve-alma` serving the institution of `size`
    /// for the given days (`"1"` or `"1,2"`).
    pub fn serve_alma(size: &Size, days: &str) -> Result<ServerChild, BenchError> {
        let mut args = vec!["serve-alma".to_string()];
        args.extend(size_args(size));
        args.extend(["--days".to_string(), days.to_string()]);
        ServerChild::spawn(&args)
    }

    /// Starts `abs-bench <args>` and waits for its `URL` line.
    pub fn spawn(args: &[String]) -> Result<ServerChild, BenchError> {
        let exe = std::env::current_exe()
            .map_err(|e| BenchError::io("finding the running executable", ".", e))?;
        let mut child = Command::new(&exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::io("starting", &exe, e))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| BenchError::Child {
            what: args.join(" "),
            message: "no standard output".into(),
        })?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| BenchError::io("reading the URL of", &exe, e))?;
        let uri = line
            .trim()
            .strip_prefix("URL ")
            .ok_or_else(|| BenchError::Child {
                what: args.join(" "),
                message: format!("expected `URL <uri>`, got {line:?}"),
            })?
            .to_string();
        Ok(ServerChild { child, stdin, uri })
    }
}

impl ServerChild {
    /// CPU seconds the server has used so far (user + system), from
    /// `/proc/<pid>/stat`, in clock ticks of 1/100 s.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may contain spaces).
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of stat: 12 and 13 here.
        (ticks(11) + ticks(12)) as f64 / 100.0
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Give it a moment to see the closed input, then make sure.
        for _ in 0..20 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
