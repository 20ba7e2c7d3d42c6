//! The `custodyd` command line: the daemon and the tools a technician uses
//! around it. Errors end here, as `anyhow`, with the key or device named.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use custodyd::config::{self, Config};
use custodyd::ops::journal::Prioritised;
use custodyd::trust::keys::SigningKey;
use tracing_subscriber::filter::{LevelFilter, ParseError, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser)]
#[command(
    name = "custodyd",
    version,
    about = "RFID and barcode custody events from ITAD doors and cages, over MQTT"
)]
struct Cli {
    /// Log format; `human` drops timestamps when stderr is the journal, which adds its own,
    /// and starts each line with its priority for it.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Validate a configuration file: print a summary and exit 0, or every error and exit 2.
    CheckConfig {
        /// The file (or use --config).
        file: Option<PathBuf>,
        #[arg(long, conflicts_with = "file")]
        config: Option<PathBuf>,
    },
    /// Run the whole pipeline with simulated readers and an embedded broker (or --broker); no hardware needed.
    Demo(custodyd::demo::DemoArgs),
    /// Print the gateway's MQTT messages as they arrive, one line each.
    Tail(custodyd::ops::tail::TailArgs),
    /// List serial ports, HID scanners and GPIO chips, with the `path` to configure.
    Devices,
    /// The device key that signs this gateway's custody log checkpoints.
    Key {
        #[arg(long, default_value = config::DEFAULT_PATH, global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Check captured events and checkpoints (`mosquitto_sub -v` output) against a gateway's key:
    /// exit 0 if everything verifies, 1 if not, 2 if the input cannot be read.
    Verify(custodyd::audit::verify::VerifyArgs),
    /// Make an Ed25519 key pair for central to sign control messages with
    /// (docs/trust.md): writes the private key file, prints the public key
    /// for `[trust] central_keys`.
    Keygen {
        /// The key id gateways know it by (the `key` of each envelope).
        #[arg(long, default_value = "central-1")]
        key_id: String,
        /// Where to write the private key (mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a control message read as JSON from stdin for `--topic`; prints
    /// the envelope to publish (adds topic and issued_at, and on command
    /// topics id and not_after, where the object lacks them).
    Sign {
        /// A key file written by `custodyd keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The exact topic the envelope will be published on.
        #[arg(long)]
        topic: String,
        /// Commands: how long they stay valid when the input has no
        /// not_after (at most 1h counts).
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
    },
    /// Look into the spool of a stopped daemon.
    Spool {
        #[arg(long, default_value = config::DEFAULT_PATH, global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: SpoolCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print the public key (base64), as `verify --key` and the status message's `device_key` carry it.
    Show {
        /// Print it as a signed-note verifier key (`site/gateway+hash+key`), for Go's
        /// golang.org/x/mod/sumdb/note and its ports.
        #[arg(long)]
        verifier_key: bool,
    },
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// Depth, bytes, age of the oldest undelivered event, next seq, dead letters.
    Stats,
    /// The dead letters (events too large to send), then the oldest
    /// undelivered events: one JSON object a line.
    Peek {
        #[arg(default_value_t = 10)]
        n: usize,
    },
    /// Delete dead letters (all with --all), printing each as `peek` does:
    /// keep the output, it is the only copy left.
    DropDeadLetters {
        /// The seq of each dead letter to delete.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        seqs: Vec<u64>,
        #[arg(long)]
        all: bool,
    },
}

/// Exit status for a bad configuration (as `check-config` documents).
const EXIT_CONFIG: u8 = 2;
/// Exit status of `verify` when its input cannot be read (1: it does not verify).
const EXIT_UNREADABLE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::CheckConfig { file, config } => {
            let path = file
                .or(config)
                .unwrap_or_else(|| config::DEFAULT_PATH.into());
            match load(&path) {
                Ok(config) => {
                    println!("{}: OK\n{}", path.display(), config.summary());
                    for warning in config::exposed_secrets(&path, &config) {
                        println!("warning: {warning}");
                    }
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::Run { config: path } => match load(&path) {
            Ok(config) => {
                for warning in config::exposed_secrets(&path, &config) {
                    tracing::warn!("{warning}");
                }
                exit(runtime().block_on(custodyd::daemon::run(
                    path,
                    config,
                    custodyd::signals::stop(),
                )))
            }
            Err(code) => code,
        },
        Command::Demo(args) => exit(runtime().block_on(custodyd::demo::run(args))),
        Command::Tail(args) => match load(&args.config) {
            Ok(config) => exit(runtime().block_on(custodyd::ops::tail::run(&config, &args))),
            Err(code) => code,
        },
        Command::Devices => {
            print!(
                "{}",
                custodyd::ops::devices::scan(std::path::Path::new("/"))
            );
            ExitCode::SUCCESS
        }
        Command::Key {
            config,
            command: KeyCommand::Show { verifier_key },
        } => match load(&config) {
            Ok(config) => exit(show_key(&config, verifier_key)),
            Err(code) => code,
        },
        Command::Verify(args) => match custodyd::audit::verify::run(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("custodyd verify: {e}");
                ExitCode::from(EXIT_UNREADABLE)
            }
        },
        Command::Keygen { key_id, out } => exit(keygen(&key_id, &out)),
        Command::Sign { key, topic, ttl } => exit(sign(&key, &topic, ttl)),
        Command::Spool { config, command } => match load(&config) {
            Ok(config) => exit(inspect_spool(&config, command)),
            Err(code) => code,
        },
    }
}

/// Never makes a key: the daemon does, at its first start, as its own user.
fn show_key(config: &Config, verifier_key: bool) -> anyhow::Result<()> {
    let key = custodyd::audit::DeviceKey::load(&config.gateway.data_dir)?;
    match verifier_key {
        true => {
            let name =
                custodyd::audit::checkpoint::key_name(&config.gateway.site, &config.gateway.name);
            println!(
                "{}",
                custodyd::audit::note::verifier_key(&name, &key.public())
            );
        }
        false => println!("{}", key.public_base64()),
    }
    Ok(())
}

fn keygen(key_id: &str, out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = SigningKey::generate(key_id)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("{} (an existing key is never overwritten)", out.display()))?;
    file.write_all(key.to_file_text().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| out.display().to_string())?;
    eprintln!("private key written to {} (keep it secret)", out.display());
    println!("# [trust] of each gateway:");
    println!(
        "central_keys = {{ {:?} = {:?} }}",
        key.key_id,
        key.public_base64()
    );
    Ok(())
}

fn sign(key: &std::path::Path, topic: &str, ttl: std::time::Duration) -> anyhow::Result<()> {
    use std::io::Read;
    let key = SigningKey::read(key)?;
    let mut inner = Vec::new();
    std::io::stdin()
        .read_to_end(&mut inner)
        .context("reading the message from stdin")?;
    let envelope =
        custodyd::trust::sign::sign(&key, topic, &inner, std::time::SystemTime::now(), ttl)
            .map_err(anyhow::Error::msg)?;
    println!("{envelope}");
    Ok(())
}

fn inspect_spool(config: &Config, command: SpoolCommand) -> anyhow::Result<()> {
    let store = custodyd::spool::open_for_inspection(&config.gateway.data_dir)?;
    match command {
        SpoolCommand::Stats => {
            let s = store.stats()?;
            let age = s.oldest_committed_at_ms.map_or("-".to_string(), |ms| {
                let then = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
                let age = then.elapsed().unwrap_or_default();
                format!(
                    "{} (committed {})",
                    humantime::format_duration(std::time::Duration::from_secs(age.as_secs())),
                    custodyd::custody::rfc3339(then)
                )
            });
            println!("spool      {}", store.path().display());
            println!("depth      {} undelivered events", s.depth);
            println!(
                "bytes      {} of {} (file {})",
                s.bytes, config.spool.max_bytes, s.file_bytes
            );
            println!(
                "oldest     seq {} age {age}",
                s.oldest_seq.map_or("-".to_string(), |q| q.to_string())
            );
            println!("next seq   {}", s.next_seq);
            println!("stream     {}", s.stream.as_deref().unwrap_or("-"));
            println!(
                "dead       {} events set aside as too large to send (spool peek shows them)",
                s.dead_letters
            );
        }
        SpoolCommand::Peek { n } => {
            let dead = store.dead_letters(n)?.into_iter().map(|r| (r, true));
            let spooled = store.read_from(0, n)?.into_iter().map(|r| (r, false));
            for ((seq, record), dead_letter) in dead.chain(spooled) {
                print_record(seq, &record, dead_letter);
            }
        }
        SpoolCommand::DropDeadLetters { seqs, all } => {
            let dropped = store.drop_dead_letters((!all).then_some(seqs.as_slice()))?;
            for (seq, record) in &dropped {
                print_record(*seq, record, true);
            }
            eprintln!("{} dead letters deleted", dropped.len());
        }
    }
    Ok(())
}

/// One spooled record as a line of JSON, its event parsed where it parses.
fn print_record(seq: u64, record: &custodyd::spool::StoredRecord, dead_letter: bool) {
    let r = record.v1();
    let event: serde_json::Value = serde_json::from_slice(&r.payload)
        .unwrap_or_else(|_| String::from_utf8_lossy(&r.payload).into());
    println!(
        "{}",
        serde_json::json!({ "seq": seq, "topic": r.topic, "dead_letter": dead_letter, "event": event })
    );
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        eprintln!("{}: invalid configuration:", path.display());
        for e in &errors.0 {
            eprintln!("  {e}");
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One worker thread unless `TOKIO_WORKER_THREADS` says otherwise: the
/// daemon mostly waits, and its work per read is a fraction of a
/// microsecond, so a second worker only adds wake-ups between threads
/// (docs/performance.md). The spool's
/// fsyncs run on tokio's blocking pool, never on the worker.
fn runtime() -> tokio::runtime::Runtime {
    one_malloc_arena();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(1);
    }
    builder
        .enable_all()
        .build()
        .expect("starting the tokio runtime")
}

/// Every thread allocates from the one malloc arena, unless
/// `MALLOC_ARENA_MAX` says otherwise. glibc gives each thread that allocates
/// an arena of its own (up to eight per core) and an arena keeps the pages it
/// once used, so the worker and each blocking-pool thread (redb's commits)
/// would each hold a high-water mark of their own, in a daemon whose whole
/// heap is small.
/// These threads seldom allocate at the same moment, and glibc's per-thread
/// cache serves most small allocations without the arena's lock. Called
/// before the runtime starts its threads: a thread's arena is chosen at its
/// first allocation.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only sets a parameter of the allocator; no other
    // thread runs yet.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) } == 0 {
        tracing::debug!("glibc refused M_ARENA_MAX; threads keep their own malloc arenas");
    }
}

/// musl's allocator has no arenas per thread.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

fn init_logging(format: LogFormat) {
    let (filter, refused) = match log_filter(std::env::var("RUST_LOG").ok().as_deref()) {
        Ok(filter) => (filter, None),
        Err(e) => (default_log_filter(), Some(e)),
    };
    // Colours only for a person at a terminal, never into a file or a pipe.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // `filter` decides; the formatter's own limit would stop at INFO.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().finish().with(filter).init(),
        LogFormat::Human if stderr_is_journal() => builder
            .with_ansi(false)
            .event_format(Prioritised(
                tracing_subscriber::fmt::format().without_time(),
            ))
            .finish()
            .with(filter)
            .init(),
        LogFormat::Human => builder.with_ansi(colour).finish().with(filter).init(),
    }
    if let Some(e) = refused {
        tracing::warn!("RUST_LOG ignored ({e}); logging with the default levels");
    }
}

/// The levels `RUST_LOG` sets, as a comma-separated list of `level`,
/// `target=level` or `target` (`custodyd=debug`,
/// `warn,custodyd::spool=debug`); the production default when it is unset
/// or empty. Targets and levels only: the daemon opens no spans to filter
/// on, and tracing-subscriber's `EnvFilter`, which can, brings a regex
/// engine into the binary and its pages into memory.
fn log_filter(rust_log: Option<&str>) -> Result<Targets, ParseError> {
    let directives: Vec<&str> = rust_log
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .collect();
    if directives.is_empty() {
        Ok(default_log_filter())
    } else {
        directives.join(",").parse()
    }
}

fn default_log_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("custodyd", LevelFilter::INFO)
        .with_target("rumqttd", LevelFilter::OFF)
}

/// Whether stderr goes to the journal, which timestamps every line itself.
/// systemd puts the device and inode of the stream it connected in
/// `JOURNAL_STREAM`; a process that inherited the variable but whose stderr
/// was redirected elsewhere (a technician running the binary from a unit's
/// shell) no longer matches, and keeps its timestamps.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse() == Ok(stat.st_dev) && ino.parse() == Ok(stat.st_ino)
}

/// The man page and shell completions the package installs are generated from
/// the definitions above and committed (deploy/man, deploy/completions), so
/// that packaging, cross builds included, needs no step that runs the binary.
/// These tests fail when a committed file no longer matches;
/// `CUSTODYD_REGENERATE=1 cargo test --bin custodyd generated` rewrites them.
#[cfg(test)]
mod generated {
    use super::Cli;
    use clap::CommandFactory;
    use clap_complete::Shell;
    use std::path::Path;

    fn check(file: &str, fresh: Vec<u8>) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        if std::env::var_os("CUSTODYD_REGENERATE").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &fresh).unwrap();
            return;
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{file} does not match the command line: CUSTODYD_REGENERATE=1 cargo test --bin custodyd generated"
        );
    }

    #[test]
    fn the_man_page_is_current() {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .unwrap();
        check("deploy/man/custodyd.1", page);
    }

    #[test]
    fn the_shell_completions_are_current() {
        for (shell, file) in [
            (Shell::Bash, "custodyd.bash"),
            (Shell::Zsh, "_custodyd"),
            (Shell::Fish, "custodyd.fish"),
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "custodyd", &mut script);
            check(&format!("deploy/completions/{file}"), script);
        }
    }
}

#[cfg(test)]
mod log_levels {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn without_rust_log_the_daemon_logs_info_and_its_libraries_warnings() {
        for unset in [None, Some(""), Some(" , ")] {
            let filter = log_filter(unset).unwrap();
            assert!(filter.would_enable("custodyd::spool", &Level::INFO));
            assert!(!filter.would_enable("custodyd::spool", &Level::DEBUG));
            assert!(filter.would_enable("rumqttc::state", &Level::WARN));
            assert!(!filter.would_enable("rumqttc::state", &Level::INFO));
            assert!(!filter.would_enable("rumqttd::router", &Level::ERROR));
        }
    }

    #[test]
    fn rust_log_sets_levels_by_target_prefix_as_documented() {
        // docs/operations.md: every dropped frame.
        let filter = log_filter(Some("custodyd=debug")).unwrap();
        assert!(filter.would_enable("custodyd::decode", &Level::DEBUG));
        assert!(!filter.would_enable("custodyd::decode", &Level::TRACE));
        assert!(!filter.would_enable("rumqttc::state", &Level::ERROR));

        // The load harness's filter: the production one plus the spool's commits.
        let filter = log_filter(Some(
            "warn,custodyd=info,rumqttd=off,custodyd::spool=debug,",
        ));
        let filter = filter.unwrap();
        assert!(filter.would_enable("custodyd::spool", &Level::DEBUG));
        assert!(!filter.would_enable("custodyd::sink::mqtt", &Level::DEBUG));
        assert!(filter.would_enable("custodyd::sink::mqtt", &Level::INFO));
        assert!(filter.would_enable("rumqttc::state", &Level::WARN));
        assert!(
            !filter.would_enable("rumqttc::state", &Level::TRACE),
            "an empty directive enables nothing"
        );

        assert!(log_filter(Some("debug"))
            .unwrap()
            .would_enable("rumqttc::state", &Level::DEBUG));
        assert!(log_filter(Some("custodyd=loud")).is_err());
    }
}

/// tokio's multi-thread scheduler weighs its poll-time average with `pow`,
/// the daemon's one call into the C maths library. Answering it here keeps
/// libm.so out of the process: the loader maps it whole and resolves its
/// many CPU-specific variants at start, which leaves a good part of it
/// resident for one function (docs/performance.md, "libm"). The `libm`
/// crate is the maths of musl, in Rust.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}
