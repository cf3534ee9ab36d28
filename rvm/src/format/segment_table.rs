//! The log's segment table entries: what an entry names ([`SegmentKind`]: an rvm segment or a
//! plain file), a plain file's identity ([`FileIdentity`]), and the entry itself. The status
//! slot (`format::log`) encodes them; FORMAT.md, "Segment table", has the byte layout and the
//! version rule.

use super::{get_u64, Uuid};

/// What a segment-table entry names (stored in the entry's formerly reserved word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum SegmentKind {
    /// An rvm-rs segment file (kind 0): identified by the UUID in its header; the path is only
    /// a hint. The only kind of a version-1 log.
    #[default]
    Segment,
    /// A headerless plain file or block device (kind 1), mapped with `Rvm::map_file`: the
    /// path is authoritative, and the entry's 16 identity bytes hold its device and inode
    /// ([`FileIdentity`]); its length is the file's length when it was mapped. Written only
    /// in a version-2 status ([`LOG_FORMAT_VERSION_PLAIN_FILES`](super::log::LOG_FORMAT_VERSION_PLAIN_FILES)).
    PlainFile,
}

impl SegmentKind {
    /// The kind's number on disk.
    pub fn code(self) -> u32 {
        match self {
            SegmentKind::Segment => 0,
            SegmentKind::PlainFile => 1,
        }
    }

    /// The kind a number on disk names, if any.
    pub fn from_code(code: u32) -> Option<SegmentKind> {
        match code {
            0 => Some(SegmentKind::Segment),
            1 => Some(SegmentKind::PlainFile),
            _ => None,
        }
    }

    /// A short name for tools (`segment`, `plain file`).
    pub fn name(self) -> &'static str {
        match self {
            SegmentKind::Segment => "segment",
            SegmentKind::PlainFile => "plain file",
        }
    }
}

/// The identity of a plain file, kept in the 16 identity bytes of its segment-table entry:
/// the file system's device number and the inode, little-endian, 8 bytes each. A block device
/// is identified by the device number it names (`st_rdev`) and inode 0, so a `/dev` rebuilt at
/// boot (new inodes) still matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// `st_dev` of a regular file, `st_rdev` of a block device.
    pub device: u64,
    /// `st_ino` of a regular file, 0 for a block device.
    pub inode: u64,
}

impl FileIdentity {
    /// The 16 bytes stored in the entry (in the place of a segment's UUID).
    pub fn to_uuid(self) -> Uuid {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.device.to_le_bytes());
        b[8..].copy_from_slice(&self.inode.to_le_bytes());
        Uuid(b)
    }

    /// Read the identity back from an entry's 16 bytes.
    pub fn from_uuid(uuid: &Uuid) -> FileIdentity {
        FileIdentity {
            device: get_u64(&uuid.0, 0),
            inode: get_u64(&uuid.0, 8),
        }
    }
}

impl std::fmt::Display for FileIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "device {}:{} inode {}",
            libc_major(self.device),
            libc_minor(self.device),
            self.inode
        )
    }
}

/// The major number of a Linux device number (glibc's `gnu_dev_major`, as pure arithmetic).
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff)
}

/// The minor number of a Linux device number (glibc's `gnu_dev_minor`).
fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// One entry of the log's segment table: ranges name a segment by its index here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    /// What the entry names: an rvm segment, or a plain file (see [`SegmentKind`]).
    pub kind: SegmentKind,
    /// A segment's UUID (from its header), or a plain file's [`FileIdentity`] bytes; nil for a
    /// free entry.
    pub uuid: Uuid,
    /// The segment's length in bytes, header included (from its header), or the plain file's
    /// length when it was mapped; 0 for a free entry.
    pub length_bytes: u64,
    /// Where the segment was when it was registered: only a hint for a segment (empty if
    /// unknown), the authoritative canonical path of a plain file.
    pub path_hint: String,
}

impl SegmentEntry {
    /// The plain file's device and inode, for a [`SegmentKind::PlainFile`] entry.
    pub fn file_identity(&self) -> Option<FileIdentity> {
        (self.kind == SegmentKind::PlainFile).then(|| FileIdentity::from_uuid(&self.uuid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_identity_round_trips_through_the_identity_bytes() {
        let id = FileIdentity {
            device: 0x0123_4567_89ab_cdef,
            inode: 0xfedc_ba98_7654_3210,
        };
        let bytes = id.to_uuid();
        assert_eq!(bytes.0[0], 0xef, "little-endian device first");
        assert_eq!(bytes.0[8], 0x10, "little-endian inode second");
        assert_eq!(FileIdentity::from_uuid(&bytes), id);
        let entry = SegmentEntry {
            kind: SegmentKind::PlainFile,
            uuid: bytes,
            length_bytes: 10_000,
            path_hint: "/srv/file".into(),
        };
        assert_eq!(entry.file_identity(), Some(id));
        let segment = SegmentEntry {
            kind: SegmentKind::Segment,
            ..entry
        };
        assert_eq!(segment.file_identity(), None);
    }

    #[test]
    fn kind_codes_round_trip_and_unknown_codes_are_none() {
        for kind in [SegmentKind::Segment, SegmentKind::PlainFile] {
            assert_eq!(SegmentKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(SegmentKind::Segment.code(), 0);
        assert_eq!(SegmentKind::PlainFile.code(), 1);
        assert_eq!(SegmentKind::from_code(2), None);
    }

    #[test]
    fn identity_shows_major_minor_and_inode() {
        // makedev(8, 1) on Linux is 0x801.
        let id = FileIdentity {
            device: 0x801,
            inode: 42,
        };
        assert_eq!(id.to_string(), "device 8:1 inode 42");
    }
}
