//! The command line, defined once: it parses the arguments and generates `--help`, the man page
//! (`rdsinit man`) and shell completions (`rdsinit completions SHELL`).

use std::io::Write;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use crate::number::parse_size;
use crate::params;
use crate::params::{Field, Params};

const ABOUT: &str = "Initialize an RVM data segment holding an RDS persistent heap";

const LONG_ABOUT: &str = "\
Initialize an RVM data segment holding an RDS persistent heap.

DATA becomes a segment of DATALEN bytes: a 4096-byte header, a heap region of HLEN bytes mapped \
at SADDR, a static region of SLEN bytes mapped right after it, and unused space to the end. The \
heap is built through the RVM log LOG, which must exist (made by `rvmutl init_log`) unless \
--log-size creates it.

Modes:
  rdsinit LOG DATA
      asks for each value, with explanations
  rdsinit LOG DATA DATALEN SADDR HLEN SLEN NLISTS CHUNK
      shows the values and asks for confirmation (answering n goes
      through the questions)
  rdsinit -f LOG DATA DATALEN SADDR HLEN SLEN NLISTS CHUNK
      no questions (scripts)
  rdsinit [--log-size SIZE] LOG DATA --data-len LEN [--heap-len ...]
      the same with flags and defaults; the heap gets whatever the
      static region and header leave
  rdsinit man [DIR]
      writes the man page (to DIR/rdsinit.1, or standard output)
  rdsinit completions SHELL
      writes a completion script for SHELL to standard output

A first argument `man` or `completions` is that subcommand: write a LOG of that name as ./man.

Numbers are decimal, hexadecimal (0x...) or octal (leading 0), and every value, flag or \
positional or typed in the dialogue, may end in a unit as `rvmutl init_log` reads it: K, M, G or \
T (also written KiB, MiB, GiB, TiB, or KB, MB, GB, TB: all are 1024-based multiples, as in the \
classic tools), S (512-byte sectors) or P (4096-byte pages). Nothing is written before every \
check has passed; a regular data file is created sparse, so even a 1 GiB segment takes a few \
blocks on disk.";

const EXIT_CODES: &str = "\
Exit status:
  0  the segment was initialized (with --dry-run: the layout is valid)
  1  quit at a prompt (q), declined, or input ended: nothing was changed
  2  the command line was not understood
  3  a check refused a parameter or a file: nothing was changed
  4  writing the log or the segment failed; files rdsinit created
     are removed

Examples:
  rdsinit --log-size 30M srv/log srv/data --data-len 1G --yes
  rdsinit -f LOG DATA 1073741824 0x50000000 1072627712 1048576 80 64
  rdsinit --dry-run --json LOG DATA --data-len 100M
  rdsinit man /usr/local/share/man/man1";

fn number_arg(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

/// `rdsinit [-f] LOG DATA [DATALEN SADDR HLEN SLEN NLISTS CHUNK]` plus the modern flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rdsinit",
    version,
    about = ABOUT,
    override_usage = "rdsinit [OPTIONS] LOG DATA [DATALEN SADDR HLEN SLEN NLISTS CHUNK]\n       \
                      rdsinit man [DIR]\n       rdsinit completions SHELL",
    allow_negative_numbers = true,
    long_about = LONG_ABOUT,
    after_help = "Exit status: 0 done, 1 quit, 2 usage, 3 refused by a check, 4 write failed (see --help).",
    after_long_help = EXIT_CODES,
)]
pub struct Cli {
    /// Do not ask for confirmation (classic -f, for scripts).
    #[arg(short = 'f', long = "yes")]
    pub yes: bool,

    /// Create LOG with a record area of SIZE bytes (e.g. 30M) before building the segment.
    #[arg(
        long,
        value_name = "SIZE",
        value_parser = number_arg,
        long_help = "Create the log LOG with a record area of SIZE bytes (e.g. 30M, 30MiB or \
                     61440S; the file also holds 64 KiB of status blocks), as `rvmutl init_log \
                     LOG SIZE` does, with the same size units. \
                     An existing LOG is refused unless --force is also given, and it is never \
                     re-initialized while it holds records that have not been applied to their \
                     segment."
    )]
    pub log_size: Option<u64>,

    /// Allow re-initializing an existing LOG (with --log-size) and overwriting a DATA segment
    /// that still has unapplied records in LOG.
    #[arg(long)]
    pub force: bool,

    #[arg(long, value_name = "BYTES", value_parser = number_arg,
          help = "Length of the data segment (required with the other flags)",
          long_help = Field::DataLen.explanation())]
    pub data_len: Option<u64>,

    #[arg(long, value_name = "ADDRESS", value_parser = number_arg,
          help = "Address the heap is mapped at [default: 0x50000000]",
          long_help = Field::StartAddr.explanation())]
    pub start_addr: Option<u64>,

    #[arg(long, value_name = "BYTES", value_parser = number_arg,
          help = "Length of the heap region [default: the largest that fits]",
          long_help = Field::HeapLen.explanation())]
    pub heap_len: Option<u64>,

    #[arg(long, value_name = "BYTES", value_parser = number_arg,
          help = "Length of the static region [default: 1M]",
          long_help = Field::StaticLen.explanation())]
    pub static_len: Option<u64>,

    #[arg(long, value_name = "COUNT", value_parser = number_arg,
          help = "Number of free lists of the heap [default: 80]",
          long_help = Field::Nlists.explanation())]
    pub nlists: Option<u64>,

    #[arg(long, value_name = "BYTES", value_parser = number_arg,
          help = "Allocation unit of the heap [default: 64]",
          long_help = Field::ChunkSize.explanation())]
    pub chunk_size: Option<u64>,

    /// Round the start address, heap and static lengths up to 4096 and the chunk size up to 8
    /// instead of refusing values that are not multiples.
    #[arg(long)]
    pub round: bool,

    /// Check everything and print the layout, but create and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result as JSON on standard output (questions and messages go to standard
    /// error).
    #[arg(long)]
    pub json: bool,

    /// Write zeros over the whole data segment, so every block is allocated (slow for large
    /// segments). Block devices are always zeroed.
    #[arg(long, conflicts_with = "fallocate")]
    pub zero: bool,

    /// Reserve the data file's blocks with fallocate instead of leaving it sparse.
    #[arg(long)]
    pub fallocate: bool,

    /// Write the man page (roff) to standard output (the older spelling of `rdsinit man`).
    #[arg(long, hide = true)]
    pub generate_man: bool,

    /// Write a completion script for SHELL to standard output (the older spelling of
    /// `rdsinit completions SHELL`).
    #[arg(long, hide = true, value_name = "SHELL")]
    pub generate_completions: Option<clap_complete::Shell>,

    /// The RVM log (a file or a block device).
    #[arg(value_name = "LOG", required_unless_present_any = ["generate_man", "generate_completions"])]
    pub log: Option<PathBuf>,

    /// The data segment to initialize (a file, created if missing, or a block device).
    #[arg(value_name = "DATA", required_unless_present_any = ["generate_man", "generate_completions"])]
    pub data: Option<PathBuf>,

    /// Classic form of --data-len.
    #[arg(value_name = "DATALEN", value_parser = number_arg)]
    pub datalen_value: Option<u64>,
    /// Classic form of --start-addr.
    #[arg(value_name = "SADDR", value_parser = number_arg)]
    pub saddr_value: Option<u64>,
    /// Classic form of --heap-len.
    #[arg(value_name = "HLEN", value_parser = number_arg)]
    pub hlen_value: Option<u64>,
    /// Classic form of --static-len.
    #[arg(value_name = "SLEN", value_parser = number_arg)]
    pub slen_value: Option<u64>,
    /// Classic form of --nlists.
    #[arg(value_name = "NLISTS", value_parser = number_arg)]
    pub nlists_value: Option<u64>,
    /// Classic form of --chunk-size.
    #[arg(value_name = "CHUNK", value_parser = number_arg)]
    pub chunk_value: Option<u64>,
}

/// The subcommands that do not initialize a segment. They are parsed apart from [`Cli`] (see
/// [`parse`]) so that the classic positional values never read as a subcommand.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Tool {
    /// Write the man page (to DIR/rdsinit.1, or standard output).
    Man {
        /// The directory to write rdsinit.1 into.
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Write a completion script for SHELL to standard output.
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

/// `rdsinit man ...` and `rdsinit completions ...`.
#[derive(Debug, Clone, Parser)]
#[command(name = "rdsinit", version, about = ABOUT)]
struct ToolCli {
    #[command(subcommand)]
    tool: Tool,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// Initialize a segment (or check a layout).
    Run(Box<Cli>),
    /// Write the man page or completions.
    Tool(Tool),
}

/// Parse the command line (`args` includes the program name): a first argument `man` or
/// `completions` is that subcommand, anything else the segment options.
pub fn parse<I, T>(args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("man" | "completions") => ToolCli::try_parse_from(args).map(|t| Parsed::Tool(t.tool)),
        _ => Cli::try_parse_from(args).map(|c| Parsed::Run(Box::new(c))),
    }
}

impl Cli {
    /// The six classic positional values: all of them, none, or an error naming the missing.
    pub fn positional(&self) -> Result<Option<Params>, String> {
        let values = [
            self.datalen_value,
            self.saddr_value,
            self.hlen_value,
            self.slen_value,
            self.nlists_value,
            self.chunk_value,
        ];
        let given = values.iter().filter(|v| v.is_some()).count();
        if given == 0 {
            return Ok(None);
        }
        if given < values.len() {
            let missing: Vec<&str> = Field::ALL[given..].iter().map(|f| f.classic()).collect();
            return Err(format!(
                "give all six values DATALEN SADDR HLEN SLEN NLISTS CHUNK or none of them; \
                 missing {}",
                missing.join(" ")
            ));
        }
        let mut p = Params {
            data_len: 0,
            start_addr: 0,
            heap_len: 0,
            static_len: 0,
            nlists: 0,
            chunk_size: 0,
        };
        for (field, value) in Field::ALL.into_iter().zip(values) {
            p.set(field, value.unwrap_or(0));
        }
        Ok(Some(p))
    }

    /// The parameter flags given, by field.
    pub fn flags(&self) -> [Option<u64>; 6] {
        [
            self.data_len,
            self.start_addr,
            self.heap_len,
            self.static_len,
            self.nlists,
            self.chunk_size,
        ]
    }
}

/// The clap command (for the man page, completions and tests).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Write the man page.
pub fn write_man(out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(command()).render(out)
}

/// Write a completion script.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    let mut cmd = command();
    clap_complete::generate(shell, &mut cmd, "rdsinit", out);
}

/// The stated limit on nlists, for messages.
pub fn nlists_max() -> u64 {
    params::NLISTS_MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn classic_positional_values() {
        let cli = Cli::try_parse_from([
            "rdsinit",
            "-f",
            "L",
            "D",
            "0x40000000",
            "0x70000000",
            "0x3fefd000",
            "0x100000",
            "0x50",
            "0x20",
        ])
        .unwrap();
        assert!(cli.yes);
        let p = cli.positional().unwrap().unwrap();
        assert_eq!(p.heap_len, 0x3fef_d000);
        assert_eq!(p.chunk_size, 32);
        let cli = Cli::try_parse_from(["rdsinit", "L", "D", "1G", "0x50000000"]).unwrap();
        assert!(cli
            .positional()
            .unwrap_err()
            .contains("missing HLEN SLEN NLISTS CHUNK"));
        assert!(Cli::try_parse_from(["rdsinit", "L"]).is_err());
        assert!(Cli::try_parse_from(["rdsinit", "--generate-man"]).is_ok());
    }

    #[test]
    fn only_a_first_argument_names_a_subcommand() {
        assert!(matches!(
            parse(["rdsinit", "man"]),
            Ok(Parsed::Tool(Tool::Man { dir: None }))
        ));
        assert!(matches!(
            parse(["rdsinit", "completions", "zsh"]),
            Ok(Parsed::Tool(Tool::Completions { .. }))
        ));
        // A log called man is written as a path; a DATA called man is just a path.
        for args in [["rdsinit", "./man", "data"], ["rdsinit", "log", "man"]] {
            assert!(matches!(parse(args), Ok(Parsed::Run(_))), "{args:?}");
        }
        assert!(parse(["rdsinit", "completions"]).is_err());
    }
}
