//! # rvmutl: the rvm log and segment inspector
//!
//! The binary (`src/main.rs`) is one call to [`cli::run`]; everything else is here so it can
//! be tested and fuzzed: [`parse_command_line`] and [`parse_format`] accept any string
//! without panicking.
//!
//! - [`table`]: the one command table (names, aliases, usage, help, one-shot subcommands).
//! - [`parse`]: tokens, numbers, sizes, and a typed [`Command`] per line.
//! - [`format`]: the peek/poke format language (`4xl`, `16c`, ...).
//! - [`session`]: the state of a session and the execution of each command.
//! - [`logview`]: navigation in a log, intact records before the head, salvage after damage.
//! - [`check`], [`recover`], [`inspect`], [`peekpoke`], [`sizes`]: the bigger commands.
//! - [`clap_def`]: the clap command (subcommands, `--help`), built from the table.
//! - [`cli`]: the prompt, piped scripts, one-shot subcommands, `--help` and completions;
//!   [`manual`]: `rvmutl help` and the man pages.
//!
//! Every byte of a log or segment is read and written through the `rvm` library.

pub mod check;
pub mod clap_def;
pub mod cli;
pub mod format;
pub mod inspect;
pub mod logview;
pub mod manual;
pub mod parse;
pub mod peekpoke;
pub mod recover;
pub mod render;
pub mod session;
pub mod sizes;
pub mod table;

pub use crate::format::parse_format;
pub use crate::parse::{parse_command_line, Command, Line, ParseError};
