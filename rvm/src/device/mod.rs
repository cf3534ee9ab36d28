//! All log and segment I/O goes through [`Device`]: a file or block device for real use, a
//! memory image, and a crash-injecting device for tests.
//!
//! Architecture Invariant: the library never touches a file except through a `Device` (and,
//! for mapping, the file descriptor a [`FileDevice`] lends out for `mmap`).

mod crash;
mod file;
mod interface;
mod mem;
mod zeros;

pub use crash::{CrashController, CrashDevice, Tear, CRASH_SECTOR_SIZE};
pub use file::{file_identity, held_by_this_process, in_use_error, sync_parent_dir, FileDevice};
pub use interface::{Access, Device, DeviceRef};
pub use mem::MemDevice;
pub(crate) use zeros::write_zeros;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn crash_device_keeps_synced_and_tears_unsynced_by_sector() {
        let ctl = CrashController::new(7);
        let dev = CrashDevice::new("t", ctl.clone(), vec![0; 4096]);
        dev.write_at(&[1; 1024], 0).unwrap();
        dev.sync().unwrap();
        dev.write_at(&[2; 2048], 1024).unwrap();
        dev.restart();
        let img = dev.live();
        assert!(img[..1024].iter().all(|b| *b == 1), "synced data survives");
        for sector in img[1024..3072].chunks(512) {
            assert!(
                sector.iter().all(|b| *b == 2) || sector.iter().all(|b| *b == 0),
                "sector torn inside"
            );
        }
    }

    #[test]
    fn crash_point_fails_the_operation_and_everything_after() {
        let ctl = CrashController::new(1);
        let dev = CrashDevice::new("t", ctl.clone(), vec![0; 1024]);
        dev.set_tear(Tear::DropAll);
        ctl.crash_after(1);
        dev.write_at(&[1; 8], 0).unwrap();
        assert!(dev.sync().is_err());
        assert!(dev.write_at(&[1; 8], 8).is_err());
        assert!(ctl.has_crashed());
        dev.restart();
        assert_eq!(dev.live()[0], 0, "the unsynced write was dropped");
        dev.write_at(&[3; 8], 0).unwrap();
    }

    /// Coalesced writes (overlapping, adjacent, a page apart, past the end) give the same file
    /// as writing each piece in order, and leave the bytes between pieces unchanged.
    #[test]
    fn file_device_write_pieces_equals_writing_each_piece_in_order() {
        let dir = std::env::temp_dir().join(format!("rvm-pieces-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let _ = std::fs::remove_file(&p);
        let dev = FileDevice::create_new(&p).unwrap();
        let initial: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        dev.write_at(&initial, 0).unwrap();
        let mut model = initial.clone();
        let bytes: Vec<Vec<u8>> = (1..=9u8).map(|n| vec![n; 700]).collect();
        // Sorted by offset, except that overlapping pieces come oldest first.
        let pieces: Vec<(u64, &[u8])> = vec![
            (100, &bytes[0][..]),
            (50, &bytes[1][..300]),
            (350, &bytes[2][..10]),
            (360, &bytes[3][..20]),
            (2000, &bytes[4][..]),
            (9000, &bytes[5][..]),
            (39_900, &bytes[6][..]),
            (45_000, &bytes[7][..]),
        ];
        dev.write_pieces(&pieces).unwrap();
        for (at, b) in &pieces {
            let end = *at as usize + b.len();
            if model.len() < end {
                model.resize(end, 0);
            }
            model[*at as usize..end].copy_from_slice(b);
        }
        let mut got = vec![0u8; dev.len().unwrap() as usize];
        dev.read_at(&mut got, 0).unwrap();
        assert_eq!(got, model);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Starting the writeback as it goes (a truncation's writes) changes nothing written:
    /// over 6 MiB of pieces (the writeback starts after each 4 MiB and at the end), the file
    /// holds the same bytes as after `write_pieces`, which equal the pieces applied in order.
    #[test]
    fn write_pieces_with_writeback_writes_what_write_pieces_does() {
        let dir = std::env::temp_dir().join(format!("rvm-pieces-wb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let initial: Vec<u8> = (0..7_000_000u32).map(|i| (i % 241) as u8).collect();
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 7) as u8 + 1).collect();
        // Runs of pieces 48 bytes apart, and lone pieces far apart.
        let mut pieces: Vec<(u64, &[u8])> = (0..3000u64).map(|n| (n * 2048, &data[..])).collect();
        pieces.extend((0..20u64).map(|n| (6_200_000 + n * 30_000, &data[..100])));
        let mut model = initial.clone();
        for (at, b) in &pieces {
            model[*at as usize..*at as usize + b.len()].copy_from_slice(b);
        }
        for with_writeback in [false, true] {
            let p = dir.join(format!("f{with_writeback}"));
            let _ = std::fs::remove_file(&p);
            let dev = FileDevice::create_new(&p).unwrap();
            dev.write_at(&initial, 0).unwrap();
            if with_writeback {
                dev.write_pieces_with_writeback(&pieces).unwrap();
            } else {
                dev.write_pieces(&pieces).unwrap();
            }
            dev.sync().unwrap();
            let mut got = vec![0u8; dev.len().unwrap() as usize];
            dev.read_at(&mut got, 0).unwrap();
            assert!(got == model, "with writeback: {with_writeback}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The gather buffer is reused across the runs of one call without being cleared: a
    /// shorter run after a longer one, with and without gaps, and one past the end of the
    /// file, must carry none of the earlier run's bytes.
    #[test]
    fn write_pieces_reused_its_gather_buffer_without_stale_bytes() {
        let dir = std::env::temp_dir().join(format!("rvm-pieces-reuse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let _ = std::fs::remove_file(&p);
        let dev = FileDevice::create_new(&p).unwrap();
        let initial: Vec<u8> = (0..200_000u32).map(|i| (i % 239) as u8).collect();
        dev.write_at(&initial, 0).unwrap();
        let mut model = initial.clone();
        let (a, b, c) = (vec![0xaa; 3000], vec![0xbb; 100], vec![0xcc; 50]);
        let pieces: Vec<(u64, &[u8])> = vec![
            // A long run with a gap (read from the file).
            (0, &a[..]),
            (5000, &a[..]),
            // A shorter run without gaps (the pieces touch and overlap).
            (100_000, &b[..]),
            (100_100, &b[..]),
            (100_150, &c[..]),
            // A short run with a gap.
            (150_000, &c[..]),
            (150_500, &c[..]),
            // A run reaching past the end of the file (read short, zero-filled).
            (199_900, &b[..]),
            (200_300, &c[..]),
        ];
        dev.write_pieces(&pieces).unwrap();
        for (at, bytes) in &pieces {
            let end = *at as usize + bytes.len();
            if model.len() < end {
                model.resize(end, 0);
            }
            model[*at as usize..end].copy_from_slice(bytes);
        }
        let mut got = vec![0u8; dev.len().unwrap() as usize];
        dev.read_at(&mut got, 0).unwrap();
        assert_eq!(got, model);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_device_refuses_a_second_writer() {
        let dir = std::env::temp_dir().join(format!("rvm-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("locked");
        let _ = std::fs::remove_file(&p);
        drop(FileDevice::create_new(&p).unwrap());
        let a = FileDevice::open(&p, Access::ReadWrite).unwrap();
        let err = FileDevice::open(&p, Access::ReadWrite).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(held_by_this_process(&err), "{err}");
        FileDevice::open(&p, Access::ReadOnly).unwrap();
        drop(a);
        FileDevice::open(&p, Access::ReadWrite).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
