//! The writes: create or re-initialize the log, zero a block device, build the heap segment
//! beside DATA, check it, rename it over DATA. On failure, what rdsinit created is removed and
//! an existing DATA file is left as it was.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rvm::device::{Access, Device, FileDevice};
use rvm::segment::CreateOptions;
use rvm::{MapOptions, Options, Rvm};

use crate::cli::Cli;
use crate::files::{temporary_path, FileChecks, LogPlan};
use crate::heap;
use crate::report::Report;

/// What the writes have done so far, for the cleanup after a failure.
#[derive(Default)]
struct Written {
    /// Files rdsinit created (the log, the temporary data file): removed on failure.
    created: Vec<PathBuf>,
    /// The new data file has been renamed over DATA.
    data_replaced: bool,
}

/// The writes. On failure, the files rdsinit created are removed; an existing regular DATA file
/// is only ever replaced whole, by a rename, once the new segment is complete and checked.
pub(crate) fn execute(
    cli: &Cli,
    files: &FileChecks,
    report: &mut Report,
    progress: bool,
) -> anyhow::Result<()> {
    let mut written = Written::default();
    let result = write_all(cli, files, report, progress, &mut written);
    if let Err(e) = result {
        let mut removed = Vec::new();
        for path in written.created.iter().rev() {
            if std::fs::remove_file(path).is_ok() {
                removed.push(path.display().to_string());
            }
        }
        let mut e = e;
        if !removed.is_empty() {
            e = e.context(format!("removed {}", removed.join(" and ")));
        }
        let data = files.data.path.display();
        if written.data_replaced {
            e = e.context(format!("{data} now holds the new segment"));
        } else if files.data.block_device {
            e = e.context(format!(
                "the block device {data} may have been partly overwritten"
            ));
        } else if files.data.exists {
            e = e.context(format!("{data} is unchanged"));
        }
        return Err(e);
    }
    Ok(())
}

fn write_all(
    cli: &Cli,
    files: &FileChecks,
    report: &mut Report,
    progress: bool,
    written: &mut Written,
) -> anyhow::Result<()> {
    let log = files.log.path.as_path();
    let data = files.data.path.as_path();
    let p = report.params;
    match files.log.plan {
        LogPlan::Use => {}
        LogPlan::Create { area_bytes } => {
            Rvm::create_log(log, area_bytes)
                .with_context(|| format!("creating the log {}", log.display()))?;
            written.created.push(log.to_path_buf());
        }
        LogPlan::Reinit { area_bytes } => {
            let device = FileDevice::open(log, Access::ReadWrite)
                .with_context(|| format!("opening the log {}", log.display()))?;
            Rvm::init_log_on(&device, area_bytes)
                .with_context(|| format!("re-initializing the log {}", log.display()))?;
        }
    }
    if files.data.block_device {
        let device = FileDevice::open(data, Access::ReadWrite)
            .with_context(|| format!("opening {}", data.display()))?;
        zero_with_progress(progress, "zeroing", p.data_len, |from, to, progress| {
            rvm::segment::zero_fill(&device, from, to, progress).map_err(anyhow::Error::from)
        })?;
    }
    if files.data.unapplied_records > 0 {
        // --force: let recovery apply the old segment's records (so the log no longer needs
        // it), and release the segment before it is replaced.
        Rvm::open(
            log,
            Options::default()
                .segment_path(data)
                .background_recovery(false),
        )
        .and_then(Rvm::close)
        .with_context(|| format!("applying the log {} to {}", log.display(), data.display()))?;
    }
    // A regular file is built aside and renamed over DATA (and its symbolic link followed):
    // an interruption leaves the old DATA whole.
    let target = if files.data.exists && !files.data.block_device {
        std::fs::canonicalize(data).with_context(|| format!("resolving {}", data.display()))?
    } else {
        data.to_path_buf()
    };
    let build = if files.data.block_device {
        data.to_path_buf()
    } else {
        let build = temporary_path(&target);
        // Left by an interrupted run (the log's lock keeps two runs from sharing it).
        let _ = std::fs::remove_file(&build);
        written.created.push(build.clone());
        build
    };
    let rvm = Rvm::open(log, Options::default().background_recovery(false))
        .with_context(|| format!("opening the log {}", log.display()))?;
    let built = heap::build(
        &rvm,
        &build,
        &p,
        CreateOptions {
            overwrite: files.data.block_device,
            fallocate: cli.fallocate,
        },
    )
    .with_context(|| format!("building the heap segment on {}", build.display()))?;
    report.segment_uuid = Some(built.segment_uuid);
    match heap::inspect(&rvm, &build) {
        Ok(inspection) => {
            if !inspection.problems.is_empty() {
                anyhow::bail!(
                    "the new heap fails its check: {}",
                    inspection.problems.join("; ")
                );
            }
            report.heap = Some(inspection);
        }
        Err(e) => report
            .warnings
            .push(format!("could not load the new heap to check it: {e:#}")),
    }
    rvm.close()
        .with_context(|| format!("closing the log {}", log.display()))?;
    if cli.zero && !files.data.block_device {
        let device = FileDevice::open(&build, Access::ReadWrite)
            .with_context(|| format!("opening {}", build.display()))?;
        zero_with_progress(progress, "allocating", p.data_len, |from, to, progress| {
            write_through(&device, from, to, progress)
        })?;
    }
    if build != target {
        replace_data(&build, &target, files.data.exists, written)?;
        // The log recorded where the segment was built; mapping it at its real path records
        // that (and frees the table entry of the segment DATA held before).
        if let Err(e) = record_path(log, data) {
            report.warnings.push(format!(
                "the log {} still names {} as the segment's path (it is corrected the next \
                 time the segment is mapped): {e:#}",
                log.display(),
                build.display()
            ));
        }
    }
    report.data_disk_usage_bytes = std::fs::metadata(data).ok().map(|m| m.blocks() * 512);
    Ok(())
}

/// Rename the complete, synced new data file over DATA and sync the directory. The old DATA's
/// permissions are kept.
fn replace_data(
    build: &Path,
    target: &Path,
    existed: bool,
    written: &mut Written,
) -> anyhow::Result<()> {
    if existed {
        let permissions = std::fs::metadata(target)
            .with_context(|| format!("reading the permissions of {}", target.display()))?
            .permissions();
        std::fs::set_permissions(build, permissions)
            .with_context(|| format!("setting the permissions of {}", build.display()))?;
    }
    std::fs::rename(build, target)
        .with_context(|| format!("renaming {} to {}", build.display(), target.display()))?;
    written.created.retain(|p| p != build);
    written.data_replaced = true;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the directory {}", dir.display()))
}

/// Map the segment at `data` once so the log's segment table records that path.
fn record_path(log: &Path, data: &Path) -> anyhow::Result<()> {
    let rvm = Rvm::open(log, Options::default().background_recovery(false))?;
    // SAFETY: rdsinit has just renamed the checked DATA into place and the user runs it on a
    // segment no other program is using (the file checks refuse one an rvm process has open);
    // nothing is read through the mapping, which is released at once.
    let segment = unsafe { rvm.map(data, MapOptions::anywhere()) }?;
    rvm.unmap(&segment)?;
    rvm.close()?;
    Ok(())
}

/// Run a fill over `[0, len)` with a progress bar on a terminal.
fn zero_with_progress(
    progress: bool,
    what: &str,
    len: u64,
    fill: impl FnOnce(u64, u64, &mut dyn FnMut(u64)) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let bar = if progress {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("rdsinit: {what}"));
        bar
    } else {
        ProgressBar::hidden()
    };
    let result = fill(0, len, &mut |done| bar.set_position(done));
    bar.finish();
    result
}

/// Rewrite `[from, to)` with its own contents: a sparse file's holes become allocated zero
/// blocks while the bytes the heap wrote stay as they are (`--zero` on a regular file).
fn write_through(
    device: &dyn Device,
    from: u64,
    to: u64,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<()> {
    const STEP_BYTES: u64 = 1 << 20;
    let mut buffer = vec![0u8; STEP_BYTES as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(STEP_BYTES) as usize;
        device
            .read_at(&mut buffer[..n], at)
            .with_context(|| format!("{}: reading at {at}", device.name()))?;
        device
            .write_at(&buffer[..n], at)
            .with_context(|| format!("{}: writing at {at}", device.name()))?;
        at += n as u64;
        progress(at - from);
    }
    device
        .sync()
        .with_context(|| format!("{}: fsync", device.name()))
}
