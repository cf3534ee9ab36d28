//! This machine's limits, measured in the same run as the scenario they bound: what any
//! implementation must spend at least, whatever its design.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// The page size the limits count in (the segment format's fixed region alignment).
pub const PAGE_BYTES: u64 = 4096;
/// Read size for sequential reads: large enough that system-call cost does not matter.
const READ_CHUNK_BYTES: usize = 1 << 20;
/// Longest single write when rewriting runs of adjacent pages.
const WRITE_RUN_BYTES_MAX: u64 = 1 << 20;

/// Read `path` sequentially from start to end and CRC32 every byte: the least a recovery or a
/// truncation must do with its log. Returns the time and the byte count.
pub fn read_and_crc(path: &Path) -> io::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut hasher = crc32fast::Hasher::new();
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    std::hint::black_box(hasher.finalize());
    Ok((started.elapsed(), total))
}

/// Write `record_bytes` at successive offsets of a new sparse file of `file_bytes` (wrapping
/// at its end) with pwrite, each followed by fdatasync, `count` times: the raw cost of a
/// flush commit on this file system. The file is removed afterwards.
pub fn pwrite_fdatasync_loop(
    path: &Path,
    file_bytes: u64,
    record_bytes: usize,
    count: u64,
) -> io::Result<Duration> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    file.set_len(file_bytes)?;
    let record = vec![0x5au8; record_bytes];
    let started = Instant::now();
    let mut offset = 0u64;
    for _ in 0..count {
        if offset + record_bytes as u64 > file_bytes {
            offset = 0;
        }
        file.write_all_at(&record, offset)?;
        file.sync_data()?;
        offset += record_bytes as u64;
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(elapsed)
}

/// The raw flush of [`pwrite_fdatasync_loop`] one operation at a time, so that it can be
/// interleaved with the operation it bounds and both see the same moment of a shared disk.
pub struct SyncLoop {
    file: File,
    record: Vec<u8>,
    file_bytes: u64,
    offset: u64,
}

impl SyncLoop {
    /// A new sparse file of `file_bytes` at `path` (removed with its directory).
    pub fn new(path: &Path, file_bytes: u64, record_bytes: usize) -> io::Result<SyncLoop> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.set_len(file_bytes)?;
        Ok(SyncLoop {
            file,
            record: vec![0x5a; record_bytes],
            file_bytes,
            offset: 0,
        })
    }

    /// The same over a file whose blocks are all allocated already (a log that has wrapped
    /// once), so that no sync pays for block allocation.
    pub fn preallocated(path: &Path, file_bytes: u64, record_bytes: usize) -> io::Result<SyncLoop> {
        let sync = SyncLoop::new(path, file_bytes, record_bytes)?;
        let zeros = vec![0u8; READ_CHUNK_BYTES];
        let mut at = 0;
        while at < file_bytes {
            let n = (file_bytes - at).min(zeros.len() as u64) as usize;
            sync.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        sync.file.sync_all()?;
        Ok(sync)
    }

    /// Append one record with pwrite and fdatasync it; returns the time taken.
    pub fn once(&mut self) -> io::Result<Duration> {
        if self.offset + self.record.len() as u64 > self.file_bytes {
            self.offset = 0;
        }
        let started = Instant::now();
        self.file.write_all_at(&self.record, self.offset)?;
        self.file.sync_data()?;
        self.offset += self.record.len() as u64;
        Ok(started.elapsed())
    }
}

/// The least group commit can cost: `threads` committers each hand records to one writer,
/// which takes everything queued, writes it with one `pwrite` starting on a fresh 512-byte
/// sector, syncs once with `fdatasync`, and releases the committers it covered; each committer
/// hands over its next record only once the previous one is durable. The file's blocks are
/// allocated and written first, as a log's are.
pub struct GroupSyncLimit {
    file: File,
    file_bytes: u64,
}

/// Group-commit queue shared by the committers and the writer of [`GroupSyncLimit::run`].
struct GroupQueue {
    buf: Vec<u8>,
    queued: u64,
    synced: u64,
    producers_left: usize,
    failed: Option<io::ErrorKind>,
}

impl GroupSyncLimit {
    /// A new file of `file_bytes` at `path`, written with zeros and synced.
    pub fn preallocated(path: &Path, file_bytes: u64) -> io::Result<GroupSyncLimit> {
        let sync = SyncLoop::preallocated(path, file_bytes, 512)?;
        Ok(GroupSyncLimit {
            file: sync.file,
            file_bytes,
        })
    }

    /// `threads` committers hand `per_thread` records of `record_bytes` each to one writer;
    /// returns the time until the last one is durable, and the number of syncs.
    pub fn run(
        &self,
        threads: usize,
        per_thread: u64,
        record_bytes: usize,
    ) -> io::Result<(Duration, u64)> {
        use std::sync::{Condvar, Mutex};
        let queue = Mutex::new(GroupQueue {
            buf: Vec::new(),
            queued: 0,
            synced: 0,
            producers_left: threads,
            failed: None,
        });
        let (to_writer, to_committers) = (Condvar::new(), Condvar::new());
        let lock = || queue.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let syncs = std::thread::scope(|scope| {
            let writer = scope.spawn(|| -> io::Result<u64> {
                let mut offset = 0u64;
                let mut syncs = 0u64;
                let mut batch = Vec::new();
                loop {
                    let upto = {
                        let mut q = lock();
                        while q.buf.is_empty() && q.producers_left > 0 {
                            q = to_writer.wait(q).unwrap_or_else(|e| e.into_inner());
                        }
                        if q.buf.is_empty() {
                            return Ok(syncs);
                        }
                        std::mem::swap(&mut batch, &mut q.buf);
                        q.queued
                    };
                    batch.resize(batch.len().div_ceil(512) * 512, 0);
                    if offset + batch.len() as u64 > self.file_bytes {
                        offset = 0;
                    }
                    let result = self
                        .file
                        .write_all_at(&batch, offset)
                        .and_then(|()| self.file.sync_data());
                    offset += batch.len() as u64;
                    syncs += 1;
                    batch.clear();
                    let mut q = lock();
                    if let Err(e) = &result {
                        q.failed = Some(e.kind());
                    }
                    q.synced = upto;
                    to_committers.notify_all();
                    drop(q);
                    result?;
                }
            });
            for _ in 0..threads {
                scope.spawn(|| {
                    let record = vec![0x5au8; record_bytes];
                    for _ in 0..per_thread {
                        let mut q = lock();
                        q.buf.extend_from_slice(&record);
                        q.queued += 1;
                        let mine = q.queued;
                        to_writer.notify_one();
                        while q.synced < mine && q.failed.is_none() {
                            q = to_committers.wait(q).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                    lock().producers_left -= 1;
                    to_writer.notify_one();
                });
            }
            writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("writer panicked")))
        })?;
        Ok((started.elapsed(), syncs))
    }
}

/// Memory copy bandwidth in bytes per second: `reps` copies of a `bytes` buffer, after one
/// untimed copy that faults both buffers in.
pub fn memcpy_bytes_per_s(bytes: usize, reps: u32) -> f64 {
    let source = vec![1u8; bytes];
    let mut target = vec![0u8; bytes];
    target.copy_from_slice(&source);
    let started = Instant::now();
    for _ in 0..reps {
        target.copy_from_slice(std::hint::black_box(&source));
        std::hint::black_box(&mut target);
    }
    crate::per_second(bytes as u64 * reps as u64, started.elapsed())
}

/// Map all of `path` `MAP_PRIVATE` (as rvm maps a segment) and write one byte to each page at
/// the given file offsets: one copy-on-write fault per page, the least work that makes those
/// pages usable. Returns the time for mmap, the faults and munmap.
pub fn private_mapping_faults(path: &Path, page_offsets: &[u64]) -> io::Result<Duration> {
    let file = File::open(path)?;
    let length = file.metadata()?.len() as usize;
    if length == 0 {
        return Ok(Duration::ZERO);
    }
    let started = Instant::now();
    // SAFETY: a fresh private mapping chosen by the kernel; nothing else refers to it, and it
    // is unmapped below before this function returns.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            length,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let base = base as *mut u8;
    for &offset in page_offsets {
        if (offset as usize) < length {
            // SAFETY: `offset` is inside the mapping of `length` bytes made above.
            unsafe {
                let p = base.add(offset as usize);
                std::ptr::write_volatile(p, std::ptr::read_volatile(p) ^ 1);
            }
        }
    }
    // SAFETY: unmapping exactly the mapping created above; no reference into it survives.
    unsafe { libc::munmap(base.cast(), length) };
    Ok(started.elapsed())
}

/// Read each page at the given file offsets and write it back unchanged (adjacent pages in
/// one write), then fdatasync once: the least a truncation must write to its segment.
pub fn rewrite_and_sync_pages(path: &Path, page_offsets: &[u64]) -> io::Result<Duration> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut sorted = page_offsets.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut buf = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start + PAGE_BYTES;
        i += 1;
        while i < sorted.len() && sorted[i] == end && end - start < WRITE_RUN_BYTES_MAX {
            end += PAGE_BYTES;
            i += 1;
        }
        buf.resize((end - start) as usize, 0);
        file.read_exact_at(&mut buf, start)?;
        file.write_all_at(&buf, start)?;
    }
    file.sync_data()?;
    Ok(started.elapsed())
}

/// Bytes the file system has allocated for `path` (its blocks, not its length).
pub fn disk_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.blocks() * 512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_run_on_a_small_file() {
        let dir = crate::scratch::Scratch::new("limits-test").unwrap();
        let path = dir.join("f");
        std::fs::write(&path, vec![7u8; 3 * PAGE_BYTES as usize]).unwrap();
        let (_, bytes) = read_and_crc(&path).unwrap();
        assert_eq!(bytes, 3 * PAGE_BYTES);
        private_mapping_faults(&path, &[0, PAGE_BYTES, 2 * PAGE_BYTES]).unwrap();
        rewrite_and_sync_pages(&path, &[PAGE_BYTES, 0]).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            vec![7u8; 3 * PAGE_BYTES as usize]
        );
        pwrite_fdatasync_loop(&dir.join("g"), 1 << 16, 512, 3).unwrap();
        assert!(memcpy_bytes_per_s(1 << 16, 2) > 0.0);
        assert!(disk_bytes(&path).unwrap() > 0);
    }
}
