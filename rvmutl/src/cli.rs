//! Front ends: the interactive prompt, piped scripts, and the one-shot subcommands, parsed
//! with the clap command of [`crate::clap_def`].
//!
//! Exit codes: 0 success, 1 `check` found problems, 2 usage or I/O error. A broken pipe
//! (`rvmutl records LOG | head`) ends quietly with 0.

use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::clap_def::clap_command;
use crate::parse::{parse_command_line, Command, Line, RedirectKind, ShowItem};
use crate::session::{Input, NoInput, Outcome, Session};
use crate::table::{self, CommandId};
use anyhow::{anyhow, Result};

pub const EXIT_OK: u8 = 0;
pub const EXIT_PROBLEMS: u8 = 1;
pub const EXIT_ERROR: u8 = 2;
/// `< FILE` may nest this deep.
const SOURCE_DEPTH_MAX: usize = 16;

/// Whether an error chain holds a broken pipe (a closed reader is not an error).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// An error and its causes on one line, without repeating a cause its parent already quotes.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

/// The whole program: `args` as from `std::env::args_os()`.
pub fn run(args: Vec<OsString>) -> ExitCode {
    let first = args.get(1).map(|a| a.to_string_lossy().into_owned());
    let to_clap = match &first {
        None => false,
        Some(f) => {
            f.starts_with('-')
                || table::one_shot(f).is_some()
                || ["man", "completions", "help"].contains(&f.as_str())
        }
    };
    if !to_clap {
        if args.len() > 2 {
            let _ = writeln!(
                io::stderr(),
                "rvmutl: error: unexpected arguments after the log name (usage: rvmutl [LOG] or rvmutl COMMAND ...; see rvmutl --help)"
            );
            return ExitCode::from(EXIT_ERROR);
        }
        return ExitCode::from(run_session(first.map(PathBuf::from)));
    }
    let json = args.iter().any(|a| a == "--json");
    let matches = match clap_command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) if json && e.use_stderr() => {
            // A usage error under --json: a JSON error object, so a script reading standard
            // output still gets JSON.
            let text = e.render().to_string();
            // The error itself: the lines before the usage, on one line.
            let message = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
                .trim_start_matches("error: ")
                .to_string();
            let v = serde_json::json!({
                "error": {"kind": "usage", "message": message, "detail": text.trim_end()},
                "exit_code": EXIT_ERROR,
            });
            let _ = writeln!(io::stdout(), "{v:#}");
            return ExitCode::from(EXIT_ERROR);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = run_one_shot(&matches, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) if json => {
            let v = serde_json::json!({
                "error": {"kind": "failed", "message": error_text(&e)},
                "exit_code": EXIT_ERROR,
            });
            let _ = writeln!(out, "{v:#}");
            let _ = out.flush();
            ExitCode::from(EXIT_ERROR)
        }
        Err(e) => {
            let _ = out.flush();
            let _ = writeln!(io::stderr(), "rvmutl: error: {}", error_text(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run_one_shot(m: &clap::ArgMatches, out: &mut dyn Write) -> Result<u8> {
    let Some((name, sub)) = m.subcommand() else {
        return Err(anyhow!("no subcommand"));
    };
    let string = |id: &str| sub.try_get_one::<String>(id).ok().flatten().cloned();
    let flag = |id: &str| {
        sub.try_get_one::<bool>(id)
            .ok()
            .flatten()
            .copied()
            .unwrap_or(false)
    };
    let json = sub
        .try_get_one::<bool>("json")
        .ok()
        .flatten()
        .copied()
        .unwrap_or(false);
    match name {
        "man" => {
            crate::manual::man(string("DIR").as_deref(), out)?;
            return Ok(EXIT_OK);
        }
        "help" => {
            crate::manual::help(string("COMMAND").as_deref(), out)?;
            return Ok(EXIT_OK);
        }
        "completions" => {
            let shell = *sub
                .get_one::<clap_complete::Shell>("SHELL")
                .ok_or_else(|| anyhow!("which shell?"))?;
            clap_complete::generate(shell, &mut clap_command(), "rvmutl", out);
            return Ok(EXIT_OK);
        }
        _ => {}
    }
    let spec = table::one_shot(name).ok_or_else(|| anyhow!("{name}: unknown subcommand"))?;
    let mut session = Session::new();
    session.json = json;
    let log = string("LOG").map(PathBuf::from);
    let command = match spec.id {
        CommandId::Status => {
            let path = log.clone().unwrap_or_default();
            if let Err(e) = session.open(&path, false) {
                // Both slots damaged: show what they hold before failing.
                if path.exists() {
                    let _ = crate::inspect::describe_damaged_log(&path, out);
                }
                return Err(e);
            }
            Command::Status
        }
        CommandId::Show => {
            session.open(log.as_deref().unwrap_or(Path::new("")), false)?;
            Command::Show(vec![ShowItem::All])
        }
        CommandId::Recover => {
            session.open(log.as_deref().unwrap_or(Path::new("")), false)?;
            if let Some(segs) = sub.get_many::<String>("segment") {
                for s in segs {
                    session.add_segment_file(PathBuf::from(s));
                }
            }
            Command::Recover {
                update: Some(!flag("dry-run")),
                prefix: flag("prefix"),
                path: None,
            }
        }
        CommandId::Check => {
            let log = log.unwrap_or_default();
            let data = string("DATA").map(PathBuf::from);
            let report = crate::check::check(&log, data.as_deref())?;
            report.print(out, json)?;
            return Ok(if report.problems.is_empty() {
                EXIT_OK
            } else {
                EXIT_PROBLEMS
            });
        }
        CommandId::Segment => Command::Segment {
            path: string("DATA"),
        },
        CommandId::Heap => Command::Heap {
            path: string("DATA"),
        },
        CommandId::InitLog => {
            session.force = flag("force");
            let size = string("SIZE").unwrap_or_default();
            let size = crate::parse::parse_size(&size).map_err(|e| anyhow!("SIZE: {e}"))?;
            Command::InitLog {
                path: log.map(|p| p.display().to_string()),
                size: Some(size),
            }
        }
        other => return Err(anyhow!("{other:?} has no one-shot form")),
    };
    Ok(match session.execute(&command, out, &mut NoInput)? {
        Outcome::Problems => EXIT_PROBLEMS,
        _ => EXIT_OK,
    })
}

/// Where session lines come from.
trait LineSource: Input {
    fn is_interactive(&self) -> bool;
    fn remember(&mut self, _line: &str) {}
}

/// A terminal: rustyline editing and history.
struct Terminal {
    editor: rustyline::DefaultEditor,
}

impl Input for Terminal {
    fn read_line(&mut self, prompt: &str) -> Option<String> {
        loop {
            match self.editor.readline(prompt) {
                Ok(l) => return Some(l),
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl LineSource for Terminal {
    fn is_interactive(&self) -> bool {
        true
    }
    fn remember(&mut self, line: &str) {
        let _ = self.editor.add_history_entry(line);
    }
}

/// A pipe or file on standard input: no prompt; questions are echoed with their answers so
/// a transcript reads well.
struct Piped<R: BufRead> {
    reader: R,
}

impl<R: BufRead> Input for Piped<R> {
    fn read_line(&mut self, prompt: &str) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let line = line.trim_end_matches(['\n', '\r']).to_string();
                if prompt != "* " {
                    let mut o = io::stdout();
                    let _ = writeln!(o, "{prompt}{line}");
                }
                Some(line)
            }
        }
    }
}

impl<R: BufRead> LineSource for Piped<R> {
    fn is_interactive(&self) -> bool {
        false
    }
}

/// Session-wide state of the line loop.
struct Loop {
    session: Session,
    last_sticky: Option<Command>,
    worst: u8,
    quit: bool,
}

fn run_session(log: Option<PathBuf>) -> u8 {
    let stdin = io::stdin();
    let mut source: Box<dyn LineSource> = if stdin.is_terminal() {
        match rustyline::DefaultEditor::new() {
            Ok(editor) => Box::new(Terminal { editor }),
            Err(_) => Box::new(Piped {
                reader: stdin.lock(),
            }),
        }
    } else {
        Box::new(Piped {
            reader: stdin.lock(),
        })
    };
    let interactive = source.is_interactive();
    let mut state = Loop {
        session: Session::new(),
        last_sticky: None,
        worst: EXIT_OK,
        quit: false,
    };
    if let Some(log) = log {
        let command = Command::OpenLog {
            path: Some(log.display().to_string()),
            no_tail: false,
            update: None,
        };
        if run_command(&mut state, &command, None, &mut *source).is_err() {
            return EXIT_OK;
        }
        // A file that is not a readable log can still be examined with peek.
        state.session.default_peek_file(&log);
    }
    while !state.quit {
        let Some(line) = source.read_line("* ") else {
            break;
        };
        if interactive && !line.trim().is_empty() {
            source.remember(&line);
        }
        if handle_line(&mut state, &line, &mut *source, 0).is_err() {
            // Standard output is gone (broken pipe): stop quietly.
            return EXIT_OK;
        }
    }
    let _ = io::stdout().flush();
    if interactive {
        EXIT_OK
    } else {
        state.worst
    }
}

/// Handle one line. `Err` only when standard output is gone.
fn handle_line(
    state: &mut Loop,
    line: &str,
    source: &mut dyn LineSource,
    depth: usize,
) -> io::Result<()> {
    match parse_command_line(line) {
        Ok(Line::Empty) => {
            if let Some(c) = state.last_sticky.clone() {
                run_command(state, &c, None, source)?;
            }
        }
        Ok(Line::Comment) => {}
        Ok(Line::Source(file)) => {
            if depth >= SOURCE_DEPTH_MAX {
                report_error(state, &anyhow!("< {file}: nested too deeply"), None)?;
                return Ok(());
            }
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    for l in text.lines() {
                        if state.quit {
                            break;
                        }
                        handle_line(state, l, source, depth + 1)?;
                    }
                }
                Err(e) => report_error(state, &anyhow!("{file}: {e}"), None)?,
            }
        }
        Ok(Line::Command { command, redirect }) => {
            let redirect_target = match &redirect {
                None => None,
                Some(r) => {
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create(true);
                    if r.kind == RedirectKind::Append {
                        options.append(true);
                    } else {
                        options.truncate(true);
                    }
                    match options.open(&r.path) {
                        Ok(f) => Some((f, r.kind == RedirectKind::Both)),
                        Err(e) => {
                            report_error(state, &anyhow!("{}: {e}", r.path), None)?;
                            return Ok(());
                        }
                    }
                }
            };
            run_command(state, &command, redirect_target, source)?;
        }
        Err(e) => report_error(state, &anyhow!("{e}"), None)?,
    }
    Ok(())
}

fn report_error(
    state: &mut Loop,
    e: &anyhow::Error,
    to: Option<&mut std::fs::File>,
) -> io::Result<()> {
    state.worst = EXIT_ERROR;
    io::stdout().flush()?;
    match to {
        Some(f) => writeln!(f, "? {}", error_text(e)),
        None => {
            let _ = writeln!(io::stderr(), "? {}", error_text(e));
            Ok(())
        }
    }
}

fn run_command(
    state: &mut Loop,
    command: &Command,
    redirect: Option<(std::fs::File, bool)>,
    source: &mut dyn LineSource,
) -> io::Result<()> {
    let result = match redirect {
        Some((mut file, both)) => {
            let r = state.session.execute(command, &mut file, source);
            if let Err(e) = &r {
                if both {
                    report_error(state, e, Some(&mut file))?;
                } else {
                    report_error(state, e, None)?;
                }
            }
            r.ok()
        }
        None => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            let r = state.session.execute(command, &mut out, source);
            drop(out);
            match r {
                Err(e) if is_broken_pipe(&e) => {
                    return Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdout closed"))
                }
                Err(e) => {
                    report_error(state, &e, None)?;
                    None
                }
                Ok(o) => Some(o),
            }
        }
    };
    match result {
        Some(Outcome::Quit) => {
            // As classic: quit exits 0. (Piped input that ends without quit exits with the
            // worst status of its commands.)
            state.quit = true;
            state.worst = EXIT_OK;
        }
        Some(Outcome::Problems) => state.worst = state.worst.max(EXIT_PROBLEMS),
        _ => {}
    }
    let id = command_id(command);
    if table::spec(id).sticky {
        state.last_sticky = Some(match command {
            Command::Peek { .. } => Command::Peek {
                file: None,
                offset: None,
                format: None,
            },
            c => c.clone(),
        });
    } else {
        state.last_sticky = None;
    }
    io::stdout().flush()
}

/// The table entry a parsed command belongs to.
pub fn command_id(command: &Command) -> CommandId {
    use CommandId as C;
    match command {
        Command::OpenLog { .. } => C::OpenLog,
        Command::CloseLog => C::CloseLog,
        Command::InitLog { .. } => C::InitLog,
        Command::ReadStatus => C::ReadStatus,
        Command::WriteStatus => C::WriteStatus,
        Command::Status => C::Status,
        Command::Statistics => C::Statistics,
        Command::Head => C::Head,
        Command::Tail => C::Tail,
        Command::Earliest => C::Earliest,
        Command::Next(_) => C::Next,
        Command::Prev(_) => C::Prev,
        Command::NextSub(_) => C::NextSub,
        Command::PrevSub(_) => C::PrevSub,
        Command::SubRec => C::SubRec,
        Command::Show(_) => C::Show,
        Command::FindTail => C::FindTail,
        Command::FindEarliest => C::FindEarliest,
        Command::AllSpec => C::AllSpec,
        Command::SegDict => C::SegDict,
        Command::Monitor { .. } => C::Monitor,
        Command::Recover { .. } => C::Recover,
        Command::Replay { .. } => C::Replay,
        Command::FindHole => C::FindHole,
        Command::Peek { .. } => C::Peek,
        Command::Poke { .. } => C::Poke,
        Command::CopyLog { .. } => C::CopyLog,
        Command::Set { .. } | Command::SetSegDict { .. } => C::Set,
        Command::Sizeof(_) => C::Sizeof,
        Command::Update => C::Update,
        Command::NoUpdate => C::NoUpdate,
        Command::Check { .. } => C::Check,
        Command::Segment { .. } => C::Segment,
        Command::Heap { .. } => C::Heap,
        Command::Help(_) => C::Help,
        Command::Quit => C::Quit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::COMMANDS;

    #[test]
    fn clap_command_is_consistent() {
        clap_command().debug_assert();
    }

    #[test]
    fn every_one_shot_is_a_subcommand() {
        let cmd = clap_command();
        for c in COMMANDS {
            if let Some(o) = c.one_shot {
                assert!(cmd.find_subcommand(o.name).is_some(), "{}", o.name);
            }
        }
    }

    #[test]
    fn every_example_maps_back_to_its_entry() {
        for c in COMMANDS {
            for ex in c.examples {
                if let Ok(Line::Command { command, .. }) = parse_command_line(ex) {
                    assert_eq!(command_id(&command), c.id, "{ex}");
                }
            }
        }
    }
}
