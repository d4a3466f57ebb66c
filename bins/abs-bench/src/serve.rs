//! The mock Alma, in a process of its own so that the measured sync's
//! memory is its own.
//!
//! `abs-bench serve-alma` synthesizes the institution and serves its
//! reports (alma-sim, rendered page by page on request);
//! `abs-bench serve-fees` serves the fees API with a fixed latency. Each
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

/// A fee of the fees mock: patron, balance in cents.
struct FeeState {
    fees: Mutex<HashMap<String, (String, i64)>>,
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

fn fee_json(id: &str, patron: &str, balance: i64, original: i64) -> String {
    let status = if balance == 0 { "CLOSED" } else { "ACTIVE" };
    format!(
        "{{\"id\":\"{id}\",\"type\":{{\"value\":\"OVERDUEFINE\",\"desc\":\"Overdue fine\"}},\"status\":{{\"value\":\"{status}\"}},\"user_primary_id\":{{\"value\":\"{patron}\"}},\"balance\":{},\"original_amount\":{},\"creation_time\":\"2024-11-01T10:00:00Z\",\"status_time\":\"2024-11-01T10:00:00Z\",\"transaction\":[]}}",
        crate::synth::amount(balance),
        crate::synth::amount(original)
    )
}

fn alma_error(code: &str, message: &str) -> ResponseTemplate {
    json(
        400,
        format!(
            "{{\"errorsExist\":true,\"errorList\":{{\"error\":[{{\"errorCode\":\"{code}\",\"errorMessage\":\"{message}\",\"trackingId\":\"E01-BENCH\"}}]}},\"result\":null}}"
        ),
    )
}

impl Respond for FeesResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let state = &self.0;
        let segments: Vec<&str> = request.url.path().split('/').collect();
        let (Some(user), Some(fee_id)) = (segments.get(4), segments.get(6)) else {
            return alma_error("402119", "General error.");
        };
        let Ok(mut fees) = state.fees.lock() else {
            return json(500, String::new());
        };
        let Some((patron, balance)) = fees.get_mut(*fee_id) else {
            return alma_error("401665", "Fine not found.");
        };
        if patron != user {
            return alma_error("401651", "User with identifier was not found.");
        }
        if *balance == 0 {
            return alma_error(
                "401652",
                "Request failed: API does not support closed fees.",
            );
        }
        let template = match request.method.as_str() {
            "GET" => {
                state.gets.fetch_add(1, Ordering::Relaxed);
                json(200, fee_json(fee_id, patron, *balance, *balance))
            }
            "POST" => {
                state.posts.fetch_add(1, Ordering::Relaxed);
                let amount = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "amount")
                    .and_then(|(_, v)| sync_core::Money::parse(&v).ok())
                    .map(sync_core::Money::cents);
                match amount {
                    Some(cents) if cents > 0 && cents <= *balance => {
                        let original = *balance;
                        *balance -= cents;
                        json(200, fee_json(fee_id, patron, *balance, original))
                    }
                    _ => alma_error("401666", "amount parameter is not valid."),
                }
            }
            _ => alma_error("402119", "General error."),
        };
        template.set_delay(state.latency)
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

/// The fee of payment row `n` (1-based): id, patron, balance in cents.
pub fn payment_fee(n: u64) -> (String, String, i64) {
    let cents = 500 + i64::try_from(n % 40).unwrap_or(0) * 25;
    (fine_id(n), patron_id(n % 10_000), cents)
}

/// `serve-fees`: `rows` active fees, every answer after `latency`.
pub async fn serve_fees(rows: u64, latency: Duration) -> Result<(), BenchError> {
    let fees = (1..=rows)
        .map(|n| {
            let (id, patron, cents) = payment_fee(n);
            (id, (patron, cents))
        })
        .collect();
    let state = Arc::new(FeeState {
        fees: Mutex::new(fees),
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

/// A server child process; stopped when dropped.
pub struct ServerChild {
    pub child: Child,
    stdin: Option<ChildStdin>,
    pub uri: String,
}

impl ServerChild {
    /// Starts `abs-bench serve-alma` serving the institution of `size`
    /// for the given days (`"1"` or `"1,2"`).
    pub fn serve_alma(size: &Size, days: &str) -> Result<ServerChild, BenchError> {
        ServerChild::spawn(&[
            "serve-alma".into(),
            "--seed".into(),
            size.seed.to_string(),
            "--fines".into(),
            size.fines.to_string(),
            "--transactions".into(),
            size.transactions.to_string(),
            "--patrons".into(),
            size.patrons.to_string(),
            "--days".into(),
            days.into(),
        ])
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
