//! The modes (interactive, confirm, firm), the writes, and the report.
//!
//! Order of work: parse → check LOG and DATA (read-only) → settle the parameters (dialogue,
//! or flags/values plus every rule) → confirm → write: create or re-initialize the log, zero a
//! block device, build the heap segment through the log beside DATA (`DATA.rdsinit-tmp`),
//! check it, rename it over DATA, and report. A failure before the writes changes nothing; a
//! failure during them removes the files rdsinit created and leaves an existing DATA file as
//! it was (a block device is written in place).

use std::io::{self, BufRead, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rvm::device::{Access, Device, FileDevice};
use rvm::format::segment::SEGMENT_HEADER_SIZE;
use rvm::segment::CreateOptions;
use rvm::{MapOptions, Options, Rvm};
use serde_json::json;

use crate::cli::{Cli, Tool};
use crate::dialogue::{occupied_warning, Answer, Defaults, Dialogue, Stop};
use crate::files::{check_files, temporary_path, FileChecks, LogPlan};
use crate::heap::{self, Inspection};
use crate::number::hex_dec;
use crate::params::{
    self, check, largest_heap, occupied, round_to_multiple, Field, ParamError, Params,
    CHUNK_SIZE_DEFAULT, NLISTS_DEFAULT, START_ADDR_DEFAULT, STATIC_LEN_DEFAULT,
};
use crate::{EXIT_FAILED, EXIT_INVALID, EXIT_OK, EXIT_QUIT, EXIT_USAGE};

/// The message of every quit: nothing was created or changed.
pub const QUIT_MESSAGE: &str = "rdsinit quit. No permanent change is made";

/// Why rdsinit stopped without initializing the segment.
#[derive(Debug)]
pub enum Failure {
    /// The user quit or declined, or the input ended.
    Quit(String),
    Usage(String),
    /// A check refused a parameter or a file; nothing was changed.
    Invalid(String),
    /// Writing failed.
    Failed(anyhow::Error),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Quit(_) => EXIT_QUIT,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Invalid(_) => EXIT_INVALID,
            Failure::Failed(_) => EXIT_FAILED,
        }
    }
    pub fn message(&self) -> String {
        match self {
            Failure::Quit(m) | Failure::Usage(m) | Failure::Invalid(m) => m.clone(),
            Failure::Failed(e) => format!("{e:#}"),
        }
    }
}

impl From<ParamError> for Failure {
    fn from(e: ParamError) -> Failure {
        Failure::Invalid(e.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Failed(anyhow::Error::new(e).context("terminal"))
    }
}

impl From<Stop> for Failure {
    fn from(s: Stop) -> Failure {
        match s {
            Stop::Quit => Failure::Quit(String::new()),
            Stop::EndOfInput => Failure::Quit(
                "The input ended before an answer (pass -f or --yes to run without questions)"
                    .into(),
            ),
            Stop::Io(e) => Failure::Failed(anyhow::Error::new(e).context("terminal")),
        }
    }
}

/// Where rdsinit reads and writes its text.
pub struct Io<'a> {
    /// Answers to the questions.
    pub input: &'a mut dyn BufRead,
    /// Questions, the summary and progress messages (standard output; standard error with
    /// `--json`, so standard output holds only the JSON).
    pub ui: &'a mut dyn Write,
    /// The result.
    pub out: &'a mut dyn Write,
    /// Warnings and errors.
    pub err: &'a mut dyn Write,
    /// Draw progress bars (standard error is a terminal).
    pub progress: bool,
}

/// How the parameters are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Asked one by one.
    Interactive,
    /// Given, shown, and confirmed by the user.
    Confirm,
    /// Given, no questions (`-f`, `--yes`).
    Firm,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Interactive => "interactive",
            Mode::Confirm => "confirm",
            Mode::Firm => "firm",
        }
    }
}

/// What rdsinit did (or, with `--dry-run`, would do).
#[derive(Debug, Clone)]
pub struct Report {
    pub dry_run: bool,
    pub mode: Mode,
    pub params: Params,
    pub log_path: PathBuf,
    pub log_size_bytes: u64,
    pub log_action: &'static str,
    pub data_path: PathBuf,
    pub data_block_device: bool,
    pub data_existed: bool,
    /// How the data blocks were provided: "sparse", "fallocate" or "zero".
    pub data_fill: &'static str,
    pub data_disk_usage_bytes: Option<u64>,
    pub segment_uuid: Option<String>,
    pub heap: Option<Inspection>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// Run rdsinit with the process's standard streams; returns the exit status.
pub fn main_with(cli: Cli) -> u8 {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut stdout = Tolerant::new(io::stdout());
    let mut stderr = Tolerant::new(io::stderr());
    let progress = io::stderr().is_terminal();
    if cli.generate_man {
        return write_man_or_fail(&mut stdout, &mut stderr);
    }
    if let Some(shell) = cli.generate_completions {
        crate::cli::write_completions(shell, &mut stdout);
        return EXIT_OK;
    }
    let json = cli.json;
    let result = if json {
        let mut ui = Tolerant::new(io::stderr());
        let mut io = Io {
            input: &mut input,
            ui: &mut ui,
            out: &mut stdout,
            err: &mut stderr,
            progress,
        };
        run(&cli, &mut io)
    } else {
        let mut ui = Tolerant::new(io::stdout());
        let mut io = Io {
            input: &mut input,
            ui: &mut ui,
            out: &mut stdout,
            err: &mut stderr,
            progress,
        };
        run(&cli, &mut io)
    };
    match result {
        Ok(report) => {
            if json {
                let _ = writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
                );
            } else {
                let _ = write!(stdout, "{}", report.to_text());
            }
            let _ = stdout.flush();
            EXIT_OK
        }
        Err(failure) => {
            let code = failure.exit_code();
            match &failure {
                Failure::Quit(reason) => {
                    let mut ui: Box<dyn Write> = if json {
                        Box::new(Tolerant::new(io::stderr()))
                    } else {
                        Box::new(Tolerant::new(io::stdout()))
                    };
                    if !reason.is_empty() {
                        let _ = writeln!(ui, "\n{reason}.");
                    } else {
                        let _ = writeln!(ui);
                    }
                    let _ = writeln!(ui, "{QUIT_MESSAGE}");
                    let _ = ui.flush();
                }
                Failure::Usage(m) => {
                    let _ = writeln!(stderr, "rdsinit: {m}\nTry 'rdsinit --help' for more.");
                }
                Failure::Invalid(m) => {
                    let _ = writeln!(stderr, "rdsinit: {m}\nNothing was changed.");
                }
                Failure::Failed(e) => {
                    let _ = writeln!(stderr, "rdsinit: error: {e:#}");
                }
            }
            if json {
                let _ = writeln!(stdout, "{}", json_error(code, &failure.message()));
            }
            code
        }
    }
}

/// Run `rdsinit man` or `rdsinit completions`; returns the exit status.
pub fn run_tool(tool: Tool) -> u8 {
    let mut stdout = Tolerant::new(io::stdout());
    let mut stderr = Tolerant::new(io::stderr());
    match tool {
        Tool::Man { dir: Some(dir) } => {
            let path = dir.join("rdsinit.1");
            let written =
                std::fs::File::create(&path).and_then(|mut file| crate::cli::write_man(&mut file));
            match written {
                Ok(()) => EXIT_OK,
                Err(e) => {
                    let _ = writeln!(stderr, "rdsinit: {}: {e}", path.display());
                    EXIT_FAILED
                }
            }
        }
        Tool::Man { dir: None } => write_man_or_fail(&mut stdout, &mut stderr),
        Tool::Completions { shell } => {
            crate::cli::write_completions(shell, &mut stdout);
            let _ = stdout.flush();
            EXIT_OK
        }
    }
}

fn write_man_or_fail(out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match crate::cli::write_man(out) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let _ = writeln!(err, "rdsinit: {e}");
            EXIT_FAILED
        }
    }
}

/// The JSON object `--json` prints on standard output when rdsinit fails with `exit_code`.
pub fn json_error(exit_code: u8, message: &str) -> serde_json::Value {
    json!({"ok": false, "exit_code": exit_code, "error": message})
}

/// Everything after argument parsing.
pub fn run(cli: &Cli, io: &mut Io) -> Result<Report, Failure> {
    let (Some(log), Some(data)) = (cli.log.as_deref(), cli.data.as_deref()) else {
        return Err(Failure::Usage("LOG and DATA are required".into()));
    };
    let (mode, given, mut notes) = settle_mode(cli)?;
    let files = check_files(log, data, cli.log_size, cli.force).map_err(Failure::Invalid)?;
    let mut warnings = files.warnings.clone();
    for w in &warnings {
        let _ = writeln!(io.err, "rdsinit: warning: {w}");
    }

    let params = match (mode, given) {
        (Mode::Interactive, _) => {
            introduce(io, &files)?;
            interactive(io, &files, Defaults::fresh())?
        }
        (_, Some(p)) => {
            check(&p)?;
            check_device_size(&files, &p)?;
            if mode == Mode::Confirm && !cli.dry_run {
                let mut dialogue = Dialogue::new(io.input, io.ui);
                dialogue.say(&summary(&files, &p))?;
                match dialogue.ask_yes_no("Do you agree with these parameters ? (y|n|q)")? {
                    Answer::Yes => p,
                    Answer::No => {
                        introduce(io, &files)?;
                        interactive(io, &files, Defaults::from_params(&p))?
                    }
                }
            } else {
                p
            }
        }
        (_, None) => return Err(Failure::Usage("no parameters".into())),
    };
    check(&params)?;
    check_device_size(&files, &params)?;
    if mode != Mode::Interactive {
        if let Some(occupant) = occupied(&params) {
            let w = occupied_warning(&params, &occupant);
            let _ = writeln!(io.err, "rdsinit: {w}");
            warnings.push(w);
        }
    }

    let mut report = Report {
        dry_run: cli.dry_run,
        mode,
        params,
        log_path: log.to_path_buf(),
        log_size_bytes: files.log.size_bytes,
        log_action: files.log.plan.name(),
        data_path: data.to_path_buf(),
        data_block_device: files.data.block_device,
        data_existed: files.data.exists,
        data_fill: if cli.zero || files.data.block_device {
            "zero"
        } else if cli.fallocate {
            "fallocate"
        } else {
            "sparse"
        },
        data_disk_usage_bytes: None,
        segment_uuid: None,
        heap: None,
        notes: Vec::new(),
        warnings,
    };
    report.notes.append(&mut notes);
    if cli.dry_run {
        return Ok(report);
    }
    execute(cli, &files, &mut report, io)?;
    Ok(report)
}

/// Decide the mode and, outside the interactive mode, the parameters from the command line.
fn settle_mode(cli: &Cli) -> Result<(Mode, Option<Params>, Vec<String>), Failure> {
    let positional = cli.positional().map_err(Failure::Usage)?;
    let flags = cli.flags();
    let any_flag = flags.iter().any(Option::is_some);
    let given_mode = if cli.yes { Mode::Firm } else { Mode::Confirm };
    let mut notes = Vec::new();
    let mut params = match (positional, any_flag) {
        (Some(_), true) => {
            return Err(Failure::Usage(
                "the classic values (DATALEN SADDR HLEN SLEN NLISTS CHUNK) and the flags \
                 --data-len ... --chunk-size cannot be mixed"
                    .into(),
            ))
        }
        (Some(p), false) => p,
        (None, false) => {
            if cli.round {
                return Err(Failure::Usage(
                    "--round applies to given values; the interactive dialogue proposes its own \
                     rounding"
                        .into(),
                ));
            }
            return Ok((Mode::Interactive, None, notes));
        }
        (None, true) => {
            let Some(data_len) = cli.data_len else {
                return Err(Failure::Usage(
                    "--data-len is required with the other parameter flags (they have \
                     defaults; the data length has none)"
                        .into(),
                ));
            };
            Params {
                data_len,
                start_addr: cli.start_addr.unwrap_or(START_ADDR_DEFAULT),
                heap_len: 0,
                static_len: cli.static_len.unwrap_or(STATIC_LEN_DEFAULT),
                nlists: cli.nlists.unwrap_or(NLISTS_DEFAULT),
                chunk_size: cli.chunk_size.unwrap_or(CHUNK_SIZE_DEFAULT),
            }
        }
    };
    if cli.round {
        for field in [
            Field::StartAddr,
            Field::HeapLen,
            Field::StaticLen,
            Field::ChunkSize,
        ] {
            if let Some((value, note)) = round_to_multiple(field, params.get(field)) {
                params.set(field, value);
                notes.extend(note);
            }
        }
    }
    if any_flag {
        params.heap_len = match cli.heap_len {
            Some(h) if cli.round => round_to_multiple(Field::HeapLen, h).map_or(h, |(v, n)| {
                notes.extend(n);
                v
            }),
            Some(h) => h,
            None => auto_fit(&params, cli.static_len.is_some())?,
        };
    }
    Ok((given_mode, Some(params), notes))
}

/// The heap length when `--heap-len` is not given: the largest that fits.
fn auto_fit(p: &Params, static_given: bool) -> Result<u64, Failure> {
    params::check_value(Field::DataLen, p.data_len)?;
    params::check_value(Field::StaticLen, p.static_len)?;
    largest_heap(p.data_len, p.static_len).ok_or_else(|| {
        let hint = if static_given {
            String::new()
        } else {
            format!(
                " (the default static length is {}; give a smaller --static-len)",
                hex_dec(STATIC_LEN_DEFAULT)
            )
        };
        Failure::Invalid(
            ParamError {
                field: Field::DataLen,
                message: format!(
                    "{} leaves no room for a heap of at least one page after the {}-byte \
                     header and a static region of {}{hint}",
                    hex_dec(p.data_len),
                    SEGMENT_HEADER_SIZE,
                    hex_dec(p.static_len)
                ),
            }
            .to_string(),
        )
    })
}

/// A block device must hold the whole segment.
fn check_device_size(files: &FileChecks, p: &Params) -> Result<(), Failure> {
    if files.data.block_device && files.data.size_bytes < p.data_len {
        return Err(ParamError {
            field: Field::DataLen,
            message: format!(
                "{} is longer than the block device {} ({})",
                hex_dec(p.data_len),
                files.data.path.display(),
                hex_dec(files.data.size_bytes)
            ),
        }
        .into());
    }
    Ok(())
}

fn introduce(io: &mut Io, files: &FileChecks) -> Result<(), Failure> {
    let mut d = Dialogue::new(io.input, io.ui);
    d.paragraph(
        "",
        &format!(
            "rdsinit builds an RDS heap segment on {} through the RVM log {}. The six \
             parameters are asked in turn, each with an explanation.",
            files.data.path.display(),
            files.log.path.display()
        ),
    )?;
    d.paragraph(
        "",
        "Numbers may be decimal, hexadecimal (0x...) or octal (leading 0), optionally followed \
         by a unit: K, M, G (also KiB, MiB, GiB, or KB, MB, GB: all 1024-based), S (512-byte \
         sectors) or P (4096-byte pages). An empty answer takes the value in brackets. Answer q at any prompt to \
         quit without changing anything.",
    )?;
    Ok(())
}

/// The dialogue, until the user agrees with the summary.
fn interactive(io: &mut Io, files: &FileChecks, mut defaults: Defaults) -> Result<Params, Failure> {
    loop {
        let mut d = Dialogue::new(io.input, io.ui);
        let p = d.ask_parameters(&defaults)?;
        let refused = check(&p)
            .err()
            .map(|e| e.to_string())
            .or_else(|| check_device_size(files, &p).err().map(|e| e.message()));
        if let Some(message) = refused {
            d.say("\n")?;
            d.paragraph(
                "",
                &format!("Sorry: {message}. Please enter the values again."),
            )?;
            defaults = Defaults::from_params(&p);
            continue;
        }
        d.say("\n")?;
        d.say(&summary(files, &p))?;
        match d.ask_yes_no("Do you agree with these parameters ? (y|n|q)")? {
            Answer::Yes => return Ok(p),
            Answer::No => {
                d.say("Then enter them again (the values you chose are in brackets).\n")?;
                defaults = Defaults::from_params(&p);
            }
        }
    }
}

/// "The following parameters are chosen:" and what happens to each file.
fn summary(files: &FileChecks, p: &Params) -> String {
    let log = match files.log.plan {
        LogPlan::Use => format!("exists, {} bytes; used as it is", files.log.size_bytes),
        LogPlan::Create { .. } => format!("will be created, {} bytes", files.log.size_bytes),
        LogPlan::Reinit { .. } => format!(
            "exists; will be re-initialized, {} bytes",
            files.log.size_bytes
        ),
    };
    let data = if files.data.block_device {
        format!(
            "block device of {} bytes; will be zeroed and overwritten",
            files.data.size_bytes
        )
    } else if files.data.exists {
        "exists; will be overwritten".to_string()
    } else {
        "will be created, sparse".to_string()
    };
    format!(
        "The following parameters are chosen:\n{}   log:  {} ({log})\n   data: {} ({data})\n",
        p.summary(),
        files.log.path.display(),
        files.data.path.display()
    )
}

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
fn execute(cli: &Cli, files: &FileChecks, report: &mut Report, io: &mut Io) -> Result<(), Failure> {
    let mut written = Written::default();
    let result = write_all(cli, files, report, io, &mut written);
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
        return Err(Failure::Failed(e));
    }
    Ok(())
}

fn write_all(
    cli: &Cli,
    files: &FileChecks,
    report: &mut Report,
    io: &mut Io,
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
        zero_with_progress(io, "zeroing", p.data_len, |from, to, progress| {
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
        zero_with_progress(io, "allocating", p.data_len, |from, to, progress| {
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
    io: &mut Io,
    what: &str,
    len: u64,
    fill: impl FnOnce(u64, u64, &mut dyn FnMut(u64)) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let bar = if io.progress {
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

/// One row of the layout: a part of the segment file and, for a region, where it is mapped.
struct RegionRow {
    name: &'static str,
    offset: u64,
    length: u64,
    addresses: Option<(u64, u64)>,
}

impl Report {
    /// The rows of the layout table.
    fn regions(&self) -> Vec<RegionRow> {
        let p = &self.params;
        let mut rows = vec![
            RegionRow {
                name: "header",
                offset: 0,
                length: SEGMENT_HEADER_SIZE,
                addresses: None,
            },
            RegionRow {
                name: "heap",
                offset: p.heap_offset(),
                length: p.heap_len,
                addresses: Some((p.start_addr, p.static_addr())),
            },
            RegionRow {
                name: "static",
                offset: p.static_offset(),
                length: p.static_len,
                addresses: Some((p.static_addr(), p.end_addr())),
            },
        ];
        if p.unused_len() > 0 {
            rows.push(RegionRow {
                name: "unused",
                offset: p.used_len(),
                length: p.unused_len(),
                addresses: None,
            });
        }
        rows
    }

    pub fn to_text(&self) -> String {
        let p = &self.params;
        let mut s = String::new();
        if self.dry_run {
            s.push_str(
                "rdsinit: dry run: the layout below is valid; nothing was created or changed.\n",
            );
        } else {
            s.push_str(&format!(
                "rdsinit: {} initialized with an RDS heap (log {}).\n",
                self.data_path.display(),
                self.log_path.display()
            ));
        }
        for note in &self.notes {
            s.push_str(&format!("note: {note}\n"));
        }
        s.push_str(&format!(
            "Segment {}: {} bytes{}\n",
            self.data_path.display(),
            hex_dec(p.data_len),
            self.segment_uuid
                .as_ref()
                .map(|u| format!(", uuid {u}"))
                .unwrap_or_default()
        ));
        s.push_str("  region  offset        length                      address\n");
        for row in self.regions() {
            let range = row
                .addresses
                .map(|(a, b)| format!("{a:#x}..{b:#x}"))
                .unwrap_or_else(|| "-".into());
            s.push_str(&format!(
                "  {:<7} {:<13} {:<27} {range}\n",
                row.name,
                format!("{:#x}", row.offset),
                hex_dec(row.length)
            ));
        }
        s.push_str(&format!(
            "Heap: nlists {}, chunk size {}\n",
            p.nlists, p.chunk_size
        ));
        s.push_str(&format!(
            "Log: {}, {} bytes ({})\n",
            self.log_path.display(),
            self.log_size_bytes,
            if self.dry_run {
                match self.log_action {
                    "created" => "would be created",
                    "reinitialized" => "would be re-initialized",
                    _ => "used",
                }
            } else {
                self.log_action
            }
        ));
        if let Some(usage) = self.data_disk_usage_bytes {
            s.push_str(&format!(
                "Data file: {} bytes on disk ({})\n",
                usage, self.data_fill
            ));
        }
        if let Some(heap) = &self.heap {
            s.push_str("Heap check: ok\n");
            if !heap.statistics.is_empty() {
                s.push_str("Heap statistics:\n");
                for (name, value) in &heap.statistics {
                    s.push_str(&format!("  {name:<24} {value}\n"));
                }
            }
        }
        s
    }

    /// The log's action for JSON: a dry run says what it would do, never "created".
    fn json_log_action(&self) -> &'static str {
        match (self.dry_run, self.log_action) {
            (false, action) => action,
            (true, "created") => "would_create",
            (true, "reinitialized") => "would_reinitialize",
            (true, _) => "would_use",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let p = &self.params;
        let mut parameters = serde_json::Map::new();
        for field in Field::ALL {
            parameters.insert(field.key().into(), json!(p.get(field)));
        }
        let regions: Vec<serde_json::Value> = self
            .regions()
            .into_iter()
            .map(|row| {
                let mut r = json!({"name": row.name, "offset": row.offset, "length": row.length});
                if let Some((a, b)) = row.addresses {
                    r["address"] = json!(a);
                    r["end_address"] = json!(b);
                }
                r
            })
            .collect();
        let heap = self.heap.as_ref().map(|h| {
            let stats: serde_json::Map<String, serde_json::Value> = h
                .statistics
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({"check": "ok", "statistics": stats})
        });
        json!({
            "ok": true,
            "dry_run": self.dry_run,
            "mode": self.mode.name(),
            "parameters": parameters,
            "regions": regions,
            "log": {
                "path": self.log_path.display().to_string(),
                "size_bytes": self.log_size_bytes,
                "action": self.json_log_action(),
            },
            "data": {
                "path": self.data_path.display().to_string(),
                "length_bytes": p.data_len,
                "block_device": self.data_block_device,
                "existed": self.data_existed,
                "fill": self.data_fill,
                "disk_usage_bytes": self.data_disk_usage_bytes,
            },
            "segment_uuid": self.segment_uuid,
            "heap": heap,
            "notes": self.notes,
            "warnings": self.warnings,
        })
    }
}

/// A writer for which a closed pipe is not an error: output stops, the work goes on.
pub struct Tolerant<W: Write> {
    inner: W,
    closed: bool,
}

impl<W: Write> Tolerant<W> {
    pub fn new(inner: W) -> Tolerant<W> {
        Tolerant {
            inner,
            closed: false,
        }
    }
}

impl<W: Write> Write for Tolerant<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}
