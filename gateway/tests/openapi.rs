//! The OpenAPI document is generated from the route table; `gateway/openapi.json` is its
//! committed copy, which the web client's types are built from and which reviewers read in a
//! diff. `SOULCHAT_BLESS=1 cargo test -p soulchat-gateway --test openapi` rewrites it.

use std::collections::BTreeSet;
use std::path::Path;

fn document() -> serde_json::Value {
    serde_json::from_str(&soulchat_gateway::openapi().expect("the document renders")).expect("the document is JSON")
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = soulchat_gateway::openapi().expect("the document renders") + "\n";
    if std::env::var_os("SOULCHAT_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("writing gateway/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "gateway/openapi.json differs from the routes: run SOULCHAT_BLESS=1 cargo test -p soulchat-gateway --test openapi"
    );
}

/// Every operation: an OpenAPI 3.1 operation with a success status and, for each error
/// status, the one error body.
#[test]
fn every_operation_documents_its_errors_in_the_one_shape() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 30, "{} paths", paths.len());
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            assert!(responses.keys().any(|s| s.starts_with('2') || s == "101"), "{method} {path}: no success status");
            for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('4') || s.starts_with('5')) {
                if path == "/readyz" {
                    continue;
                }
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
            if path.starts_with("/api/") && path != "/api/openapi.json" {
                for status in ["429", "503"] {
                    assert!(responses.contains_key(status), "{method} {path}: no {status}");
                }
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path}: no {status}");
                }
            }
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                assert!(responses.contains_key("401"), "{method} {path}: no 401");
            }
        }
    }
}

/// Operation ids are unique, and every link leads to one of them.
#[test]
fn operation_ids_are_unique_and_links_lead_somewhere() {
    let doc = document();
    let operations: Vec<&serde_json::Value> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("item").values())
        .collect();
    let ids: BTreeSet<&str> =
        operations.iter().map(|op| op["operationId"].as_str().expect("an operation id")).collect();
    assert_eq!(ids.len(), operations.len(), "duplicate operation ids");
    let mut links = 0;
    for op in &operations {
        for response in op["responses"].as_object().expect("responses").values() {
            for link in response["links"].as_object().into_iter().flat_map(|l| l.values()) {
                assert!(ids.contains(link["operationId"].as_str().expect("a target")), "{link}");
                links += 1;
            }
        }
    }
    assert!(links >= 10, "{links} links");
}

/// The README's route table lists exactly the documented routes.
#[test]
fn the_readme_lists_every_route() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README");
    let table = readme
        .split("| method and path |")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the README's HTTP route table");
    let listed: BTreeSet<String> = table
        .lines()
        .skip(2)
        .filter_map(|row| row.split('|').nth(1))
        .map(|cell| cell.trim().trim_matches('`').to_owned())
        .collect();
    let doc = document();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().expect("path item").keys().map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    assert_eq!(listed, documented, "README route table (left) against the document (right)");
}
