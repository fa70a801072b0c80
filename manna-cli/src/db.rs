//! The database commands: `migrate`, `rotate` and `verify`.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args;
use diesel::Connection;
use indicatif::{ProgressBar, ProgressStyle};
use manna_crypto::Keyring;
use manna_diesel::migrate::{
    census, census_binary, id_range, Census, MigrationConnection, Reencryption, Report, Scope,
};

use crate::Failure;

/// Where and what to re-encrypt.
#[derive(Args, Debug)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    target: Target,
    /// The context the column's values were encrypted with (its `#[manna(context = ...)]`).
    #[arg(long)]
    context: String,
    /// Rows per batch (and per transaction), 1 to 20000.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Read and decrypt everything and report what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Record undecryptable rows in manna_encryption_audit_invalid_rows and
    /// go on, instead of stopping at the first batch that has one.
    #[arg(long)]
    skip_invalid: bool,
}

/// The column to work on.
#[derive(Args, Debug)]
pub(crate) struct Target {
    /// postgres://..., mysql://... (or mariadb://...), or sqlite://path (or a file path).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// The table (optionally schema.table).
    #[arg(long)]
    table: String,
    /// The encrypted column (text).
    #[arg(long)]
    column: String,
    /// The unique integer key to page by (usually the primary key).
    #[arg(long, default_value = "id")]
    id_column: String,
    /// The column holds binary envelopes (BYTEA/BLOB; #[manna(sql_type = Binary)]).
    #[arg(long)]
    binary: bool,
}

/// Something to do with whichever connection the URL names.
trait OnConnection {
    fn run<C: MigrationConnection>(self, conn: &mut C) -> Result<(), Failure>;
}

/// Opens the database the URL's scheme names and runs `job` on it.
fn dispatch(url: &str, job: impl OnConnection) -> Result<(), Failure> {
    let (scheme, _) = url.split_once("://").unwrap_or(("", url));
    match scheme {
        "postgres" | "postgresql" => {
            #[cfg(feature = "postgres")]
            {
                let mut conn = diesel::PgConnection::establish(url)
                    .map_err(|e| Failure(format!("cannot connect to PostgreSQL: {e}")))?;
                job.run(&mut conn)
            }
            #[cfg(not(feature = "postgres"))]
            {
                let _ = job;
                Err(not_built("PostgreSQL", "postgres"))
            }
        }
        "mysql" | "mariadb" => {
            #[cfg(feature = "mysql")]
            {
                let url = format!("mysql://{}", &url[scheme.len() + 3..]);
                let mut conn = diesel::MysqlConnection::establish(&url)
                    .map_err(|e| Failure(format!("cannot connect to MySQL/MariaDB: {e}")))?;
                job.run(&mut conn)
            }
            #[cfg(not(feature = "mysql"))]
            {
                let _ = job;
                Err(not_built("MySQL/MariaDB", "mysql"))
            }
        }
        "sqlite" | "" => {
            #[cfg(feature = "sqlite")]
            {
                let path = url.strip_prefix("sqlite://").unwrap_or(url);
                if !path.starts_with("file:") && !std::path::Path::new(path).exists() {
                    return Err(Failure(format!("no SQLite database at {path}")));
                }
                let mut conn = diesel::SqliteConnection::establish(path)
                    .map_err(|e| Failure(format!("cannot open SQLite database: {e}")))?;
                // Wait for the application's writes rather than failing on them.
                diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    "PRAGMA busy_timeout = 30000",
                )?;
                job.run(&mut conn)
            }
            #[cfg(not(feature = "sqlite"))]
            {
                let _ = job;
                Err(not_built("SQLite", "sqlite"))
            }
        }
        other => Err(Failure(format!(
            "unsupported database URL scheme {other:?}: use postgres://, mysql:// (mariadb://) or sqlite://"
        ))),
    }
}

#[allow(dead_code)] // unused when every backend is built in
fn not_built(name: &str, feature: &str) -> Failure {
    Failure(format!(
        "this manna was built without {name} support; rebuild it with `--features {feature}`"
    ))
}

/// `manna migrate` and `manna rotate`.
pub(crate) fn migrate(args: MigrateArgs, scope: Scope) -> Result<(), Failure> {
    let keyring = Keyring::from_env()?;
    let job = Reencryption::new(
        &args.target.table,
        &args.target.column,
        args.context.as_bytes(),
    )
    .id_column(&args.target.id_column)
    .binary(args.target.binary)
    .batch_size(args.batch_size)
    .scope(scope)
    .dry_run(args.dry_run)
    .skip_invalid(args.skip_invalid);
    dispatch(
        &args.target.database_url,
        MigrateJob {
            job,
            keyring,
            scope,
        },
    )
}

struct MigrateJob {
    job: Reencryption,
    keyring: Keyring,
    scope: Scope,
}

impl OnConnection for MigrateJob {
    fn run<C: MigrationConnection>(self, conn: &mut C) -> Result<(), Failure> {
        let range = id_range(conn, self.job.table(), self.job.id_column_name())?;
        let started = Instant::now();
        let mut progress = Progress::new(range);
        // What the batches committed before a stop: the operator's next step
        // depends on it, and a rerun resumes from there.
        let mut committed: Option<(String, u64)> = None;
        let outcome = self.job.run_with_progress(conn, &self.keyring, |report| {
            committed = (!report.dry_run).then(|| (report.run_id.clone(), report.converted));
            progress.update(report);
        });
        progress.finish();
        match outcome {
            Ok(report) => {
                print_summary(&self.job, self.scope, &report, started.elapsed())?;
                Ok(())
            }
            Err(e) => Err(Failure(match committed {
                Some((run_id, converted)) => format!(
                    "{e} ({converted} value(s) re-encrypted before the stop are committed, \
                     counted under run {run_id} in manna_encryption_audit; \
                     running the command again resumes from there)"
                ),
                None => e.to_string(),
            })),
        }
    }
}

/// A progress bar on a terminal; otherwise a log line every few seconds.
///
/// Progress is how far the last id read is through the table's id range:
/// known up front from the primary key index, without counting rows.
struct Progress {
    bar: Option<ProgressBar>,
    range: Option<(i64, i64)>,
    started: Instant,
    last_line: Instant,
}

/// Steps of the progress bar.
const STEPS: u64 = 10_000;

impl Progress {
    fn new(range: Option<(i64, i64)>) -> Self {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(STEPS);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            range,
            started: now,
            last_line: now,
        }
    }

    /// The fraction of the id range done.
    fn fraction(&self, report: &Report) -> f64 {
        match (self.range, report.last_id) {
            (Some((lo, hi)), Some(id)) if hi > lo => {
                ((id as f64 - lo as f64) / (hi as f64 - lo as f64)).clamp(0.0, 1.0)
            }
            (_, Some(_)) => 1.0,
            _ => 0.0,
        }
    }

    fn update(&mut self, report: &Report) {
        let fraction = self.fraction(report);
        let secs = self.started.elapsed().as_secs_f64();
        let rate = report.scanned as f64 / secs.max(1e-9);
        if let Some(bar) = &self.bar {
            bar.set_position((fraction * STEPS as f64) as u64);
            bar.set_message(format!(
                "{} rows read, {} re-encrypted, {rate:.0} rows/s",
                report.scanned, report.converted
            ));
            return;
        }
        if self.last_line.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.last_line = Instant::now();
        let eta = secs * (1.0 - fraction) / fraction.max(1e-9);
        let _ = writeln!(
            io::stderr(),
            "manna: {:.0}% ({} rows read, {} re-encrypted), {rate:.0} rows/s, ETA {eta:.0} s",
            fraction * 100.0,
            report.scanned,
            report.converted,
        );
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn print_summary(
    job: &Reencryption,
    scope: Scope,
    report: &Report,
    elapsed: Duration,
) -> Result<(), Failure> {
    let mut out = String::new();
    let verb = match scope {
        Scope::PreviousKeys => "rotate",
        _ => "migrate",
    };
    let secs = elapsed.as_secs_f64();
    let dry = if report.dry_run {
        " (dry run: nothing written)"
    } else {
        ""
    };
    writeln!(
        out,
        "{verb} {}.{}: completed in {secs:.2} s{dry}",
        job.table(),
        job.column()
    )?;
    if !report.dry_run {
        writeln!(out, "  run id (manna_encryption_audit)  {}", report.run_id)?;
    }
    let converted = if report.dry_run {
        "  would be re-encrypted          "
    } else {
        "  re-encrypted                   "
    };
    writeln!(out, "{converted} {:>10}", report.converted)?;
    writeln!(
        out,
        "  left as they were               {:>10}",
        report.skipped
    )?;
    writeln!(
        out,
        "  changed by the application      {:>10}",
        report.changed_concurrently
    )?;
    writeln!(
        out,
        "  undecryptable, skipped          {:>10}",
        report.invalid
    )?;
    if report.batches_retried > 0 {
        writeln!(
            out,
            "  batches retried (lock conflict) {:>10}",
            report.batches_retried
        )?;
    }
    writeln!(
        out,
        "  rate                            {:>10.0} rows/s",
        report.scanned as f64 / secs.max(1e-9)
    )?;
    if !report.from_formats.is_empty() {
        let formats = report
            .from_formats
            .iter()
            .map(|(f, n)| format!("{f}={n}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(out, "  found                           {formats}")?;
    }
    if let Some(kib) = peak_rss_kib() {
        writeln!(
            out,
            "  peak memory                     {:>10.1} MiB",
            kib as f64 / 1024.0
        )?;
    }
    for row in &report.invalid_rows {
        writeln!(out, "  skipped id {}: {}", row.id, row.failure)?;
    }
    emit(&out)
}

/// Writes a report to stdout. A reader that went away (`| head`) is not a
/// failure: the work is done by then.
fn emit(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The process's peak resident set size (Linux), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `manna verify`: what the column holds; exit 3 when anything is left to do.
pub(crate) fn verify(target: Target) -> Result<bool, Failure> {
    let keyring = Keyring::from_env()?;
    let mut complete = false;
    dispatch(
        &target.database_url,
        VerifyJob {
            target: &target,
            keyring: &keyring,
            complete: &mut complete,
        },
    )?;
    Ok(complete)
}

struct VerifyJob<'a> {
    target: &'a Target,
    keyring: &'a Keyring,
    complete: &'a mut bool,
}

impl OnConnection for VerifyJob<'_> {
    fn run<C: MigrationConnection>(self, conn: &mut C) -> Result<(), Failure> {
        let t = self.target;
        let counts = if t.binary {
            census_binary(conn, &t.table, &t.column, &t.id_column)?
        } else {
            census(conn, &t.table, &t.column, &t.id_column)?
        };
        print_census(&t.table, &t.column, &counts, self.keyring)?;
        *self.complete = counts.is_complete(self.keyring);
        Ok(())
    }
}

fn print_census(
    table: &str,
    column: &str,
    counts: &Census,
    keyring: &Keyring,
) -> Result<(), Failure> {
    let mut out = String::new();
    let primary = keyring.primary_key_id();
    let previous = keyring.previous_key_ids();
    writeln!(out, "{table}.{column}: {} rows", counts.total)?;
    let mut line = |label: &str, n: u64| writeln!(out, "  {label:<38} {n:>10}");
    line("NULL", counts.null)?;
    let mut v1: Vec<_> = counts.v1.iter().collect();
    v1.sort_by_key(|(id, _)| **id != primary);
    if !counts.v1.contains_key(&primary) {
        line(&format!("v1, key {primary} (primary)"), 0)?;
    }
    for (id, n) in v1 {
        let role = if *id == primary {
            "primary"
        } else if previous.contains(id) {
            "previous"
        } else {
            "not in the keyring"
        };
        line(&format!("v1, key {id} ({role})"), *n)?;
    }
    line("Fernet (legacy)", counts.fernet)?;
    line("unrecognised", counts.unrecognized)?;
    let remaining = counts.remaining(keyring);
    if remaining == 0 {
        writeln!(
            out,
            "complete: every value is NULL or v1 under the primary key {primary}; \
             no legacy or previous key is needed for this column"
        )?;
    } else {
        writeln!(
            out,
            "incomplete: {remaining} value(s) are not under the primary key {primary}; \
             run `manna migrate` (Fernet), `manna rotate` (previous keys), \
             or inspect the unrecognised ones"
        )?;
    }
    emit(&out)
}
