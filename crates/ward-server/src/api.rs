//! Request handling: authentication, routing and the REST verbs on resources.
//!
//! Each verb reads the current object, applies the request through `ward_api::strategy`, and
//! writes with the revision it read (optimistic concurrency). Unconditional updates and patches
//! retry on a conflict; requests that carried a `resourceVersion` get 409.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::watch as signal;
use tracing::{info, warn};
use ward_api::ApiError;
use ward_api::resources::{RESOURCES, ResourceInfo};
use ward_api::schema::{self, FieldValidation};
use ward_api::strategy::{self, meta_str};
use ward_api::table::{self, IncludeObject};
use ward_storage::Revision;

use crate::auth::{Authenticated, Authenticator, UserInfo, service_account_user};
use crate::authz::{self, Authorizer, SecretFilter};
use crate::discovery;
use crate::error::{object_response, status_response, text_response};
use crate::http::Body;
use crate::request::{
    ACCEPTED_BODY_TYPES, ACCEPTED_PATCH_TYPES, BodyType, Output, Query, ResourcePath, Target,
    body_type, negotiate, parse_path,
};
use crate::satoken::{self, TokenSigner, TokenSubject};
use crate::store::{
    ObjectStore, SYSTEM_NAMESPACES, StoreWriteError, decode_continue, encode_continue,
    encode_inconsistent_continue,
};
use crate::watch;

/// The largest request body accepted (kube-apiserver's default is 3 MiB).
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// How often an unconditional write is retried after a conflict.
const WRITE_ATTEMPTS: usize = 8;
/// kube-apiserver's message for a continued list whose snapshot was compacted.
const INCONSISTENT_CONTINUE: &str = "The provided continue parameter is too old to display a \
    consistent list result. You can start a new list without the continue parameter, or use the \
    continue token in this response to retrieve the remainder of the results. Continuing with the \
    provided token results in an inconsistent list - objects that were created, modified, or \
    deleted between the time the first chunk was returned and now may show up in the list.";

/// Shared state of the server.
pub(crate) struct App {
    pub(crate) store: ObjectStore,
    watch_cache: crate::watchcache::WatchCache,
    auth: Authenticator,
    sa_tokens: crate::auth::TokenCache,
    pub(crate) authz: Arc<Authorizer>,
    signer: Arc<TokenSigner>,
    /// Upstream behaviour: list and watch reveal every Secret value (`--list-reveals-values`).
    list_reveals_values: bool,
    auditor: Option<Arc<crate::audit::Auditor>>,
    pub(crate) shutdown: signal::Receiver<bool>,
    addr: SocketAddr,
}

/// The outcome of a handler: a reply, or a `Status`.
type Reply = Result<Response<Body>, ApiError>;

impl App {
    #[allow(clippy::too_many_arguments)] // built once, in `http::listen`
    pub(crate) fn new(
        store: ObjectStore,
        auth: Authenticator,
        authz: Arc<Authorizer>,
        signer: Arc<TokenSigner>,
        list_reveals_values: bool,
        auditor: Option<crate::audit::Auditor>,
        shutdown: signal::Receiver<bool>,
        addr: SocketAddr,
    ) -> Self {
        App {
            watch_cache: crate::watchcache::WatchCache::start(store.clone(), shutdown.clone()),
            store,
            auth,
            sa_tokens: crate::auth::TokenCache::default(),
            authz,
            signer,
            list_reveals_values,
            auditor: auditor.map(Arc::new),
            shutdown,
            addr,
        }
    }

    /// RBAC for one request: the verb and attributes as kube-apiserver derives them. `Err` 403.
    fn authorize(
        &self,
        user: &UserInfo,
        target: &Target,
        req: &http::request::Parts,
        query: &Query,
        verb: &str,
    ) -> Result<String, ApiError> {
        let name = query
            .get("fieldSelector")
            .and_then(|f| ward_api::selector::FieldSelector::parse(f).ok())
            .and_then(|f| f.requires_exact_match("metadata.name").map(str::to_owned));
        let attributes = authz::attributes(user, target, verb, req.uri.path(), name.as_deref());
        self.authz.check(&attributes)
    }

    /// Applies `Impersonate-*` headers: the caller must hold `impersonate` on each user, group,
    /// uid and extra named (upstream's impersonation filter). Without headers, the caller.
    fn impersonate(&self, user: UserInfo, headers: &http::HeaderMap) -> Result<UserInfo, ApiError> {
        let values = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect()
        };
        let target_user = values("impersonate-user").into_iter().next();
        let groups = values("impersonate-group");
        let uid = values("impersonate-uid").into_iter().next();
        let mut extra: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (name, value) in headers {
            if let Some(key) = name.as_str().strip_prefix("impersonate-extra-")
                && let Ok(v) = value.to_str()
            {
                let key = crate::request::percent_decode(key);
                extra.entry(key).or_default().push(v.to_owned());
            }
        }
        let Some(target_user) = target_user else {
            if !groups.is_empty() || uid.is_some() || !extra.is_empty() {
                return Err(ApiError::bad_request(
                    "impersonating groups, a uid or extra fields requires Impersonate-User",
                ));
            }
            return Ok(user);
        };
        let caller = authz::rbac_user(&user);
        let check = |group: &str, resource: &str, ns: &str, name: &str| {
            let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
            let a = ward_rbac::Attributes::resource(caller.clone(), "impersonate", group, resource)
                .in_namespace(ns)
                .with_name(name)
                .with_subresource(sub);
            self.authz.check(&a).map(|_| ())
        };
        let mut new_groups = Vec::new();
        match target_user
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
        {
            Some((ns, name)) => {
                check("", "serviceaccounts", ns, name)?;
                new_groups.push("system:serviceaccounts".to_owned());
                new_groups.push(format!("system:serviceaccounts:{ns}"));
            }
            None => check("", "users", "", &target_user)?,
        }
        for g in &groups {
            check("", "groups", "", g)?;
        }
        if let Some(uid) = &uid {
            check("authentication.k8s.io", "uids", "", uid)?;
        }
        for (k, vals) in &extra {
            for v in vals {
                check("authentication.k8s.io", &format!("userextras/{k}"), "", v)?;
            }
        }
        new_groups.extend(groups);
        if target_user != "system:anonymous"
            && !new_groups.iter().any(|g| g == crate::auth::AUTHENTICATED)
        {
            new_groups.push(crate::auth::AUTHENTICATED.to_owned());
        }
        info!(caller = %user.username, as_user = %target_user, "impersonation");
        Ok(UserInfo {
            username: target_user,
            uid: uid.unwrap_or_default(),
            groups: new_groups,
            extra,
        })
    }

    /// Resolves what a credential proved into a user: a ServiceAccount token counts only while
    /// its ServiceAccount exists with the uid the token was issued for.
    async fn resolve(&self, proved: Authenticated) -> Option<UserInfo> {
        match proved {
            Authenticated::User(u) => Some(u),
            Authenticated::ServiceAccount(subject) => {
                let info = ward_api::resources::lookup("", "v1", "serviceaccounts")?;
                let (sa, _) = self
                    .store
                    .get(info, Some(&subject.namespace), &subject.name)
                    .await
                    .ok()??;
                (meta_str(&sa, "uid") == subject.uid).then(|| service_account_user(&subject))
            }
        }
    }

    /// Handles one request; never fails (errors become `Status` replies).
    pub(crate) async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        cert_user: Option<&UserInfo>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let mut audit = AuditState::default();
        let result = self.route(req, cert_user, peer, &mut audit).await;
        let (resp, status) = match result {
            Ok(r) => (r, None),
            Err(e) => (status_response(&e), Some(e.to_status())),
        };
        match (&self.auditor, audit.event.take()) {
            (Some(auditor), Some(event)) => {
                auditor
                    .finish(
                        event,
                        resp,
                        status.as_ref(),
                        audit.decision.as_deref(),
                        audit.long_running,
                    )
                    .await
            }
            _ => resp,
        }
    }

    async fn route(
        self: &Arc<Self>,
        req: Request<Incoming>,
        cert_user: Option<&UserInfo>,
        peer: SocketAddr,
        audit: &mut AuditState,
    ) -> Reply {
        let received = SystemTime::now();
        let (req, incoming) = req.into_parts();
        let target = parse_path(req.uri.path());
        let get_only = |m: &Method| {
            if m == Method::GET || m == Method::HEAD {
                Ok(())
            } else {
                Err(ApiError::method_not_allowed(m.as_str(), req.uri.path()))
            }
        };
        // Public, unauthenticated endpoints (kube's system:public-info-viewer).
        match &target {
            Target::Health => {
                get_only(&req.method)?;
                return Ok(text_response(StatusCode::OK, "ok"));
            }
            Target::KmsHealth => {
                get_only(&req.method)?;
                return Ok(match self.store.kms_health_checked().await {
                    Ok(()) => text_response(StatusCode::OK, "ok"),
                    Err(why) => {
                        let mut r = text_response(StatusCode::INTERNAL_SERVER_ERROR, "");
                        *r.body_mut() =
                            crate::error::full(format!("[-]kms-providers failed: {why}\n"));
                        r
                    }
                });
            }
            Target::Version => {
                get_only(&req.method)?;
                return Ok(object_response(
                    StatusCode::OK,
                    &discovery::version(),
                    Output::Json,
                ));
            }
            _ => {}
        }
        let user = match self
            .sa_tokens
            .lookup(cert_user, req.headers.get(header::AUTHORIZATION))
        {
            Some(cached) => Some(cached),
            None => {
                let proved = self
                    .auth
                    .authenticate(cert_user, req.headers.get(header::AUTHORIZATION));
                match proved {
                    Some(Authenticated::ServiceAccount(subject)) => {
                        let exp = subject.expires;
                        let user = self.resolve(Authenticated::ServiceAccount(subject)).await;
                        if let Some(u) = &user {
                            self.sa_tokens
                                .insert(req.headers.get(header::AUTHORIZATION), u, exp);
                        }
                        user
                    }
                    Some(p) => self.resolve(p).await,
                    None => None,
                }
            }
        };
        let (verb, _, _) = crate::request::labels(&req.method, &req.uri);
        let Some(user) = user else {
            if let Some(auditor) = &self.auditor {
                audit.event = auditor
                    .begin(
                        &req,
                        peer,
                        &UserInfo::default(),
                        None,
                        &target,
                        verb,
                        received,
                    )
                    .unwrap_or(None);
            }
            // Read a little of any body so the client receives the 401 rather than a reset.
            let _ = read_body(&req.headers, incoming, UNAUTHENTICATED_BODY_BYTES).await;
            return Err(ApiError::unauthorized());
        };
        // The body is read before any other refusal, so that a client always receives the
        // Status (an unread body makes HTTP/2 reset the stream).
        let (ct, body) = if matches!(req.method, Method::GET | Method::HEAD) {
            (None, Bytes::new())
        } else {
            read_body(&req.headers, incoming, MAX_BODY_BYTES).await?
        };
        let caller = user.clone();
        let user = self.impersonate(user, &req.headers)?;
        if let Some(auditor) = &self.auditor {
            let impersonated = (user.username != caller.username).then_some(&user);
            audit.event =
                auditor.begin(&req, peer, &caller, impersonated, &target, verb, received)?;
        }
        let query = Query::parse(req.uri.query());
        audit.decision = Some(self.authorize(&user, &target, &req, &query, verb)?);
        if let Some(event) = audit.event.as_mut() {
            crate::audit::Auditor::request_body(event, ct.as_deref(), &body);
        }
        audit.long_running = verb == "watch";
        let include = IncludeObject::parse(query.get("includeObject").unwrap_or_default())
            .ok_or_else(|| {
                ApiError::bad_request("includeObject must be None, Metadata or Object")
            })?;
        let accept = req
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let output = match target {
            // OpenAPI is served as JSON whatever the client prefers (kubectl offers protobuf first).
            Target::OpenApiRoot | Target::OpenApiGroupVersion { .. } => Output::Json,
            _ => negotiate(accept, include)?,
        };
        let plain = |o: Output| {
            if matches!(o, Output::Yaml) {
                o
            } else {
                Output::Json
            }
        };
        let ok = |v: Option<Value>, o: Output| {
            v.map(|v| object_response(StatusCode::OK, &v, o))
                .ok_or_else(ApiError::no_route)
        };
        match target {
            Target::ApiVersions | Target::ApiGroups => {
                get_only(&req.method)?;
                let core = target == Target::ApiVersions;
                match output {
                    Output::AggregatedDiscovery(v) => {
                        ok(Some(discovery::aggregated(core, v)), output)
                    }
                    o if core => ok(Some(discovery::api_versions(self.addr)), plain(o)),
                    o => ok(Some(discovery::api_groups()), plain(o)),
                }
            }
            Target::ResourceList { group, version } => {
                get_only(&req.method)?;
                ok(discovery::resource_list(&group, &version), plain(output))
            }
            Target::Group { group } => {
                get_only(&req.method)?;
                ok(discovery::api_group(&group), plain(output))
            }
            Target::OpenApiRoot => {
                get_only(&req.method)?;
                ok(Some(discovery::openapi_root()), Output::Json)
            }
            Target::Metrics => {
                get_only(&req.method)?;
                let mut resp = text_response(StatusCode::OK, "");
                *resp.body_mut() = crate::error::full(crate::metrics::render());
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                Ok(resp)
            }
            Target::OpenApiGroupVersion { group, version } => {
                get_only(&req.method)?;
                ok(
                    discovery::openapi_group_version(&group, &version),
                    Output::Json,
                )
            }
            Target::Resource(p) => self.resource(&req, p, query, output, user, ct, body).await,
            Target::Unknown | Target::Health | Target::KmsHealth | Target::Version => {
                Err(ApiError::no_route())
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // one request's parts, passed once
    async fn resource(
        self: &Arc<Self>,
        req: &http::request::Parts,
        p: ResourcePath,
        query: Query,
        output: Output,
        user: UserInfo,
        ct: Option<String>,
        body: Bytes,
    ) -> Reply {
        match (p.info.kind, p.subresource.as_deref(), &req.method) {
            (_, None, _) => {}
            ("ServiceAccount", Some("token"), &Method::POST) => {
                return self.token_request(&p, &query, output, ct, body).await;
            }
            ("ServiceAccount", Some("token"), m) => {
                return Err(ApiError::method_not_allowed(m.as_str(), req.uri.path()));
            }
            _ => return Err(ApiError::no_route()),
        }
        let item = p.name.is_some();
        let verb = match (req.method.clone(), item) {
            (Method::GET | Method::HEAD, true) => "get",
            (Method::GET | Method::HEAD, false) if query.flag("watch") => "watch",
            (Method::GET | Method::HEAD, false) => "list",
            (Method::POST, false) => "create",
            (Method::PUT, true) => "update",
            (Method::PATCH, true) => "patch",
            (Method::DELETE, true) => "delete",
            (Method::DELETE, false) => "deletecollection",
            (m, _) => return Err(ApiError::method_not_allowed(m.as_str(), req.uri.path())),
        };
        if !p.info.verbs.contains(&verb)
            || (verb == "create" && p.info.namespaced && p.namespace.is_none())
        {
            return Err(ApiError::method_not_allowed(
                req.method.as_str(),
                req.uri.path(),
            ));
        }
        let user_agent = req
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let ctx = Ctx {
            p,
            user_agent,
            query,
            output,
            user,
            verb,
        };
        if !ctx.p.info.persisted {
            return self.review(&ctx, ct, body);
        }
        match verb {
            "get" => self.get(&ctx).await,
            "list" => self.list(&ctx).await,
            "watch" => {
                watch::serve(
                    &self.store,
                    &self.watch_cache,
                    self.shutdown.clone(),
                    &ctx.p,
                    &ctx.query,
                    ctx.output,
                    self.secret_filter(&ctx),
                )
                .await
            }
            "create" => self.create(&ctx, ct, body, "Update").await,
            "update" => self.update(&ctx, ct, body).await,
            "patch" => self.patch(&ctx, ct, body).await,
            "delete" => self.delete(&ctx, body).await,
            _ => self.delete_collection(&ctx, body).await,
        }
    }

    // === read verbs ===

    async fn get(&self, ctx: &Ctx) -> Reply {
        let info = ctx.p.info;
        let name = ctx.name();
        let key = info.key(ctx.ns(), name);
        let obj = match self.watch_cache.get(info, key.as_bytes()).await {
            Some(Some(kv)) => self.store.decode(info, &kv, kv.mod_revision).await?,
            Some(None) => return Err(ApiError::not_found(info.group, info.resource, name)),
            None => {
                self.store
                    .get(info, ctx.ns(), name)
                    .await?
                    .ok_or_else(|| ApiError::not_found(info.group, info.resource, name))?
                    .0
            }
        };
        Ok(self.render_one(info, &obj, ctx.output, StatusCode::OK))
    }

    fn secret_filter(&self, ctx: &Ctx) -> SecretFilter {
        SecretFilter::new(
            self.authz.clone(),
            &ctx.user,
            ctx.p.info,
            self.list_reveals_values,
        )
    }

    fn render_one(
        &self,
        info: &ResourceInfo,
        obj: &Value,
        output: Output,
        code: StatusCode,
    ) -> Response<Body> {
        match output {
            Output::Table(include) => {
                let meta = json!({"resourceVersion": meta_str(obj, "resourceVersion")});
                let t = table::table(
                    info,
                    std::slice::from_ref(obj),
                    meta,
                    include,
                    true,
                    SystemTime::now(),
                );
                object_response(code, &t, output)
            }
            Output::PartialMetadata => object_response(code, &table::partial_metadata(obj), output),
            _ => object_response(code, obj, output),
        }
    }

    async fn list(&self, ctx: &Ctx) -> Reply {
        let info = ctx.p.info;
        let secrets = self.secret_filter(ctx);
        let filter = watch::Filter::from_query(info, &ctx.query)?;
        let limit = usize::try_from(ctx.query.number("limit")?.unwrap_or(0)).unwrap_or(usize::MAX);
        let prefix = info.key_prefix(ctx.ns());
        let continue_token = ctx.query.get("continue").filter(|c| !c.is_empty());
        let rv = ctx.query.get("resourceVersion").filter(|r| !r.is_empty());
        let rv_match = ctx
            .query
            .get("resourceVersionMatch")
            .filter(|r| !r.is_empty());
        let (mut revision, mut start) = match (continue_token, rv, rv_match) {
            (Some(_), Some(r), _) if r != "0" => {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            (Some(c), _, _) => {
                let (rev, key) = decode_continue(c, &info.key_prefix(None))?;
                if !key.starts_with(&prefix) {
                    return Err(ApiError::bad_request(
                        "continue key is not valid: it is for another collection",
                    ));
                }
                (rev, Some(key))
            }
            (None, Some(r), Some("Exact")) => (Some(parse_rv(r)?), None),
            (None, rv, Some("NotOlderThan")) if rv.is_none() => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            (None, Some(r), _) => {
                parse_rv(r)?;
                (None, None)
            }
            (None, None, Some(_)) => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            (None, None, None) => (None, None),
        };
        // Where a continued list resumes: if its snapshot has been compacted, the 410 carries an
        // inconsistent continue token from there, as kube-apiserver's does.
        let continued_from = start.clone().filter(|_| revision.is_some());
        let mut items = Vec::new();
        let mut continue_key = None;
        let mut remaining;
        loop {
            let want = if limit == 0 { 0 } else { limit - items.len() };
            // A consistent first page can come from the watch cache; later pages are read from
            // the store at the first page's revision.
            let cached = match (&start, revision) {
                (None, None) => self.watch_cache.list(info, prefix.as_bytes(), want).await,
                _ => None,
            };
            let page = match cached {
                Some(c) => {
                    let page = ward_storage::RangePage {
                        more: c.remaining > 0,
                        kvs: c.kvs,
                        remaining: c.remaining,
                        revision: c.revision,
                    };
                    self.store.decode_page(info, page).await?
                }
                None => self
                    .store
                    .list(info, ctx.ns(), start.take(), want, revision)
                    .await
                    .map_err(|e| match &continued_from {
                        Some(key) if e.code == 410 => {
                            ApiError::expired(INCONSISTENT_CONTINUE).with_continue(
                                encode_inconsistent_continue(key, &info.key_prefix(None)),
                            )
                        }
                        _ => e,
                    })?,
            };
            revision = Some(page.revision);
            items.extend(
                page.items
                    .into_iter()
                    .filter(|o| filter.matches(o))
                    .map(|mut o| {
                        secrets.apply(&mut o);
                        o
                    }),
            );
            remaining = page.remaining;
            match page.continue_key {
                Some(k) if limit != 0 && items.len() < limit => start = Some(k),
                Some(k) => {
                    continue_key = Some(k);
                    break;
                }
                None => break,
            }
        }
        let revision = revision.unwrap_or_default();
        let mut meta = json!({"resourceVersion": revision.0.to_string()});
        if let Some(k) = &continue_key {
            meta["continue"] = json!(encode_continue(revision, k, &info.key_prefix(None)));
            if filter.is_empty() {
                meta["remainingItemCount"] = json!(remaining);
            }
        }
        let body = match ctx.output {
            Output::Table(include) => {
                table::table(info, &items, meta, include, true, SystemTime::now())
            }
            Output::PartialMetadata => {
                let items: Vec<Value> = items.iter().map(table::partial_metadata).collect();
                json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                       "metadata": meta, "items": items})
            }
            _ => json!({"kind": info.list_kind(), "apiVersion": info.api_version(),
                        "metadata": meta, "items": items}),
        };
        Ok(object_response(StatusCode::OK, &body, ctx.output))
    }

    // === write verbs ===

    async fn create(&self, ctx: &Ctx, ct: Option<String>, body: Bytes, operation: &str) -> Reply {
        let info = ctx.p.info;
        let dry_run = ctx.query.dry_run()?;
        let mut obj = decode_body(ct.as_deref(), &body)?;
        let warnings = check_body(info, &mut obj, &ctx.query)?;
        let ns = ctx.ns();
        if let Some(ns) = ns {
            self.ensure_namespace_accepts(info, ns, meta_str(&obj, "name"))
                .await?;
        }
        let now = table::rfc3339(SystemTime::now());
        strategy::fill_create_metadata(
            info,
            &mut obj,
            ns,
            &uuid::Uuid::new_v4().to_string(),
            &now,
        )?;
        strategy::prepare_create(info, &mut obj)?;
        let manager = ctx.field_manager()?;
        if operation == "Apply" {
            let applied = obj.clone();
            ward_api::managed::record_apply(
                None,
                &mut obj,
                &applied,
                &manager,
                true,
                &info.api_version(),
                &now,
            )
            .map_err(|c| apply_conflict(info, &c))?;
        } else {
            ward_api::managed::record_update(None, &mut obj, &manager, &info.api_version(), &now);
        }
        self.authz.check_escalation(&ctx.user, info, &obj)?;
        if dry_run {
            return Ok(with_warnings(
                self.render_one(info, &obj, ctx.output, StatusCode::CREATED),
                &warnings,
            ));
        }
        let generated = !meta_str(&obj, "generateName").is_empty()
            && meta_str(&obj, "name").len() == meta_str(&obj, "generateName").len() + 5;
        let mut attempt = 0;
        let created = loop {
            match self.store.create(info, &obj).await {
                Ok(v) => break v,
                Err(e) if e.code == 409 && generated && attempt < 3 => {
                    attempt += 1;
                    let name = format!(
                        "{}{}",
                        meta_str(&obj, "generateName"),
                        strategy::random_suffix()
                    );
                    strategy::metadata_mut(&mut obj).insert("name".into(), json!(name));
                }
                Err(e) => return Err(e),
            }
        };
        info!(user = %ctx.user.username, verb = "create", resource = info.resource,
              namespace = ns.unwrap_or_default(), name = meta_str(&created, "name"), "object written");
        self.rbac_changed(info).await;
        Ok(with_warnings(
            self.render_one(info, &created, ctx.output, StatusCode::CREATED),
            &warnings,
        ))
    }

    async fn update(&self, ctx: &Ctx, ct: Option<String>, body: Bytes) -> Reply {
        let info = ctx.p.info;
        let name = ctx.name();
        let dry_run = ctx.query.dry_run()?;
        let mut obj = decode_body(ct.as_deref(), &body)?;
        let warnings = check_body(info, &mut obj, &ctx.query)?;
        check_identity(info, &obj, ctx.ns(), name)?;
        strategy::metadata_mut(&mut obj).insert("name".into(), json!(name));
        let precondition = match meta_str(&obj, "resourceVersion") {
            "" => None,
            rv => Some(parse_rv(rv)?),
        };
        for _ in 0..WRITE_ATTEMPTS {
            let (current, rev, stale) = self
                .store
                .get_with_stale(info, ctx.ns(), name)
                .await?
                .ok_or_else(|| ApiError::not_found(info.group, info.resource, name))?;
            if precondition.is_some_and(|p| p != rev) {
                return Err(ApiError::modified(info.group, info.resource, name));
            }
            let mut new = obj.clone();
            strategy::prepare_update(info, &current, &mut new)?;
            ward_api::managed::record_update(
                Some(&current),
                &mut new,
                &ctx.field_manager()?,
                &info.api_version(),
                &table::rfc3339(SystemTime::now()),
            );
            self.authz.check_escalation(&ctx.user, info, &new)?;
            if !stale && unchanged(&current, &new) {
                // As kube-apiserver: an update that changes nothing is not written, unless the
                // stored bytes are stale (then writing re-encrypts with the current key).
                return Ok(with_warnings(
                    self.render_one(info, &current, ctx.output, StatusCode::OK),
                    &warnings,
                ));
            }
            if dry_run {
                return Ok(with_warnings(
                    self.render_one(info, &new, ctx.output, StatusCode::OK),
                    &warnings,
                ));
            }
            match self.store.update(info, &new, rev).await {
                Ok(v) => {
                    self.after_write(ctx, "update").await;
                    return Ok(with_warnings(
                        self.render_one(info, &v, ctx.output, StatusCode::OK),
                        &warnings,
                    ));
                }
                Err(StoreWriteError::Conflict) if precondition.is_none() => continue,
                Err(StoreWriteError::Conflict) => {
                    return Err(ApiError::modified(info.group, info.resource, name));
                }
                Err(StoreWriteError::Api(e)) => return Err(e),
            }
        }
        Err(ApiError::modified(info.group, info.resource, name))
    }

    async fn patch(&self, ctx: &Ctx, ct: Option<String>, body: Bytes) -> Reply {
        let info = ctx.p.info;
        let name = ctx.name();
        let dry_run = ctx.query.dry_run()?;
        let kind = body_type(ct.as_deref())
            .filter(|t| {
                matches!(
                    t,
                    BodyType::MergePatch
                        | BodyType::JsonPatch
                        | BodyType::StrategicMergePatch
                        | BodyType::ApplyPatch
                )
            })
            .ok_or_else(|| {
                ApiError::unsupported_media_type(
                    ct.as_deref().unwrap_or_default(),
                    ACCEPTED_PATCH_TYPES,
                )
            })?;
        let patch: Value = match kind {
            BodyType::ApplyPatch => decode_object(BodyType::Yaml, &body)?,
            _ => serde_json::from_slice(&body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the patch could not be decoded as JSON: {}",
                    json_error_position(&e)
                ))
            })?,
        };
        if kind == BodyType::ApplyPatch {
            let manager = ctx.query.get("fieldManager").unwrap_or_default();
            if manager.is_empty() {
                return Err(ApiError::bad_request(
                    "PATCH, with application/apply-patch+yaml, requires the fieldManager parameter",
                ));
            }
            if ctx
                .query
                .get("force")
                .is_some_and(|f| f != "true" && f != "false")
            {
                return Err(ApiError::bad_request("force must be true or false"));
            }
        } else if kind != BodyType::JsonPatch && !patch.is_object() {
            return Err(ApiError::bad_request("the patch must be a JSON object"));
        }
        for _ in 0..WRITE_ATTEMPTS {
            let Some((current, rev, stale)) =
                self.store.get_with_stale(info, ctx.ns(), name).await?
            else {
                if kind == BodyType::ApplyPatch {
                    let mut obj = patch.clone();
                    check_identity(info, &obj, ctx.ns(), name)?;
                    strategy::metadata_mut(&mut obj).insert("name".into(), json!(name));
                    let body = Bytes::from(obj.to_string());
                    return self
                        .create(ctx, Some("application/json".into()), body, "Apply")
                        .await;
                }
                return Err(ApiError::not_found(info.group, info.resource, name));
            };
            let mut new = current.clone();
            match kind {
                BodyType::MergePatch => ward_api::patch::merge_patch(&mut new, &patch),
                BodyType::JsonPatch => {
                    ward_api::patch::json_patch(&mut new, &patch).map_err(|e| {
                        ApiError::invalid(
                            info.group,
                            info.kind,
                            name,
                            vec![ward_api::FieldError::invalid("", None, &e.to_string())],
                        )
                    })?
                }
                BodyType::StrategicMergePatch => {
                    ward_api::patch::strategic_merge_patch(&mut new, &patch, info.kind)
                        .map_err(|e| ApiError::bad_request(e.to_string()))?
                }
                _ => {
                    check_identity(info, &patch, ctx.ns(), name)?;
                    ward_api::patch::apply_patch(&mut new, &patch);
                }
            }
            let warnings = check_body(info, &mut new, &ctx.query)?;
            check_identity(info, &new, ctx.ns(), name)?;
            let precondition = meta_str(&new, "resourceVersion");
            if !precondition.is_empty() && precondition != rev.0.to_string() {
                return Err(ApiError::modified(info.group, info.resource, name));
            }
            let conditional = patch.pointer("/metadata/resourceVersion").is_some();
            strategy::prepare_update(info, &current, &mut new)?;
            let now = table::rfc3339(SystemTime::now());
            if kind == BodyType::ApplyPatch {
                let force = ctx.query.get("force") == Some("true");
                ward_api::managed::record_apply(
                    Some(&current),
                    &mut new,
                    &patch,
                    &ctx.field_manager()?,
                    force,
                    &info.api_version(),
                    &now,
                )
                .map_err(|c| apply_conflict(info, &c))?;
            } else {
                ward_api::managed::record_update(
                    Some(&current),
                    &mut new,
                    &ctx.field_manager()?,
                    &info.api_version(),
                    &now,
                );
            }
            self.authz.check_escalation(&ctx.user, info, &new)?;
            if !stale && unchanged(&current, &new) {
                return Ok(with_warnings(
                    self.render_one(info, &current, ctx.output, StatusCode::OK),
                    &warnings,
                ));
            }
            if dry_run {
                return Ok(with_warnings(
                    self.render_one(info, &new, ctx.output, StatusCode::OK),
                    &warnings,
                ));
            }
            match self.store.update(info, &new, rev).await {
                Ok(v) => {
                    self.after_write(ctx, "patch").await;
                    return Ok(with_warnings(
                        self.render_one(info, &v, ctx.output, StatusCode::OK),
                        &warnings,
                    ));
                }
                Err(StoreWriteError::Conflict) if !conditional => continue,
                Err(StoreWriteError::Conflict) => {
                    return Err(ApiError::modified(info.group, info.resource, name));
                }
                Err(StoreWriteError::Api(e)) => return Err(e),
            }
        }
        Err(ApiError::modified(info.group, info.resource, name))
    }

    async fn delete(self: &Arc<Self>, ctx: &Ctx, body: Bytes) -> Reply {
        let info = ctx.p.info;
        let name = ctx.name();
        let opts = DeleteOptions::parse(&body, &ctx.query)?;
        if info.kind == "Namespace" {
            return self.delete_namespace(ctx, opts).await;
        }
        for _ in 0..WRITE_ATTEMPTS {
            let (current, rev) = self
                .store
                .get(info, ctx.ns(), name)
                .await?
                .ok_or_else(|| ApiError::not_found(info.group, info.resource, name))?;
            opts.check(info, &current, rev)?;
            let uid = meta_str(&current, "uid").to_owned();
            if opts.dry_run {
                return Ok(object_response(
                    StatusCode::OK,
                    &ward_api::status::success_status(info.group, info.resource, name, Some(&uid)),
                    Output::Json,
                ));
            }
            match self.store.delete(info, ctx.ns(), name, Some(rev)).await {
                Ok(_) => {
                    self.after_write(ctx, "delete").await;
                    let s = ward_api::status::success_status(
                        info.group,
                        info.resource,
                        name,
                        Some(&uid),
                    );
                    return Ok(object_response(StatusCode::OK, &s, Output::Json));
                }
                Err(StoreWriteError::Conflict) if !opts.conditional() => continue,
                Err(StoreWriteError::Conflict) => {
                    return Err(ApiError::modified(info.group, info.resource, name));
                }
                Err(StoreWriteError::Api(e)) => return Err(e),
            }
        }
        Err(ApiError::modified(info.group, info.resource, name))
    }

    async fn delete_collection(&self, ctx: &Ctx, body: Bytes) -> Reply {
        let info = ctx.p.info;
        let secrets = self.secret_filter(ctx);
        let opts = DeleteOptions::parse(&body, &ctx.query)?;
        let filter = watch::Filter::from_query(info, &ctx.query)?;
        let page = self.store.list(info, ctx.ns(), None, 0, None).await?;
        let mut deleted = Vec::new();
        for obj in page.items.into_iter().filter(|o| filter.matches(o)) {
            if !opts.dry_run {
                let rev = Revision(
                    meta_str(&obj, "resourceVersion")
                        .parse()
                        .unwrap_or_default(),
                );
                match self
                    .store
                    .delete(
                        info,
                        Some(meta_str(&obj, "namespace")),
                        meta_str(&obj, "name"),
                        Some(rev),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(StoreWriteError::Conflict) => continue,
                    Err(StoreWriteError::Api(e)) if e.code == 404 => continue,
                    Err(StoreWriteError::Api(e)) => return Err(e),
                }
            }
            let mut obj = obj;
            secrets.apply(&mut obj);
            deleted.push(obj);
        }
        self.after_write(ctx, "deletecollection").await;
        let list = json!({"kind": info.list_kind(), "apiVersion": info.api_version(),
                          "metadata": {"resourceVersion": page.revision.0.to_string()}, "items": deleted});
        Ok(object_response(StatusCode::OK, &list, ctx.output))
    }

    // === ServiceAccount tokens ===

    /// `POST .../serviceaccounts/NAME/token`: a TokenRequest answered with a signed, expiring,
    /// audience-bound token for that ServiceAccount.
    async fn token_request(
        &self,
        p: &ResourcePath,
        query: &Query,
        output: Output,
        ct: Option<String>,
        body: Bytes,
    ) -> Reply {
        let info = p.info;
        let ns = p.namespace.as_deref().unwrap_or_default();
        let name = p.name.as_deref().unwrap_or_default();
        let request = decode_body(ct.as_deref(), &body)?;
        if let Some(k) = request
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty() && *k != "TokenRequest")
        {
            return Err(ApiError::bad_request(format!(
                "expected a TokenRequest, got {k}"
            )));
        }
        let (sa, _) = self
            .store
            .get(info, Some(ns), name)
            .await?
            .ok_or_else(|| ApiError::not_found(info.group, info.resource, name))?;
        let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
        let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => self.signer.api_audiences().to_vec(),
        };
        let seconds = match spec.get("expirationSeconds") {
            None | Some(Value::Null) => satoken::DEFAULT_EXPIRATION_SECONDS,
            Some(v) => v.as_u64().ok_or_else(|| {
                ApiError::bad_request("spec.expirationSeconds must be a positive integer")
            })?,
        };
        if seconds < satoken::MIN_EXPIRATION_SECONDS {
            return Err(ApiError::invalid(
                "authentication.k8s.io",
                "TokenRequest",
                name,
                vec![ward_api::FieldError::invalid(
                    "spec.expirationSeconds",
                    None,
                    "may not specify a duration less than 10 minutes",
                )],
            ));
        }
        let seconds = seconds.min(satoken::MAX_EXPIRATION_SECONDS);
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let subject = TokenSubject {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            uid: meta_str(&sa, "uid").to_owned(),
            expires: now + seconds,
        };
        let token = self
            .signer
            .issue(&subject, &audiences, now, seconds)
            .map_err(ApiError::internal)?;
        let expires = table::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(now + seconds));
        let reply = json!({
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
            "spec": {"audiences": audiences, "expirationSeconds": seconds,
                     "boundObjectRef": spec.get("boundObjectRef").cloned().unwrap_or(Value::Null)},
            "status": {"token": token, "expirationTimestamp": expires},
        });
        let _ = query;
        info!(
            verb = "create",
            resource = "serviceaccounts/token",
            namespace = ns,
            name,
            "token issued"
        );
        Ok(object_response(StatusCode::CREATED, &reply, plain(output)))
    }

    // === review APIs (computed, never stored) ===

    fn review(&self, ctx: &Ctx, ct: Option<String>, body: Bytes) -> Reply {
        let info = ctx.p.info;
        let mut obj = decode_body(ct.as_deref(), &body)?;
        check_body(info, &mut obj, &ctx.query)?;
        match info.kind {
            "SelfSubjectReview" => {
                let reply = json!({"kind": info.kind, "apiVersion": info.api_version(),
                                   "metadata": {"creationTimestamp": null},
                                   "status": {"userInfo": ctx.user.to_json()}});
                Ok(object_response(
                    StatusCode::CREATED,
                    &reply,
                    plain(ctx.output),
                ))
            }
            "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" => {
                self.access_review(ctx, info, obj)
            }
            "SelfSubjectRulesReview" => {
                let ns = obj
                    .pointer("/spec/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let resolved = self
                    .authz
                    .index()
                    .resolve_rules(&authz::rbac_user(&ctx.user), ns);
                let error = resolved.evaluation_error();
                let (resource_rules, non_resource_rules) = resolved.split();
                let rule = |r: &ward_rbac::PolicyRule| {
                    json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources,
                           "resourceNames": r.resource_names})
                };
                let status = json!({
                    "resourceRules": resource_rules.iter().map(rule).collect::<Vec<_>>(),
                    "nonResourceRules": non_resource_rules.iter()
                        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
                        .collect::<Vec<_>>(),
                    "incomplete": !error.is_empty(),
                    "evaluationError": error,
                });
                Ok(self.review_reply(info, &obj, status, ctx.output))
            }
            _ => Err(ApiError::no_route()),
        }
    }

    /// SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview: ask the
    /// authorizer about the described request.
    fn access_review(&self, ctx: &Ctx, info: &ResourceInfo, obj: Value) -> Reply {
        let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
        let invalid = |field: &str, why: &str| {
            ApiError::invalid(
                info.group,
                info.kind,
                "",
                vec![ward_api::FieldError::invalid(field, None, why)],
            )
        };
        let user = if info.kind == "SelfSubjectAccessReview" {
            authz::rbac_user(&ctx.user)
        } else {
            let strings = |f: &str| -> Vec<String> {
                spec.get(f)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let user = spec.get("user").and_then(Value::as_str).unwrap_or_default();
            let groups = strings("groups");
            if user.is_empty() && groups.is_empty() {
                return Err(invalid(
                    "spec.user",
                    "at least one of user or group must be specified",
                ));
            }
            let mut u = ward_rbac::UserInfo::new(user).with_groups(groups);
            u.uid = spec
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(extra) = spec.get("extra").and_then(Value::as_object) {
                for (k, v) in extra {
                    let vals = v
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    u.extra.insert(k.clone(), vals);
                }
            }
            u
        };
        let s = |v: &Value, f: &str| {
            v.get(f)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let attributes = match (
            spec.get("resourceAttributes"),
            spec.get("nonResourceAttributes"),
        ) {
            (Some(ra), None) => {
                let mut ns = s(ra, "namespace");
                if info.kind == "LocalSubjectAccessReview" {
                    let url_ns = ctx.p.namespace.clone().unwrap_or_default();
                    if !ns.is_empty() && ns != url_ns {
                        return Err(invalid(
                            "spec.resourceAttributes.namespace",
                            "must match metadata.namespace",
                        ));
                    }
                    ns = url_ns;
                }
                let mut a = ward_rbac::Attributes::resource(
                    user,
                    &s(ra, "verb"),
                    &s(ra, "group"),
                    &s(ra, "resource"),
                )
                .in_namespace(&ns)
                .with_name(&s(ra, "name"))
                .with_subresource(&s(ra, "subresource"));
                a.api_version = s(ra, "version");
                a
            }
            (None, Some(nra)) => {
                ward_rbac::Attributes::non_resource(user, &s(nra, "verb"), &s(nra, "path"))
            }
            _ => {
                return Err(invalid(
                    "spec",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
        };
        let decision = self.authz.authorize(&attributes);
        let status = json!({"allowed": decision.is_allow(), "reason": decision.reason()});
        Ok(self.review_reply(info, &obj, status, ctx.output))
    }

    /// A review echoed back with its computed `status`, as upstream returns it (201).
    fn review_reply(
        &self,
        info: &ResourceInfo,
        obj: &Value,
        status: Value,
        output: Output,
    ) -> Response<Body> {
        let mut reply = obj.clone();
        reply["kind"] = json!(info.kind);
        reply["apiVersion"] = json!(info.api_version());
        if reply.get("metadata").is_none() {
            reply["metadata"] = json!({"creationTimestamp": null});
        }
        reply["status"] = status;
        object_response(StatusCode::CREATED, &reply, plain(output))
    }

    // === namespaces ===

    async fn ensure_namespace_accepts(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let ns_info = namespaces();
        let Some((obj, _)) = self.store.get(ns_info, None, ns).await? else {
            return Err(ApiError::not_found("", "namespaces", ns));
        };
        if obj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") {
            return Err(ApiError::forbidden(
                info.group,
                info.resource,
                name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }

    async fn delete_namespace(self: &Arc<Self>, ctx: &Ctx, opts: DeleteOptions) -> Reply {
        let info = ctx.p.info;
        let name = ctx.name();
        if SYSTEM_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(
                "",
                "namespaces",
                name,
                "this namespace may not be deleted",
            ));
        }
        for _ in 0..WRITE_ATTEMPTS {
            let (mut current, rev) = self
                .store
                .get(info, None, name)
                .await?
                .ok_or_else(|| ApiError::not_found(info.group, info.resource, name))?;
            opts.check(info, &current, rev)?;
            if current.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") {
                return Ok(object_response(StatusCode::OK, &current, ctx.output));
            }
            if opts.dry_run {
                return Ok(object_response(StatusCode::OK, &current, ctx.output));
            }
            strategy::metadata_mut(&mut current).insert(
                "deletionTimestamp".into(),
                json!(table::rfc3339(SystemTime::now())),
            );
            current["status"] = json!({"phase": "Terminating"});
            match self.store.update(info, &current, rev).await {
                Ok(v) => {
                    self.after_write(ctx, "delete").await;
                    self.spawn_namespace_finalizer(name.to_owned());
                    return Ok(object_response(StatusCode::OK, &v, ctx.output));
                }
                Err(StoreWriteError::Conflict) => continue,
                Err(StoreWriteError::Api(e)) => return Err(e),
            }
        }
        Err(ApiError::modified(info.group, info.resource, name))
    }

    /// Finishes deletions of namespaces left `Terminating` by an earlier run.
    pub(crate) fn resume_namespace_deletions(self: &Arc<Self>) {
        let app = self.clone();
        tokio::spawn(async move {
            match app.store.list(namespaces(), None, None, 0, None).await {
                Ok(page) => {
                    for ns in page.items {
                        if ns.pointer("/status/phase").and_then(Value::as_str)
                            == Some("Terminating")
                        {
                            app.spawn_namespace_finalizer(meta_str(&ns, "name").to_owned());
                        }
                    }
                }
                Err(e) => warn!(error = %e, "could not list namespaces to resume deletions"),
            }
        });
    }

    /// Deletes everything in namespace `ns`, then the namespace itself.
    fn spawn_namespace_finalizer(self: &Arc<Self>, ns: String) {
        let app = self.clone();
        tokio::spawn(async move {
            for attempt in 0..50u64 {
                match app.finalize_namespace(&ns).await {
                    Ok(()) => {
                        info!(namespace = %ns, "namespace deleted");
                        return;
                    }
                    Err(e) => {
                        warn!(namespace = %ns, error = %e, "namespace deletion incomplete; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * (attempt + 1).min(25)))
                            .await;
                    }
                }
            }
        });
    }

    async fn finalize_namespace(&self, ns: &str) -> Result<(), ApiError> {
        for info in RESOURCES.iter().filter(|r| r.namespaced) {
            let page = self.store.list(info, Some(ns), None, 0, None).await?;
            for obj in page.items {
                match self
                    .store
                    .delete(info, Some(ns), meta_str(&obj, "name"), None)
                    .await
                {
                    Ok(_) => {}
                    Err(StoreWriteError::Api(e)) if e.code == 404 => {}
                    Err(StoreWriteError::Api(e)) => return Err(e),
                    Err(StoreWriteError::Conflict) => {
                        return Err(ApiError::modified(info.group, info.resource, ns));
                    }
                }
            }
        }
        match self.store.delete(namespaces(), None, ns, None).await {
            Ok(_) => Ok(()),
            Err(StoreWriteError::Api(e)) if e.code == 404 => Ok(()),
            Err(StoreWriteError::Api(e)) => Err(e),
            Err(StoreWriteError::Conflict) => Err(ApiError::modified("", "namespaces", ns)),
        }
    }

    /// Logs a write and, for RBAC objects, rebuilds the authorizer's index before the reply.
    async fn after_write(&self, ctx: &Ctx, verb: &str) {
        info!(user = %ctx.user.username, verb, resource = ctx.p.info.resource,
              namespace = ctx.ns().unwrap_or_default(), name = ctx.p.name.as_deref().unwrap_or_default(),
              "object written");
        self.rbac_changed(ctx.p.info).await;
    }

    async fn rbac_changed(&self, info: &ResourceInfo) {
        if info.kind == "ServiceAccount" {
            // A deleted or replaced ServiceAccount revokes its tokens at once here; other
            // replicas notice within the cache's lifetime.
            self.sa_tokens.clear();
        }
        if info.group == "rbac.authorization.k8s.io" && self.authz.rebuild().await.is_err() {
            warn!("RBAC index rebuild after a write failed; the watch will retry");
        }
    }
}

/// What auditing learns while a request is routed.
#[derive(Default)]
struct AuditState {
    event: Option<ward_audit::Event>,
    /// The authorizer's reason when the request was allowed.
    decision: Option<String>,
    long_running: bool,
}

/// What one resource request carries.
struct Ctx {
    p: ResourcePath,
    user_agent: String,
    query: Query,
    output: Output,
    user: UserInfo,
    #[allow(dead_code)] // kept for audit and RBAC, which come next
    verb: &'static str,
}

impl Ctx {
    /// `fieldManager`, or the User-Agent's program name as upstream derives it (`kubectl`).
    /// `Err` 400 beyond 128 characters.
    fn field_manager(&self) -> Result<String, ApiError> {
        let manager = match self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) => m.to_owned(),
            None => self
                .user_agent
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        if manager.chars().count() > 128 {
            return Err(ApiError::bad_request(
                "fieldManager must not be longer than 128 characters",
            ));
        }
        Ok(if manager.is_empty() {
            "unknown".to_owned()
        } else {
            manager
        })
    }

    fn ns(&self) -> Option<&str> {
        if self.p.info.namespaced {
            self.p.namespace.as_deref()
        } else {
            None
        }
    }

    fn name(&self) -> &str {
        self.p.name.as_deref().unwrap_or_default()
    }
}

/// The 409 of a server-side apply that would change fields other managers own.
fn apply_conflict(info: &ResourceInfo, conflicts: &[ward_api::managed::Conflict]) -> ApiError {
    let list: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with {:?}: {}", c.manager, c.field))
        .collect();
    let mut e = ApiError::conflict(info.group, info.resource, "", "");
    e.message = format!(
        "Apply failed with {} conflict{}: {}",
        conflicts.len(),
        if conflicts.len() == 1 { "" } else { "s" },
        list.join("\n")
    );
    e.causes = conflicts
        .iter()
        .map(|c| ward_api::FieldError {
            reason: "FieldManagerConflict",
            field: c.field.clone(),
            message: format!("conflict with {:?}", c.manager),
        })
        .collect();
    e
}

/// Whether an update leaves the object as it is (resourceVersion aside).
fn unchanged(current: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(current) == strip(new)
}

/// JSON or YAML: the encodings a non-list, non-table reply can take.
fn plain(o: Output) -> Output {
    if matches!(o, Output::Yaml) {
        o
    } else {
        Output::Json
    }
}

fn namespaces() -> &'static ResourceInfo {
    // The table in ward_api::resources always holds namespaces; a test checks it.
    RESOURCES
        .iter()
        .find(|r| r.kind == "Namespace")
        .unwrap_or(&RESOURCES[0])
}

/// Parsed `DeleteOptions` (body or query).
struct DeleteOptions {
    dry_run: bool,
    uid: Option<String>,
    resource_version: Option<Revision>,
}

impl DeleteOptions {
    fn parse(body: &[u8], query: &Query) -> Result<Self, ApiError> {
        let mut dry_run = query.dry_run()?;
        let mut uid = None;
        let mut resource_version = None;
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v: Value = serde_json::from_slice(body)
                .or_else(|_| serde_saphyr::from_slice(body))
                .map_err(|_| {
                    ApiError::bad_request("the DeleteOptions body could not be decoded")
                })?;
            if !v.is_object() {
                return Err(ApiError::bad_request(
                    "the DeleteOptions body must be an object",
                ));
            }
            match v.get("dryRun") {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(Value::Array(a)) if a.len() == 1 && a[0] == "All" => dry_run = true,
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "Invalid dryRun value: supported values: \"All\"",
                    ));
                }
            }
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str)
                && !["Orphan", "Background", "Foreground"].contains(&p)
            {
                return Err(ApiError::bad_request(format!(
                    "unsupported propagationPolicy {p:?}"
                )));
            }
            uid = v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(rv) = v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
            {
                resource_version = Some(parse_rv(rv)?);
            }
        }
        Ok(DeleteOptions {
            dry_run,
            uid,
            resource_version,
        })
    }

    fn conditional(&self) -> bool {
        self.uid.is_some() || self.resource_version.is_some()
    }

    fn check(&self, info: &ResourceInfo, obj: &Value, rev: Revision) -> Result<(), ApiError> {
        let name = meta_str(obj, "name");
        if let Some(uid) = &self.uid {
            let actual = meta_str(obj, "uid");
            if uid != actual {
                return Err(ApiError::conflict(
                    info.group,
                    info.resource,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                    ),
                ));
            }
        }
        if let Some(want) = self.resource_version
            && want != rev
        {
            return Err(ApiError::conflict(
                info.group,
                info.resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {}, ResourceVersion in object meta: {}",
                    want.0, rev.0
                ),
            ));
        }
        Ok(())
    }
}

fn parse_rv(rv: &str) -> Result<Revision, ApiError> {
    rv.parse::<u64>()
        .map(Revision)
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

/// Reads the body (at most [`MAX_BODY_BYTES`]) and its content type.
///
/// A larger body is read on and discarded (up to [`DRAIN_FACTOR`] times the limit, within
/// [`DRAIN_TIME`]) before the 413 reply, so that HTTP/2 and HTTP/1.1 clients still receive the
/// `Status` instead of a reset stream.
async fn read_body(
    headers: &http::HeaderMap,
    mut body: Incoming,
    limit: usize,
) -> Result<(Option<String>, Bytes), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut buf = bytes::BytesMut::new();
    let mut seen: u64 = 0;
    let too_large = declared.is_some_and(|n| n > limit as u64);
    let drain = async {
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
            if let Ok(data) = frame.into_data() {
                seen += data.len() as u64;
                if too_large || seen > limit as u64 {
                    buf.clear();
                    if seen > (limit as u64).saturating_mul(DRAIN_FACTOR) {
                        break;
                    }
                } else {
                    buf.extend_from_slice(&data);
                }
            }
        }
        Ok::<_, ApiError>(())
    };
    match tokio::time::timeout(DRAIN_TIME, drain).await {
        Ok(r) => r?,
        Err(_) if too_large || seen > limit as u64 => {}
        Err(_) => return Err(ApiError::bad_request("timed out reading the request body")),
    }
    if too_large || seen > limit as u64 {
        return Err(ApiError::too_large(limit));
    }
    Ok((ct, buf.freeze()))
}

/// How much body an unauthenticated request may send before its 401.
const UNAUTHENTICATED_BODY_BYTES: usize = 64 * 1024;
/// An oversized body is read and discarded up to this many times the limit before the reply.
const DRAIN_FACTOR: u64 = 4;
/// How long reading a body (or draining an oversized one) may take.
const DRAIN_TIME: Duration = Duration::from_secs(30);

/// Position of a JSON syntax error, without any of the input.
fn json_error_position(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// Decodes an object body (JSON, YAML or protobuf, by `Content-Type`): `Err` 415 for another
/// media type, 400 for an undecodable body.
fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let kind = body_type(content_type)
        .filter(|t| matches!(t, BodyType::Json | BodyType::Yaml | BodyType::Protobuf))
        .ok_or_else(|| {
            ApiError::unsupported_media_type(content_type.unwrap_or_default(), ACCEPTED_BODY_TYPES)
        })?;
    decode_object(kind, body)
}

/// Decodes a request body into a JSON object. Error messages never quote the body.
fn decode_object(kind: BodyType, body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let v: Value = match kind {
        BodyType::Protobuf => ward_api::protobuf::decode(body).map_err(|e| {
            ApiError::bad_request(format!("the protobuf body could not be decoded: {e}"))
        })?,
        BodyType::Yaml | BodyType::ApplyPatch => match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => serde_saphyr::from_slice(body).map_err(|_| {
                ApiError::bad_request("the body could not be decoded as YAML or JSON")
            })?,
        },
        _ => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body could not be decoded as JSON: {}",
                json_error_position(&e)
            ))
        })?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(v)
}

/// Checks apiVersion/kind against the URL and known fields against the kind's schema, applying
/// `fieldValidation`. `Ok` holds the warnings to send.
fn check_body(
    info: &ResourceInfo,
    obj: &mut Value,
    query: &Query,
) -> Result<Vec<String>, ApiError> {
    let fv = FieldValidation::parse(query.get("fieldValidation").unwrap_or_default()).ok_or_else(
        || ApiError::bad_request("fieldValidation must be one of Ignore, Warn or Strict"),
    )?;
    if let Some(kind) = obj
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        && kind != info.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the body ({kind}) does not match the kind of the URL ({})",
            info.kind
        )));
    }
    if let Some(av) = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        && av != info.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the body ({av}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    let Some(report) = schema::check(info.kind, obj) else {
        return Ok(Vec::new());
    };
    if !report.type_errors.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} in body could not be decoded: {}",
            info.kind,
            report.type_errors.join("; ")
        )));
    }
    let unknown: Vec<String> = report
        .unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    match fv {
        FieldValidation::Strict if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        ))),
        FieldValidation::Warn => Ok(unknown),
        _ => Ok(Vec::new()),
    }
}

/// The body's name and namespace must match the URL (an empty body name takes the URL's).
fn check_identity(
    info: &ResourceInfo,
    obj: &Value,
    ns: Option<&str>,
    name: &str,
) -> Result<(), ApiError> {
    let body_name = meta_str(obj, "name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = meta_str(obj, "namespace");
    if info.namespaced && !body_ns.is_empty() && Some(body_ns) != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - {}", Value::String(w.clone()));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}
