//! The OpenAPI 3.1 document of the HTTP API, served at `/api/openapi.json`.
//!
//! Paths, methods, parameters and bodies come from the handlers' `#[utoipa::path]` attributes,
//! collected by the same route table that serves them ([`super::routes`]), so a route cannot be
//! served without being described. A handler's attribute names the statuses its own logic
//! answers; [`EdgeResponses`] adds the ones its extractors and the edge's layers answer, read
//! off what the operation declares: a request body can be malformed (400), late (408), too large
//! (413), not JSON (415) or mistyped (422); a path or query parameter can be undecodable (400) or
//! out of range (422); a token can be invalid (401); any request can be rate limited (429) and any
//! worker call can find no worker (503). Every error has the one [`ErrorBody`] shape.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

use crate::error::ErrorBody;

/// The name of the security scheme handlers put in their `security(...)`.
pub const TOKEN: &str = "token";

/// The document, rendered once at start-up.
#[derive(Clone)]
pub struct Document(Arc<String>);

impl Document {
    pub fn new(mut api: OpenApi) -> anyhow::Result<Self> {
        describe(&mut api);
        let mut doc = serde_json::to_value(&api)?;
        link(&mut doc);
        Ok(Document(Arc::new(serde_json::to_string_pretty(&doc)?)))
    }

    pub fn json(&self) -> &str {
        &self.0
    }
}

/// The title, version and security scheme around the paths the routes collected.
fn describe(api: &mut OpenApi) {
    api.info.title = "SoulChat HTTP API".to_owned();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api.info.description = Some(
        "Accounts, profiles, conversations and notifications. Authenticated calls send \
         `Authorization: Token <jwt>` (or `Bearer`). Errors are `{\"errors\": {\"<field>\": \
         [\"<problem>\"]}}`. Live updates travel over the WebSocket at `/ws`."
            .to_owned(),
    );
    api.info.license = None;
    api.info.contact = None;
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(TOKEN, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    components.schemas.insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    EdgeResponses.modify(api);
    for (_, operation) in operations(api) {
        // Handlers are named within their module (`users::delete`, `conversations::delete`);
        // operation ids must be unique, and generated clients name methods after them.
        if let (Some(tag), Some(id)) =
            (operation.tags.as_ref().and_then(|t| t.first()), operation.operation_id.as_mut())
        {
            *id = format!("{tag}_{id}");
        }
    }
}

fn operations(api: &mut OpenApi) -> impl Iterator<Item = (&str, &mut Operation)> {
    api.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        .map(move |operation| (path.as_str(), operation))
    })
}

/// Adds the statuses the edge answers before or around a handler, and gives every error
/// response the [`ErrorBody`] content.
struct EdgeResponses;

impl Modify for EdgeResponses {
    fn modify(&self, api: &mut OpenApi) {
        for (path, operation) in operations(api) {
            edge_statuses(path, operation);
        }
    }
}

fn edge_statuses(path: &str, op: &mut Operation) {
    let mut add = |status: u16, description: &str| {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| RefOr::T(error(description)));
    };
    let parameters = op.parameters.as_deref().unwrap_or_default();
    let in_path = parameters.iter().any(|p| p.parameter_in == ParameterIn::Path);
    let in_query = parameters.iter().any(|p| p.parameter_in == ParameterIn::Query);
    if op.request_body.is_some() {
        add(400, "The body is not JSON.");
        add(408, "The body did not arrive in time.");
        add(413, "The body is over 64 KiB.");
        add(415, "The body is not `application/json`.");
        add(422, "A field is missing, mistyped or invalid.");
    }
    if in_path || in_query {
        add(400, "A parameter does not decode.");
    }
    if in_query {
        add(422, "A parameter is out of range.");
    }
    if op.security.is_some() {
        add(401, "The token is missing, invalid, expired or revoked.");
    }
    let probe = matches!(path, "/healthz" | "/readyz");
    if !probe {
        add(429, "Too many requests: wait for `Retry-After` seconds.");
    }
    if path.starts_with("/api/") && path != "/api/openapi.json" {
        add(503, "No worker answered in time.");
    }
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(response) = response
            && (status.starts_with('4') || status.starts_with('5'))
        {
            if response.content.is_empty() {
                response.content.insert("application/json".to_owned(), error_content());
            }
            if status == "429" || status == "503" {
                let retry = HeaderBuilder::new()
                    .schema(i64::schema())
                    .description(Some("Seconds to wait before trying again."))
                    .build();
                response.headers.entry(header::RETRY_AFTER.to_string()).or_insert(retry);
            }
        }
    }
}

/// Where an answer's ids lead (OpenAPI links): a created conversation to its routes, a sent
/// message to its edit and delete, an added member to its role and removal. Clients and
/// stateful testers (schemathesis) follow them from a real resource instead of guessing ids.
/// One link: from an operation's answer with `status`, to operations, each parameter a runtime
/// expression (`$response.body#/...`, `$request.path.id`).
struct Link {
    from: &'static str,
    status: &'static str,
    to: &'static [&'static str],
    parameters: &'static [(&'static str, &'static str)],
}

const LINKS: &[Link] = &[
    Link {
        from: "conversations_create_group",
        status: "201",
        to: &[
            "conversations_get",
            "conversations_update",
            "conversations_delete",
            "conversations_add_member",
            "conversations_history",
            "conversations_send",
            "conversations_mark_read",
            "conversations_list_pins",
        ],
        parameters: &[("id", "$response.body#/conversation/id")],
    },
    Link {
        from: "conversations_open_direct",
        status: "201",
        to: &["conversations_get", "conversations_history", "conversations_send", "conversations_mark_read"],
        parameters: &[("id", "$response.body#/conversation/id")],
    },
    Link {
        from: "conversations_send",
        status: "201",
        to: &[
            "conversations_edit",
            "conversations_delete_message",
            "conversations_add_reaction",
            "conversations_remove_reaction",
            "conversations_pin",
            "conversations_unpin",
            "conversations_thread",
        ],
        parameters: &[("id", "$response.body#/message/conversation_id"), ("seq", "$response.body#/message/seq")],
    },
    Link {
        from: "conversations_add_member",
        status: "201",
        to: &["conversations_change_role", "conversations_remove_member"],
        parameters: &[("id", "$request.path.id"), ("username", "$response.body#/member/username")],
    },
];

/// Adds [`LINKS`] to the rendered document: utoipa 5.5 writes a link's `operationId` as
/// `operation_id`, which no OpenAPI reader understands.
fn link(doc: &mut serde_json::Value) {
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for operation in paths.values_mut().filter_map(|item| item.as_object_mut()).flat_map(|item| item.values_mut()) {
        for Link { from, status, to, parameters } in LINKS {
            if operation["operationId"] != *from {
                continue;
            }
            let links: serde_json::Map<String, serde_json::Value> = to
                .iter()
                .map(|target| {
                    let parameters: serde_json::Map<String, serde_json::Value> =
                        parameters.iter().map(|(name, value)| ((*name).to_owned(), (*value).into())).collect();
                    ((*target).to_owned(), serde_json::json!({ "operationId": target, "parameters": parameters }))
                })
                .collect();
            if let Some(response) = operation["responses"].get_mut(*status) {
                response["links"] = links.into();
            }
        }
    }
}

fn error(description: &str) -> Response {
    ResponseBuilder::new().description(description).content("application/json", error_content()).build()
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(ErrorBody::name())))).build()
}

/// `GET /api/openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "api",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json")))]
pub async fn document(Extension(doc): Extension<Document>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.json().to_owned())
}
