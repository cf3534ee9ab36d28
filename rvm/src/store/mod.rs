//! A store in one call: a log and one or more heap segments in a directory, opened (or
//! created, crash-atomically) by [`Store::open_or_create`], with a typed root.
//!
//! Files, for a store in directory `DIR` (or the two paths given to
//! [`Store::open_or_create_files`]):
//!
//! * `DIR/log`: the redo log;
//! * `DIR/data`: the first heap segment, laid out by [`StoreOptions::layout`]; its static
//!   region starts with the store's own header ([`STORE_HEADER_BYTES`]), then the user's root;
//! * `DIR/data.1`, `DIR/data.2`, ...: heap segments added by [`Store::grow`];
//! * `DIR/log.creating`: only while a store is being created (see below).
//!
//! **Creation is crash-atomic.** The log is built under the name `log.creating`, the heap
//! segment is created, initialised and made durable, the store header is committed, and only
//! then is `log.creating` renamed to `log` and the directory synced. A store whose `log`
//! exists is complete. A crash at any earlier point leaves `log.creating` (and maybe `data`),
//! which the next `open_or_create` recognises as an interrupted creation, removes and redoes;
//! [`Store::open`] reports "no store" for it. A refused creation (bad layout, occupied
//! addresses, no room) removes whatever it created, so nothing is left behind.
//!
//! **Opening never changes a file before the store is known to be whole:** the heap
//! segment's header is read before the log is opened, so a wrong `data` path (say
//! `/dev/zero`) is refused with the log untouched.
//!
//! **Growing:** [`Store::grow`] adds a heap segment at the next free addresses after the
//! last one. Existing pointers stay valid (nothing moves); allocations try the heaps in
//! order. The store header records every added segment, so `open` maps them all.

#![deny(missing_docs)]

mod create;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use bytemuck::{Pod, Zeroable};

use crate::format::segment::REGION_ALIGN;
use crate::rds::{self, Error, Heap, HeapLayout, Root};
use crate::segment;
use crate::sync::{read_lock, write_lock};
use crate::tx::{BeginMode, CommitMode, Transaction};
use crate::typed::Alloc;
use crate::{MapOptions, Options, Placement, Rvm};

/// Bytes at the start of the first segment's static region that belong to the store (its
/// header); the user's root follows.
pub const STORE_HEADER_BYTES: usize = 512;
/// Heap segments a store can hold: the log's segment table holds 16 entries.
pub const HEAP_SEGMENTS_MAX: usize = 16;
/// Default record area of a new store's log (64 MiB; sparse). Large, so that one
/// transaction that rewrites much of a big container (a hash map's resize) fits it.
pub const DEFAULT_LOG_BYTES: u64 = 64 << 20;
/// Default background-truncation threshold of a store's log (percent): what a crash can leave
/// to replay. The commits of a store's batch share a record whose ranges are merged, about a
/// quarter of their bytes unmerged, so 15% of the default log (about 10 MB) holds about as
/// many inserts as half of it did before merging.
pub const DEFAULT_TRUNCATE_THRESHOLD_PERCENT: u8 = 15;
const STORE_MAGIC: u64 = u64::from_le_bytes(*b"RVMSTORE");
const STORE_VERSION: u64 = 1;

/// The store header at the start of the first segment's static region.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct StoreHeader {
    magic: u64,
    version: u64,
    /// Heap segments added by `grow` (`data.1` ...).
    extra_count: u64,
    reserved: u64,
    /// Heap address and heap length of each added segment.
    extra: [[u64; 2]; HEAP_SEGMENTS_MAX - 1],
}
const _: () = assert!(std::mem::size_of::<StoreHeader>() <= STORE_HEADER_BYTES);

/// How to create a store (the layout and log size matter only when the files are created).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The first heap segment's layout. The default ([`HeapLayout::default`]) puts a 256 MiB
    /// heap at [`rds::DEFAULT_START_ADDRESS`].
    pub layout: HeapLayout,
    /// Record area of the log.
    pub log_bytes: u64,
    /// Options for opening the log (the store adds its segment paths). The default is
    /// [`Options::default`] with a truncation threshold of
    /// [`DEFAULT_TRUNCATE_THRESHOLD_PERCENT`].
    pub rvm: Options,
    /// How the heap segments are mapped, added ones too (default: [`MapOptions::default`]).
    /// Their placement is always fixed (the heaps hold pointers), whatever `placement` says;
    /// [`MapOptions::warm_up`], [`MapOptions::huge_pages`] and [`MapOptions::copy`] apply as
    /// they do to [`Rvm::map`]. For instance, huge pages make random gets on a freshly filled
    /// store faster (the heaps' holes are then 2 MiB pages), and huge pages with copy mode do
    /// the same for a reopened store's entries, at the cost of reading them all at open.
    pub map: MapOptions,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            layout: HeapLayout::default(),
            log_bytes: DEFAULT_LOG_BYTES,
            rvm: Options::default().truncate_threshold(DEFAULT_TRUNCATE_THRESHOLD_PERCENT),
            map: MapOptions::default(),
        }
    }
}

impl StoreOptions {
    /// These options with heap region address `address`.
    pub fn start_address(mut self, address: u64) -> Self {
        self.layout.start_address = address;
        self
    }
    /// These options with a heap region of `bytes`.
    pub fn heap_bytes(mut self, bytes: u64) -> Self {
        self.layout.heap_length = bytes;
        self
    }
    /// These options with a log record area of `bytes`.
    pub fn log_bytes(mut self, bytes: u64) -> Self {
        self.log_bytes = bytes;
        self
    }
    /// These options with the heap segments mapped as `map` says ([`StoreOptions::map`]).
    pub fn map(mut self, map: MapOptions) -> Self {
        self.map = map;
        self
    }
    /// How every heap segment is mapped: [`StoreOptions::map`] at the fixed addresses.
    pub(crate) fn heap_map(&self) -> MapOptions {
        MapOptions {
            placement: Placement::Fixed,
            ..self.map
        }
    }
}

/// The files of a store.
#[derive(Debug, Clone)]
struct Paths {
    log: PathBuf,
    data: PathBuf,
}

impl Paths {
    fn creating(&self) -> PathBuf {
        let mut name = self.log.clone().into_os_string();
        name.push(".creating");
        PathBuf::from(name)
    }
    /// The `i`th added segment (`i >= 1`).
    fn extra(&self, i: usize) -> PathBuf {
        let mut name = self.data.clone().into_os_string();
        name.push(format!(".{i}"));
        PathBuf::from(name)
    }
}

/// An open store: the [`Rvm`] instance, its heap segments, and the typed root.
///
/// ```
/// use rvm::store::{Store, StoreOptions};
/// use rvm::CommitMode;
/// # fn main() -> Result<(), rvm::rds::Error> {
/// # let dir = std::env::temp_dir().join(format!("rvm-doc-store-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// // SAFETY: the store's files are in this example's own temporary directory; nothing else shortens them.
/// let store = unsafe { Store::open_or_create(&dir, StoreOptions::default()) }?;
/// assert!(store.created());
/// let counter = store.root::<u64>()?; // zero in a new store
/// let mut tx = store.begin()?;
/// counter.update(&mut tx, |c| *c += 1)?;
/// tx.end(CommitMode::Flush)?; // durable when this returns
/// store.close()?;
///
/// // SAFETY: the store's files are in this example's own temporary directory; nothing else shortens them.
/// let store = unsafe { Store::open_or_create(&dir, StoreOptions::default()) }?;
/// assert!(!store.created());
/// assert_eq!(store.root::<u64>()?.get()?, 1);
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Store {
    /// Grows (never shrinks) under `grow`; readers copy it out and release the lock before
    /// any call that can wait, so a `grow` never waits for a transaction.
    heaps: RwLock<Vec<Heap>>,
    /// First heap's static region (the store header), and the first heap.
    first: Heap,
    /// One `grow` at a time.
    growing: Mutex<()>,
    header_address: usize,
    paths: Paths,
    created: bool,
    layout: HeapLayout,
    /// How the heap segments are mapped (at their fixed addresses), added ones too.
    map: MapOptions,
    // Last: dropped after the heaps (dropping it unmaps their segments).
    rvm: Rvm,
}

impl Store {
    /// Open the store in `dir` (files `log` and `data`), or create it if `dir` holds neither
    /// (creating `dir` too). See the [module docs](self) for the files and the crash rules.
    ///
    /// # Errors
    /// A bad layout ([`Error::BadLayout`], naming the parameter) or an occupied address range,
    /// with nothing created; only one of `log` and `data` present ([`Error::Store`]); a
    /// damaged log or segment; I/O errors naming the file.
    ///
    /// # Safety
    /// The store's files (`log`, `data`, `data.1`, ...) are mapped into memory for as long as
    /// the store is open. Nothing else may shorten them meanwhile (another process, or another
    /// handle in this one): a mapped file that shrinks makes the next access to the lost pages
    /// die of SIGBUS, as with any `mmap` (heed's `EnvOpenOptions::open` and memmap2's
    /// `Mmap::map` carry the same contract). The library's own `flock` keeps other rvm users
    /// away; the contract is about everything else.
    pub unsafe fn open_or_create(
        dir: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Store, Error> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::Error::io(&dir.display().to_string(), "create directory", e))?;
        // SAFETY: our caller accepted the same contract for the same files.
        unsafe { Self::open_or_create_files(dir.join("log"), dir.join("data"), options) }
    }

    /// [`Store::open_or_create`] in copy mode ([`MapOptions::copy`], whatever `options.map`
    /// says of it), and safe: every heap segment's data is read into memory of the process's
    /// own when the store opens (or creates, or grows), and no file of the store is ever
    /// mapped, so nothing anyone does to the files can make an access fault. The cost: opening
    /// reads every entry (a 1M-entry store took 56-77 ms here, against 10-13 ms for
    /// [`Store::open_or_create`]; BENCHMARKS.md, "Huge pages and copy mode"), and the entries
    /// are resident from the start. With [`MapOptions::huge_pages`] they are in huge pages.
    ///
    /// # Errors
    /// As [`Store::open_or_create`].
    pub fn open_or_create_copied(
        dir: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Store, Error> {
        let options = StoreOptions {
            map: options.map.copy(true),
            ..options
        };
        // SAFETY: `open_or_create`'s contract protects file mappings, and in copy mode the
        // store makes none: it maps heap segments only through `heap_map` (which keeps
        // `copy`), at open, at creation (`create_heap_segment_mapped` and the header's map)
        // and at `grow` (from `Store::map`, the same options), and each such map reads the
        // file into anonymous memory (`Rvm::map_copy` explains why that cannot fault).
        unsafe { Self::open_or_create(dir, options) }
    }

    /// [`Store::open_or_create`] with the log and the first heap segment at paths of your
    /// choice (added segments go next to `data`, as `data.1`, ...).
    ///
    /// # Errors
    /// As [`Store::open_or_create`].
    ///
    /// # Safety
    /// As [`Store::open_or_create`].
    pub unsafe fn open_or_create_files(
        log: impl AsRef<Path>,
        data: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Store, Error> {
        let paths = Paths {
            log: log.as_ref().to_path_buf(),
            data: data.as_ref().to_path_buf(),
        };
        // SAFETY: our caller accepted the contract for these files.
        let created = unsafe { create::ensure(&paths, &options, None) }?;
        // SAFETY: as above.
        let mut store = unsafe { Self::open_paths(paths, options) }?;
        store.created = created;
        Ok(store)
    }

    /// Open an existing store in `dir`; never creates anything.
    ///
    /// # Errors
    /// [`Error::Store`] if `dir` holds no complete store (an interrupted creation counts as
    /// none), and the errors of [`Store::open_or_create`].
    ///
    /// # Safety
    /// As [`Store::open_or_create`].
    pub unsafe fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store, Error> {
        let dir = dir.as_ref();
        let paths = Paths {
            log: dir.join("log"),
            data: dir.join("data"),
        };
        match create::state(&paths)? {
            // SAFETY: our caller accepted the contract for these files.
            create::State::Complete => unsafe { Self::open_paths(paths, options) },
            _ => Err(Error::Store {
                path: dir.display().to_string(),
                reason: "holds no complete store (no log and data)".into(),
            }),
        }
    }

    /// # Safety
    /// As [`Store::open_or_create`], for the files in `paths`.
    unsafe fn open_paths(paths: Paths, options: StoreOptions) -> Result<Store, Error> {
        // Read the segment header before opening the log: a wrong data file is refused
        // before anything (such as the log's status) is written.
        segment::read_header(&paths.data)?;
        let mut rvm_options = options.rvm.clone().segment_path(&paths.data);
        for i in 1..HEAP_SEGMENTS_MAX {
            let p = paths.extra(i);
            if p.exists() {
                rvm_options = rvm_options.segment_path(p);
            }
        }
        let rvm = Rvm::open(&paths.log, rvm_options)?;
        let map = options.heap_map();
        // SAFETY: our caller promised nothing shortens the store's files.
        let first = unsafe { rvm.map(&paths.data, map) }?;
        let heap = Heap::load(&first)?;
        let header_address = heap.static_address();
        if heap.static_length() < STORE_HEADER_BYTES {
            return Err(Error::Store {
                path: paths.data.display().to_string(),
                reason: format!(
                    "its static region ({} bytes) cannot hold the store header",
                    heap.static_length()
                ),
            });
        }
        let header: StoreHeader = first.read(header_address)?;
        if header.magic != STORE_MAGIC || header.version != STORE_VERSION {
            return Err(Error::Store {
                path: paths.data.display().to_string(),
                reason:
                    "is a heap segment but not a store's (no store header in its static region)"
                        .into(),
            });
        }
        let mut heaps = vec![heap];
        for i in 1..=header.extra_count.min(HEAP_SEGMENTS_MAX as u64 - 1) as usize {
            let path = paths.extra(i);
            // SAFETY: as above (an added segment is one of the store's files).
            let seg = unsafe { rvm.map(&path, map) }?;
            let heap = Heap::load(&seg)?;
            let [address, length] = header.extra[i - 1];
            if heap.address() as u64 != address || heap.length() as u64 != length {
                return Err(Error::Store {
                    path: path.display().to_string(),
                    reason: format!(
                        "holds a heap of {} bytes at {:#x}; the store recorded {length} bytes at {address:#x}",
                        heap.length(),
                        heap.address()
                    ),
                });
            }
            heaps.push(heap);
        }
        let layout = HeapLayout {
            start_address: heaps[0].address() as u64,
            heap_length: heaps[0].length() as u64,
            static_length: heaps[0].static_length() as u64,
            ..options.layout
        };
        Ok(Store {
            first: heaps[0].clone(),
            heaps: RwLock::new(heaps),
            growing: Mutex::new(()),
            header_address,
            paths,
            created: false,
            layout,
            map,
            rvm,
        })
    }

    /// Whether this call created the store (false: it opened an existing one).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The RVM instance (for statistics, flush, truncate, or plain transactions).
    pub fn rvm(&self) -> &Rvm {
        &self.rvm
    }

    /// The heaps, first segment first (handles: cheap clones sharing each heap's state).
    pub fn heaps(&self) -> Vec<Heap> {
        read_lock(&self.heaps).clone()
    }

    /// Begin a restore-mode transaction (the mode heap changes need).
    ///
    /// # Errors
    /// The instance has failed (see [`Rvm::begin`]).
    pub fn begin(&self) -> Result<Transaction<'_>, Error> {
        Ok(self.rvm.begin(BeginMode::Restore)?)
    }

    /// The typed root: a `T` in the first segment's static region, after the store header.
    /// A new store's root is all zeros (for the containers: the null handle).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a `T` does not fit in the static region.
    pub fn root<T: Pod>(&self) -> Result<Root<T>, Error> {
        let room = self.first.static_length() - STORE_HEADER_BYTES;
        if std::mem::size_of::<T>() > room {
            return Err(Error::InvalidArgument {
                parameter: "root type",
                rule: format!(
                    "{} is {} bytes; the static region has {room} bytes after the store header",
                    std::any::type_name::<T>(),
                    std::mem::size_of::<T>()
                ),
            });
        }
        Ok(Root::at(
            self.first.segment().clone(),
            self.header_address + STORE_HEADER_BYTES,
        ))
    }

    /// Add a heap segment of `heap_bytes` (a multiple of 4096) after the last one, so a full
    /// store has room again; returns the new heap. Existing pointers stay valid. Takes `&self`:
    /// other threads' transactions may run meanwhile, and one that found no room can be retried
    /// (a server can grow on [`Error::NoRoom`] and try again). The segment
    /// is created and made durable first, then recorded in the store header in a flush
    /// commit; a crash in between leaves an unrecorded file that the next `grow` replaces.
    ///
    /// ```
    /// use rvm::store::{Store, StoreOptions};
    /// use rvm::typed::PVec;
    /// # fn main() -> Result<(), rvm::rds::Error> {
    /// # let dir = std::env::temp_dir().join(format!("rvm-doc-grow-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// // SAFETY: the store's files are in this example's own temporary directory; nothing else shortens them.
    /// let store = unsafe { Store::open_or_create(&dir, StoreOptions::default().heap_bytes(1 << 20)) }?;
    /// let mut tx = store.begin()?;
    /// let v: PVec<u8> = PVec::new(&mut tx, &store)?;
    /// tx.end(rvm::CommitMode::Flush)?;
    /// let mut tx = store.begin()?;
    /// let too_much = v.extend_from_slice(&mut tx, &store, &[7; 2 << 20]);
    /// assert!(matches!(too_much, Err(rvm::rds::Error::NoRoom { .. })));
    /// tx.abort()?;
    /// store.grow(8 << 20)?;
    /// let mut tx = store.begin()?;
    /// v.extend_from_slice(&mut tx, &store, &[7; 2 << 20])?;
    /// tx.end(rvm::CommitMode::Flush)?;
    /// assert_eq!(v.len(&store)?, 2 << 20);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::BadLayout`] for a bad size or when the addresses after the last segment are
    /// taken or past the end of user space; [`Error::Store`] when the store already has
    /// [`HEAP_SEGMENTS_MAX`] segments. Nothing is left behind.
    pub fn grow(&self, heap_bytes: u64) -> Result<Heap, Error> {
        let _one = crate::sync::lock(&self.growing);
        let heaps = self.heaps();
        let index = heaps.len();
        if index >= HEAP_SEGMENTS_MAX {
            return Err(Error::Store {
                path: self.paths.data.display().to_string(),
                reason: format!(
                    "already has {HEAP_SEGMENTS_MAX} heap segments, the most a log can hold"
                ),
            });
        }
        let last = heaps.last().expect("a store has a heap");
        let end = (last.static_address() + last.static_length()) as u64;
        // Leave a gap of one alignment unit so the segments' mappings never touch.
        let start = end.next_multiple_of(REGION_ALIGN) + REGION_ALIGN;
        let layout = HeapLayout {
            start_address: start,
            heap_length: heap_bytes,
            static_length: REGION_ALIGN,
            ..self.layout
        };
        create::check_layout(&layout)?;
        let path = self.paths.extra(index);
        // An unrecorded file at this name is left by an interrupted grow: ours to replace.
        create::remove_if_exists(&path)?;
        // SAFETY: the new file is one of the store's files (`data.N`), which whoever opened
        // the store promised nothing else shortens.
        let created = unsafe {
            rds::create_heap_segment_mapped(
                &self.rvm,
                &path,
                layout.segment_length_min(),
                &layout,
                Default::default(),
                self.map,
            )
        };
        let mut mapped = None;
        let heap = created.and_then(|_| {
            // SAFETY: as above.
            let seg = mapped.insert(unsafe { self.rvm.map(&path, self.map) }?);
            let heap = Heap::load(seg)?;
            let mut tx = self.begin()?;
            let at = self.header_address;
            let mut header: StoreHeader = self.first.segment().read(at)?;
            header.extra[index - 1] = [heap.address() as u64, heap.length() as u64];
            header.extra_count = index as u64;
            tx.write(at, &header)?;
            tx.end(CommitMode::Flush)?;
            Ok(heap)
        });
        match heap {
            Ok(heap) => {
                let mut heaps = write_lock(&self.heaps);
                heaps.push(heap.clone());
                Ok(heap)
            }
            Err(e) => {
                if let Some(seg) = mapped {
                    let _ = self.rvm.unmap(&seg);
                }
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Flush, mark the log cleanly closed and unmap the segments, reporting errors (dropping
    /// the store does the same and ignores them).
    ///
    /// # Errors
    /// Flushing or writing the log's status failed.
    pub fn close(self) -> Result<(), Error> {
        let Store {
            heaps, first, rvm, ..
        } = self;
        drop((heaps, first));
        Ok(rvm.close()?)
    }

    fn heap_of(&self, address: usize) -> Result<(usize, Heap), Error> {
        // Only the heap found is copied out of the lock: the calls that follow may wait for
        // another transaction.
        let heaps = read_lock(&self.heaps);
        heaps
            .iter()
            .enumerate()
            .find(|(_, h)| in_heap(h, address))
            .map(|(i, h)| (i, h.clone()))
            .ok_or_else(|| Error::NotFromHeap {
                address: address as u64,
                reason: "not inside any of the store's heaps".into(),
            })
    }

    fn heap_count(&self) -> usize {
        read_lock(&self.heaps).len()
    }

    /// Take heaps `0..=last` for `tx` in index order, so that two transactions that use
    /// several heaps never wait for each other.
    fn own_up_to(heaps: &[Heap], tx: &mut Transaction<'_>, last: usize) -> Result<(), Error> {
        for h in &heaps[..=last] {
            h.own(tx)?;
        }
        Ok(())
    }
}

/// Whether `address` lies in `heap`'s heap region.
fn in_heap(heap: &Heap, address: usize) -> bool {
    address >= heap.address() && address - heap.address() < heap.length()
}

/// The first heap never changes and is checked first, without taking the `heaps` lock or
/// copying anything: most stores have one heap, and a container read checks a block and reads
/// it at every step.
impl Alloc for Store {
    /// Takes every heap, in index order.
    fn lock(&self, tx: &mut Transaction<'_>) -> Result<(), Error> {
        if self.heap_count() == 1 {
            return self.first.own(tx);
        }
        let heaps = self.heaps();
        Self::own_up_to(&heaps, tx, heaps.len() - 1)
    }

    /// Allocate from the first heap with room.
    fn alloc_bytes(&self, tx: &mut Transaction<'_>, size: usize) -> Result<usize, Error> {
        let heaps = self.heaps();
        let mut no_room = None;
        for (i, h) in heaps.iter().enumerate() {
            Self::own_up_to(&heaps, tx, i)?;
            match h.malloc(tx, size) {
                Err(e @ Error::NoRoom { .. }) => no_room = Some(e),
                other => return other,
            }
        }
        Err(no_room.expect("a store has a heap"))
    }

    fn free_bytes(&self, tx: &mut Transaction<'_>, address: usize) -> Result<(), Error> {
        let (i, h) = self.heap_of(address)?;
        Self::own_up_to(&self.heaps(), tx, i)?;
        h.free(tx, address)
    }

    fn block_len(&self, address: usize) -> Result<usize, Error> {
        if in_heap(&self.first, address) {
            return self.first.data_usable_size(address);
        }
        self.heap_of(address)?.1.data_usable_size(address)
    }

    fn read_block(&self, block: usize, offset: usize, buf: &mut [u8]) -> Result<usize, Error> {
        if in_heap(&self.first, block) {
            return self.first.data_read_block(block, offset, buf);
        }
        self.heap_of(block)?.1.data_read_block(block, offset, buf)
    }

    fn read_bytes(&self, address: usize, buf: &mut [u8]) -> Result<(), Error> {
        let first = self.first.segment();
        if first.region_of(address, buf.len()).is_some() {
            // Checks again that the segment is still mapped (it is, while the store is open).
            return Ok(first.read_bytes(address, buf)?);
        }
        Ok(self.rvm.read_bytes(address, buf)?)
    }
}
