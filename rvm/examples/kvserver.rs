//! A small persistent key-value server on [`Store`] and a [`PHashMap`] of byte strings:
//! `PHashMap<[u8], PBytes>` in the root. Every `put` and `del` is a flush commit before `ok`
//! is printed, so an acknowledged write survives a crash.
//!
//! ```text
//! kvserver [OPTIONS] LOG DATA
//!
//! Commands (one per line; answers one line each):
//!   put KEY VALUE   -> ok            (VALUE is the rest of the line)
//!   get KEY         -> VALUE | missing
//!   del KEY         -> ok | missing
//!   count           -> number of keys
//!   check           -> ok | the heap checker's first problem
//!   stats           -> heap statistics on one line
//!   quit
//!
//! Options:
//!   --listen ADDR          serve the same protocol over TCP (e.g. 127.0.0.1:7000)
//!   Used only when LOG and DATA are both missing and are created:
//!   --heap-bytes N         heap region (default 256M; suffixes K, M, G)
//!   --static-bytes N       static region (default 64K)
//!   --log-bytes N          log record area (default 64M)
//!   --address A            heap address (default 0x200000000000)
//!   --nlists N             free lists (default 80)
//!   --chunk-size N         chunk size (default 64)
//!   --buckets N            initial hash buckets (default 512)
//!
//! When the heap is full, the store grows by a heap segment (DATA.1, DATA.2, ...) as large as
//! the heaps it has, and the write is retried.
//! ```
//!
//! Exit codes: 0 after `quit` or end of input, 1 on an error, 2 on a usage error.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use rvm::rds;
use rvm::store::{Store, StoreOptions};
use rvm::typed::{PBytes, PHashMap};
use rvm::CommitMode;

/// Longest key accepted.
const KEY_BYTES_MAX: usize = 1024;
/// Longest value accepted.
const VALUE_BYTES_MAX: usize = 64 * 1024;

type Table = PHashMap<[u8], PBytes>;

struct Server {
    store: Store,
    table: Table,
    /// One command at a time, so a `get` never reads between another command's changes.
    one: Mutex<()>,
}

impl Server {
    fn open(config: &Config) -> Result<Server> {
        // SAFETY: LOG and DATA belong to this server while it runs: the library's flock keeps
        // other rvm users away, and nothing else is meant to touch them, so nobody shortens
        // the mapped data file (the one unsafe line of the server).
        let store = unsafe {
            Store::open_or_create_files(&config.log, &config.data, config.options.clone())
        }?;
        if store.created() {
            eprintln!(
                "kvserver: created {} and {} ({:?})",
                config.log, config.data, config.options.layout
            );
        }
        let root = store.root::<Table>()?;
        let mut table = root.get()?;
        if table.is_null() {
            let mut tx = store.begin()?;
            table = PHashMap::with_buckets(&mut tx, &store, config.buckets)?;
            root.set(&mut tx, &table)?;
            tx.end(CommitMode::Flush)?;
        }
        Ok(Server {
            store,
            table,
            one: Mutex::new(()),
        })
    }

    /// Store `value` for `key`. A full heap is not an error: the store grows by as much as
    /// it holds (a new heap segment) and the put is tried again.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let _one = self.one.lock().unwrap_or_else(|e| e.into_inner());
        match self.try_put(key, value) {
            Err(rds::Error::NoRoom { .. }) => {
                let held: usize = self.store.heaps().iter().map(|h| h.length()).sum();
                self.store.grow(held as u64)?;
                Ok(self.try_put(key, value)?)
            }
            other => Ok(other?),
        }
    }

    /// One put in one transaction; an error aborts it (the transaction is dropped).
    fn try_put(&self, key: &[u8], value: &[u8]) -> Result<(), rds::Error> {
        let (store, mut tx) = (&self.store, self.store.begin()?);
        match self.table.get(store, key)? {
            Some(old) => old.set(&mut tx, store, value)?,
            None => {
                let new = PBytes::from_slice(&mut tx, store, value)?;
                self.table.insert(&mut tx, store, key, &new)?;
            }
        }
        tx.end(CommitMode::Flush)?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let _one = self.one.lock().unwrap_or_else(|e| e.into_inner());
        match self.table.get(&self.store, key)? {
            Some(value) => Ok(Some(value.to_vec(&self.store)?)),
            None => Ok(None),
        }
    }

    /// Returns whether the key was there.
    fn del(&self, key: &[u8]) -> Result<bool> {
        let _one = self.one.lock().unwrap_or_else(|e| e.into_inner());
        let (store, mut tx) = (&self.store, self.store.begin()?);
        let Some(value) = self.table.remove(&mut tx, store, key)? else {
            return Ok(false);
        };
        value.free(&mut tx, store)?;
        tx.end(CommitMode::Flush)?;
        Ok(true)
    }

    fn count(&self) -> Result<usize> {
        Ok(self.table.len(&self.store)?)
    }

    /// Answer one command line; None means `quit`.
    fn answer(&self, line: &str) -> Option<String> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        let reply = || -> Result<String> {
            Ok(match command {
                "put" => {
                    let (key, value) = rest
                        .split_once(' ')
                        .ok_or_else(|| anyhow!("usage: put KEY VALUE"))?;
                    check_key(key)?;
                    if value.len() > VALUE_BYTES_MAX {
                        bail!("value longer than {VALUE_BYTES_MAX} bytes");
                    }
                    self.put(key.as_bytes(), value.as_bytes())?;
                    "ok".into()
                }
                "get" => match self.get(check_key(rest)?)? {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None => "missing".into(),
                },
                "del" => if self.del(check_key(rest)?)? {
                    "ok"
                } else {
                    "missing"
                }
                .into(),
                "count" => self.count()?.to_string(),
                "check" => {
                    let reports: Vec<_> = self.store.heaps().iter().map(|h| h.check()).collect();
                    match reports
                        .iter()
                        .find_map(|r| r.problems.first().map(|p| (r, p)))
                    {
                        None => "ok".into(),
                        Some((r, p)) => {
                            format!("corrupt: {} problems; first: {p}", r.problems.len())
                        }
                    }
                }
                "stats" => {
                    let s = self.store.heaps()[0].statistics();
                    format!(
                        "keys {} free_bytes {} allocated_bytes {} free_blocks {} largest_free {} \
                         fragmentation {:.4} mallocs {} frees {}",
                        self.count()?,
                        s.free_bytes,
                        s.allocated_bytes,
                        s.free_blocks,
                        s.largest_free_block,
                        s.fragmentation,
                        s.malloc_count,
                        s.free_count
                    )
                }
                _ => {
                    bail!("unknown command {command:?} (put, get, del, count, check, stats, quit)")
                }
            })
        };
        if command == "quit" {
            return None;
        }
        Some(reply().unwrap_or_else(|e| format!("error: {e:#}")))
    }

    /// Serve one stream until `quit` or end of input. A closed output is the client leaving,
    /// not an error.
    fn serve(&self, input: impl BufRead, output: impl Write) -> Result<()> {
        let mut output = BufWriter::new(output);
        for line in input.lines() {
            let Some(reply) = self.answer(&line?) else {
                break;
            };
            match writeln!(output, "{reply}").and_then(|_| output.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                other => other?,
            }
        }
        Ok(())
    }
}

fn check_key(key: &str) -> Result<&[u8]> {
    if key.is_empty() || key.contains(' ') {
        bail!("a key is one word");
    }
    if key.len() > KEY_BYTES_MAX {
        bail!("key longer than {KEY_BYTES_MAX} bytes");
    }
    Ok(key.as_bytes())
}

struct Config {
    log: String,
    data: String,
    listen: Option<String>,
    options: StoreOptions,
    buckets: usize,
}

fn parse_number(text: &str) -> Result<u64> {
    let (digits, scale) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 1 << 10),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    }
    .map_err(|_| anyhow!("not a number: {text}"))?;
    value
        .checked_mul(scale)
        .ok_or_else(|| anyhow!("too large: {text}"))
}

fn parse_args() -> Result<Config> {
    let mut options = StoreOptions::default();
    let (mut listen, mut buckets, mut files) = (None, 512, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || -> Result<u64> {
            parse_number(&args.next().ok_or_else(|| anyhow!("{arg} needs a value"))?)
        };
        let layout = &mut options.layout;
        match arg.as_str() {
            "--listen" => {
                listen = Some(
                    args.next()
                        .ok_or_else(|| anyhow!("--listen needs a value"))?,
                )
            }
            "--heap-bytes" => layout.heap_length = number()?,
            "--static-bytes" => layout.static_length = number()?,
            "--log-bytes" => options.log_bytes = number()?,
            "--address" => layout.start_address = number()?,
            "--nlists" => layout.nlists = number()?,
            "--chunk-size" => layout.chunk_size = number()?,
            "--buckets" => buckets = number()? as usize,
            "-h" | "--help" => bail!("help"),
            other if other.starts_with('-') => bail!("unknown option {other}"),
            _ => files.push(arg),
        }
    }
    let [log, data] = <[String; 2]>::try_from(files)
        .map_err(|_| anyhow!("expected two file names, LOG and DATA"))?;
    Ok(Config {
        log,
        data,
        listen,
        options,
        buckets,
    })
}

fn run(config: Config) -> Result<()> {
    let server = Arc::new(Server::open(&config)?);
    let Some(address) = &config.listen else {
        return server.serve(std::io::stdin().lock(), std::io::stdout().lock());
    };
    let listener = TcpListener::bind(address).with_context(|| format!("listen {address}"))?;
    eprintln!("kvserver: listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let (stream, server) = (stream?, server.clone());
        std::thread::spawn(move || {
            let served = stream
                .try_clone()
                .map_err(anyhow::Error::from)
                .and_then(|input| server.serve(BufReader::new(input), stream));
            if let Err(e) = served {
                eprintln!("kvserver: connection: {e:#}");
            }
        });
    }
    Ok(())
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            if e.to_string() != "help" {
                eprintln!("kvserver: {e}");
            }
            eprintln!(
                "usage: kvserver [--listen ADDR] [--heap-bytes N] [--static-bytes N] \
                 [--log-bytes N] [--address A] [--nlists N] [--chunk-size N] [--buckets N] \
                 LOG DATA"
            );
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}
