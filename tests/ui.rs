//! The compile-time contract of `#[db_op]` and `policies!`: every shape in `ui/pass` compiles,
//! every mistake in `ui/fail` is an error on the token at fault, with the message in its
//! `.stderr`. Regenerate with `TRYBUILD=overwrite cargo test -p sqlx-resilience-tests --test ui`,
//! and read the diff. Paths are relative to this package's directory, tests/.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
