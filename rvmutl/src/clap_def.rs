//! The clap command of rvmutl, built from the command table: the one-shot subcommands and
//! their arguments, `--help` (with a summary of the prompt's commands) and the input of the
//! man pages and completions.

use clap::{Arg, ArgAction, ValueHint};

use crate::table::{ArgSpec, COMMANDS};

const ABOUT: &str = "Inspect and maintain rvm logs and data segments";
const LONG_ABOUT: &str = "rvmutl inspects rvm logs (status slots, records, ranges), data \
segments and their RDS heaps, checks them for damage, and applies a log to its segments.\n\n\
Run `rvmutl` or `rvmutl LOG` for the interactive prompt (`* `), with the classic rvmutl \
command language: commands may be abbreviated to any unique prefix, an empty line repeats \
the last next/prev/show/peek command, output can be redirected with > FILE, and commands are \
read from standard input when it is not a terminal (printf 'i LOG 30M\\nq\\n' | rvmutl). \
A first argument that is a subcommand name runs that subcommand once.\n\n\
Files are opened read-only unless the command writes (init_log, recover, poke, write_status, \
copy_log). Exit status: 0 success, 1 check found problems, 2 usage or I/O error.";

/// The clap command: subcommands and their arguments come from the table.
pub fn clap_command() -> clap::Command {
    let mut cmd = clap::Command::new("rvmutl")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .long_about(LONG_ABOUT)
        .args_conflicts_with_subcommands(true)
        .disable_help_subcommand(true)
        .arg(
            Arg::new("LOG")
                .help("open this log at the prompt")
                .value_hint(ValueHint::FilePath),
        )
        .after_help(prompt_summary())
        .after_long_help(prompt_details());
    for c in COMMANDS {
        let Some(o) = c.one_shot else { continue };
        let mut sub = clap::Command::new(o.name)
            // `-5` reaches the size parser, which names the problem.
            .allow_negative_numbers(true)
            .about(o.about.unwrap_or(c.summary))
            .long_about(format!(
                "{}\n\nAt the prompt: {} {}",
                o.details.unwrap_or(c.details),
                c.name,
                if o.details.is_some() { "all" } else { c.usage }
            ));
        for a in o.args {
            sub = sub.arg(match *a {
                ArgSpec::Positional(name, help, required, file) => {
                    let arg = Arg::new(name).help(help).required(required);
                    if file {
                        arg.value_hint(ValueHint::FilePath)
                    } else {
                        arg
                    }
                }
                ArgSpec::Flag(long, help) => Arg::new(long)
                    .long(long)
                    .help(help)
                    .action(ArgAction::SetTrue),
                ArgSpec::Repeated(long, value, help, file) => {
                    let arg = Arg::new(long)
                        .long(long)
                        .value_name(value)
                        .help(help)
                        .action(ArgAction::Append);
                    if file {
                        arg.value_hint(ValueHint::FilePath)
                    } else {
                        arg
                    }
                }
            });
        }
        cmd = cmd.subcommand(sub);
    }
    cmd.subcommand(
        clap::Command::new("help")
            .about("describe rvmutl, a command of the prompt, or a subcommand")
            .long_about(
                "Without COMMAND: the same as --help. With COMMAND: its usage and details (any \
                 command of the prompt, e.g. `rvmutl help peek`, or a subcommand).",
            )
            .arg(Arg::new("COMMAND").help("a command or subcommand")),
    )
    .subcommand(
        clap::Command::new("man")
            .about("write the man pages (into DIR, or all to standard output)")
            .long_about(
                "Writes rvmutl.1 and one page per subcommand (rvmutl-status.1, ...) into DIR, \
                 or all of them one after another to standard output (rvmutl man | man -l -).",
            )
            .arg(Arg::new("DIR").value_hint(ValueHint::DirPath)),
    )
    .subcommand(
        clap::Command::new("completions")
            .about("write shell completions to standard output")
            .arg(
                Arg::new("SHELL")
                    .required(true)
                    .value_parser(clap::value_parser!(clap_complete::Shell)),
            ),
    )
}

fn prompt_summary() -> String {
    let mut s = String::from("Commands at the prompt (help COMMAND for details):\n");
    for c in COMMANDS {
        let names = std::iter::once(c.name)
            .chain(c.aliases.iter().copied())
            .collect::<Vec<_>>()
            .join(", ");
        s.push_str(&format!("  {names:<26}{}\n", c.summary));
    }
    s
}

fn prompt_details() -> String {
    let mut s = String::from("Commands at the prompt:\n\n");
    for c in COMMANDS {
        s.push_str(&format!("  {} {}\n", c.name, c.usage));
        if !c.aliases.is_empty() {
            s.push_str(&format!("      also: {}\n", c.aliases.join(", ")));
        }
        for l in crate::session::wrap(c.details, 70) {
            s.push_str(&format!("      {l}\n"));
        }
        s.push('\n');
    }
    s
}
