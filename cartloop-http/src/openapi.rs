//! The OpenAPI 3.1 document's parts that hold for the whole API: its description, tags,
//! the shared error shape and the security scheme. The paths come from the route list
//! (`routes.rs`), which `GET /openapi.json` serves with these.

use crate::error::ErrorBody;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cartloop",
        description = "Conversational-commerce messaging: operators write templated messages \
                       to a store's clients, emailed only during the client's active hours; \
                       clients reply by email and unsubscribe with one click. JSON in \
                       camelCase, timestamps RFC 3339 in UTC; \
                       every path also works without its trailing slash. Every error is \
                       `{\"error\":{\"code\",\"message\"}}`."
    ),
    components(schemas(ErrorBody)),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "conversations", description = "Conversations and their chats"),
        (name = "chats", description = "Writing, previewing, cancelling and retrying messages"),
        (name = "directory", description = "Stores, operators and clients"),
        (name = "email", description = "Unsubscribe links and clients' replies by email"),
        (name = "service", description = "Health, metrics, demo data, this document"),
        (name = "access", description = "Signing in, API keys, who the caller is, the audit log"),
        (name = "webhooks", description = "Webhooks: events delivered to a store's systems, their delivery log"),
        (name = "events", description = "The live stream of events (Server-Sent Events)"),
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
                        "`Authorization: Bearer <credential>`: an API key (`ck_...`, made with \
                         `POST /api-keys/`) or the deployment token (`CARTLOOP_API_TOKEN`, an \
                         admin)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::credentials::SESSION_COOKIE,
                "An operator's session, from `POST /login` (HttpOnly). A request that changes \
                 something must also carry this server's `Origin`.",
            ))),
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

/// The document with these `paths` (the routes', see `routes.rs`), and what holds for
/// every operation.
pub(crate) fn document_with(
    (paths, schemas): (
        utoipa::openapi::path::Paths,
        Vec<(String, RefOr<utoipa::openapi::schema::Schema>)>,
    ),
) -> Document {
    let mut doc = ApiDoc::openapi();
    doc.paths = paths;
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    Conventions.modify(&mut doc);
    doc
}
