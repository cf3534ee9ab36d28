//! Creating a store's files crash-atomically, and telling a complete store from an
//! interrupted creation.

use std::io;
use std::path::Path;

use crate::device::sync_parent_dir;
use crate::rds::{self, Error, Heap, HeapLayout, ADDRESS_END_MAX};
use crate::store::{
    Paths, StoreHeader, StoreOptions, STORE_HEADER_BYTES, STORE_MAGIC, STORE_VERSION,
};
use crate::tx::{BeginMode, CommitMode};
use crate::Rvm;

/// What a store's paths hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Neither file.
    Empty,
    /// `log.creating` without `log`: a creation was interrupted; its files are ours to remove.
    Interrupted,
    /// Both `log` and `data`.
    Complete,
}

fn exists(path: &Path) -> Result<bool, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(crate::Error::io(&path.display().to_string(), "stat", e).into()),
    }
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::Error::io(&path.display().to_string(), "remove", e).into()),
    }
}

/// Classify the paths; refuses the states no creation of ours leaves behind.
pub(crate) fn state(paths: &Paths) -> Result<State, Error> {
    let log = exists(&paths.log)?;
    let data = exists(&paths.data)?;
    match (log, data) {
        (true, true) => Ok(State::Complete),
        (false, _) if exists(&paths.creating())? => Ok(State::Interrupted),
        (false, false) => Ok(State::Empty),
        (true, false) => Err(Error::Store {
            path: paths.data.display().to_string(),
            reason: format!(
                "is missing but the log {} exists: refusing to guess; restore it or remove the log",
                paths.log.display()
            ),
        }),
        (false, true) => Err(Error::Store {
            path: paths.log.display().to_string(),
            reason: format!(
                "is missing but the data file {} exists: refusing to guess; restore the log or \
                 remove the data file",
                paths.data.display()
            ),
        }),
    }
}

/// Every check that can be made before a file is created: the layout's rules and whether
/// its addresses are free in this process.
pub(crate) fn check_layout(layout: &HeapLayout) -> Result<(), Error> {
    layout.validate()?;
    let end = layout.static_address() + layout.static_length;
    debug_assert!(end <= ADDRESS_END_MAX);
    if let Some(occupant) = crate::range_is_occupied(layout.start_address, end) {
        return Err(Error::BadLayout {
            parameter: "start_address",
            rule: format!(
                "{:#x}..{end:#x} is already mapped in this process ({occupant}); choose another \
                 address",
                layout.start_address
            ),
        });
    }
    Ok(())
}

/// Make sure a complete store exists at `paths`: nothing to do if it does, else create it
/// (after removing what an interrupted creation left). Returns whether it created the store.
///
/// `stop_after` (tests only) simulates a crash after that many creation steps: it returns
/// an error without cleaning up.
///
/// # Safety
/// As `Store::open_or_create`: nothing else shortens the store's files.
pub(crate) unsafe fn ensure(
    paths: &Paths,
    options: &StoreOptions,
    stop_after: Option<u32>,
) -> Result<bool, Error> {
    match state(paths)? {
        State::Complete => return Ok(false),
        State::Interrupted => {
            remove_if_exists(&paths.data)?;
            remove_if_exists(&paths.creating())?;
        }
        State::Empty => {}
    }
    let layout = &options.layout;
    check_layout(layout)?;
    if layout.static_length < STORE_HEADER_BYTES as u64 {
        return Err(Error::BadLayout {
            parameter: "static_length",
            rule: format!(
                "{} bytes cannot hold the store header ({STORE_HEADER_BYTES} bytes)",
                layout.static_length
            ),
        });
    }
    // SAFETY: our caller's contract.
    match unsafe { create(paths, options, stop_after) } {
        Ok(()) => Ok(true),
        Err(Step::Crashed) => Err(Error::Store {
            path: paths.log.display().to_string(),
            reason: "creation stopped on purpose (a simulated crash)".into(),
        }),
        Err(Step::Failed(e)) => {
            // A refusal leaves nothing behind. `data` did not exist before (checked above).
            let _ = std::fs::remove_file(&paths.data);
            let _ = std::fs::remove_file(paths.creating());
            let _ = sync_parent_dir(&paths.log);
            Err(e)
        }
    }
}

enum Step {
    Failed(Error),
    Crashed,
}

impl<E: Into<Error>> From<E> for Step {
    fn from(e: E) -> Step {
        Step::Failed(e.into())
    }
}

/// # Safety
/// As [`ensure`].
unsafe fn create(
    paths: &Paths,
    options: &StoreOptions,
    stop_after: Option<u32>,
) -> Result<(), Step> {
    let stop = |step: u32| -> Result<(), Step> {
        if stop_after == Some(step) {
            Err(Step::Crashed)
        } else {
            Ok(())
        }
    };
    let creating = paths.creating();
    let layout = &options.layout;
    // 1. The log, under its temporary name (created, synced, directory synced).
    Rvm::create_log(&creating, options.log_bytes)?;
    stop(1)?;
    let rvm = Rvm::open(&creating, options.rvm.clone())?;
    // 2. The heap segment: header, heap initialised by a flush commit, truncated into the
    //    file and synced.
    // SAFETY: the store's files, which our caller promised nothing else shortens.
    unsafe {
        rds::create_heap_segment_mapped(
            &rvm,
            &paths.data,
            layout.segment_length_min(),
            layout,
            Default::default(),
            options.heap_map(),
        )
    }?;
    stop(2)?;
    // 3. The store header, committed and truncated into the segment.
    // SAFETY: as above.
    let seg = unsafe { rvm.map(&paths.data, options.heap_map()) }?;
    let heap = Heap::load(&seg)?;
    let mut header: StoreHeader = bytemuck::Zeroable::zeroed();
    header.magic = STORE_MAGIC;
    header.version = STORE_VERSION;
    let mut tx = rvm.begin(BeginMode::Restore)?;
    tx.write(heap.static_address(), &header)?;
    tx.end(CommitMode::Flush)?;
    stop(3)?;
    drop(heap);
    rvm.truncate()?;
    rvm.close()?;
    stop(4)?;
    // 4. Publish: the rename makes the store complete; the directory sync makes it durable.
    std::fs::rename(&creating, &paths.log)
        .map_err(|e| crate::Error::io(&creating.display().to_string(), "rename", e))?;
    sync_parent_dir(&paths.log)
        .map_err(|e| crate::Error::io(&paths.log.display().to_string(), "sync directory", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rvm-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn options(address: u64) -> StoreOptions {
        StoreOptions::default()
            .start_address(address)
            .heap_bytes(1 << 20)
            .log_bytes(1 << 20)
    }

    /// A crash after each step of creation leaves either no store (open refuses, the next
    /// open_or_create starts again from nothing) or a complete one.
    #[test]
    fn interrupted_creation_at_each_step_leaves_no_store_or_a_complete_one() {
        for step in 1..=4 {
            let d = dir(&format!("step{step}"));
            let paths = Paths {
                log: d.join("log"),
                data: d.join("data"),
            };
            let opts = options(0x3100_0000_0000 + step as u64 * 0x1000_0000);
            // SAFETY: the test's own directory; nothing else shortens its files.
            assert!(unsafe { ensure(&paths, &opts, Some(step)) }.is_err());
            assert_eq!(state(&paths).unwrap(), State::Interrupted, "step {step}");
            assert!(
                // SAFETY: the test's own directory; nothing else shortens its files.
                unsafe { Store::open(&d, opts.clone()) }.is_err(),
                "step {step}: not a store yet"
            );
            // SAFETY: the test's own directory; nothing else shortens its files.
            let store = unsafe { Store::open_or_create(&d, opts.clone()) }.unwrap();
            assert!(store.created(), "step {step}");
            assert_eq!(store.root::<u64>().unwrap().get().unwrap(), 0);
            let mut tx = store.begin().unwrap();
            store
                .root::<u64>()
                .unwrap()
                .set(&mut tx, &step.into())
                .unwrap();
            tx.end(CommitMode::Flush).unwrap();
            store.close().unwrap();
            let mut names: Vec<String> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, ["data", "log"], "step {step}: leftovers removed");
            // SAFETY: the test's own directory; nothing else shortens its files.
            let store = unsafe { Store::open(&d, opts) }.unwrap();
            assert_eq!(store.root::<u64>().unwrap().get().unwrap(), u64::from(step));
            assert!(!store.heaps()[0].check().problems.iter().any(|_| true));
            drop(store);
            std::fs::remove_dir_all(&d).unwrap();
        }
    }
}
