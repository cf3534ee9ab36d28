//! rdsinit: initialize an RVM data segment holding an RDS heap.
//!
//! The binary (`src/main.rs`) only parses the command line and hands it to [`run::main_with`].
//! This library holds the logic so it can be tested and fuzzed:
//! - [`number`]: values are read by the library's size parser ([`rvm::units`]);
//! - [`params`]: the six parameters, their rules, rounding proposals and cross checks;
//! - [`dialogue`]: the interactive prompts;
//! - [`files`]: the read-only checks of LOG and DATA before anything is written;
//! - [`heap`]: the one place the RDS heap is called;
//! - [`cli`]: the clap definitions that also generate `--help`, the man page and completions;
//! - [`run`]: the modes, the confirmation and the order of work;
//! - `write`: the writes (log, heap segment built beside DATA, the rename);
//! - [`report`]: what was done, as text and as JSON.
//!
//! Architecture Invariant: nothing is written to disk before every check has passed and the
//! user (or `-f`/`--yes`) has confirmed; every byte read or written goes through `rvm`.

pub mod cli;
pub mod dialogue;
pub mod files;
pub mod heap;
pub mod number;
pub mod params;
pub mod report;
pub mod run;
mod write;

pub use number::{parse_size, NumberError};
pub use params::{Field, ParamError, Params};

/// Exit status: the segment was initialized (or, with `--dry-run`, the layout is valid).
pub const EXIT_OK: u8 = 0;
/// The user quit (`q`), declined, or the input ended before an answer: nothing was changed.
pub const EXIT_QUIT: u8 = 1;
/// The command line was not understood.
pub const EXIT_USAGE: u8 = 2;
/// A check refused the parameters or the files: nothing was changed.
pub const EXIT_INVALID: u8 = 3;
/// Writing the log or the segment failed (what rdsinit created is removed).
pub const EXIT_FAILED: u8 = 4;

/// Wrap `text` into lines of at most `width` columns, each starting with `indent`.
pub fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrap_keeps_words_whole() {
        let text = super::wrap("aaa bbb ccc ddd", "  ", 11);
        assert_eq!(text, "  aaa bbb\n  ccc ddd\n");
        assert_eq!(super::wrap("", "", 10), "");
    }
}
