//! Transactions on the crash device, compared with a model.
//!
//! The fuzzer chooses a crash point (the n-th write or sync on the log and segment devices),
//! how unsynced sectors survive it, and a sequence of operations: begin (restore or
//! no_restore), writes, end(flush), end(no_flush), abort, flush and truncate. While running,
//! mapped memory must equal the model's (abort in restore mode puts old values back). After the
//! crash the devices restart, the log is recovered, and the segment must equal the model after
//! some prefix of the commits, in commit order, that includes every commit known to be durable
//! (ended with flush, or followed by a successful flush or truncate): so no aborted or
//! uncommitted write is present, every flush commit is, and no_flush commits form a prefix.

use std::sync::Arc;

use rvm::device::{CrashController, CrashDevice, Tear};
use rvm::{BeginMode, CommitMode, Error, MapOptions, MappedRegion, Options, Rvm};

use crate::fixture::{assert_outside_regions_unchanged, segment_image, AREA_BYTES};
use crate::input::Input;

const OPERATIONS_MAX: usize = 256;
/// Device operations (writes and syncs) before the crash are chosen below this.
const CRASH_POINT_MAX: u64 = 1024;

/// One committed transaction: (segment offset, new bytes) per write, in order.
type Commit = Vec<(usize, Vec<u8>)>;

struct Active<'a> {
    tx: rvm::Transaction<'a>,
    mode: BeginMode,
    writes: Commit,
    /// Restore mode: the model's old bytes per write, to undo in reverse order.
    undo: Vec<(usize, Vec<u8>)>,
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let first = input.u8();
    // The first byte's top bit turns off the coalescing of queued commits into one record.
    let coalesce = first < 0x80;
    let tear = match first % 3 {
        0 => Tear::DropAll,
        1 => Tear::KeepAll,
        _ => Tear::RandomSectors,
    };
    let crash_point = input.u16() as u64 % CRASH_POINT_MAX;
    let controller = CrashController::new(input.u64());
    let image = segment_image();
    let log = Arc::new(CrashDevice::new("log", controller.clone(), Vec::new()));
    let segment = Arc::new(CrashDevice::new(
        "segment",
        controller.clone(),
        image.clone(),
    ));
    log.set_tear(tear);
    segment.set_tear(tear);
    Rvm::init_log_on(&*log, AREA_BYTES).expect("init log");
    let options = || {
        Options::default()
            .truncate_threshold(0)
            .background_recovery(false)
            .segment_device(segment.clone())
            .coalesce_transactions(coalesce)
    };

    let mut live = image.clone();
    let mut commits: Vec<Commit> = Vec::new();
    let mut known_durable = 0usize;
    let mut maybe_committed = 0usize;
    {
        let rvm = Rvm::open_device(log.clone(), options()).expect("open a new log");
        // SAFETY: memory and crash devices lend no descriptor: the segment is read into anonymous
        // memory, which nothing can shorten.
        let mapped = unsafe { rvm.map_device(segment.clone(), MapOptions::anywhere()) }
            .expect("map the segment");
        let regions = mapped.regions().to_vec();
        controller.crash_after(crash_point);
        let mut active: Option<Active<'_>> = None;
        let mut next_value = 1u8;
        for _ in 0..OPERATIONS_MAX {
            if input.is_empty() {
                break;
            }
            let op = input.u8();
            let stop = match op % 8 {
                0 | 1 if active.is_none() => {
                    let mode = if op.is_multiple_of(8) {
                        BeginMode::Restore
                    } else {
                        BeginMode::NoRestore
                    };
                    match rvm.begin(mode) {
                        Ok(tx) => {
                            active = Some(Active {
                                tx,
                                mode,
                                writes: Vec::new(),
                                undo: Vec::new(),
                            });
                            false
                        }
                        Err(_) => true,
                    }
                }
                2 => {
                    if let Some(a) = active.as_mut() {
                        let r = regions[(input.u8() % 2) as usize];
                        let offset = input.u16() as usize % r.length;
                        let scale = if op & 0x80 != 0 { 64 } else { 1 };
                        let length =
                            ((input.u8() as usize % 64 + 1) * scale).min(r.length - offset);
                        let value = next_value;
                        next_value = next_value.wrapping_add(1).max(1);
                        let bytes: Vec<u8> =
                            (0..length).map(|i| value ^ (i as u8 & 0x0f)).collect();
                        let at = r.segment_offset as usize + offset;
                        a.tx.modify_bytes(r.address + offset, &bytes)
                            .expect("modify_bytes inside a mapped region");
                        if a.mode == BeginMode::Restore {
                            a.undo.push((at, live[at..at + length].to_vec()));
                        }
                        live[at..at + length].copy_from_slice(&bytes);
                        a.writes.push((at, bytes));
                    }
                    false
                }
                3 | 4 => match active.take() {
                    Some(a) => {
                        let mode = if op % 8 == 3 {
                            CommitMode::Flush
                        } else {
                            CommitMode::NoFlush
                        };
                        match a.tx.end(mode) {
                            Ok(()) => {
                                commits.push(a.writes);
                                maybe_committed = commits.len();
                                if mode == CommitMode::Flush {
                                    known_durable = commits.len();
                                }
                                false
                            }
                            Err(Error::TooBig { .. }) => {
                                // Refused before anything was queued: aborted.
                                undo(&mut live, a.undo);
                                false
                            }
                            Err(_) => {
                                // The crash: this commit may or may not have reached the log.
                                commits.push(a.writes);
                                maybe_committed = commits.len();
                                true
                            }
                        }
                    }
                    None => false,
                },
                5 => {
                    if let Some(a) = active.take() {
                        a.tx.abort().expect("abort");
                        undo(&mut live, a.undo);
                    }
                    false
                }
                6 => match rvm.flush() {
                    Ok(()) => {
                        known_durable = commits.len();
                        false
                    }
                    Err(_) => true,
                },
                7 => match rvm.truncate() {
                    Ok(()) => {
                        known_durable = commits.len();
                        false
                    }
                    Err(_) => true,
                },
                _ => false,
            };
            if stop {
                break;
            }
            assert_memory_matches(&mapped, &regions, &live, "while running");
        }
        // Crash now if the crash point was not reached: nothing more reaches the devices.
        controller.crash_now();
        drop(active);
        drop(mapped);
        drop(rvm);
    }

    log.restart();
    segment.restart();
    let rvm = match Rvm::open_device(log.clone(), options()) {
        Ok(rvm) => rvm,
        Err(e) => panic!("recovery after a crash failed: {e}"),
    };
    // SAFETY: memory and crash devices lend no descriptor: the segment is read into anonymous
    // memory, which nothing can shorten.
    let mapped = unsafe { rvm.map_device(segment.clone(), MapOptions::anywhere()) }
        .expect("map after recovery");
    let regions = mapped.regions().to_vec();
    let recovered = read_regions(&mapped, &regions, image.len());
    let mut state = image.clone();
    for c in &commits[..known_durable] {
        apply(&mut state, c);
    }
    let mut matched = same_regions(&state, &recovered, &regions);
    for c in &commits[known_durable..maybe_committed] {
        if matched {
            break;
        }
        apply(&mut state, c);
        matched = same_regions(&state, &recovered, &regions);
    }
    assert!(
        matched,
        "recovered segment is not the model after any prefix of commits \
         {known_durable}..={maybe_committed} of {}",
        commits.len()
    );
    drop(mapped);
    drop(rvm);
    assert_outside_regions_unchanged(&image, &segment.live());
}

fn undo(live: &mut [u8], undo: Vec<(usize, Vec<u8>)>) {
    for (at, old) in undo.into_iter().rev() {
        live[at..at + old.len()].copy_from_slice(&old);
    }
}

fn apply(state: &mut [u8], commit: &Commit) {
    for (at, bytes) in commit {
        state[*at..*at + bytes.len()].copy_from_slice(bytes);
    }
}

/// The regions' memory, placed at their segment offsets in an image of `len` bytes.
fn read_regions(mapped: &rvm::Segment, regions: &[MappedRegion], len: usize) -> Vec<u8> {
    let mut image = vec![0u8; len];
    for r in regions {
        let at = r.segment_offset as usize;
        mapped
            .read_bytes(r.address, &mut image[at..at + r.length])
            .expect("read a mapped region");
    }
    image
}

fn same_regions(a: &[u8], b: &[u8], regions: &[MappedRegion]) -> bool {
    regions.iter().all(|r| {
        let s = r.segment_offset as usize;
        a[s..s + r.length] == b[s..s + r.length]
    })
}

fn assert_memory_matches(mapped: &rvm::Segment, regions: &[MappedRegion], live: &[u8], when: &str) {
    let memory = read_regions(mapped, regions, live.len());
    assert!(
        same_regions(&memory, live, regions),
        "mapped memory differs from the model {when}"
    );
}
