//! A persistent hash map.

use std::marker::PhantomData;

use bytemuck::{Pod, Zeroable};

use crate::rds::Error;
use crate::tx::Transaction;
use crate::typed::{read_at, within, write_at, Alloc, FieldPtr, PSlice};

/// A key a [`PHashMap`] can store: any [`Pod`] value (compared and hashed by its bytes), a
/// byte string (`[u8]`) or text (`str`). Keys are copied into the map.
pub trait MapKey {
    /// What a lookup or an iteration hands back: the key itself for `Pod` keys, `Vec<u8>`
    /// or `String` for the unsized ones.
    type Owned;
    /// The key's bytes, as stored, hashed and compared.
    fn key_bytes(&self) -> &[u8];
    /// The key again from its stored bytes (`None` if they cannot be one: damage).
    fn from_key_bytes(bytes: &[u8]) -> Option<Self::Owned>;
}

impl<T: Pod> MapKey for T {
    type Owned = T;
    fn key_bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<T> {
        bytemuck::try_pod_read_unaligned(bytes).ok()
    }
}

impl MapKey for [u8] {
    type Owned = Vec<u8>;
    fn key_bytes(&self) -> &[u8] {
        self
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Vec<u8>> {
        Some(bytes.to_vec())
    }
}

impl MapKey for str {
    type Owned = String;
    fn key_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<String> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// Marks the key and value types without owning either (so the handle is `Copy`, `Send`,
/// `Sync` and `'static` when they are `'static`).
type Types<K, V> = (fn(&K), fn() -> V);

/// The map's header block.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Header {
    len: u64,
    /// A power of two.
    bucket_count: u64,
    /// Block of `bucket_count` chain heads (entry addresses, 0: empty).
    buckets: u64,
}
const HEADER_BYTES: usize = std::mem::size_of::<Header>();

/// The fixed start of an entry block; the value follows it, then the key's bytes.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Entry {
    next: u64,
    hash: u64,
    key_len: u64,
}
const ENTRY_BYTES: u64 = std::mem::size_of::<Entry>() as u64;
const BUCKETS_MIN: u64 = 8;
/// Average chain length at which the bucket array doubles. 1 rather than 2: a lookup then
/// visits 1.25-1.5 entries on average instead of 1.5-2, each a cache miss or two, for 4-8 more
/// bytes of bucket per entry (an entry block is 192 bytes for a u64 key and a 100-byte value);
/// random gets of a 1M-entry map ran 16% faster (BENCHMARKS.md, "Store against redb and
/// LMDB"). Maps made with factor 2 keep working; they double at their next insert.
const LOAD_FACTOR: u64 = 1;

fn hash(bytes: &[u8]) -> u64 {
    // FNV-1a, then a murmur3 finalizer so the low bits (the bucket) depend on every byte.
    // Stable across builds and platforms: the hash is stored in the entries.
    let mut h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A hash map from `K` to `V` in the heap: a persistent `HashMap<K, V>` with separate
/// chaining (one heap block per entry holding its value and a copy of its key). The bucket
/// array doubles when the map holds more entries than buckets; that change relinks every
/// entry in the transaction that triggers it.
///
/// The handle is the address of a header block, `Pod` and stable: store it in a root, a
/// struct or another container (a map of vectors is a `PHashMap<K, PVec<T>>`). Every change
/// happens in the caller's transaction, so an abort undoes it. Reads return copies.
/// Iteration order is the bucket order, not insertion order.
///
/// ```
/// use rvm::store::{Store, StoreOptions};
/// use rvm::typed::{PBytes, PHashMap};
/// # fn main() -> Result<(), rvm::rds::Error> {
/// # let dir = std::env::temp_dir().join(format!("rvm-doc-map-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// // SAFETY: the store's files are in this example's own temporary directory; nothing else shortens them.
/// let store = unsafe { Store::open_or_create(&dir, StoreOptions::default()) }?;
/// let mut tx = store.begin()?;
/// let ages: PHashMap<str, u32> = PHashMap::new(&mut tx, &store)?;
/// ages.insert(&mut tx, &store, "ada", &36)?;
/// ages.insert(&mut tx, &store, "alan", &41)?;
/// assert_eq!(ages.insert(&mut tx, &store, "ada", &37)?, Some(36)); // old value back
/// tx.end(rvm::CommitMode::Flush)?;
///
/// assert_eq!(ages.get(&store, "ada")?, Some(37));
/// assert_eq!(ages.len(&store)?, 2);
/// let mut tx = store.begin()?;
/// assert_eq!(ages.remove(&mut tx, &store, "alan")?, Some(41));
/// tx.abort()?; // the removal is undone
/// let mut all: Vec<(String, u32)> = ages.iter(&store)?.collect::<Result<_, _>>()?;
/// all.sort();
/// assert_eq!(all, [("ada".to_string(), 37), ("alan".to_string(), 41)]);
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[repr(transparent)]
pub struct PHashMap<K: ?Sized, V> {
    header: u64,
    _type: PhantomData<Types<K, V>>,
}

impl<K: ?Sized, V> Clone for PHashMap<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: ?Sized, V> Copy for PHashMap<K, V> {}
impl<K: ?Sized, V> PartialEq for PHashMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.header == other.header
    }
}
impl<K: ?Sized, V> Eq for PHashMap<K, V> {}
impl<K: ?Sized, V> std::fmt::Debug for PHashMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PHashMap({:#x})", self.header)
    }
}
// SAFETY: a transparent wrapper of one u64: no padding, every bit pattern valid (the address
// is checked at every access; 0 is the null handle).
unsafe impl<K: ?Sized + 'static, V: 'static> Zeroable for PHashMap<K, V> {}
// SAFETY: as above; the PhantomData of function pointers is Copy + 'static.
unsafe impl<K: ?Sized + 'static, V: 'static> Pod for PHashMap<K, V> {}

/// Where a key was found: the link pointing at its entry (checked only when it is to be
/// written), the entry, and a copy of its value.
struct Found<V> {
    link: FieldPtr<u64>,
    entry: u64,
    header: Entry,
    value: V,
}

/// A lookup: the map's header, its buckets, the key's hash and bucket, the chain head read
/// from that bucket, and the entry if the key is there.
struct Lookup<V> {
    header: Header,
    buckets: PSlice<u64>,
    hash: u64,
    bucket: FieldPtr<u64>,
    head: u64,
    found: Option<Found<V>>,
}

/// Bytes of an entry read on the stack during a lookup or an iteration step (larger entries
/// use the heap).
const ENTRY_READ_STACK: usize = 256;

/// A buffer of `len` bytes to read an entry into: the first `len` bytes of `stack` when they
/// fit there, else `heap`, made `len` bytes long (the only allocation, for long entries).
fn entry_buf<'b>(
    stack: &'b mut [u8; ENTRY_READ_STACK],
    heap: &'b mut Vec<u8>,
    len: usize,
) -> &'b mut [u8] {
    if len <= ENTRY_READ_STACK {
        &mut stack[..len]
    } else {
        *heap = vec![0u8; len];
        heap
    }
}

impl<K: ?Sized, V> PHashMap<K, V> {
    /// The null handle (names no map). A zeroed root holds it.
    pub const fn null() -> Self {
        PHashMap {
            header: 0,
            _type: PhantomData,
        }
    }

    /// Whether this is the null handle.
    pub fn is_null(&self) -> bool {
        self.header == 0
    }

    /// The address of the map's header block.
    pub fn address(&self) -> usize {
        self.header as usize
    }
}

impl<K: MapKey + ?Sized, V: Pod> PHashMap<K, V> {
    /// A new, empty map, in `tx`.
    ///
    /// # Errors
    /// [`Error::NoRoom`].
    pub fn new(tx: &mut Transaction<'_>, a: &(impl Alloc + ?Sized)) -> Result<Self, Error> {
        Self::with_buckets(tx, a, BUCKETS_MIN as usize)
    }

    /// A new, empty map starting with `buckets` buckets (rounded up to a power of two), in
    /// `tx`. More buckets up front save the doublings of a map that will be large.
    ///
    /// # Errors
    /// [`Error::NoRoom`], or `buckets` is 0 or above 2^32.
    pub fn with_buckets(
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        buckets: usize,
    ) -> Result<Self, Error> {
        if buckets == 0 || buckets > 1 << 32 {
            return Err(Error::InvalidArgument {
                parameter: "buckets",
                rule: format!("{buckets} is not between 1 and 2^32"),
            });
        }
        a.lock(tx)?;
        let count = buckets.next_power_of_two();
        let heads = PSlice::<u64>::alloc(tx, a, count)?;
        let header = a.alloc_bytes(tx, HEADER_BYTES)?;
        tx.write(
            header,
            &Header {
                len: 0,
                bucket_count: count as u64,
                buckets: heads.block(),
            },
        )?;
        Ok(PHashMap {
            header: header as u64,
            _type: PhantomData,
        })
    }

    fn header(&self, a: &(impl Alloc + ?Sized)) -> Result<(Header, PSlice<u64>), Error> {
        let h: Header = read_at(a, self.header, 0)?;
        if !h.bucket_count.is_power_of_two() {
            return Err(Error::Corrupt {
                address: self.header,
                detail: format!("bucket count {} is not a power of two", h.bucket_count),
            });
        }
        Ok((h, PSlice::from_raw_parts(h.buckets, 0, h.bucket_count)))
    }

    /// Number of entries.
    ///
    /// # Errors
    /// The handle does not name a map.
    pub fn len(&self, a: &(impl Alloc + ?Sized)) -> Result<usize, Error> {
        Ok(self.header(a)?.0.len as usize)
    }

    /// Whether the map is empty.
    ///
    /// # Errors
    /// As [`PHashMap::len`].
    pub fn is_empty(&self, a: &(impl Alloc + ?Sized)) -> Result<bool, Error> {
        Ok(self.len(a)? == 0)
    }

    fn entry(a: &(impl Alloc + ?Sized), at: u64) -> Result<Entry, Error> {
        read_at(a, at, 0)
    }

    fn chain_too_long(&self, h: &Header) -> Error {
        Error::Corrupt {
            address: self.header,
            detail: format!(
                "a hash chain is longer than the map's {} entries (a loop)",
                h.len
            ),
        }
    }

    /// Walk `key`'s chain. Each entry on it costs one block check and one read, which
    /// copies its fixed part, value and key together (a lookup is three checked reads when
    /// the key is the first of its chain: header, bucket, entry).
    fn lookup(&self, a: &(impl Alloc + ?Sized), key: &[u8]) -> Result<Lookup<V>, Error> {
        let (h, buckets) = self.header(a)?;
        let hash = hash(key);
        let bucket = buckets.at((hash & (h.bucket_count - 1)) as usize)?;
        let head: u64 = bucket.read(a)?;
        let value_bytes = std::mem::size_of::<V>();
        let value_at = ENTRY_BYTES as usize;
        let key_at = value_at + value_bytes;
        let whole = key_at + key.len();
        let (mut stack, mut heap) = ([0u8; ENTRY_READ_STACK], Vec::new());
        let buf = entry_buf(&mut stack, &mut heap, whole);
        let mut link = bucket;
        let mut at = head;
        let mut steps = 0u64;
        while at != 0 {
            // One check and one copy: as much of `whole` as the block holds. An entry too
            // short for this key's bytes cannot hold it, but its fixed part must be there.
            let usable = a.read_block(at as usize, 0, buf)? as u64;
            within(at, 0, ENTRY_BYTES, usable)?;
            let e: Entry = bytemuck::pod_read_unaligned(&buf[..ENTRY_BYTES as usize]);
            if e.hash == hash && e.key_len == key.len() as u64 {
                within(at, 0, whole as u64, usable)?;
                if &buf[key_at..whole] == key {
                    let value = bytemuck::pod_read_unaligned(&buf[value_at..key_at]);
                    return Ok(Lookup {
                        header: h,
                        buckets,
                        hash,
                        bucket,
                        head,
                        found: Some(Found {
                            link,
                            entry: at,
                            header: e,
                            value,
                        }),
                    });
                }
            }
            steps += 1;
            if steps > h.len {
                return Err(self.chain_too_long(&h));
            }
            link = FieldPtr::new(at, 0);
            at = e.next;
        }
        Ok(Lookup {
            header: h,
            buckets,
            hash,
            bucket,
            head,
            found: None,
        })
    }

    fn find(&self, a: &(impl Alloc + ?Sized), key: &[u8]) -> Result<Option<Found<V>>, Error> {
        Ok(self.lookup(a, key)?.found)
    }

    fn value_ptr(entry: u64) -> FieldPtr<V> {
        FieldPtr::new(entry, ENTRY_BYTES)
    }

    /// A copy of the value stored for `key`.
    ///
    /// # Errors
    /// The map is damaged or the handle names no map.
    pub fn get(&self, a: &(impl Alloc + ?Sized), key: &K) -> Result<Option<V>, Error> {
        Ok(self.find(a, key.key_bytes())?.map(|f| f.value))
    }

    /// Whether `key` is in the map.
    ///
    /// # Errors
    /// As [`PHashMap::get`].
    pub fn contains_key(&self, a: &(impl Alloc + ?Sized), key: &K) -> Result<bool, Error> {
        Ok(self.find(a, key.key_bytes())?.is_some())
    }

    /// A pointer to the value stored for `key`, to read or change it in place (for example
    /// one field of it, with [`field!`](crate::field)). Valid until the key is removed.
    ///
    /// # Errors
    /// As [`PHashMap::get`].
    pub fn value_ptr_of(
        &self,
        a: &(impl Alloc + ?Sized),
        key: &K,
    ) -> Result<Option<FieldPtr<V>>, Error> {
        Ok(self
            .find(a, key.key_bytes())?
            .map(|f| Self::value_ptr(f.entry)))
    }

    /// Store `value` for `key`, in `tx`; returns the value it replaces, if any (free nested
    /// containers it names yourself).
    ///
    /// # Errors
    /// [`Error::NoRoom`]; the map is unchanged.
    pub fn insert(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        key: &K,
        value: &V,
    ) -> Result<Option<V>, Error> {
        a.lock(tx)?;
        let key = key.key_bytes();
        let Lookup {
            header: mut h,
            buckets,
            hash,
            bucket: head,
            head: first,
            found,
        } = self.lookup(a, key)?;
        if let Some(f) = found {
            write_at(tx, a, f.entry, ENTRY_BYTES, value)?;
            return Ok(Some(f.value));
        }
        let value_bytes = std::mem::size_of::<V>();
        let size = ENTRY_BYTES as usize + value_bytes + key.len();
        let entry = a.alloc_bytes(tx, size)?;
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(bytemuck::bytes_of(&Entry {
            next: first,
            hash,
            key_len: key.len() as u64,
        }));
        bytes.extend_from_slice(bytemuck::bytes_of(value));
        bytes.extend_from_slice(key);
        tx.modify_bytes(entry, &bytes)?;
        write_at(tx, a, head.block(), head.offset(), &(entry as u64))?;
        h.len += 1;
        write_at(tx, a, self.header, 0, &h.len)?;
        if h.len > LOAD_FACTOR * h.bucket_count {
            self.grow(tx, a, h, buckets)?;
        }
        Ok(None)
    }

    /// Double the bucket array and relink every entry into it.
    fn grow(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        mut h: Header,
        old: PSlice<u64>,
    ) -> Result<(), Error> {
        let count = h.bucket_count * 2;
        let new = PSlice::<u64>::alloc(tx, a, count as usize)?;
        let mut heads = vec![0u64; count as usize];
        let mut seen = 0u64;
        for head in old.to_vec(a)? {
            let mut at = head;
            while at != 0 {
                let e = Self::entry(a, at)?;
                seen += 1;
                if seen > h.len {
                    return Err(self.chain_too_long(&h));
                }
                let b = (e.hash & (count - 1)) as usize;
                write_at(tx, a, at, 0, &heads[b])?;
                heads[b] = at;
                at = e.next;
            }
        }
        new.copy_from_slice(tx, a, &heads)?;
        old.free(tx, a)?;
        h.bucket_count = count;
        h.buckets = new.block();
        write_at(tx, a, self.header, 0, &h)
    }

    /// Remove `key`, in `tx`; returns its value if it was there.
    ///
    /// # Errors
    /// The map is damaged or the handle names no map.
    pub fn remove(
        &self,
        tx: &mut Transaction<'_>,
        a: &(impl Alloc + ?Sized),
        key: &K,
    ) -> Result<Option<V>, Error> {
        a.lock(tx)?;
        let l = self.lookup(a, key.key_bytes())?;
        let (h, Some(f)) = (l.header, l.found) else {
            return Ok(None);
        };
        write_at(tx, a, f.link.block(), f.link.offset(), &f.header.next)?;
        a.free_bytes(tx, f.entry as usize)?;
        write_at(tx, a, self.header, 0, &(h.len - 1))?;
        Ok(Some(f.value))
    }

    /// Every entry (copies of key and value), bucket by bucket.
    ///
    /// # Errors
    /// The handle does not name a map. The iterator yields an error (and then stops) at
    /// damage.
    pub fn iter<'a, A: Alloc + ?Sized>(&self, a: &'a A) -> Result<MapIter<'a, K, V, A>, Error> {
        let (h, buckets) = self.header(a)?;
        Ok(MapIter {
            a,
            buckets,
            next_bucket: 0,
            at: 0,
            left: h.len,
            done: false,
            _type: PhantomData,
        })
    }

    /// Remove every entry and free the map's blocks, in `tx`. Values are not visited: free
    /// nested containers first.
    ///
    /// # Errors
    /// The map is damaged or the handle names no map.
    pub fn free(self, tx: &mut Transaction<'_>, a: &(impl Alloc + ?Sized)) -> Result<(), Error> {
        a.lock(tx)?;
        let (h, buckets) = self.header(a)?;
        let mut seen = 0u64;
        for head in buckets.to_vec(a)? {
            let mut at = head;
            while at != 0 {
                let e = Self::entry(a, at)?;
                seen += 1;
                if seen > h.len {
                    return Err(self.chain_too_long(&h));
                }
                a.free_bytes(tx, at as usize)?;
                at = e.next;
            }
        }
        buckets.free(tx, a)?;
        a.free_bytes(tx, self.header as usize)
    }
}

/// Iterator over a [`PHashMap`]'s entries; see [`PHashMap::iter`].
pub struct MapIter<'a, K: ?Sized, V, A: ?Sized> {
    a: &'a A,
    buckets: PSlice<u64>,
    next_bucket: usize,
    at: u64,
    /// Entries the header promised and not yet returned: bounds the walk if a chain loops.
    left: u64,
    done: bool,
    _type: PhantomData<Types<K, V>>,
}

impl<K: MapKey + ?Sized, V: Pod, A: Alloc + ?Sized> MapIter<'_, K, V, A> {
    fn step(&mut self) -> Result<Option<(K::Owned, V)>, Error> {
        while self.at == 0 {
            if self.next_bucket >= self.buckets.len() {
                return Ok(None);
            }
            self.at = self.buckets.get(self.a, self.next_bucket)?;
            self.next_bucket += 1;
        }
        if self.left == 0 {
            return Err(Error::Corrupt {
                address: self.at,
                detail: "the map's chains hold more entries than its length (a loop?)".into(),
            });
        }
        self.left -= 1;
        let at = self.at;
        let value_at = ENTRY_BYTES as usize;
        let key_at = value_at + std::mem::size_of::<V>();
        // One block check and one copy of the fixed part, the value and as much of the key
        // as the buffer holds (all of it but for long keys); then the same bounds as ever:
        // the fixed part, the value, the key's length, each inside the block's usable bytes.
        // The whole stack buffer when the fixed part and value fit in it, else just those.
        let (mut stack, mut heap) = ([0u8; ENTRY_READ_STACK], Vec::new());
        let buf = entry_buf(&mut stack, &mut heap, key_at.max(ENTRY_READ_STACK));
        let usable = self.a.read_block(at as usize, 0, buf)? as u64;
        within(at, 0, ENTRY_BYTES, usable)?;
        let e: Entry = bytemuck::pod_read_unaligned(&buf[..value_at]);
        within(at, ENTRY_BYTES, (key_at - value_at) as u64, usable)?;
        within(at, key_at as u64, e.key_len, usable)?;
        let value: V = bytemuck::pod_read_unaligned(&buf[value_at..key_at]);
        // `key_at + key_len` is at most `usable` (checked above), so it fits a usize.
        let whole = key_at + e.key_len as usize;
        let mut long;
        let key_bytes: &[u8] = if whole <= buf.len() {
            &buf[key_at..whole]
        } else {
            // The rest of a long key: inside the block checked above.
            long = vec![0u8; e.key_len as usize];
            let (copied, rest) = long.split_at_mut(buf.len() - key_at);
            copied.copy_from_slice(&buf[key_at..]);
            self.a.read_bytes(at as usize + buf.len(), rest)?;
            &long
        };
        let key = K::from_key_bytes(key_bytes).ok_or_else(|| Error::Corrupt {
            address: at,
            detail: format!(
                "a key of {} bytes is not a valid {}",
                e.key_len,
                std::any::type_name::<K>()
            ),
        })?;
        self.at = e.next;
        Ok(Some((key, value)))
    }
}

impl<K: MapKey + ?Sized, V: Pod, A: Alloc + ?Sized> Iterator for MapIter<'_, K, V, A> {
    type Item = Result<(K::Owned, V), Error>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
