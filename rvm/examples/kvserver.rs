//! A small persistent key-value server: a linear hash table in the RDS heap, its root in the
//! static region. Every `put` and `del` is a flush commit before `ok` is printed, so an
//! acknowledged write survives a crash.
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
//!   --buckets N            initial hash buckets, a power of two up to 512 (default 512)
//! ```
//!
//! Exit codes: 0 after `quit` or end of input, 1 on an error, 2 on a usage error.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use rvm::rds::{self, Heap, HeapLayout, Root};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm, Segment, Transaction};

/// Longest key accepted.
const KEY_BYTES_MAX: usize = 1024;
/// Longest value accepted.
const VALUE_BYTES_MAX: usize = 64 * 1024;
/// Buckets per bucket segment (one 4 KiB heap block of bucket heads).
const SEGMENT_BUCKETS: u64 = 512;
/// Bucket segments the directory in the root can name: up to 512 Ki buckets. Past that the
/// table stops growing and chains get longer.
const DIRECTORY_SEGMENTS: usize = 1024;
/// Average chain length at which the next bucket is split.
const LOAD_FACTOR: u64 = 2;
const ROOT_MAGIC: u64 = u64::from_le_bytes(*b"KVROOT01");

/// The root in the static region. Linear hashing: `initial_buckets << level` buckets plus
/// `split` more; buckets below `split` have already been split this round.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct KvRoot {
    magic: u64,
    count: u64,
    level: u64,
    split: u64,
    /// Buckets of the new table (a power of two, at most one segment's worth).
    initial_buckets: u64,
    /// Address of each bucket segment (an array of `SEGMENT_BUCKETS` chain heads), 0 if not
    /// allocated yet.
    directory: [u64; DIRECTORY_SEGMENTS],
}

/// The fixed part of an entry; the key and then the value follow it in the same block.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Entry {
    next: u64,
    hash: u64,
    key_len: u32,
    value_len: u32,
}
const ENTRY_SIZE: usize = std::mem::size_of::<Entry>();

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

struct Store {
    rvm: Rvm,
    segment: Segment,
    heap: Heap,
    root: Root<KvRoot>,
    /// One command at a time changes the table; the heap's own lock covers only the heap.
    lock: Mutex<()>,
}

/// Where a key's entry is linked from: the address holding the pointer to it.
struct Found {
    link: usize,
    entry: usize,
    header: Entry,
}

impl Store {
    fn bucket_count(root: &KvRoot) -> u64 {
        (root.initial_buckets << root.level) + root.split
    }

    fn bucket_of(root: &KvRoot, hash: u64) -> u64 {
        let round = root.initial_buckets << root.level;
        let b = hash % round;
        if b < root.split {
            hash % (2 * round)
        } else {
            b
        }
    }

    /// Address of bucket `b`'s chain head.
    fn bucket_address(root: &KvRoot, b: u64) -> Result<usize> {
        let segment = root.directory[(b / SEGMENT_BUCKETS) as usize];
        if segment == 0 {
            bail!("bucket {b} has no segment: the table is damaged");
        }
        Ok(segment as usize + 8 * (b % SEGMENT_BUCKETS) as usize)
    }

    fn read_entry(&self, at: usize) -> Result<Entry> {
        Ok(self.segment.read::<Entry>(at)?)
    }

    fn read_bytes(&self, at: usize, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.segment.read_bytes(at, &mut buf)?;
        Ok(buf)
    }

    fn find(&self, root: &KvRoot, key: &[u8]) -> Result<Option<Found>> {
        let hash = fnv1a(key);
        let mut link = Self::bucket_address(root, Self::bucket_of(root, hash))?;
        let mut at = self.segment.read::<u64>(link)? as usize;
        let mut steps = 0u64;
        while at != 0 {
            let e = self.read_entry(at)?;
            if e.hash == hash
                && e.key_len as usize == key.len()
                && self.read_bytes(at + ENTRY_SIZE, key.len())? == key
            {
                return Ok(Some(Found {
                    link,
                    entry: at,
                    header: e,
                }));
            }
            steps += 1;
            if steps > root.count + 1 {
                bail!("a hash chain loops: the table is damaged");
            }
            link = at;
            at = e.next as usize;
        }
        Ok(None)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let root = self.root.get()?;
        match self.find(&root, key)? {
            Some(f) => Ok(Some(self.read_bytes(
                f.entry + ENTRY_SIZE + key.len(),
                f.header.value_len as usize,
            )?)),
            None => Ok(None),
        }
    }

    fn count(&self) -> Result<u64> {
        Ok(self.root.get()?.count)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut tx = self.rvm.begin(BeginMode::Restore)?;
        let mut root = self.root.get()?;
        let hash = fnv1a(key);
        let entry = self
            .heap
            .malloc(&mut tx, ENTRY_SIZE + key.len() + value.len())?;
        let mut bytes = Vec::with_capacity(ENTRY_SIZE + key.len() + value.len());
        let existing = self.find(&root, key)?;
        let (link, next) = match &existing {
            Some(f) => (f.link, f.header.next),
            None => {
                let head = Self::bucket_address(&root, Self::bucket_of(&root, hash))?;
                (head, self.segment.read::<u64>(head)?)
            }
        };
        bytes.extend_from_slice(bytemuck::bytes_of(&Entry {
            next,
            hash,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
        }));
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        tx.modify_bytes(entry, &bytes)?;
        // `link` is a bucket head or the `next` field at the start of an entry.
        tx.write(link, &(entry as u64))?;
        match existing {
            Some(f) => self.heap.free(&mut tx, f.entry)?,
            None => {
                root.count += 1;
                self.maybe_split(&mut tx, &mut root)?;
                self.set_root_counters(&mut tx, &root)?;
            }
        }
        tx.end(CommitMode::Flush)?;
        Ok(())
    }

    /// Returns whether the key was there.
    fn del(&self, key: &[u8]) -> Result<bool> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut root = self.root.get()?;
        let Some(f) = self.find(&root, key)? else {
            return Ok(false);
        };
        let mut tx = self.rvm.begin(BeginMode::Restore)?;
        tx.write(f.link, &f.header.next)?;
        self.heap.free(&mut tx, f.entry)?;
        root.count -= 1;
        self.set_root_counters(&mut tx, &root)?;
        tx.end(CommitMode::Flush)?;
        Ok(true)
    }

    /// Store the root's counters (not its whole directory: that would log 8 KiB a commit).
    fn set_root_counters(&self, tx: &mut Transaction<'_>, root: &KvRoot) -> Result<()> {
        let counters = std::mem::offset_of!(KvRoot, directory);
        tx.modify_bytes(self.root.address(), &bytemuck::bytes_of(root)[..counters])?;
        Ok(())
    }

    /// Linear hashing: when the table is loaded past `LOAD_FACTOR`, split one bucket, so the
    /// work per insert (and the transaction's size) stays bounded.
    fn maybe_split(&self, tx: &mut Transaction<'_>, root: &mut KvRoot) -> Result<()> {
        let buckets = Self::bucket_count(root);
        let new_bucket = buckets;
        if root.count <= LOAD_FACTOR * buckets
            || new_bucket / SEGMENT_BUCKETS >= DIRECTORY_SEGMENTS as u64
        {
            return Ok(());
        }
        let segment_index = (new_bucket / SEGMENT_BUCKETS) as usize;
        if root.directory[segment_index] == 0 {
            let bytes = 8 * SEGMENT_BUCKETS as usize;
            let segment = self.heap.malloc(tx, bytes)?;
            tx.fill(segment, bytes, 0)?;
            root.directory[segment_index] = segment as u64;
            let entry = std::mem::offset_of!(KvRoot, directory) + 8 * segment_index;
            tx.write(self.root.address() + entry, &(segment as u64))?;
        }
        let round = root.initial_buckets << root.level;
        let old_head = Self::bucket_address(root, root.split)?;
        let new_head = Self::bucket_address(root, new_bucket)?;
        // Relink the old bucket's chain into the two buckets, keeping the order.
        let (mut old_tail, mut new_tail) = (old_head, new_head);
        let mut at = self.segment.read::<u64>(old_head)?;
        let mut steps = 0u64;
        while at != 0 {
            let e = self.read_entry(at as usize)?;
            if e.hash % (2 * round) == new_bucket {
                tx.write(new_tail, &at)?;
                new_tail = at as usize;
            } else {
                tx.write(old_tail, &at)?;
                old_tail = at as usize;
            }
            at = e.next;
            steps += 1;
            if steps > root.count + 1 {
                bail!("a hash chain loops: the table is damaged");
            }
        }
        tx.write(old_tail, &0u64)?;
        tx.write(new_tail, &0u64)?;
        root.split += 1;
        if root.split == round {
            root.level += 1;
            root.split = 0;
        }
        Ok(())
    }
}

struct Config {
    log: PathBuf,
    data: PathBuf,
    listen: Option<String>,
    layout: HeapLayout,
    log_bytes: u64,
    initial_buckets: u64,
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
    let mut layout = HeapLayout {
        start_address: 0x2000_0000_0000,
        heap_length: 256 << 20,
        static_length: 64 << 10,
        nlists: 80,
        chunk_size: 64,
    };
    let mut log_bytes = 64 << 20;
    let mut listen = None;
    let mut initial_buckets = SEGMENT_BUCKETS;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => listen = Some(value("--listen")?),
            "--heap-bytes" => layout.heap_length = parse_number(&value("--heap-bytes")?)?,
            "--static-bytes" => layout.static_length = parse_number(&value("--static-bytes")?)?,
            "--log-bytes" => log_bytes = parse_number(&value("--log-bytes")?)?,
            "--address" => layout.start_address = parse_number(&value("--address")?)?,
            "--nlists" => layout.nlists = parse_number(&value("--nlists")?)?,
            "--chunk-size" => layout.chunk_size = parse_number(&value("--chunk-size")?)?,
            "--buckets" => {
                initial_buckets = parse_number(&value("--buckets")?)?;
                if !initial_buckets.is_power_of_two() || initial_buckets > SEGMENT_BUCKETS {
                    bail!("--buckets must be a power of two up to {SEGMENT_BUCKETS}");
                }
            }
            "-h" | "--help" => bail!("help"),
            other if other.starts_with('-') => bail!("unknown option {other}"),
            _ => files.push(PathBuf::from(arg)),
        }
    }
    let [log, data] = <[PathBuf; 2]>::try_from(files)
        .map_err(|_| anyhow!("expected two file names, LOG and DATA"))?;
    Ok(Config {
        log,
        data,
        listen,
        layout,
        log_bytes,
        initial_buckets,
    })
}

/// Create the log and the heap segment. The log is built under a temporary name and renamed
/// last, so an interrupted creation leaves no LOG and is redone by the next start.
fn create(config: &Config) -> Result<()> {
    let creating = config.log.with_extension("creating");
    let _ = std::fs::remove_file(&creating);
    let _ = std::fs::remove_file(&config.data);
    // The library's error names the file and the operation.
    Rvm::create_log(&creating, config.log_bytes)?;
    let rvm = Rvm::open(&creating, Options::default())?;
    let layout = &config.layout;
    // SAFETY: the data file belongs to this server (the library's flock keeps other rvm users away,
    // and nothing else is meant to touch it), so nobody shortens it while mapped.
    unsafe {
        rds::create_heap_segment(
            &rvm,
            &config.data,
            layout.segment_length_min(),
            layout,
            Default::default(),
        )
    }
    .with_context(|| format!("creating {}", config.data.display()))?;
    rvm.close()?;
    std::fs::rename(&creating, &config.log)?;
    if let Some(dir) = config.log.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn open(config: &Config) -> Result<Store> {
    let interrupted = config.log.with_extension("creating").exists() && !config.log.exists();
    match (config.log.exists(), config.data.exists()) {
        (false, false) => {}
        (false, true) if interrupted => {}
        (true, true) => {}
        (log, data) => bail!(
            "{} {} but {} {}: refusing to guess; remove the other or restore it",
            config.log.display(),
            if log { "exists" } else { "is missing" },
            config.data.display(),
            if data { "exists" } else { "is missing" },
        ),
    }
    if !config.log.exists() {
        create(config)?;
        let l = &config.layout;
        eprintln!(
            "kvserver: created {} ({} byte log) and {} (heap of {} bytes at {:#x}, {} byte \
             static region, nlists {}, chunk {}; sparse files)",
            config.log.display(),
            config.log_bytes,
            config.data.display(),
            l.heap_length,
            l.start_address,
            l.static_length,
            l.nlists,
            l.chunk_size
        );
    }
    let rvm =
        Rvm::open(&config.log, Options::default().segment_path(&config.data)).map_err(|e| {
            let advice = match &e {
                rvm::Error::SegmentNotFound { .. } | rvm::Error::SegmentUnusable { .. } => format!(
                    " (kvserver looks for its segment at DATA, {}: restore the data file there, \
                     or pass the path of a good copy as DATA)",
                    config.data.display()
                ),
                rvm::Error::LogCorrupt { .. } => format!(
                    " (kvserver will not drop committed transactions: see `rvmutl check {}`; \
                     `rvmutl recover {} --prefix` keeps only the records before the damage)",
                    config.log.display(),
                    config.log.display()
                ),
                _ => String::new(),
            };
            anyhow::Error::new(e).context(format!("opening {}{advice}", config.log.display()))
        })?;
    // SAFETY: the data file belongs to this server (the library's flock keeps other rvm
    // users away, and nothing else is meant to touch it), so nobody shortens it while mapped.
    let segment = unsafe { rvm.map(&config.data, MapOptions::default()) }
        .with_context(|| format!("mapping {}", config.data.display()))?;
    let heap = Heap::load(&segment)?;
    let root = heap.static_root::<KvRoot>()?;
    let store = Store {
        rvm,
        segment,
        heap,
        root,
        lock: Mutex::new(()),
    };
    if store.root.get()?.magic != ROOT_MAGIC {
        let mut tx = store.rvm.begin(BeginMode::Restore)?;
        let bytes = 8 * SEGMENT_BUCKETS as usize;
        let first = store.heap.malloc(&mut tx, bytes)?;
        tx.fill(first, bytes, 0)?;
        let mut root: KvRoot = bytemuck::Zeroable::zeroed();
        root.magic = ROOT_MAGIC;
        root.initial_buckets = config.initial_buckets;
        root.directory[0] = first as u64;
        store.root.set(&mut tx, &root)?;
        tx.end(CommitMode::Flush)?;
    }
    Ok(store)
}

/// Answer one command line; None means `quit`.
fn answer(store: &Store, line: &str) -> Option<String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
    let reply = (|| -> Result<String> {
        match command {
            "put" => {
                let (key, value) = rest
                    .split_once(' ')
                    .ok_or_else(|| anyhow!("usage: put KEY VALUE"))?;
                check_key(key)?;
                if value.len() > VALUE_BYTES_MAX {
                    bail!("value longer than {VALUE_BYTES_MAX} bytes");
                }
                store.put(key.as_bytes(), value.as_bytes())?;
                Ok("ok".into())
            }
            "get" => {
                check_key(rest)?;
                Ok(match store.get(rest.as_bytes())? {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None => "missing".into(),
                })
            }
            "del" => {
                check_key(rest)?;
                Ok(if store.del(rest.as_bytes())? {
                    "ok"
                } else {
                    "missing"
                }
                .into())
            }
            "count" => Ok(store.count()?.to_string()),
            "check" => {
                let report = store.heap.check();
                Ok(match report.problems.first() {
                    None => "ok".into(),
                    Some(p) => format!("corrupt: {} problems; first: {p}", report.problems.len()),
                })
            }
            "stats" => {
                let s = store.heap.statistics();
                Ok(format!(
                    "keys {} free_bytes {} allocated_bytes {} free_blocks {} largest_free {} \
                     fragmentation {:.4} mallocs {} frees {}",
                    store.count()?,
                    s.free_bytes,
                    s.allocated_bytes,
                    s.free_blocks,
                    s.largest_free_block,
                    s.fragmentation,
                    s.malloc_count,
                    s.free_count
                ))
            }
            _ => bail!("unknown command {command:?} (put, get, del, count, check, stats, quit)"),
        }
    })();
    if command == "quit" {
        return None;
    }
    Some(reply.unwrap_or_else(|e| format!("error: {e:#}")))
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.contains(' ') {
        bail!("a key is one word");
    }
    if key.len() > KEY_BYTES_MAX {
        bail!("key longer than {KEY_BYTES_MAX} bytes");
    }
    Ok(())
}

/// Serve one stream until `quit` or end of input. A closed output is the client leaving,
/// not an error.
fn serve(store: &Store, input: impl BufRead, output: impl Write) -> Result<()> {
    let mut output = BufWriter::new(output);
    for line in input.lines() {
        let line = line?;
        let Some(reply) = answer(store, &line) else {
            break;
        };
        let written = writeln!(output, "{reply}").and_then(|_| output.flush());
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e.into());
        }
    }
    Ok(())
}

fn run(config: Config) -> Result<()> {
    let store = Arc::new(open(&config)?);
    match &config.listen {
        None => serve(&store, std::io::stdin().lock(), std::io::stdout().lock()),
        Some(address) => {
            let listener =
                TcpListener::bind(address).with_context(|| format!("listen {address}"))?;
            eprintln!("kvserver: listening on {}", listener.local_addr()?);
            for stream in listener.incoming() {
                let stream = stream?;
                let store = store.clone();
                std::thread::spawn(move || {
                    let input = match stream.try_clone() {
                        Ok(s) => BufReader::new(s),
                        Err(e) => return eprintln!("kvserver: {e}"),
                    };
                    if let Err(e) = serve(&store, input, stream) {
                        eprintln!("kvserver: connection: {e:#}");
                    }
                });
            }
            Ok(())
        }
    }
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
