//! `manna`: generate keys, inspect the keyring, and encrypt or decrypt values
//! from the command line. Run `manna --help` for the commands and exit codes.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::{self, Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use manna_crypto::{Key, Keyring};
use zeroize::Zeroizing;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation failed: bad input, wrong key or context, or a missing or
     invalid key configuration (one line on stderr says which)
  2  usage error (unknown command or option)

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
}

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
        .without_time()
        .with_target(false)
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            let _ = writeln!(io::stderr(), "manna: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match command {
        Command::Keygen { raw } => {
            let key = Key::generate()?;
            let text = key.to_base64();
            if raw {
                writeln!(out, "{}", text.as_str())?;
            } else {
                writeln!(out, "{}={}", manna_crypto::ENV_PRIMARY, text.as_str())?;
            }
        }
        Command::Info => {
            let info = Keyring::from_env()?.info();
            serde_json::to_writer_pretty(&mut out, &info)?;
            writeln!(out)?;
        }
        Command::Encrypt { context, binary } => {
            let ring = Keyring::from_env()?;
            let plain = read_stdin()?;
            if binary {
                out.write_all(&ring.encrypt_bytes(&plain, context.as_bytes())?)?;
            } else {
                writeln!(out, "{}", ring.encrypt_to_text(&plain, context.as_bytes())?)?;
            }
        }
        Command::Decrypt { context, binary } => {
            let ring = Keyring::from_env()?;
            let input = read_stdin()?;
            let plain = Zeroizing::new(if binary {
                ring.decrypt_bytes(&input, context.as_bytes())
            } else {
                let text = std::str::from_utf8(&input)
                    .map_err(|_| Failure("input is not a text envelope (not UTF-8); use --binary for binary envelopes".into()))?;
                ring.decrypt_text(text.trim(), context.as_bytes())
            }
            .map_err(|e| Failure(format!("cannot decrypt: {e}")))?);
            out.write_all(&plain)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn read_stdin() -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut buf = Zeroizing::new(Vec::new());
    io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| Failure(format!("reading stdin: {e}")))?;
    Ok(buf)
}
