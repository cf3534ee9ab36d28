//! Unit tests of the command language.

use super::*;
use crate::format::{Format, Radix, Size};

#[test]
fn numbers_in_every_base() {
    assert_eq!(parse_number("42"), Ok(42));
    assert_eq!(parse_number("0x2a"), Ok(42));
    assert_eq!(parse_number("x2A"), Ok(42));
    assert_eq!(parse_number("052"), Ok(42));
    assert_eq!(parse_number("0"), Ok(0));
    assert_eq!(parse_number("1,0x10"), Ok((1 << 32) + 16));
    assert!(parse_number("1,").is_err());
    assert!(parse_number(&"1,".repeat(30000)).is_err());
    assert!(parse_number("0x100000000,0").is_err());
    assert!(parse_number("").is_err());
    assert!(parse_number("0x").is_err());
    assert!(parse_number("-1").is_err());
    assert!(parse_number("99999999999999999999999").is_err());
    assert!(parse_number("09").is_err());
}

#[test]
fn sizes_with_units() {
    assert_eq!(parse_size("30M"), Ok(30 << 20));
    assert_eq!(parse_size("64k"), Ok(64 << 10));
    assert_eq!(parse_size("1G"), Ok(1 << 30));
    assert_eq!(parse_size("4S"), Ok(2048));
    assert_eq!(parse_size("2P"), Ok(8192));
    assert_eq!(parse_size("100B"), Ok(100));
    assert_eq!(parse_size("0x1B"), Ok(0x1b));
    assert!(parse_size("3Q")
        .unwrap_err()
        .0
        .contains("unknown size unit"));
    assert!(parse_size("99999999999G").is_err());
}

#[test]
fn strings_resolve_escapes() {
    let t = tokenize(r#"poke 0 = "a\n\0\x41\101\"""#).unwrap();
    assert_eq!(t.last(), Some(&Token::Str(b"a\n\0AA\"".to_vec())));
    assert!(tokenize("\"open").is_err());
    assert!(tokenize("\"\\q\"").is_err());
}

fn cmd(line: &str) -> Command {
    match parse_command_line(line) {
        Ok(Line::Command { command, .. }) => command,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn redirection_is_split_off() {
    let Ok(Line::Command { command, redirect }) = parse_command_line("show all >> out.txt") else {
        panic!()
    };
    assert_eq!(command, Command::Show(vec![ShowItem::All]));
    assert_eq!(
        redirect,
        Some(Redirect {
            path: "out.txt".into(),
            kind: RedirectKind::Append
        })
    );
    assert!(parse_command_line("show all > a b").is_err());
    assert!(parse_command_line("> a").is_err());
}

#[test]
fn peek_forms() {
    let f = |count, size, radix| Some(Format { count, size, radix });
    assert_eq!(
        cmd("peek /tmp/x 100/4xl"),
        Command::Peek {
            file: Some("/tmp/x".into()),
            offset: Some(100),
            format: f(4, Size::Long, Radix::Hex)
        }
    );
    assert_eq!(
        cmd("p 0x10 / 2O"),
        Command::Peek {
            file: None,
            offset: Some(16),
            format: f(2, Size::Offset, Radix::Unsigned)
        }
    );
    assert_eq!(
        cmd("peek 8 /c"),
        Command::Peek {
            file: None,
            offset: Some(8),
            format: f(1, Size::Byte, Radix::Char)
        }
    );
    assert_eq!(
        cmd("peek log 8"),
        Command::Peek {
            file: Some("log".into()),
            offset: Some(8),
            format: None
        }
    );
    assert_eq!(
        cmd("peek"),
        Command::Peek {
            file: None,
            offset: None,
            format: None
        }
    );
}

#[test]
fn poke_groups_and_values() {
    assert_eq!(
        cmd(r#"poke data 4096/2b = 1 -2 8192 = "hi""#),
        Command::Poke {
            file: Some("data".into()),
            groups: vec![
                PokeGroup {
                    offset: 4096,
                    count: 2,
                    size: Size::Byte,
                    values: vec![Value::Integer(1), Value::Integer(-2)]
                },
                PokeGroup {
                    offset: 8192,
                    count: 1,
                    size: Size::Long,
                    values: vec![Value::Bytes(b"hi".to_vec())]
                },
            ]
        }
    );
    assert!(parse_command_line("poke 10 =").is_err());
    assert!(parse_command_line("poke 10 1").is_err());
}

#[test]
fn ambiguous_and_unknown_commands() {
    let e = parse_command_line("st").unwrap_err().0;
    assert!(
        e.contains("ambiguous") && e.contains("status") && e.contains("statistics"),
        "{e}"
    );
    assert!(parse_command_line("frobnicate")
        .unwrap_err()
        .0
        .contains("command not found"));
    assert_eq!(cmd("p 4"), cmd("peek 4"));
    assert_eq!(cmd("pr"), Command::Prev(1));
    assert_eq!(cmd("q"), Command::Quit);
}

#[test]
fn show_keywords() {
    assert_eq!(
        cmd("s rec 7 2 head 9"),
        Command::Show(vec![
            ShowItem::Record { lsn: 7, count: 2 },
            ShowItem::Head,
            ShowItem::Record { lsn: 9, count: 1 }
        ])
    );
    assert_eq!(
        cmd("show mods 0x1000/2l = 5 6"),
        Command::Show(vec![ShowItem::Mods {
            spec: AddrSpec {
                address: 0x1000,
                format: Format {
                    count: 2,
                    size: Size::Long,
                    radix: Radix::Decimal
                }
            },
            values: vec![Value::Integer(5), Value::Integer(6)]
        }])
    );
    assert!(parse_command_line("show").is_err());
    assert!(parse_command_line("show re")
        .unwrap_err()
        .0
        .contains("ambiguous"));
}

#[test]
fn set_fields() {
    assert_eq!(
        cmd("set head = tail"),
        Command::Set {
            field: "head_offset",
            value: SetValue::Field("tail_offset")
        }
    );
    assert_eq!(
        cmd("set head_lsn=7"),
        Command::Set {
            field: "head_lsn",
            value: SetValue::Number(7)
        }
    );
    assert_eq!(
        cmd("set seg_dict 0 = /srv/data"),
        Command::SetSegDict {
            index: 0,
            path: "/srv/data".into()
        }
    );
    assert!(parse_command_line("set bogus = 1").is_err());
}

#[test]
fn no_panic_on_odd_input() {
    for line in [
        "",
        "=",
        ">",
        ">>",
        "\"",
        "p /",
        "p //",
        "poke /=",
        "poke 1/=",
        "s 1 0",
        "set",
        "show mods",
        "show mods 1/0x",
        "monitor 5/",
        "n 0",
        "n 99999999",
        "i x 5Q",
        "peek 1/4xx",
        "< ",
        "<\"a",
        "\u{0}",
        "open_log a b",
        "log \"\" no_tail",
    ] {
        let _ = parse_command_line(line);
    }
}
