//! `manna`: generate keys, inspect the keyring, and encrypt or decrypt values
//! from the command line. Run `manna --help` for the commands and exit codes.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use manna_crypto::{Key, Keyring};
use manna_diesel::migrate::Scope;
use zeroize::Zeroizing;

mod db;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation failed: bad input, wrong key or context, a missing or
     invalid key configuration, a database error, or rows that cannot be
     decrypted (one line on stderr says which)
  2  usage error (unknown command or option)
  3  verify: values remain that are not under the primary key

Keys come from the environment:
  MANNA_ENCRYPTION_KEY_AES256            primary key, base64 of 32 bytes (required)
  MANNA_ENCRYPTION_KEYS_AES256_PREVIOUS  previous keys, comma-separated (optional)
  MANNA_ENCRYPTION_KEY                   legacy Fernet keys, comma-separated (optional)
  MANNA_ENV=development|test             use a public development key when no key is set";

/// Manna: AES-256-GCM encrypted columns for Diesel, and their keys.
#[derive(Parser)]
#[command(name = "manna", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // The doc comment is clap's help text, where `<key>` reads as meant.
    #[allow(rustdoc::invalid_html_tags)]
    /// Print a new random AES-256 key as MANNA_ENCRYPTION_KEY_AES256=<key>.
    #[command(after_help = "Examples:\n  manna keygen >> .env\n  manna keygen --raw")]
    Keygen {
        /// Print the key alone, without the variable name.
        #[arg(long)]
        raw: bool,
    },
    /// Print the configured keyring as JSON: algorithm, key ids, legacy key count.
    /// Never prints key bytes.
    #[command(after_help = "Example:\n  MANNA_ENCRYPTION_KEY_AES256=... manna info")]
    Info,
    /// Encrypt stdin under the primary key and print the text envelope and a newline.
    #[command(
        after_help = "Examples:\n  printf 'secret' | manna encrypt --context users.email\n  manna encrypt --binary < photo.jpg > photo.enc"
    )]
    Encrypt {
        /// Context bound to the value as associated data (e.g. `table.column`).
        #[arg(long, default_value = "")]
        context: String,
        /// Write the raw binary envelope instead of the text form.
        #[arg(long)]
        binary: bool,
    },
    /// Decrypt a text envelope or legacy Fernet token from stdin and write
    /// exactly the plaintext bytes (no newline added).
    #[command(
        after_help = "Examples:\n  printf '%s' \"$value\" | manna decrypt --context users.email\n  manna decrypt --binary < photo.enc > photo.jpg\n\nOn failure: exit 1 and one line on stderr naming the kind of failure;\nthe input and any plaintext are never printed."
    )]
    Decrypt {
        /// The context the value was encrypted with.
        #[arg(long, default_value = "")]
        context: String,
        /// Read a raw binary envelope instead of the text form.
        #[arg(long)]
        binary: bool,
    },
    /// Re-encrypt a column's legacy Fernet tokens (and values under previous
    /// keys) under the primary key, in place, while the application runs.
    #[command(after_help = MIGRATE_HELP)]
    Migrate(db::MigrateArgs),
    /// Re-encrypt a column's values under previous AES keys under the
    /// primary key (Fernet tokens are left to `migrate`).
    #[command(
        after_help = "Example:\n  manna rotate --database-url \"$DATABASE_URL\" --table plaid_items \\\n      --column access_token --context plaid_items.access_token\n\nSame behaviour, audit and exit codes as `manna migrate`."
    )]
    Rotate(db::MigrateArgs),
    /// Count a column's values by format and key id; exit 3 unless every
    /// value is NULL or v1 under the primary key.
    #[command(
        after_help = "Example:\n  manna verify --database-url \"$DATABASE_URL\" --table plaid_items --column access_token \\\n      && echo \"the legacy keys can be retired for this column\"\n\nExit codes: 0 complete, 1 error, 3 values remain (Fernet, previous or unknown\nkeys, or unrecognised values)."
    )]
    Verify(db::Target),
}

const MIGRATE_HELP: &str = "\
Example:
  manna migrate --database-url postgres://app@db/app --table plaid_items \\
      --column access_token --context plaid_items.access_token

How it works: pages through the table by id; each batch is one transaction
that writes each row only if it still holds the value that was read, so a
row the application changed meanwhile is left alone (and counted). Rows
already under the primary key and NULLs are skipped: the command can be
stopped at any point and run again. A batch the database rolls back for a
lock conflict with the application (a deadlock, a lock wait timeout) is
written again, up to 10 times. Every run is recorded in the table
manna_encryption_audit (created when missing).

A value that cannot be decrypted stops the run before anything of its batch
is written; the message names the row ids and the kind of failure, never the
value. With --skip-invalid such rows are recorded in
manna_encryption_audit_invalid_rows instead, and the run goes on.

The database URL's scheme picks the backend: postgres://, mysql:// (or
mariadb://), sqlite://path. Keys come from the environment (manna --help).";

/// A failure: the message is printed as one line on stderr.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MANNA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .init();
    match run(cli.command) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Incomplete) => ExitCode::from(3),
        Err(Failure(message)) => {
            // One line whatever the message: libpq's, for one, spans several.
            let line = message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(io::stderr(), "manna: error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// How a command that did not fail ended.
enum Outcome {
    Done,
    /// `verify` found values not under the primary key.
    Incomplete,
}

fn run(command: Command) -> Result<Outcome, Failure> {
    match command {
        Command::Migrate(args) => db::migrate(args, Scope::All)?,
        Command::Rotate(args) => db::migrate(args, Scope::PreviousKeys)?,
        Command::Verify(target) => {
            if !db::verify(target)? {
                return Ok(Outcome::Incomplete);
            }
        }
        Command::Keygen { raw } => keygen(raw)?,
        Command::Info => info()?,
        Command::Encrypt { context, binary } => encrypt(&context, binary)?,
        Command::Decrypt { context, binary } => decrypt(&context, binary)?,
    }
    Ok(Outcome::Done)
}

fn keygen(raw: bool) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    let text = Key::generate()?.to_base64();
    if raw {
        writeln!(out, "{}", text.as_str())?;
    } else {
        writeln!(out, "{}={}", manna_crypto::ENV_PRIMARY, text.as_str())?;
    }
    Ok(out.flush()?)
}

fn info() -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &Keyring::from_env()?.info())?;
    writeln!(out)?;
    Ok(out.flush()?)
}

fn encrypt(context: &str, binary: bool) -> Result<(), Failure> {
    let ring = Keyring::from_env()?;
    let plain = read_stdin()?;
    let mut out = io::stdout().lock();
    if binary {
        out.write_all(&ring.encrypt_bytes(&plain, context.as_bytes())?)?;
    } else {
        writeln!(out, "{}", ring.encrypt_to_text(&plain, context.as_bytes())?)?;
    }
    Ok(out.flush()?)
}

fn decrypt(context: &str, binary: bool) -> Result<(), Failure> {
    let ring = Keyring::from_env()?;
    let input = read_stdin()?;
    let plain = Zeroizing::new(
        if binary {
            ring.decrypt_bytes(&input, context.as_bytes())
        } else {
            let text = std::str::from_utf8(&input).map_err(|_| {
                Failure(
                    "input is not a text envelope (not UTF-8); use --binary for binary envelopes"
                        .into(),
                )
            })?;
            ring.decrypt_text(text.trim(), context.as_bytes())
        }
        .map_err(|e| Failure(format!("cannot decrypt: {e}")))?,
    );
    let mut out = io::stdout().lock();
    out.write_all(&plain)?;
    Ok(out.flush()?)
}

fn read_stdin() -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut buf = Zeroizing::new(Vec::new());
    io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| Failure(format!("reading stdin: {e}")))?;
    Ok(buf)
}
