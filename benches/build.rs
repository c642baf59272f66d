//! Generates the repositories of the `declared_ops_*` benches: one with 1 `#[db_op]`, one with
//! 1,000, so that the per-call cost can be compared between them.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for n in [1usize, 1000] {
        // Only `op_0` is called; the others are there to be declared.
        let mut code = String::from("#[allow(dead_code)]\nimpl Repo {\n");
        for i in 0..n {
            let _ = write!(
                code,
                "    #[sqlx_resilience::db_op(pool = \"main\", read_only)]\n    \
                 async fn op_{i}(&self, conn: &mut sqlx::PgConnection) -> \
                 Result<i32, sqlx_resilience::DbError> {{\n        let _ = conn;\n        \
                 Ok({i})\n    }}\n"
            );
        }
        code.push_str("}\n");
        let file = Path::new(&out).join(format!("declared_ops_{n}.rs"));
        std::fs::write(&file, code).expect("write the generated ops");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
