//! The modes (interactive, confirm, firm) and the order of work; the writes are in
//! [`crate::write`], the report in [`crate::report`].
//!
//! Order of work: parse → check LOG and DATA (read-only) → settle the parameters (dialogue,
//! or flags/values plus every rule) → confirm → write: create or re-initialize the log, zero a
//! block device, build the heap segment through the log beside DATA (`DATA.rdsinit-tmp`),
//! check it, rename it over DATA, and report. A failure before the writes changes nothing; a
//! failure during them removes the files rdsinit created and leaves an existing DATA file as
//! it was (a block device is written in place).

use std::io::{self, BufRead, IsTerminal, Write};

use rvm::format::segment::SEGMENT_HEADER_SIZE;
use serde_json::json;

use crate::cli::{Cli, Tool};
use crate::dialogue::{occupied_warning, Answer, Defaults, Dialogue, Stop};
use crate::files::{check_files, FileChecks, LogPlan};
use crate::number::hex_dec;
use crate::params::{
    self, check, largest_heap, occupied, round_to_multiple, Field, ParamError, Params,
    CHUNK_SIZE_DEFAULT, NLISTS_DEFAULT, START_ADDR_DEFAULT, STATIC_LEN_DEFAULT,
};
pub use crate::report::{Mode, Report};
use crate::write::execute;
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
    execute(cli, &files, &mut report, io.progress).map_err(Failure::Failed)?;
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
