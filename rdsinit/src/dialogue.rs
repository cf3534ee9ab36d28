//! The interactive dialogue: for each parameter an explanation, a prompt, the proposed value
//! (raised to the minimum, rounded to the multiple) and `Accept ? (y|n|q)`; then the cross
//! checks that send the user back to the parameter to change.
//!
//! The dialogue reads lines from any `BufRead` and writes to any `Write`, so unit tests script
//! it without a terminal; the integration tests drive the real binary through a pseudo-terminal.

use std::io::{self, BufRead, Write};

use crate::number::{hex_dec, parse_size};
use crate::params::{
    check_address_range, check_fit, largest_heap, largest_static, occupied, propose, Field, Params,
    PAGE_BYTES, STATIC_LEN_DEFAULT,
};
use crate::{params, wrap};

/// Why the dialogue stopped without a result.
#[derive(Debug)]
pub enum Stop {
    /// The user answered `q`.
    Quit,
    /// The input ended before the dialogue did.
    EndOfInput,
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Io(e)
    }
}

/// A yes/no answer (quitting is a [`Stop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
}

/// Starting values for the prompts: `None` means "compute one" (or, for the data length, none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defaults {
    pub values: [Option<u64>; 6],
}

impl Defaults {
    /// The defaults of a fresh dialogue: every documented default, no data length.
    pub fn fresh() -> Defaults {
        Defaults {
            values: [
                None,
                Some(crate::params::START_ADDR_DEFAULT),
                None,
                None,
                Some(crate::params::NLISTS_DEFAULT),
                Some(crate::params::CHUNK_SIZE_DEFAULT),
            ],
        }
    }

    /// Re-asking after "no": every value chosen before is offered again.
    pub fn from_params(p: &Params) -> Defaults {
        let mut d = Defaults::default();
        for (i, field) in Field::ALL.into_iter().enumerate() {
            d.values[i] = Some(p.get(field));
        }
        d
    }
}

pub struct Dialogue<'a> {
    input: &'a mut dyn BufRead,
    output: &'a mut dyn Write,
}

const PROMPT_WIDTH: usize = 78;

impl<'a> Dialogue<'a> {
    pub fn new(input: &'a mut dyn BufRead, output: &'a mut dyn Write) -> Dialogue<'a> {
        Dialogue { input, output }
    }

    /// Write text as it is.
    pub fn say(&mut self, text: &str) -> io::Result<()> {
        self.output.write_all(text.as_bytes())?;
        self.output.flush()
    }

    /// Write a paragraph wrapped to the terminal width, with an indent.
    pub fn paragraph(&mut self, indent: &str, text: &str) -> io::Result<()> {
        let text = wrap(text, indent, PROMPT_WIDTH);
        self.say(&text)
    }

    fn read_line(&mut self) -> Result<String, Stop> {
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            return Err(Stop::EndOfInput);
        }
        Ok(line.trim().to_string())
    }

    /// Ask a y/n/q question until it gets one of those answers (an empty line means yes).
    pub fn ask_yes_no(&mut self, question: &str) -> Result<Answer, Stop> {
        loop {
            self.say(&format!("{question} "))?;
            let line = self.read_line()?;
            match line.as_str() {
                "" | "y" | "Y" | "yes" | "Yes" | "YES" => return Ok(Answer::Yes),
                "n" | "N" | "no" | "No" | "NO" => return Ok(Answer::No),
                "q" | "Q" | "quit" | "Quit" | "QUIT" => return Err(Stop::Quit),
                _ => self.say("Please answer y (yes), n (no) or q (quit).\n")?,
            }
        }
    }

    /// Ask one value until the user accepts a proposal.
    fn ask_value(&mut self, field: Field, default: Option<u64>) -> Result<u64, Stop> {
        self.say("\n")?;
        self.paragraph(
            "",
            &format!("{}: {}", capitalize(field.label()), field.explanation()),
        )?;
        loop {
            let shown_default = default
                .map(|d| format!(" [{}]", hex_dec(d)))
                .unwrap_or_default();
            self.say(&format!("==> Enter the {}{shown_default}: ", field.label()))?;
            let line = self.read_line()?;
            if line.eq_ignore_ascii_case("q") || line.eq_ignore_ascii_case("quit") {
                return Err(Stop::Quit);
            }
            let entered = if line.is_empty() {
                match default {
                    Some(d) => d,
                    None => {
                        self.say("Please enter a value (or q to quit).\n")?;
                        continue;
                    }
                }
            } else {
                match parse_size(&line) {
                    Ok(v) => v,
                    Err(e) => {
                        self.say(&format!("{e}\n"))?;
                        continue;
                    }
                }
            };
            let proposal = match propose(field, entered) {
                Ok(p) => p,
                Err(e) => {
                    self.say(&format!("{}; enter another value.\n", e.message))?;
                    continue;
                }
            };
            for note in &proposal.notes {
                self.say(&format!("{note}\n"))?;
            }
            let question = format!(
                "{}: {}. Accept ? (y|n|q)",
                capitalize(field.label()),
                hex_dec(proposal.value)
            );
            match self.ask_yes_no(&question)? {
                Answer::Yes => return Ok(proposal.value),
                Answer::No => continue,
            }
        }
    }

    /// Ask all six parameters in the classic order, with the cross checks: when header, heap
    /// and static do not fit, the heap and static lengths are asked again; when the regions
    /// would pass the address-space limit, the start address is; when the heap's own layout
    /// rules fail, the parameter they name is.
    pub fn ask_parameters(&mut self, defaults: &Defaults) -> Result<Params, Stop> {
        let mut defaults = *defaults;
        let mut chosen = Params {
            data_len: 0,
            start_addr: 0,
            heap_len: 0,
            static_len: 0,
            nlists: 0,
            chunk_size: 0,
        };
        let mut index = 0;
        while index < Field::ALL.len() {
            let field = Field::ALL[index];
            let default = self.default_for(field, &defaults, &chosen);
            let value = self.ask_value(field, default)?;
            chosen.set(field, value);
            index += 1;
            if field == Field::StaticLen {
                if let Err(e) = check_fit(&chosen) {
                    self.say("\n")?;
                    self.paragraph(
                        "",
                        &format!(
                            "Sorry, these do not fit: {}. Enter the heap and static lengths again.",
                            e.message
                        ),
                    )?;
                    defaults.values[Field::HeapLen as usize] = None;
                    defaults.values[Field::StaticLen as usize] = Some(chosen.static_len);
                    index = Field::HeapLen as usize;
                    continue;
                }
                if let Err(e) = check_address_range(&chosen) {
                    self.say("\n")?;
                    self.paragraph(
                        "",
                        &format!("Sorry: {}. Enter the start address again.", e.message),
                    )?;
                    defaults.values[Field::StartAddr as usize] = None;
                    index = Field::StartAddr as usize;
                    continue;
                }
                if let Some(occupant) = occupied(&chosen) {
                    self.paragraph("", &occupied_warning(&chosen, &occupant))?;
                }
            }
            if index == Field::ALL.len() {
                if let Err(e) = params::check_layout(&chosen) {
                    self.say("\n")?;
                    self.paragraph(
                        "",
                        &format!("Sorry: {}. Enter the {} again.", e.message, e.field.label()),
                    )?;
                    index = e.field as usize;
                }
            }
        }
        Ok(chosen)
    }

    fn default_for(&self, field: Field, defaults: &Defaults, chosen: &Params) -> Option<u64> {
        if let Some(v) = defaults.values[field as usize] {
            return Some(v);
        }
        match field {
            Field::HeapLen => {
                let static_guess =
                    defaults.values[Field::StaticLen as usize].unwrap_or(STATIC_LEN_DEFAULT);
                largest_heap(chosen.data_len, static_guess)
                    .or_else(|| largest_heap(chosen.data_len, PAGE_BYTES))
            }
            Field::StaticLen => Some(
                largest_static(chosen.data_len, chosen.heap_len)
                    .map_or(PAGE_BYTES, |s| s.min(STATIC_LEN_DEFAULT)),
            ),
            Field::StartAddr => Some(crate::params::START_ADDR_DEFAULT),
            _ => None,
        }
    }
}

/// The warning printed when the chosen address range is mapped in this process.
pub fn occupied_warning(p: &Params, occupant: &str) -> String {
    format!(
        "warning: {:#x}..{:#x} is already mapped in this process ({occupant}); rdsinit may be \
         unable to map the segment there, and so may other programs.",
        p.start_addr,
        p.end_addr()
    )
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a scripted dialogue: `input` lines in, the result and the transcript out.
    fn run(input: &str, defaults: Defaults) -> (Result<Params, Stop>, String) {
        let mut reader = io::Cursor::new(input.as_bytes().to_vec());
        let mut out = Vec::new();
        let result = Dialogue::new(&mut reader, &mut out).ask_parameters(&defaults);
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn accepts_defaults_and_rounds() {
        let (result, transcript) = run("1G\ny\n\ny\n5000\ny\n\ny\n\ny\n33\ny\n", Defaults::fresh());
        let p = result.unwrap();
        assert_eq!(
            p,
            Params {
                data_len: 1 << 30,
                start_addr: 0x5000_0000,
                heap_len: 8192,
                static_len: 1 << 20,
                nlists: 80,
                chunk_size: 40,
            }
        );
        assert!(
            transcript.contains("rounded up to 0x2000 (8192)"),
            "{transcript}"
        );
        assert!(transcript.contains("Accept ? (y|n|q)"));
    }

    #[test]
    fn no_re_asks_the_value() {
        let (result, transcript) = run(
            "12288\nn\n16384\ny\n\ny\n\ny\n\ny\n\ny\n\ny\n",
            Defaults::fresh(),
        );
        let p = result.unwrap();
        assert_eq!(p.data_len, 16384);
        // The heap default leaves one page of statics when 1 MiB does not fit.
        assert_eq!((p.heap_len, p.static_len), (8192, 4096));
        assert_eq!(
            transcript
                .matches("==> Enter the data segment length")
                .count(),
            2
        );
    }

    #[test]
    fn heap_and_static_asked_again_when_they_do_not_fit() {
        let (result, transcript) = run(
            "16K\ny\n\ny\n8K\ny\n8K\ny\n4K\ny\n4K\ny\n\ny\n\ny\n",
            Defaults::fresh(),
        );
        let p = result.unwrap();
        assert_eq!((p.heap_len, p.static_len), (4096, 4096));
        assert!(
            transcript.contains("largest heap that fits"),
            "{transcript}"
        );
    }

    #[test]
    fn heap_layout_refusal_goes_back_to_the_parameter_it_names() {
        // 4096 lists do not fit in a one-page heap: the heap length is asked again and the
        // questions after it follow, so the number of lists can be changed too.
        let (result, transcript) = run(
            "12K\ny\n\ny\n4K\ny\n4K\ny\n4096\ny\n\ny\n\ny\n\ny\n80\ny\n\ny\n",
            Defaults::fresh(),
        );
        let p = result.unwrap();
        assert_eq!((p.heap_len, p.static_len, p.nlists), (4096, 4096, 80));
        let words = transcript.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains("with 4096 lists"), "{transcript}");
        assert!(
            words.contains("Enter the heap length again"),
            "{transcript}"
        );
    }

    #[test]
    fn quit_and_end_of_input() {
        assert!(matches!(run("q\n", Defaults::fresh()).0, Err(Stop::Quit)));
        assert!(matches!(
            run("1G\nq\n", Defaults::fresh()).0,
            Err(Stop::Quit)
        ));
        assert!(matches!(
            run("1G\n", Defaults::fresh()).0,
            Err(Stop::EndOfInput)
        ));
    }

    #[test]
    fn bad_numbers_and_answers_are_asked_again() {
        let (result, transcript) = run(
            "08\n1G\nmaybe\ny\n\ny\n\ny\n\ny\n\ny\n\ny\n",
            Defaults::fresh(),
        );
        assert_eq!(result.unwrap().data_len, 1 << 30);
        assert!(transcript.contains("octal"));
        assert!(transcript.contains("Please answer y"));
    }
}
