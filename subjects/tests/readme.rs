//! The README's NATS and metrics tables are the contract rendered (`soulchat_subjects::catalog`):
//! a new operation, event, consumer, stream, bucket or metric cannot be left out of them.
//! `SOULCHAT_BLESS=1 cargo test -p soulchat-subjects --test readme` rewrites them.

use std::path::Path;

#[test]
fn readme_tables_match_the_contract() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("the README");
    for section in ["operations", "events", "consumers", "streams", "metrics"] {
        assert!(readme.contains(&format!("<!-- contract:{section} -->")), "the README lost its {section} table");
    }
    let rendered = soulchat_subjects::catalog::render_readme(&readme);
    if std::env::var_os("SOULCHAT_BLESS").is_some() {
        std::fs::write(&path, rendered).expect("rewriting the README");
        return;
    }
    assert!(
        rendered == readme,
        "the README's NATS or metrics tables differ from subjects/: run SOULCHAT_BLESS=1 cargo test -p soulchat-subjects --test readme"
    );
}
