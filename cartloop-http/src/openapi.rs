//! The OpenAPI 3.1 document of the API, generated from the handlers' annotations
//! (`utoipa`). `GET /openapi.json` serves it; a test checks that it lists every route the
//! router serves.

use crate::error::ErrorBody;
use crate::{chats, directory, email, ops};
use axum::body::Bytes;
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cartloop",
        description = "Conversational-commerce messaging: operators write templated messages \
                       to a store's clients, emailed only during the client's active hours \
                       (SPEC §5, §7, §8). JSON in camelCase, timestamps RFC 3339 in UTC; \
                       every path also works without its trailing slash. Every error is \
                       `{\"error\":{\"code\",\"message\"}}`."
    ),
    paths(
        ops::healthz,
        ops::metrics,
        ops::openapi_json,
        ops::import_data,
        ops::import_data_post,
        chats::get_conversation,
        chats::post_chat_handler,
        chats::preview,
        chats::get_chat,
        chats::cancel,
        chats::retry,
        directory::create_store,
        directory::get_store,
        directory::patch_store,
        directory::create_operator,
        directory::create_client,
        directory::patch_client,
        directory::create_conversation,
        directory::list_conversations,
        directory::patch_conversation,
        email::unsubscribe_page,
        email::unsubscribe,
        email::inbound_email,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Conventions),
    security(("bearer" = [])),
    tags(
        (name = "conversations", description = "Conversations and their chats"),
        (name = "chats", description = "Writing, previewing, cancelling and retrying messages"),
        (name = "directory", description = "Stores, operators and clients"),
        (name = "email", description = "Unsubscribe links and clients' replies by email"),
        (name = "service", description = "Health, metrics, demo data, this document"),
    )
)]
struct ApiDoc;

/// What holds for every operation: the bearer scheme, and the error shape for every status
/// an operation does not list (401, 405, 408, 413, 500, 503, ...).
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>` when the server has an API token",
                    ))
                    .build(),
            ),
        );
        let error = ResponseBuilder::new()
            .description("Any other error: `{\"error\":{\"code\",\"message\"}}`")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            let operations: [&mut Option<Operation>; 5] = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("default".to_owned())
                    .or_insert_with(|| RefOr::T(error.clone()));
            }
        }
    }
}

/// The document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The document as JSON, built once (clones share the bytes).
pub(crate) fn document_json() -> Bytes {
    static JSON: OnceLock<Bytes> = OnceLock::new();
    JSON.get_or_init(|| {
        Bytes::from(
            document()
                .to_json()
                .expect("the OpenAPI document serializes"),
        )
    })
    .clone()
}
