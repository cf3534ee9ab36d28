//! What the type system rules out (issue 9): each case in `tests/compile_fail/` must be
//! refused by the compiler, with the error recorded next to it (`.stderr`; regenerate with
//! `TRYBUILD=overwrite` and read the diff).

#[test]
fn the_type_system_refuses_unsound_uses() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}
