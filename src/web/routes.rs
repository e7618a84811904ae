//! The one route table. Each entry says who may call it; every `Access::Admin` route is wrapped in
//! the admin-session guard, and the tests walk this table to prove it.

use actix_web::http::Method;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{Route, guard, web};

use super::{
    access_limits, assets, auth, checks, dashboard, guest, keys, lang, logs, pages, prices, session, settings,
};
use crate::proxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (pages that enforce their own access mode included).
    Public,
    /// A signed-in admin only.
    Admin,
    /// A proxy access key (checked by the proxy).
    AccessKey,
}

pub struct RouteDef {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: fn() -> Route,
}

fn def(method: Method, path: &'static str, access: Access, handler: fn() -> Route) -> RouteDef {
    RouteDef { method, path, access, handler }
}

/// Every route of the application except static assets.
pub fn table() -> Vec<RouteDef> {
    use Access::*;
    vec![
        def(Method::GET, "/", Public, || web::route().to(guest::get_guest)),
        def(Method::GET, "/guest/keys", Public, || web::route().to(guest::get_guest_keys)),
        def(Method::GET, "/guest/export", Public, || web::route().to(guest::get_guest_export)),
        def(Method::POST, "/guest/login", Public, || web::route().to(guest::post_guest_login)),
        def(Method::GET, "/docs", Public, || web::route().to(guest::get_docs)),
        def(Method::GET, "/login", Public, || web::route().to(auth::get_login)),
        def(Method::POST, "/login", Public, || web::route().to(auth::post_login)),
        def(Method::POST, "/logout", Public, || web::route().to(auth::post_logout)),
        def(Method::GET, "/lang/{code}", Public, || web::route().to(lang::get_lang)),
        def(Method::GET, "/healthz", Public, || web::route().to(pages::get_healthz)),
        def(Method::GET, "/metrics", Public, || web::route().to(pages::get_metrics)),
        def(Method::GET, "/admin", Admin, || web::route().to(dashboard::get_dashboard)),
        def(Method::GET, "/admin/charts/{name}", Admin, || web::route().to(dashboard::get_chart)),
        def(Method::GET, "/admin/keys", Admin, || web::route().to(keys::get_keys)),
        def(Method::POST, "/admin/keys/import", Admin, || web::route().to(keys::post_import)),
        def(Method::GET, "/admin/keys/export", Admin, || web::route().to(keys::get_export)),
        def(Method::GET, "/admin/keys/export/count", Admin, || web::route().to(keys::get_export_count)),
        def(Method::POST, "/admin/keys/selection", Admin, || web::route().to(keys::post_selection)),
        def(Method::POST, "/admin/keys/bulk", Admin, || web::route().to(keys::post_bulk)),
        def(Method::POST, "/admin/keys/{id}/{action}", Admin, || web::route().to(keys::post_key_action)),
        def(Method::GET, "/admin/keys/{id}", Admin, || web::route().to(dashboard::get_key)),
        def(Method::GET, "/admin/logs", Admin, || web::route().to(logs::get_logs)),
        def(Method::GET, "/admin/logs/export", Admin, || web::route().to(logs::get_logs_export)),
        def(Method::GET, "/admin/settings", Admin, || web::route().to(settings::get_settings)),
        def(Method::GET, "/admin/settings/prices", Admin, || web::route().to(prices::get_prices)),
        def(Method::POST, "/admin/settings/prices", Admin, || web::route().to(prices::post_price)),
        def(Method::POST, "/admin/settings/prices/remove", Admin, || web::route().to(prices::post_remove)),
        def(Method::POST, "/admin/settings", Admin, || web::route().to(settings::post_settings)),
        def(Method::POST, "/admin/settings/account", Admin, || web::route().to(settings::post_account)),
        def(Method::POST, "/admin/checks", Admin, || web::route().to(checks::post_checks)),
        def(Method::GET, "/admin/checks/panel", Admin, || web::route().to(checks::get_panel)),
        def(Method::POST, "/admin/checks/stop", Admin, || web::route().to(checks::post_stop)),
        def(Method::POST, "/admin/checks/client-results", Admin, || web::route().to(checks::post_client_results)),
        def(Method::POST, "/admin/access-keys", Admin, || web::route().to(settings::post_access_key)),
        def(Method::POST, "/admin/access-keys/{id}/revoke", Admin, || {
            web::route().to(settings::post_access_key_revoke)
        }),
        def(Method::POST, "/admin/access-keys/{id}/limits", Admin, || {
            web::route().to(access_limits::post_access_key_limits)
        }),
        def(Method::POST, "/admin/access-keys/{id}/reset", Admin, || {
            web::route().to(access_limits::post_access_key_reset)
        }),
        def(Method::POST, "/admin/access-keys/{id}/share", Admin, || {
            web::route().to(access_limits::post_access_key_share)
        }),
        def(Method::POST, "/admin/access-keys/unshare", Admin, || {
            web::route().to(access_limits::post_access_key_unshare)
        }),
        // The gateway's own answers; everything else under /v1 is forwarded (`proxy_scope`).
        def(Method::GET, "/v1/models", AccessKey, || web::route().to(proxy::get_models)),
        def(Method::GET, "/v1/dashboard/billing/subscription", AccessKey, || {
            web::route().to(proxy::get_billing_subscription)
        }),
        def(Method::GET, "/v1/dashboard/billing/usage", AccessKey, || web::route().to(proxy::get_billing_usage)),
        def(Method::GET, "/v1/user/info", AccessKey, || web::route().to(proxy::get_user_info)),
    ]
}

/// Mounts the table and the assets. Every `GET` route answers `HEAD` too.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<&'static str> = Vec::new();
    let defs: Vec<RouteDef> = table().into_iter().filter(|d| d.access != Access::AccessKey).collect();
    for d in &defs {
        if !paths.contains(&d.path) {
            paths.push(d.path);
        }
    }
    for path in paths {
        let here: Vec<&RouteDef> = defs.iter().filter(|d| d.path == path).collect();
        let admin = here.iter().any(|d| d.access == Access::Admin);
        let mut resource = web::resource(path);
        for d in &here {
            resource = resource.route((d.handler)().method(d.method.clone()));
            // HEAD is answered like GET (same status and headers; actix drops the body).
            if d.method == Method::GET {
                resource = resource.route((d.handler)().method(Method::HEAD));
            }
        }
        resource = resource.default_service(web::to(pages::method_not_allowed));
        if admin {
            cfg.service(resource.wrap(from_fn(session::require_admin)));
        } else {
            cfg.service(resource);
        }
    }
    cfg.service(
        web::scope("/assets")
            .wrap(Compress::default())
            .route("/{path:.*}", web::route().guard(guard::Any(guard::Get()).or(guard::Head())).to(assets::get_asset)),
    );
}

/// `/v1` and everything under it, for the gateway: matched by prefix (no pattern), and mounted outside
/// the admin's session, origin and error-page layers, which a proxied request needs none of.
/// The table's access-key routes are mounted here; any other method on them is forwarded too.
pub fn proxy_scope() -> actix_web::Scope {
    let mut scope = web::scope("/v1");
    for d in table().into_iter().filter(|d| d.access == Access::AccessKey) {
        let path = d.path.strip_prefix("/v1").unwrap_or(d.path);
        scope = scope.service(
            web::resource(path)
                .route((d.handler)().method(d.method.clone()))
                .default_service(web::to(crate::proxy::forward)),
        );
    }
    scope.default_service(web::to(crate::proxy::forward))
}
