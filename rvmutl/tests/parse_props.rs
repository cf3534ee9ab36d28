//! The command-line and format parsers accept any input without panicking (the fuzz target's
//! property, checked here on random and on plausible lines).

use proptest::prelude::*;
use rvmutl::{parse_command_line, parse_format};

fn plausible_token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            rvmutl::table::COMMANDS
                .iter()
                .map(|c| c.name.to_string())
                .collect::<Vec<_>>()
        ),
        prop::sample::select(vec![
            "p",
            "n",
            "s",
            "i",
            "q",
            "/",
            "=",
            ">",
            ">>",
            ">&",
            "<",
            "#",
            "all",
            "mods",
            "rec",
            "seg_dict",
            "head",
            "tail",
            "0x",
            "x",
            "-",
            "\"",
            "\"a\\x4",
            "\\",
            "no_tail",
            "update",
            "prefix",
            "4xl",
            "/2O",
            "16c",
            "fD",
            "t",
            "0",
            "07",
            "99999999999999999999",
        ])
        .prop_map(str::to_string),
        "[0-9]{1,25}",
        "0x[0-9a-fA-F]{0,20}",
        "[0-9]{0,4}/[0-9]{0,3}[bslOfDtcdoxu]{0,3}",
        "\"[^\"]{0,10}\"?",
        "\\PC{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_string_parses_or_errs(line in "\\PC{0,120}") {
        let _ = parse_command_line(&line);
        let _ = parse_format(&line);
    }

    #[test]
    fn plausible_lines_parse_or_err(tokens in prop::collection::vec(plausible_token(), 0..10),
                                    glue in prop::sample::select(vec![" ", "", "  "])) {
        let line = tokens.join(glue);
        let _ = parse_command_line(&line);
        let _ = parse_format(&line);
    }
}
