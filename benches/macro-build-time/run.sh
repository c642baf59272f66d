#!/usr/bin/env bash
# Build-time cost of #[db_op]: a crate of N functions, written three ways, compiled in the dev
# profile with every dependency already built.
#
#   plain   - the functions as plain sqlx code, no resilience (`conn` passed in)
#   op_api  - the same functions through the runtime's op API, written by hand
#   db_op   - the same functions annotated with #[db_op]
#
# Usage: benches/macro-build-time/run.sh [N=200] [RUNS=3]
#   VARIANTS="plain db_op"   only these variants
#   OPT_MACROS=1             with `[profile.dev.build-override] opt-level = 3` in the crate
#   FRESH=1                  each build from nothing (the crate's incremental cache removed),
#                            as a clean checkout or CI builds it; without it, each build
#                            after `touch` reuses the incremental cache of the one before
# Prints the median wall and CPU time of `cargo build` of the generated crate for each variant.
set -euo pipefail

N=${1:-200}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK="$ROOT/target/macro-build-time"
export CARGO_TARGET_DIR="$ROOT/target"

mkdir -p "$WORK/src"
cp "$ROOT/Cargo.lock" "$WORK/Cargo.lock"
cat > "$WORK/Cargo.toml" <<TOML
[package]
name = "macro-build-time"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[lib]
path = "src/lib.rs"

[dependencies]
sqlx-resilience = { path = "$ROOT" }
sqlx = { version = "0.9", default-features = false, features = ["runtime-tokio", "postgres", "tls-rustls"] }
TOML
if [ -n "${OPT_MACROS:-}" ]; then
    # The application's choice: its proc macros (ours, syn, quote) built optimised.
    printf '\n[profile.dev.build-override]\nopt-level = 3\n' >> "$WORK/Cargo.toml"
fi

generate() {
    local variant=$1
    python3 - "$variant" "$N" > "$WORK/src/lib.rs" <<'PY'
import sys
variant, n = sys.argv[1], int(sys.argv[2])
out = ["#![allow(dead_code, unused_variables, unused_imports)]",
       "use sqlx::PgConnection;",
       "use sqlx_resilience::{DbError, Runtime, db_op};",
       "sqlx_resilience::policies! {",
       "    pool http { max = 20 }",
       "    retry transient { attempts = 3 }",
       "    breaker stats { consecutive_failures = 5 }",
       "}",
       "pub struct Row { pub id: i64, pub name: String }"]
for i in range(n):
    query = f'"select id, name from t{i} where id = $1 and name = $2"'
    body = f"""    let (id, name): (i64, String) = sqlx::query_as({query})
        .bind(id)
        .bind(&name)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Row {{ id, name }})"""
    if variant == "plain":
        out.append(f"pub async fn op_{i}(conn: &mut PgConnection, id: i64, name: String) -> Result<Row, DbError> {{\n{body}\n}}")
    elif variant == "op_api":
        out.append(f"""pub async fn op_{i}(rt: &Runtime, id: i64, name: String) -> Result<Row, DbError> {{
    rt.op(concat!(module_path!(), "::op_{i}"))
        .pool("http")
        .timeout(std::time::Duration::from_secs(5))
        .retry("transient")
        .breaker("stats")
        .read_only(true)
        .run(|conn| {{
            let name = name.clone();
            Box::pin(async move {{
                let conn: &mut PgConnection = conn.as_mut();
{body}
            }})
        }})
        .await
}}""")
    else:
        out.append(f"""#[db_op(pool = "http", timeout = "5s", retry = "transient", breaker = "stats", read_only)]
pub async fn op_{i}(rt: &Runtime, conn: &mut PgConnection, id: i64, name: String) -> Result<Row, DbError> {{
{body}
}}""")
print("\n\n".join(out))
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for variant in ${VARIANTS:-plain op_api db_op}; do
    generate "$variant"
    (cd "$WORK" && cargo build --quiet --lib 2>/dev/null) # warm: dependencies, and this crate once
    walls=()
    cpus=()
    for _ in $(seq "$RUNS"); do
        touch "$WORK/src/lib.rs"
        if [ -n "${FRESH:-}" ]; then
            rm -rf "$ROOT"/target/debug/incremental/macro_build_time-*
        fi
        start=$(date +%s.%N)
        # CPU time of the build (user + system of rustc and cargo): steadier than wall time
        # on a busy machine.
        cpu=$( { TIMEFORMAT='%U %S'; time (cd "$WORK" && cargo build --quiet --lib); } 2>&1 | tail -1 | awk '{print $1 + $2}')
        end=$(date +%s.%N)
        walls+=("$(echo "$end - $start" | bc)")
        cpus+=("$cpu")
    done
    printf '%-7s N=%d  wall median %.2fs  cpu median %.2fs  (wall: %s)\n' "$variant" "$N" \
        "$(printf '%s\n' "${walls[@]}" | median)" "$(printf '%s\n' "${cpus[@]}" | median)" "${walls[*]}"
done
