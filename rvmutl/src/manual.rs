//! `rvmutl help [COMMAND]`, the man pages (`rvmutl man [DIR]`) and the shell completions,
//! all built from the command table through the clap command.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Result};

use crate::clap_def::clap_command;
use crate::table::COMMANDS;

/// `rvmutl help [COMMAND]`: the program's help, or one command's (a prompt command or a
/// subcommand).
pub fn help(topic: Option<&str>, out: &mut dyn Write) -> Result<()> {
    let mut cmd = clap_command();
    // Built, so a subcommand's usage names the program (`rvmutl records ...`).
    cmd.build();
    match topic {
        None => write!(out, "{}", cmd.render_long_help())?,
        Some(t) if crate::table::lookup(t).is_ok() => crate::session::help(Some(t), out)?,
        Some(t) => {
            let sub = cmd
                .find_subcommand_mut(t)
                .ok_or_else(|| anyhow!("{t}: no such command or subcommand (see rvmutl help)"))?;
            write!(out, "{}", sub.render_long_help())?
        }
    }
    Ok(())
}

/// Escape text for a roff line: backslashes, and a leading `.` or `'` that roff would take
/// for a request.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// The prompt's command language as a man page section: one tagged paragraph per command,
/// filled by roff (so it wraps to any width).
fn prompt_section() -> String {
    let mut s = String::from(".SH \"COMMANDS AT THE PROMPT\"\n");
    s.push_str(&format!(
        "{}\n",
        roff_text(
            "Commands may be abbreviated to any unique prefix; an empty line repeats the last \
             next, prev, ns, ps, sr, show or peek; output can be redirected with > FILE, >> FILE \
             or >& FILE; < FILE reads commands from FILE; # starts a comment."
        )
    ));
    for c in COMMANDS {
        s.push_str(".TP\n");
        s.push_str(&format!(
            "\\fB{}\\fR {}\n",
            roff_text(c.name),
            roff_text(c.usage)
        ));
        if !c.aliases.is_empty() {
            s.push_str(&format!("(also: {}) ", roff_text(&c.aliases.join(", "))));
        }
        s.push_str(&format!("{}\n", roff_text(c.details)));
    }
    s
}

/// The clap command as the man pages show it: the prompt's commands get their own section
/// instead of the preformatted `--help` text.
fn man_command() -> clap::Command {
    let mut cmd = clap_command().after_help("").after_long_help("");
    cmd.build();
    cmd
}

/// Render the main page into `out`.
fn render_main(cmd: &clap::Command, out: &mut dyn Write) -> Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    out.write_all(prompt_section().as_bytes())?;
    man.render_version_section(out)?;
    Ok(())
}

/// `rvmutl man [DIR]`: rvmutl.1 and one page per subcommand (rvmutl-status.1, ...), the pages
/// the main page refers to; into DIR, or all to standard output one after another.
pub fn man(dir: Option<&str>, out: &mut dyn Write) -> Result<()> {
    let cmd = man_command();
    match dir {
        Some(dir) => {
            let dir = Path::new(dir);
            let path = dir.join("rvmutl.1");
            let mut file = std::fs::File::create(&path)
                .map_err(|e| anyhow!("{}: create: {e}", path.display()))?;
            render_main(&cmd, &mut file)?;
            writeln!(out, "wrote {}", path.display())?;
            for sub in cmd.get_subcommands() {
                let man = clap_mangen::Man::new(sub.clone());
                let path = dir.join(man.get_filename());
                let mut file = std::fs::File::create(&path)
                    .map_err(|e| anyhow!("{}: create: {e}", path.display()))?;
                man.render(&mut file)?;
                writeln!(out, "wrote {}", path.display())?;
            }
        }
        None => {
            render_main(&cmd, out)?;
            for sub in cmd.get_subcommands() {
                clap_mangen::Man::new(sub.clone()).render(out)?;
            }
        }
    }
    Ok(())
}
