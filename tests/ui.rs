//! The compile-time contract of `#[db_op]` and `policies!`: every shape in `ui/pass` compiles,
//! every mistake in `ui/fail` is an error on the token at fault, with the message in its
//! `.stderr`. Regenerate with `TRYBUILD=overwrite cargo test --test ui`, and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
