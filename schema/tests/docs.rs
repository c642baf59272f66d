//! The key tables in `docs/*.md` are the schema's: this test fails when a committed table
//! differs from what the schema renders.
//!
//! After changing a key, regenerate the tables and read the diff:
//!
//! ```text
//! SCHEMA_DOCS=overwrite cargo test -p sqlx-resilience-schema --test docs
//! ```

use std::path::PathBuf;

use sqlx_resilience_schema::docs;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the schema crate sits in the workspace")
        .to_path_buf()
}

#[test]
fn the_docs_tables_are_the_schemas() {
    let overwrite = std::env::var("SCHEMA_DOCS").is_ok_and(|v| v == "overwrite");
    let mut stale = Vec::new();
    let mut files: Vec<&str> = docs::BLOCKS.iter().map(|b| b.file).collect();
    files.dedup();
    for file in files {
        let path = workspace().join(file);
        let mut text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let original = text.clone();
        for block in docs::BLOCKS.iter().filter(|b| b.file == file) {
            let rendered = docs::render(block.name).expect("every block renders");
            let current = docs::current(&text, block.name)
                .unwrap_or_else(|e| panic!("{file}, block `{}`: {e}", block.name));
            if current != rendered {
                stale.push(format!("{file}: block `{}`", block.name));
                text = docs::replace(&text, block.name, &rendered).expect("found above");
            }
        }
        if overwrite && text != original {
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
    }
    assert!(
        overwrite || stale.is_empty(),
        "the docs differ from the schema in:\n  {}\nregenerate them with \
         `SCHEMA_DOCS=overwrite cargo test -p sqlx-resilience-schema --test docs` and read the \
         diff",
        stale.join("\n  ")
    );
}
