//! `nats/authorization.conf` is the broker's permissions as the contract generates them
//! (`soulchat_subjects::broker`, printed by `soulchat nats-config`): an operation, event or
//! consumer cannot change without the server configuration following.
//! `SOULCHAT_BLESS=1 cargo test -p soulchat-subjects --test nats_config` rewrites it.

use std::path::Path;

#[test]
fn committed_nats_configuration_matches_the_contract() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nats/authorization.conf");
    let rendered = soulchat_subjects::broker::committed_authorization();
    if std::env::var_os("SOULCHAT_BLESS").is_some() {
        std::fs::write(&path, &rendered).expect("writing nats/authorization.conf");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "nats/authorization.conf differs from subjects/: run SOULCHAT_BLESS=1 cargo test -p soulchat-subjects --test nats_config"
    );
}
