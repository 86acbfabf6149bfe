//! Every route of the admin API, registered in one place with the handler
//! that answers it; the same registration generates the OpenAPI document.
//!
//! | method | path (under `/api/v1`)                          | role   |
//! |--------|--------------------------------------------------|--------|
//! | GET    | /environments, /environments/{env}               | viewer |
//! | POST   | /environments                                    | admin  |
//! | PATCH  | /environments/{env}                              | admin  |
//! | GET    | /flag-sets, /flag-sets/{set}                     | viewer |
//! | POST   | /flag-sets                                       | editor |
//! | PUT, DELETE | /flag-sets/{set}                            | editor |
//! | GET    | /flag-sets/{set}/segments[/{key}]                | viewer |
//! | PUT, DELETE | /flag-sets/{set}/segments/{key}             | editor |
//! | GET    | /flags, /flags/{set}/{key}                       | viewer |
//! | POST   | /flags                                           | editor |
//! | PATCH, DELETE | /flags/{set}/{key}                        | editor |
//! | PUT    | /flags/{set}/{key}/environments/{env}            | editor |
//! | POST   | /flags/{set}/{key}/environments/{env}/toggle     | editor |
//! | POST   | /flags/{set}/{key}/environments/{env}/evaluate   | viewer |
//! | POST   | /flags/{set}/{key}/environments/{env}/validate   | viewer |
//! | POST   | /flags/{set}/{key}/copy, /archive, /restore      | editor |
//! | GET    | /audit                                           | viewer |
//! | GET    | /export                                          | viewer |
//! | POST   | /import                                          | editor |
//! | GET, POST | /tokens                                       | admin  |
//! | DELETE | /tokens/{name}                                   | admin  |
//! | GET, POST | /kill-switches                                | viewer / editor |
//! | GET, PUT, DELETE | /kill-switches/{name}                  | viewer / editor |
//! | GET    | /flags/{set}/{key}/kill-switch                   | viewer |
//! | POST   | /flags/{set}/{key}/environments/{env}/kill-switch/restore | editor |
//! | GET, POST | /integrations/alertmanager/receivers          | admin  |
//! | DELETE | /integrations/alertmanager/receivers/{name}      | admin  |
//! | POST   | /integrations/alertmanager (own secrets, see `handlers::alertmanager`) | none |
//! | GET    | /slos, /slos/{name}, /slos/{name}/status         | viewer |
//! | PUT, DELETE | /slos/{name} (stored SLOs; files are 409)   | editor |
//! | GET, POST | /users                                        | admin  |
//! | DELETE | /users/{name}                                    | admin  |
//! | POST   | /session (sign in)                               | none   |
//! | GET, DELETE | /session                                    | any    |
//! | GET    | /openapi.json                                    | none   |

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use axum::{Extension, Router};
use bytes::Bytes;
use http::{HeaderValue, header};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::handlers::{
    alertmanager, audit, documents, environments, evaluate, flag_sets, flags, kill_switch,
    segments, session, slos, tokens, users,
};
use crate::{AdminState, MAX_REQUEST_BODY, auth, docs, error};

type Routes = OpenApiRouter<Arc<AdminState>>;

/// The routes that need a token or a session.
fn authenticated() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(environments::list, environments::create))
        .routes(routes!(environments::read, environments::update))
        .routes(routes!(flag_sets::list, flag_sets::create))
        .routes(routes!(
            flag_sets::read,
            flag_sets::update,
            flag_sets::delete
        ))
        .routes(routes!(segments::list))
        .routes(routes!(segments::read, segments::put, segments::delete))
        .routes(routes!(flags::list, flags::create))
        .routes(routes!(flags::read, flags::update, flags::delete))
        .routes(routes!(flags::configure))
        .routes(routes!(flags::toggle))
        .routes(routes!(evaluate::evaluate))
        .routes(routes!(evaluate::validate))
        .routes(routes!(flags::copy))
        .routes(routes!(flags::archive))
        .routes(routes!(flags::restore))
        .routes(routes!(audit::list))
        .routes(routes!(documents::export))
        .routes(routes!(documents::import))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(kill_switch::list, kill_switch::create))
        .routes(routes!(
            kill_switch::read,
            kill_switch::update,
            kill_switch::delete
        ))
        .routes(routes!(kill_switch::flag_status))
        .routes(routes!(kill_switch::restore))
        .routes(routes!(
            alertmanager::list_receivers,
            alertmanager::create_receiver
        ))
        .routes(routes!(alertmanager::delete_receiver))
        .routes(routes!(slos::list))
        .routes(routes!(slos::read, slos::put, slos::delete))
        .routes(routes!(slos::status))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::delete))
}

/// The routes without an API token: the OpenAPI document, the Alertmanager
/// webhook (which checks its own secrets, never API tokens), and
/// `/session` (signing in needs no credentials, reading and ending a session
/// need the session).
fn public() -> Routes {
    OpenApiRouter::new()
        .routes(routes!(docs::document))
        .routes(routes!(alertmanager::webhook))
        .routes(routes!(session::login, session::read, session::logout))
}

/// Every route under `/api/v1`, the authenticated ones wrapped by `guard`.
fn assemble(
    guard: impl FnOnce(Routes) -> Routes,
) -> (Router<Arc<AdminState>>, utoipa::openapi::OpenApi) {
    let mut authenticated = authenticated();
    docs::describe_guard(authenticated.get_openapi_mut());
    let api = guard(authenticated).merge(public());
    let (router, mut document) = OpenApiRouter::with_openapi(docs::Frame::openapi())
        .nest("/api/v1", api)
        .split_for_parts();
    docs::describe_extractors(&mut document);
    (router, document)
}

/// The OpenAPI document of the admin API (as served at `/api/v1/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    assemble(|routes| routes).1
}

/// The admin API: every route under `/api/v1`, authenticated (but
/// `openapi.json`), with the body limit, the one error shape for unknown
/// routes and methods, and `Cache-Control: no-store` on every answer.
pub fn router(state: AdminState) -> Router {
    let state = Arc::new(state);
    let (router, document) = assemble(|routes| {
        routes.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
    });
    let document = serde_json::to_vec(&document).unwrap_or_else(|error| {
        tracing::error!(%error, "the OpenAPI document does not serialize");
        Vec::new()
    });
    router
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::no_method)
        .layer(Extension(docs::Document(Arc::new(Bytes::from(document)))))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

/// Admin answers are per-caller and change with every write: never cached.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
