//! The store against what a Rust user would pick instead (issue 10): a persistent map
//! u64 → 100-byte value as `rvm::store::Store` + `rvm::typed::PHashMap`, as **redb** and as
//! **LMDB** through heed, each with its default, durable commit (ours: `CommitMode::Flush`,
//! one fdatasync of the log; redb: `Durability::Immediate`; LMDB: a plain `mdb_txn_commit`
//! with no `NOSYNC` flag), in the same run, in scratch directories on the same file system.
//!
//! Every workload runs the three engines in turns (a batch, an insert or a slice of gets
//! each, the order rotating every round), so a slow moment of the shared disk or CPU hits all
//! of them alike. Keys are distinct and scattered ([`key`]); values are derived from their key
//! ([`value_for`]) so every get is checked.
//!
//! The reopen figure crashes a real process: a child fills a store and is killed with SIGKILL
//! after its last durable commit; a fresh child then times open + the first get
//! ([`reopen_after_kill`]). `rvm-report` is that child when started with [`CHILD_ARG`].
//!
//! The peers are dependencies of this benchmark crate only, never of the `rvm` library.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use heed::byteorder::BE;
use heed::types::{Bytes, U64};
use redb::{ReadableDatabase, TableDefinition};
use rvm::store::{Store, StoreOptions};
use rvm::typed::PHashMap;
use rvm::CommitMode;

use crate::scratch::Scratch;
use crate::workload::Rng;

/// Bytes in a value.
pub const VALUE_BYTES: usize = 100;
/// A 100-byte value (byte alignment) that `bytemuck` knows is plain data.
pub type Value = [[u8; 4]; 25];
const _: () = assert!(std::mem::size_of::<Value>() == VALUE_BYTES);
/// Inserts per durable commit in the batch workload and in the reopen fill.
pub const BATCH: usize = 1000;
/// Heap of our store: 1M entries take about 200 MB of 64-byte chunks (the file is sparse).
const RVM_HEAP_BYTES: u64 = 1 << 30;
/// LMDB's map size (address space only; the file grows as pages are used).
const LMDB_MAP_BYTES: usize = 8 << 30;
const REDB_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("kv");

/// The `i`th key: distinct for every `i` (an odd multiplier is a bijection of u64), and
/// scattered, so neither a hash map nor a B-tree sees them in order.
pub fn key(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995_5bd1_e995
}

/// The value stored for `key`: its bytes repeated, then a counter.
pub fn value_for(key: u64) -> Value {
    let mut v = [[0u8; 4]; 25];
    let k = key.to_le_bytes();
    for (i, word) in v.iter_mut().enumerate() {
        *word = [k[(2 * i) % 8], k[(2 * i + 1) % 8], i as u8, 0xa5];
    }
    v
}

/// The engines compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `rvm::store::Store` with a `PHashMap<u64, Value>` in its root.
    Rvm,
    /// redb (copy-on-write B-tree, one file).
    Redb,
    /// LMDB through heed (copy-on-write B-tree in a shared mapping).
    Lmdb,
}

impl Engine {
    /// Every engine, ours first.
    pub const ALL: [Engine; 3] = [Engine::Rvm, Engine::Redb, Engine::Lmdb];

    /// Short name (report keys, the child's argument).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Rvm => "rvm",
            Engine::Redb => "redb",
            Engine::Lmdb => "lmdb",
        }
    }

    /// The engine named `name` (as [`Engine::name`] gives it).
    pub fn parse(name: &str) -> Option<Engine> {
        Engine::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Open the engine's store in `dir`, creating it if it is not there.
    pub fn open(self, dir: &Path) -> Result<Box<dyn Kv>> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(match self {
            Engine::Rvm => Box::new(RvmKv::open(dir, rvm_store_options())?),
            Engine::Redb => Box::new(RedbKv::open(dir)?),
            Engine::Lmdb => Box::new(LmdbKv::open(dir)?),
        })
    }
}

/// What every engine does in the comparison.
pub trait Kv {
    /// Insert every pair and commit once, durably: when this returns, the pairs survive a
    /// crash of the process or of the machine.
    fn insert_durable(&mut self, items: &[(u64, Value)]) -> Result<()>;
    /// Look up every key (the peers in one read transaction) and copy out its value; returns
    /// how many were found. `check` is called with each key and value found.
    fn get_many(&self, keys: &[u64], check: &mut dyn FnMut(u64, &Value)) -> Result<u64>;
    /// Close cleanly.
    fn close(self: Box<Self>) -> Result<()>;
}

/// Ours: a store with a hash map in its root.
struct RvmKv {
    store: Store,
    map: PHashMap<u64, Value>,
}

/// The options our store is compared with: the defaults with a heap for 1M entries.
pub fn rvm_store_options() -> StoreOptions {
    StoreOptions::default().heap_bytes(RVM_HEAP_BYTES)
}

/// Open (or create) our store in `dir` with `options` instead of [`rvm_store_options`] (for
/// comparisons of our own options; a second store open at once needs another start address).
pub fn open_rvm_with(dir: &Path, options: StoreOptions) -> Result<Box<dyn Kv>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(Box::new(RvmKv::open(dir, options)?))
}

impl RvmKv {
    fn open(dir: &Path, options: StoreOptions) -> Result<RvmKv> {
        // SAFETY: the store's files are in this benchmark's own scratch directory; nothing
        // else opens, shortens or removes them while the store is open.
        let store = unsafe { Store::open_or_create(dir, options) }?;
        let root = store.root::<PHashMap<u64, Value>>()?;
        let mut map = root.get()?;
        if map.is_null() {
            let mut tx = store.begin()?;
            map = PHashMap::new(&mut tx, &store)?;
            root.set(&mut tx, &map)?;
            tx.end(CommitMode::Flush)?;
        }
        Ok(RvmKv { store, map })
    }
}

impl Kv for RvmKv {
    fn insert_durable(&mut self, items: &[(u64, Value)]) -> Result<()> {
        let mut tx = self.store.begin()?;
        for (k, v) in items {
            self.map.insert(&mut tx, &self.store, k, v)?;
        }
        tx.end(CommitMode::Flush)?;
        Ok(())
    }

    fn get_many(&self, keys: &[u64], check: &mut dyn FnMut(u64, &Value)) -> Result<u64> {
        let mut found = 0;
        for k in keys {
            if let Some(v) = self.map.get(&self.store, k)? {
                check(*k, &v);
                found += 1;
            }
        }
        Ok(found)
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.store.close()?)
    }
}

/// redb with its defaults (immediate durability, no quick repair).
struct RedbKv {
    db: redb::Database,
}

impl RedbKv {
    fn open(dir: &Path) -> Result<RedbKv> {
        let path = dir.join("redb");
        let db = redb::Database::create(&path)
            .with_context(|| format!("redb: open {}", path.display()))?;
        let tx = db.begin_write()?;
        tx.open_table(REDB_TABLE)?;
        tx.commit()?;
        Ok(RedbKv { db })
    }
}

impl Kv for RedbKv {
    fn insert_durable(&mut self, items: &[(u64, Value)]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(REDB_TABLE)?;
            for (k, v) in items {
                table.insert(k, bytemuck::bytes_of(v))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn get_many(&self, keys: &[u64], check: &mut dyn FnMut(u64, &Value)) -> Result<u64> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REDB_TABLE)?;
        let mut found = 0;
        for k in keys {
            if let Some(guard) = table.get(k)? {
                let v: Value = bytemuck::try_pod_read_unaligned(guard.value())
                    .map_err(|e| anyhow::anyhow!("redb: value of key {k:#x}: {e}"))?;
                check(*k, &v);
                found += 1;
            }
        }
        Ok(found)
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self.db);
        Ok(())
    }
}

/// LMDB through heed with its defaults (synchronous commits), big-endian u64 keys.
struct LmdbKv {
    env: heed::Env,
    db: heed::Database<'static, U64<BE>, Bytes>,
}

impl LmdbKv {
    fn open(dir: &Path) -> Result<LmdbKv> {
        // SAFETY: the environment's files are in this benchmark's own scratch directory;
        // nothing else opens, shortens or removes them while it is open (heed's contract),
        // and this process opens the directory only once at a time.
        let env = unsafe {
            heed::EnvOpenOptions::new()
                .map_size(LMDB_MAP_BYTES)
                .open(dir)
        }
        .with_context(|| format!("lmdb: open {}", dir.display()))?;
        let wtxn = env.write_txn()?;
        let db = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                opener
                    .create_database(wtxn, None)
                    .map(heed::CommitOrAbort::<_, ()>::Commit)
            })?
            .unwrap_commit();
        Ok(LmdbKv { env, db })
    }
}

impl Kv for LmdbKv {
    fn insert_durable(&mut self, items: &[(u64, Value)]) -> Result<()> {
        let mut tx = self.env.write_txn()?;
        for (k, v) in items {
            self.db.put(&mut tx, k, bytemuck::bytes_of(v))?;
        }
        tx.commit()?;
        Ok(())
    }

    fn get_many(&self, keys: &[u64], check: &mut dyn FnMut(u64, &Value)) -> Result<u64> {
        let tx = self.env.read_txn()?;
        let mut found = 0;
        for k in keys {
            if let Some(bytes) = self.db.get(&tx, k)? {
                let v: Value = bytemuck::try_pod_read_unaligned(bytes)
                    .map_err(|e| anyhow::anyhow!("lmdb: value of key {k:#x}: {e}"))?;
                check(*k, &v);
                found += 1;
            }
        }
        Ok(found)
    }

    fn close(self: Box<Self>) -> Result<()> {
        let LmdbKv { env, .. } = *self;
        env.prepare_for_closing().wait();
        Ok(())
    }
}

/// The pairs `first..first + count` (see [`key`]).
fn pairs(first: u64, count: u64) -> Vec<(u64, Value)> {
    (first..first + count)
        .map(|i| {
            let k = key(i);
            (k, value_for(k))
        })
        .collect()
}

/// Checks a get's value against [`value_for`]; counts mismatches.
#[derive(Default)]
struct Checker {
    wrong: u64,
}

impl Checker {
    fn check(&mut self, k: u64, v: &Value) {
        if *v != value_for(k) {
            self.wrong += 1;
        }
    }
}

/// The counts of one comparison.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// Inserts in the batch workload (a durable commit every [`BATCH`]).
    pub batch_inserts: u64,
    /// Single inserts, each its own durable commit.
    pub single_inserts: u64,
    /// Random gets on the warm store the batch workload filled.
    pub gets: u64,
    /// Entries of the store killed and reopened.
    pub reopen_entries: u64,
    /// Kill-and-reopen rounds per engine (the median is reported).
    pub reopen_rounds: usize,
}

impl Counts {
    /// The counts.
    pub const FULL: Counts = Counts {
        batch_inserts: 1_000_000,
        single_inserts: 10_000,
        gets: 1_000_000,
        reopen_entries: 1_000_000,
        reopen_rounds: 3,
    };
}

/// One engine's figures (times are the sum over its turns; reopen is a median).
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Time spent in the batch workload's inserts and commits.
    pub batch: Duration,
    /// Time spent in the single inserts.
    pub single: Duration,
    /// Time spent in the gets.
    pub gets: Duration,
    /// Open + first get of a store killed with SIGKILL (median over the rounds), if measured.
    pub reopen: Option<Duration>,
    /// Bytes the engine's files take on disk after the batch and single workloads.
    pub disk_bytes: u64,
}

/// Figures of every engine, in [`Engine::ALL`] order.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Per engine, in [`Engine::ALL`] order.
    pub figures: [Figures; 3],
    /// Why the reopen figures are missing, if they were asked for and could not be measured
    /// (the other figures stand).
    pub reopen_error: Option<String>,
}

impl Comparison {
    /// The figures of `engine`.
    pub fn of(&self, engine: Engine) -> &Figures {
        &self.figures[engine as usize]
    }
}

/// The order of the engines in round `round`: every engine goes first in turn.
fn turn_order(round: u64) -> [Engine; 3] {
    let mut order = Engine::ALL;
    order.rotate_left((round % 3) as usize);
    order
}

fn disk_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.blocks() * 512;
        }
    }
    Ok(total)
}

/// Run the batch, get and single-insert workloads of `counts` on fresh stores of every engine
/// (in scratch directories under the system temp directory, removed afterwards), the engines
/// taking turns; then, if `child` names a program that answers [`CHILD_ARG`], the reopen
/// after kill -9.
pub fn compare(counts: &Counts, child: Option<&Path>) -> Result<Comparison> {
    let mut out = Comparison::default();
    let scratch = Scratch::new("store-peers")?;
    let dirs: Vec<PathBuf> = Engine::ALL.iter().map(|e| scratch.join(e.name())).collect();
    let mut stores = Vec::new();
    for (e, dir) in Engine::ALL.iter().zip(&dirs) {
        stores.push(e.open(dir)?);
    }
    // Batch: a durable commit every BATCH inserts, the engines alternating per commit.
    let batches = counts.batch_inserts.div_ceil(BATCH as u64);
    for b in 0..batches {
        let first = b * BATCH as u64;
        let items = pairs(first, (counts.batch_inserts - first).min(BATCH as u64));
        for e in turn_order(b) {
            let started = Instant::now();
            stores[e as usize].insert_durable(&items)?;
            out.figures[e as usize].batch += started.elapsed();
        }
    }
    // Gets: random keys that are all present, slices alternating.
    let mut rng = Rng::new(0x6e7);
    let keys: Vec<u64> = (0..counts.gets)
        .map(|_| key(rng.below(counts.batch_inserts.max(1))))
        .collect();
    // Warm every engine's caches with one pass over a slice first (not timed).
    let warm = &keys[..keys.len().min(100_000)];
    for s in &stores {
        s.get_many(warm, &mut |_, _| {})?;
    }
    let mut checker = Checker::default();
    for (round, slice) in keys.chunks(100_000).enumerate() {
        for e in turn_order(round as u64) {
            let started = Instant::now();
            let found = stores[e as usize].get_many(slice, &mut |k, v| checker.check(k, v))?;
            out.figures[e as usize].gets += started.elapsed();
            ensure!(
                found == slice.len() as u64,
                "{}: {found} of {} keys found",
                e.name(),
                slice.len()
            );
        }
    }
    ensure!(
        checker.wrong == 0,
        "{} gets returned a wrong value",
        checker.wrong
    );
    // Single inserts of new keys, each durable, alternating one by one.
    for i in 0..counts.single_inserts {
        let items = pairs(counts.batch_inserts + i, 1);
        for e in turn_order(i) {
            let started = Instant::now();
            stores[e as usize].insert_durable(&items)?;
            out.figures[e as usize].single += started.elapsed();
        }
    }
    for ((s, dir), f) in stores.into_iter().zip(&dirs).zip(&mut out.figures) {
        s.close()?;
        f.disk_bytes = disk_bytes(dir)?;
    }
    drop(scratch);
    if let Some(child) = child {
        match reopen_rounds(counts, child) {
            Ok(samples) => {
                for (f, mut s) in out.figures.iter_mut().zip(samples) {
                    s.sort_unstable();
                    f.reopen = s.get(s.len() / 2).copied();
                }
            }
            Err(e) => out.reopen_error = Some(format!("{e:#}")),
        }
    }
    Ok(out)
}

/// The kill-and-reopen rounds of [`compare`]: each engine's samples.
fn reopen_rounds(counts: &Counts, child: &Path) -> Result<[Vec<Duration>; 3]> {
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for round in 0..counts.reopen_rounds {
        for e in turn_order(round as u64) {
            let scratch = Scratch::new("store-reopen")?;
            let t = reopen_after_kill(child, e, scratch.path(), counts.reopen_entries)?;
            samples[e as usize].push(t);
        }
    }
    Ok(samples)
}

/// The first argument that makes `rvm-report` a child of the reopen measurement:
/// `CHILD_ARG fill ENGINE DIR ENTRIES` fills a store, prints `filled` and waits to be killed;
/// `CHILD_ARG reopen ENGINE DIR ENTRIES` prints the nanoseconds that open + the first get of
/// the store took.
pub const CHILD_ARG: &str = "--child-store-peer";

/// Fill a new store of `engine` in `dir` with `entries` pairs in a child process (`child`
/// answering [`CHILD_ARG`]), kill it with SIGKILL after its last durable commit, then time
/// open + the first get in a fresh child. The get is of the last key inserted and must find
/// its value.
pub fn reopen_after_kill(
    child: &Path,
    engine: Engine,
    dir: &Path,
    entries: u64,
) -> Result<Duration> {
    let entries_arg = entries.to_string();
    let mut filler = Command::new(child)
        .args([CHILD_ARG, "fill", engine.name()])
        .arg(dir)
        .arg(&entries_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", child.display()))?;
    let mut line = String::new();
    let read = filler
        .stdout
        .take()
        .map(|out| BufReader::new(out).read_line(&mut line));
    if line.trim() != "filled" {
        let _ = filler.kill();
        let output = filler.wait_with_output()?;
        bail!(
            "{}: the filling child did not finish ({read:?}, {}): {}",
            engine.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // Child::kill sends SIGKILL.
    filler.kill().context("kill the filling child")?;
    filler.wait()?;
    let output = Command::new(child)
        .args([CHILD_ARG, "reopen", engine.name()])
        .arg(dir)
        .arg(&entries_arg)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("start {}", child.display()))?;
    ensure!(
        output.status.success(),
        "{}: the reopening child failed ({}): {}",
        engine.name(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let nanos: u64 = text
        .trim()
        .parse()
        .with_context(|| format!("{}: the reopening child printed {text:?}", engine.name()))?;
    Ok(Duration::from_nanos(nanos))
}

/// Open the store of `engine` in `dir` and get the key of pair `entries - 1`; returns the
/// time both took, after checking the value. Closes the store afterwards (not timed).
pub fn time_reopen(engine: Engine, dir: &Path, entries: u64) -> Result<Duration> {
    let k = key(entries.saturating_sub(1));
    let mut value = None;
    let started = Instant::now();
    let store = engine.open(dir)?;
    store.get_many(&[k], &mut |_, v| value = Some(*v))?;
    let elapsed = started.elapsed();
    ensure!(
        value == Some(value_for(k)),
        "{}: after reopening, key {k:#x} is {}",
        engine.name(),
        if value.is_some() { "wrong" } else { "missing" }
    );
    store.close()?;
    Ok(elapsed)
}

/// Fill a new store of `engine` in `dir` with pairs `0..entries`, a durable commit every
/// [`BATCH`]; the store stays open (the caller closes it, or is killed).
pub fn fill(engine: Engine, dir: &Path, entries: u64) -> Result<Box<dyn Kv>> {
    let mut store = engine.open(dir)?;
    fill_open(store.as_mut(), entries)?;
    Ok(store)
}

/// Insert pairs `0..entries` into the open, empty `store`, a durable commit every [`BATCH`].
pub fn fill_open(store: &mut dyn Kv, entries: u64) -> Result<()> {
    let mut first = 0;
    while first < entries {
        let n = (entries - first).min(BATCH as u64);
        store.insert_durable(&pairs(first, n))?;
        first += n;
    }
    Ok(())
}

/// The child's side of [`reopen_after_kill`]: `args` are the arguments after [`CHILD_ARG`].
pub fn child_main(args: &[String]) -> ExitCode {
    match child(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("store peer child: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn child(args: &[String]) -> Result<()> {
    let [what, engine, dir, entries] = args else {
        bail!("expected: fill|reopen ENGINE DIR ENTRIES, got {args:?}");
    };
    let engine = Engine::parse(engine).with_context(|| format!("no engine {engine:?}"))?;
    let entries: u64 = entries
        .parse()
        .with_context(|| format!("ENTRIES {entries:?}"))?;
    let dir = Path::new(dir);
    match what.as_str() {
        "fill" => {
            let store = fill(engine, dir, entries)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "filled")?;
            out.flush()?;
            // Wait for SIGKILL with the store open, as a crashed server would leave it.
            loop {
                std::thread::sleep(Duration::from_secs(3600));
                std::hint::black_box(&store);
            }
        }
        "reopen" => {
            let t = time_reopen(engine, dir, entries)?;
            println!("{}", t.as_nanos());
            Ok(())
        }
        other => bail!("unknown child task {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_values_differ() {
        let keys: std::collections::HashSet<u64> = (0..10_000).map(key).collect();
        assert_eq!(keys.len(), 10_000);
        assert_ne!(value_for(key(1)), value_for(key(2)));
    }

    /// The comparison code runs on tiny counts, every engine finds every key it inserted, and
    /// a store reopened in this process finds the last key of its fill.
    #[test]
    fn comparison_runs_on_tiny_counts() {
        let counts = Counts {
            batch_inserts: 2500,
            single_inserts: 4,
            gets: 3000,
            reopen_entries: 0,
            reopen_rounds: 0,
        };
        let c = compare(&counts, None).unwrap();
        for e in Engine::ALL {
            let f = c.of(e);
            assert!(f.batch > Duration::ZERO, "{e:?}");
            assert!(f.disk_bytes > 0, "{e:?}");
            assert!(f.reopen.is_none());
        }
        assert!(c.reopen_error.is_none());
        // A reopen that cannot run leaves the other figures standing and says why.
        let no_child = Counts {
            reopen_entries: 10,
            reopen_rounds: 1,
            ..counts
        };
        let c = compare(&no_child, Some(Path::new("/nonexistent/rvm-report"))).unwrap();
        assert!(c.of(Engine::Rvm).gets > Duration::ZERO);
        let why = c.reopen_error.expect("the reopen failed");
        assert!(why.contains("/nonexistent/rvm-report"), "{why}");
        let scratch = Scratch::new("store-peers-test").unwrap();
        for e in Engine::ALL {
            let dir = scratch.join(e.name());
            fill(e, &dir, 1500).unwrap().close().unwrap();
            time_reopen(e, &dir, 1500).unwrap();
            // A key that was never inserted is not found.
            let s = e.open(&dir).unwrap();
            assert_eq!(s.get_many(&[key(1500)], &mut |_, _| {}).unwrap(), 0);
            assert_eq!(s.get_many(&[key(0), key(1499)], &mut |_, _| {}).unwrap(), 2);
            s.close().unwrap();
        }
    }
}
