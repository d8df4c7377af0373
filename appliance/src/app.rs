//! The whole HTTP surface: every domain's routes behind the common stack.
//! Assembled here, above the domains, so that `http` (which every
//! `routes.rs` uses) depends on none of them.

use axum::Router;

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(crate::http::health::routes())
        .merge(crate::installation::routes::routes())
        .merge(crate::auth::routes::routes())
        .merge(crate::organization::routes::routes())
        .merge(crate::resource::routes::routes())
        .merge(crate::auditlog::routes::routes())
        .merge(crate::sessionbroker::routes::routes())
        .merge(crate::sessiongateway::routes::routes())
        .merge(crate::dataplane::routes::routes());
    crate::http::with_common_layers(api, state)
}
