//! Plain-file regions: mapping part of a headerless file (or block device) with
//! [`Rvm::map_file`], and finding such a file again at recovery.
//!
//! A plain file is a segment without a header. Its table entry (kind
//! [`SegmentKind::PlainFile`]) records the canonical path, which is authoritative, and the
//! file's device, inode and length when it was mapped, which recovery checks. In memory it is
//! a [`Segment`] whose made-up header has one region covering the whole file at offset 0, so a
//! logged range (whose "segment offset" is the file offset) is bounded by the file, and
//! transactions, commit, truncation (positional writes into the file), recovery, `unmap` and
//! the statistics are the segments' own code.

use std::path::Path;
use std::sync::Arc;

use super::segments::{MapPlan, PlannedRegion};
use super::Rvm;
use crate::device::{file_identity, Access, DeviceRef, FileDevice};
use crate::error::{Error, Result};
use crate::format::log::{FileIdentity, SegmentEntry, SegmentKind, PATH_HINT_BYTES_MAX};
use crate::format::segment::SegmentHeader;
use crate::mapping::{page_size, Backing};
use crate::segment::{made_up_header, open_plain_file, Segment};

/// Where the memory of a plain-file region comes from (see [`Rvm::map_file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileMapMode {
    /// Mapped `MAP_PRIVATE` from the file, as segments are: nothing is read up front, pages
    /// fault in when touched (the classic `RVM_MAP_PRIVATE` option).
    #[default]
    Private,
    /// Anonymous memory filled by reading the file at map time (the classic default mode):
    /// costs a read of the whole region, but a file shortened later cannot raise SIGBUS.
    Copy,
    /// Anonymous zero memory; the file is not read (the classic `no_copy` flag, for a caller
    /// that writes the whole region before reading it). Bytes never committed keep their old
    /// value in the file.
    Zeroed,
}

/// How [`Rvm::map_file`] maps a plain file: which part, where, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileMapOptions {
    /// File offset of the first byte; rounded down to a page. Must lie inside the file.
    pub offset: u64,
    /// Bytes to map from `offset` (0: to the end of the file); the end is rounded up to a page
    /// and then capped at the end of the file.
    pub length: u64,
    /// Where to map it: a page-aligned address (which must be free: nothing is ever mapped
    /// over an existing mapping), or `None` to let the library choose.
    pub address: Option<usize>,
    /// Where the memory comes from.
    pub mode: FileMapMode,
    /// Cap a range that runs past the end of the file at the end of the file (as the classic
    /// `rvm_map` does) instead of refusing it.
    pub clamp_length: bool,
    /// Back the mapping's anonymous memory with transparent huge pages, as
    /// [`MapOptions::huge_pages`](crate::MapOptions::huge_pages) does: the whole mapping in
    /// [`FileMapMode::Copy`] and [`FileMapMode::Zeroed`], the large holes of the file in
    /// [`FileMapMode::Private`].
    pub huge_pages: bool,
}

/// The page-rounded span `(offset, length)` to map of a file of `file_len` bytes, or an error
/// naming the parameter that puts it outside the file. `path` is for the message.
pub(crate) fn span(
    path: &str,
    file_len: u64,
    options: &FileMapOptions,
    page: u64,
) -> Result<(u64, u64)> {
    let offset = options.offset;
    if offset >= file_len {
        return Err(Error::InvalidArgument {
            parameter: "offset",
            rule: format!("{offset} is not inside {path}, which is {file_len} bytes long"),
        });
    }
    let wanted_end = if options.length == 0 {
        file_len
    } else {
        offset
            .checked_add(options.length)
            .ok_or_else(|| Error::InvalidArgument {
                parameter: "length",
                rule: format!("offset {offset} + length {} overflows", options.length),
            })?
    };
    if wanted_end > file_len && !options.clamp_length {
        return Err(Error::InvalidArgument {
            parameter: "length",
            rule: format!(
                "offset {offset} + length {} runs past the end of {path}, which is {file_len} \
                 bytes long",
                options.length
            ),
        });
    }
    let start = offset / page * page;
    let end = wanted_end
        .checked_next_multiple_of(page)
        .unwrap_or(u64::MAX)
        .min(file_len);
    let length = end - start;
    if usize::try_from(length).is_err() {
        return Err(Error::InvalidArgument {
            parameter: "length",
            rule: format!("{length} bytes do not fit in the address space"),
        });
    }
    Ok((start, length))
}

impl Rvm {
    /// Map part of a plain (headerless) file or block device as a one-region [`Segment`]:
    /// the region's "segment offset" is the file offset, so transactions over it are logged,
    /// committed, truncated into the file and recovered after a crash exactly like a segment's.
    /// The log's segment table records the file's canonical path (authoritative: recovery opens
    /// the file by it) and its device, inode and length, which recovery checks.
    ///
    /// `options.offset` is rounded down to a page and the end of the range up to a page (then
    /// capped at the end of the file); [`Segment::regions`] gives the span mapped. Several
    /// ranges of one file may be mapped at once (each its own `Segment`, sharing the file's
    /// table entry); a range that overlaps a mapped range of the same file is
    /// [`Error::AlreadyMapped`].
    ///
    /// ```no_run
    /// use rvm::{BeginMode, CommitMode, FileMapMode, FileMapOptions, Options, Rvm};
    /// # fn main() -> rvm::Result<()> {
    /// let rvm = Rvm::open("/srv/rvm/log", Options::default())?;
    /// let options = FileMapOptions { mode: FileMapMode::Copy, ..FileMapOptions::default() };
    /// // SAFETY: the file is this program's own; nothing shortens it while it is mapped.
    /// let file = unsafe { rvm.map_file("/srv/rvm/table.dat", options) }?;
    /// let base = file.regions()[0].address;
    /// let mut tx = rvm.begin(BeginMode::Restore)?;
    /// tx.write(base + 16, &7u32)?; // file offset 16
    /// tx.end(CommitMode::Flush)?;
    /// rvm.unmap(&file)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Safety
    ///
    /// As for [`Rvm::map`] in [`FileMapMode::Private`]: the region is mapped from the file, so
    /// **nobody may shorten the file while it is mapped** by this instance (a touch past its
    /// new end raises SIGBUS). The other modes copy the file into anonymous memory and have no
    /// such hazard. Writing the file behind the library's back is not unsound, but truncation
    /// overwrites the bytes the log holds.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path when it cannot be opened or read (or is neither a regular
    /// file nor a block device); [`Error::InUse`]; [`Error::InvalidArgument`] naming `path`
    /// (longer than the log can record, or not UTF-8), `offset` (not inside the file), `length` (past the end
    /// without `clamp_length`) or `address` (not a non-zero multiple of the page size);
    /// [`Error::AlreadyMapped`]; [`Error::TooManySegments`]; [`Error::AddressInUse`].
    pub unsafe fn map_file(
        &self,
        path: impl AsRef<Path>,
        options: FileMapOptions,
    ) -> Result<Segment> {
        let path = path.as_ref();
        let given = path.display().to_string();
        let canonical = std::fs::canonicalize(path).map_err(|e| Error::io(&given, "open", e))?;
        let Some(name) = canonical.to_str().map(str::to_string) else {
            return Err(Error::InvalidArgument {
                parameter: "path",
                rule: format!(
                    "{} is not UTF-8, and the log records a plain file's path as UTF-8",
                    canonical.display()
                ),
            });
        };
        if name.len() > PATH_HINT_BYTES_MAX {
            return Err(Error::InvalidArgument {
                parameter: "path",
                rule: format!(
                    "{name} is longer than the {PATH_HINT_BYTES_MAX} bytes a log can record"
                ),
            });
        }
        let page = page_size();
        if let Some(a) = options.address {
            if a == 0 || a % page != 0 {
                return Err(Error::InvalidArgument {
                    parameter: "address",
                    rule: format!("{a:#x} is not a non-zero multiple of the page size {page}"),
                });
            }
        }
        // A device recovery (or an earlier mapping) holds, locked, is used again.
        let stat = std::fs::metadata(&canonical).map_err(|e| Error::io(&name, "stat", e))?;
        let identity = file_identity(&stat);
        let existing = self
            .inner
            .held_device(SegmentKind::PlainFile, identity.to_uuid());
        let (device, identity): (DeviceRef, FileIdentity) = match existing {
            Some(d) => (d, identity),
            None => {
                let dev = FileDevice::open(&canonical, Access::ReadWrite)
                    .map_err(|e| Error::io(&name, "open", e))?;
                // The open file is what counts (the path may have changed since the stat).
                let identity = dev.identity().map_err(|e| Error::io(&name, "stat", e))?;
                (Arc::new(dev), identity)
            }
        };
        let file_len = device.len().map_err(|e| Error::io(&name, "size", e))?;
        let (offset, length) = span(&name, file_len, &options, page as u64)?;
        let backing = match options.mode {
            FileMapMode::Private => Backing::File,
            FileMapMode::Copy => Backing::Copy,
            FileMapMode::Zeroed => Backing::Zero,
        };
        let plan = MapPlan {
            kind: SegmentKind::PlainFile,
            device,
            header: made_up_header(identity, file_len),
            path_hint: name,
            regions: vec![PlannedRegion {
                index: 0,
                offset,
                length: length as usize,
                address: options.address,
                backing,
            }],
            // A plain file's private mapping faults its pages in on first touch, as before;
            // a warm-up option for it is left for when a caller needs one.
            warm_up: false,
            huge_pages: options.huge_pages,
        };
        // SAFETY: `span` keeps the region inside the file as it is now; the file is not
        // shortened while mapped: this function's contract.
        unsafe { self.inner.map_planned(plan) }
    }
}

/// Open the plain file a log entry names, for recovery: by its recorded path, locked, and
/// only if it is still the same file (device and inode) with the same length.
pub(super) fn find_plain_file(
    log: &str,
    entry: &SegmentEntry,
) -> Result<(DeviceRef, SegmentHeader)> {
    let (dev, header) = open_plain_file(log, entry, Access::ReadWrite)?;
    Ok((Arc::new(dev), header))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(offset: u64, length: u64, clamp_length: bool) -> FileMapOptions {
        FileMapOptions {
            offset,
            length,
            clamp_length,
            ..FileMapOptions::default()
        }
    }

    #[test]
    fn span_rounds_to_pages_and_caps_at_the_end_of_the_file() {
        let page = 4096;
        assert_eq!(
            span("f", 10_000, &opts(0, 0, false), page).unwrap(),
            (0, 10_000)
        );
        assert_eq!(
            span("f", 10_000, &opts(5000, 0, false), page).unwrap(),
            (4096, 5904)
        );
        assert_eq!(
            span("f", 10_000, &opts(100, 200, false), page).unwrap(),
            (0, 4096)
        );
        assert_eq!(
            span("f", 1 << 20, &opts(4097, 4096, false), page).unwrap(),
            (4096, 8192)
        );
        assert_eq!(
            span("f", 10_000, &opts(8192, 1, false), page).unwrap(),
            (8192, 1808)
        );
    }

    #[test]
    fn span_outside_the_file_names_the_parameter() {
        let page = 4096;
        let e = span("/x/f", 10_000, &opts(10_000, 0, false), page).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    parameter: "offset",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("/x/f"), "{e}");
        let e = span("f", 0, &opts(0, 0, false), page).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    parameter: "offset",
                    ..
                }
            ),
            "{e}"
        );
        let e = span("f", 10_000, &opts(8192, 4096, false), page).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    parameter: "length",
                    ..
                }
            ),
            "{e}"
        );
        let e = span("f", 10_000, &opts(1, u64::MAX, false), page).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    parameter: "length",
                    ..
                }
            ),
            "{e}"
        );
        // The classic behaviour, asked for: capped at the end.
        assert_eq!(
            span("f", 10_000, &opts(8192, 4096, true), page).unwrap(),
            (8192, 1808)
        );
    }
}
