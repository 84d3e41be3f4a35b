//! The HTTP gateway: what a capability reaches, for a browser.
//!
//! It listens on a port of its own, never the API's: a page served here is
//! written by whoever shared its capability, and must not share an origin
//! with the dashboard, which holds the API token. It needs no token and
//! writes nothing: only `GET` and `HEAD`.
//!
//! - `/k/<cap>` and `/k/<cap>/<path>`: a file, or a folder. A folder's URL
//!   ends in `/` (a redirect adds it, so relative links resolve inside the
//!   folder); its `index.html` is served if it has one, else a plain HTML
//!   listing.
//! - `/n/<name>/<path>`: the same, inside what the name points at now
//!   (resolved as `kith name resolve` does: a record held here answers at
//!   once and is refreshed in the background). `Cache-Control` is a short
//!   `max-age` ([`NAMED`]): the name may point elsewhere soon.
//! - `/f/<peer id>/`: the feed of that peer as this node holds it (its
//!   own, or one it follows): posts newest first, replies under the post
//!   they answer, images inline through `/k/`; `/f/<peer id>/feed.atom` is
//!   the same as an Atom feed, for any feed reader. Short `max-age`.
//! - **One origin per site**: a request whose `Host` is
//!   `<name>.localhost[:port]` is served as `/n/<name>/<path>`, so each
//!   site is its own web origin (its cookies and storage apart from other
//!   sites'), as kubo's subdomain gateway does; browsers send every
//!   `*.localhost` to this machine. A `/n/` request to `localhost[:port]`
//!   is redirected there. Requests by IP address (`127.0.0.1`) are served
//!   on the path, with all sites sharing that origin.
//! - Files are streamed as their stripes arrive, never held whole.
//!   `Range: bytes=…` (one range) gets `206` with only the stripes it needs
//!   fetched (video and audio seek), a range past the end `416`. The
//!   `ETag` is the file's manifest id, so `If-None-Match` gets `304`;
//!   content under a capability never changes, so it is `immutable`.
//! - Media types come from the folder's listing, else the file's manifest,
//!   else the name's extension; `X-Content-Type-Options: nosniff` keeps a
//!   browser from guessing otherwise.
//! - Limits per client address (`gateway_limits.rs`): requests per
//!   second (`gateway_rate`, 20 by default when the gateway listens beyond
//!   loopback; `429` with `Retry-After` past it) and the largest file sent
//!   whole (`gateway_max_response`; `403` past it, a `Range` within it is
//!   served), bytes per second (`gateway_max_upload_per_client`), and an
//!   opt-in request log (`gateway_log`); no client address is logged
//!   unless the operator asks for it.
//! - **Only what is mirrored** (`gateway_serves = "mirrored"`): names this
//!   node mirrors and the capabilities of the trees they hold (and
//!   mirrored capabilities); anything else, and feeds, get `403`. The
//!   home page lists the mirrored sites.
//! - Errors are small HTML pages: `400` for a malformed capability or a path
//!   that tries to climb out (`..`, `%2e%2e`, `\`), `404` for what is not
//!   there, `502` when too few holders answer.

use std::ops::Range;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kith_base::capability::split_path;
use kith_base::{ByteSize, Capability};
use kith_node::config::GatewayServes;
use kith_node::{FeedItem, Folder, GetError, Name, NameOpError, Node, PathError, PeerId};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// `Cache-Control` for content under a capability: it never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` for content under a name: it may point elsewhere soon.
const NAMED: &str = "public, max-age=60";
/// The host name under which each name is a subdomain.
const SITE_DOMAIN: &str = "localhost";

/// What a path segment in a link must escape (RFC 3986's path segment).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// The gateway's routes.
pub(crate) fn router(node: Node) -> Router {
    let clients = crate::gateway_limits::ClientLimits::default();
    Router::new()
        .route("/", get(home))
        .route("/k/{*rest}", get(by_capability))
        .route("/n/{*rest}", get(by_name))
        .route("/f/{peer}/", get(feed_page))
        .route("/f/{peer}/feed.atom", get(feed_atom))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(node.clone(), subdomains))
        .layer(middleware::from_fn_with_state(
            (node.clone(), clients),
            crate::gateway_limits::enforce,
        ))
        .with_state(node)
}

async fn home(State(node): State<Node>) -> Response {
    if node.gateway_limits().serves == GatewayServes::Mirrored {
        let mut names: Vec<String> = mirrored(&node)
            .await
            .into_iter()
            .filter_map(|mirror| match mirror {
                Mirrored::Name(name) => Some(name.to_string()),
                Mirrored::Capability(_) => None,
            })
            .collect();
        names.sort();
        let list: String = names
            .iter()
            .map(|name| {
                let name = escape_html(name);
                format!("<li><a href=\"/n/{name}/\">{name}</a></li>")
            })
            .collect();
        return page(
            StatusCode::OK,
            "kith gateway",
            &format!("<p>This gateway serves the sites it mirrors:</p><ul>{list}</ul>"),
        );
    }
    page(
        StatusCode::OK,
        "kith gateway",
        "<p>Open a file or folder by its capability: <code>/k/kith:…/path</code>, \
         or a site by its name: <code>/n/&lt;name&gt;/path</code>.</p>",
    )
}

/// What this node mirrors, as a gateway that serves only that sees it.
enum Mirrored {
    Name(Name),
    Capability(Capability),
}

/// The names and capabilities mirrored here: each mirror's target, and
/// the tree it holds in full.
async fn mirrored(node: &Node) -> Vec<Mirrored> {
    let mirrors = node.names().mirrors().await.unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot read the mirrors: the gateway serves none");
        Vec::new()
    });
    let mut found = Vec::new();
    for mirror in mirrors {
        match mirror.target.parse::<Name>() {
            Ok(name) => found.push(Mirrored::Name(name)),
            Err(_) => found.extend(mirror.target.parse().ok().map(Mirrored::Capability)),
        }
        found.extend(
            mirror
                .held
                .and_then(|held| held.parse().ok())
                .map(Mirrored::Capability),
        );
    }
    found
}

/// What a request asks the gateway for, as `gateway_serves` sees it.
enum Wanted<'a> {
    Name(&'a Name),
    Capability(&'a Capability),
    Feed,
}

/// `Ok` if the gateway serves `wanted`: always, unless `gateway_serves =
/// "mirrored"`; then only what this node mirrors. Else the `403` page.
async fn may_serve(node: &Node, wanted: Wanted<'_>) -> Result<(), Response> {
    if node.gateway_limits().serves != GatewayServes::Mirrored {
        return Ok(());
    }
    let mirrors = mirrored(node).await;
    let found = mirrors.iter().any(|mirror| match (mirror, &wanted) {
        (Mirrored::Name(mirror), Wanted::Name(name)) => mirror == *name,
        (Mirrored::Capability(mirror), Wanted::Capability(capability)) => mirror == *capability,
        _ => false,
    });
    if found {
        return Ok(());
    }
    let what = match wanted {
        Wanted::Name(_) => "this name",
        Wanted::Capability(_) => "this capability",
        Wanted::Feed => "feeds",
    };
    Err(error_page(
        StatusCode::FORBIDDEN,
        &format!(
            "This gateway serves only the sites its operator mirrors, and {what} is not \
             among them. Open it with kith get, or through your own node's gateway."
        ),
    ))
}

async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "There is nothing at this address.")
}

/// `/k/<cap>[/<path>]`.
async fn by_capability(
    State(node): State<Node>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let (cap_text, path_text) = rest.split_once('/').unwrap_or((rest.as_str(), ""));
    let capability = match cap_text.parse::<Capability>() {
        Ok(capability) => capability,
        Err(error) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("This is not a valid capability: {error}"),
            );
        }
    };
    if let Err(refused) = may_serve(&node, Wanted::Capability(&capability)).await {
        return refused;
    }
    let site = Site {
        capability,
        cache_control: IMMUTABLE,
    };
    serve_path(&node, &site, path_text, &rest, &method, &headers).await
}

/// `/n/<name>[/<path>]`.
async fn by_name(
    State(node): State<Node>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let (name_text, path_text) = rest.split_once('/').unwrap_or((rest.as_str(), ""));
    let name = match name_text.parse::<Name>() {
        Ok(name) => name,
        Err(error) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("This is not a valid name: {error}"),
            );
        }
    };
    if let Some(port) = plain_site_host(&headers) {
        // Its own origin: http://<name>.localhost:<port>/<path>.
        // The path as it came, decoded by the router: encoded again, one
        // segment at a time.
        let path: Vec<String> = path_text
            .split('/')
            .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
            .collect();
        let location = format!("http://{name}.{SITE_DOMAIN}{port}/{}", path.join("/"));
        let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
        response
            .headers_mut()
            .insert(header::LOCATION, header_value(&location));
        return response;
    }
    serve_name(&node, name, path_text, &rest, &method, &headers).await
}

/// Middleware: a request to `<name>.localhost` is the site of that name,
/// whatever its path.
async fn subdomains(State(node): State<Node>, request: Request, next: Next) -> Response {
    let Some(name) = subdomain_name(request.headers()) else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD {
        let mut response = error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "The gateway only reads: GET and HEAD.",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let raw = request.uri().path();
    let Ok(path) = percent_decode_str(raw).decode_utf8() else {
        return error_page(StatusCode::BAD_REQUEST, "The path is not UTF-8.");
    };
    let path_text = path.strip_prefix('/').unwrap_or(&path);
    serve_name(&node, name, path_text, &path, &method, request.headers()).await
}

/// The name of a `<name>.localhost[:port]` host.
fn subdomain_name(headers: &HeaderMap) -> Option<Name> {
    let host = headers
        .get(header::HOST)?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    let host = host
        .rsplit_once(':')
        .map_or(host.as_str(), |(host, _)| host);
    let label = host
        .strip_suffix(SITE_DOMAIN)?
        .strip_suffix('.')
        .filter(|label| !label.contains('.'))?;
    label.parse().ok()
}

/// For a request to `localhost[:port]`, the `:port` part (empty without
/// one): such a request can be sent to a site's own origin.
fn plain_site_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            (name, format!(":{port}"))
        }
        _ => (host, String::new()),
    };
    name.eq_ignore_ascii_case(SITE_DOMAIN).then_some(port)
}

/// What `name` points at now, and `path_text` inside it.
async fn serve_name(
    node: &Node,
    name: Name,
    path_text: &str,
    request_path: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    if let Err(refused) = may_serve(node, Wanted::Name(&name)).await {
        return refused;
    }
    let resolved = match node.names().resolve(name, false).await {
        Ok(resolved) => resolved,
        Err(error @ NameOpError::NotFound { .. }) => {
            return error_page(StatusCode::NOT_FOUND, &error.to_string());
        }
        Err(error) => return error_page(StatusCode::BAD_GATEWAY, &error.to_string()),
    };
    let site = Site {
        capability: resolved.record.target().clone(),
        cache_control: NAMED,
    };
    serve_path(node, &site, path_text, request_path, method, headers).await
}

/// Posts of a feed held here, newest first.
const FEED_POSTS: usize = 200;

/// The posts of `peer`'s feed held here, or an error page.
async fn feed_items(node: &Node, peer: &str) -> Result<(PeerId, Vec<FeedItem>), Response> {
    may_serve(node, Wanted::Feed).await?;
    let peer: PeerId = peer
        .parse()
        .map_err(|_| error_page(StatusCode::BAD_REQUEST, "This is not a valid peer id."))?;
    let held = node
        .feeds()
        .list()
        .await
        .map_err(|error| error_page(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()))?;
    if !held.iter().any(|feed| feed.author == peer.to_string()) {
        return Err(error_page(
            StatusCode::NOT_FOUND,
            "This node does not hold that feed: it shows its own and the ones it follows.",
        ));
    }
    let items = node
        .feeds()
        .timeline(Some(peer), FEED_POSTS)
        .await
        .map_err(|error| error_page(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()))?;
    Ok((peer, items))
}

/// `/f/<peer>/`: a feed as a page.
async fn feed_page(State(node): State<Node>, Path(peer): Path<String>) -> Response {
    let (peer, items) = match feed_items(&node, &peer).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let ids: std::collections::HashSet<&str> = items.iter().map(|item| item.id.as_str()).collect();
    let mut body = format!(
        "<p><a href=\"./feed.atom\">Atom feed</a> · {} posts</p>",
        items.len()
    );
    // Top-level posts (and replies to posts not shown), each followed by
    // its replies, oldest reply first.
    for item in items
        .iter()
        .filter(|item| item.reply_to.as_deref().is_none_or(|to| !ids.contains(to)))
    {
        body.push_str(&post_html(item, "post"));
        for reply in items
            .iter()
            .rev()
            .filter(|reply| reply.reply_to.as_deref() == Some(item.id.as_str()))
        {
            body.push_str(&post_html(reply, "reply"));
        }
    }
    let mut response = page_with_images(StatusCode::OK, &format!("Feed of {peer}"), &body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NAMED));
    response
}

/// One post as HTML: time, text, images inline and other attachments as
/// links, through `/k/`.
fn post_html(item: &FeedItem, class: &str) -> String {
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(item.time_ms),
    );
    let mut html = format!(
        "<article class=\"{class}\" id=\"{id}\"><p><small>{when}</small></p><p>{text}</p>",
        id = escape_html(&item.id),
        text = escape_html(&item.text),
    );
    for (name, capability) in &item.attachments {
        let url = format!("/k/{}", utf8_percent_encode(capability, SEGMENT));
        let is_image =
            crate::files::media_type_of(name).is_some_and(|media| media.starts_with("image/"));
        if is_image {
            html.push_str(&format!(
                "<img src=\"{url}\" alt=\"{}\" style=\"max-width:100%\">",
                escape_html(name)
            ));
        } else {
            html.push_str(&format!(
                "<p><a href=\"{url}\">{}</a></p>",
                escape_html(name)
            ));
        }
    }
    html.push_str("</article>");
    html
}

/// `/f/<peer>/feed.atom`: a feed for feed readers (RFC 4287).
async fn feed_atom(State(node): State<Node>, Path(peer): Path<String>) -> Response {
    let (peer, items) = match feed_items(&node, &peer).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let time = |ms: u64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string()
    };
    let updated = items
        .first()
        .map_or_else(|| time(0), |item| time(item.time_ms));
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <id>urn:kith:feed:{peer}</id>\n<title>kith feed of {peer}</title>\n\
         <updated>{updated}</updated>\n<author><name>{peer}</name></author>\n\
         <link rel=\"alternate\" href=\"./\"/>\n"
    );
    for item in &items {
        let title: String = item.text.chars().take(80).collect();
        xml.push_str(&format!(
            "<entry>\n<id>urn:kith:entry:{id}</id>\n<title>{title}</title>\n\
             <updated>{updated}</updated>\n<link rel=\"alternate\" href=\"./#{id}\"/>\n\
             <content type=\"text\">{content}</content>\n</entry>\n",
            id = escape_html(&item.id),
            title = escape_html(&title),
            updated = time(item.time_ms),
            content = escape_html(&item.text),
        ));
    }
    xml.push_str("</feed>\n");
    let mut response = (StatusCode::OK, xml).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/atom+xml; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NAMED));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A page of the gateway's own that shows images from this gateway (a
/// feed's attachments), still with no scripts.
fn page_with_images(status: StatusCode, title: &str, body: &str) -> Response {
    let mut response = page(status, title, body);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"),
    );
    response
}

/// What a gateway URL reaches: the capability at its root, and how long a
/// browser may keep what is under it.
struct Site {
    capability: Capability,
    cache_control: &'static str,
}

/// `path_text` inside `site`; `request_path` is the URL's path as the
/// request had it, whose last segment a folder's redirect repeats.
async fn serve_path(
    node: &Node,
    site: &Site,
    path_text: &str,
    request_path: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let Site {
        capability,
        cache_control,
    } = site;
    let names = match split_path(path_text) {
        Ok(names) => names,
        Err(error) => return error_page(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let (target, listed_media) = match node.files().resolve(capability, &names).await {
        Ok(found) => found,
        Err(error) => return path_error(error),
    };
    if !target.is_folder() {
        let media = listed_media.or_else(|| {
            names
                .last()
                .and_then(|name| crate::files::media_type_of(name))
        });
        return serve_file(node, &target, media, cache_control, method, headers).await;
    }
    if !request_path.ends_with('/') {
        // Relative links in the folder's pages resolve against the URL: it
        // must end in '/'. The last segment, as the request had it, after
        // "./": a capability's "kith:" would otherwise read as a scheme.
        let last = request_path.rsplit('/').next().unwrap_or_default();
        let location = format!("./{}/", utf8_percent_encode(last, SEGMENT));
        let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
        if let Ok(location) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        return response;
    }
    let folder = match node.files().folder(&target).await {
        Ok(folder) => folder,
        Err(error) => return path_error(error),
    };
    if let Some(index) = folder
        .get("index.html")
        .filter(|entry| !entry.capability().is_folder())
    {
        let media = Some(index.media_type().unwrap_or("text/html").to_owned());
        return serve_file(
            node,
            index.capability(),
            media,
            cache_control,
            method,
            headers,
        )
        .await;
    }
    listing_page(&folder, &names, cache_control)
}

/// A file, whole or the one range asked for.
async fn serve_file(
    node: &Node,
    capability: &Capability,
    media: Option<String>,
    cache_control: &'static str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let download = match node.files().get(capability).await {
        Ok(download) => download,
        Err(error) => return get_error(error),
    };
    let size = download.manifest().file_size();
    let etag = format!("\"{}\"", capability.manifest());
    let media = media
        .or_else(|| download.manifest().meta().media_type().map(str::to_owned))
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let mut response = Response::new(Body::empty());
    let out = response.headers_mut();
    out.insert(header::ETAG, header_value(&etag));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if matches_etag(headers.get(header::IF_NONE_MATCH), &etag) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    out.insert(header::CONTENT_TYPE, header_value(&media));
    let range = match wanted_range(headers, &etag, size) {
        Ok(range) => range,
        Err(()) => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{size}")),
            );
            return response;
        }
    };
    let bytes = match &range {
        Some(range) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{size}", range.start, range.end - 1)),
            );
            range.end - range.start
        }
        None => size,
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes));
    if method == Method::HEAD {
        return response;
    }
    *response.body_mut() =
        crate::files::body_of(download.into_range_stream(range.unwrap_or(0..size)));
    response
}

/// The byte range a request asks for: `None` for the whole file (no
/// `Range`, several ranges, or an `If-Range` for other content), or an
/// error for a range that cannot be satisfied or read.
fn wanted_range(headers: &HeaderMap, etag: &str, size: u64) -> Result<Option<Range<u64>>, ()> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && if_range.as_bytes() != etag.as_bytes()
    {
        return Ok(None);
    }
    let text = value.to_str().map_err(|_| ())?;
    let ranges = http_range_header::parse_range_header(text)
        .and_then(|parsed| parsed.validate(size))
        .map_err(|_| ())?;
    match ranges.as_slice() {
        [one] => Ok(Some(*one.start()..one.end() + 1)),
        // Several ranges: the whole file is a valid answer (RFC 9110 §14.2).
        _ => Ok(None),
    }
}

/// Whether an `If-None-Match` names `etag` (or is `*`).
fn matches_etag(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(Ok(text)) = if_none_match.map(HeaderValue::to_str) else {
        return false;
    };
    text.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

/// A folder without an `index.html`: a plain listing with links.
fn listing_page(folder: &Folder, names: &[String], cache_control: &'static str) -> Response {
    let title = format!(
        "/{}",
        names
            .iter()
            .map(|name| format!("{name}/"))
            .collect::<String>()
    );
    // Links start with "./": a name such as "a:b" would read as a scheme.
    let mut body = String::from("<ul>");
    if !names.is_empty() {
        body.push_str("<li><a href=\"../\">../</a></li>");
    }
    for entry in folder.entries() {
        let slash = if entry.capability().is_folder() {
            "/"
        } else {
            ""
        };
        body.push_str(&format!(
            "<li><a href=\"./{}{slash}\">{}{slash}</a> <small>{}</small></li>",
            utf8_percent_encode(entry.name(), SEGMENT),
            escape_html(entry.name()),
            ByteSize(entry.size()),
        ));
    }
    body.push_str("</ul>");
    let mut response = page(StatusCode::OK, &title, &body);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

fn path_error(error: PathError) -> Response {
    match error {
        PathError::Get(error) => get_error(error),
        PathError::Missing { .. } => error_page(StatusCode::NOT_FOUND, &error.to_string()),
        PathError::NotAFolder { .. } => error_page(StatusCode::NOT_FOUND, &error.to_string()),
        PathError::ListingTooLarge { .. } | PathError::Listing { .. } => {
            error_page(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string())
        }
        _ => error_page(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

fn get_error(error: GetError) -> Response {
    let status = match &error {
        GetError::NotFound { .. } => StatusCode::NOT_FOUND,
        GetError::Lost { .. } => StatusCode::BAD_GATEWAY,
        GetError::Decode(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_page(status, &error.to_string())
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("error")
    );
    page(status, &title, &format!("<p>{}</p>", escape_html(message)))
}

/// A small HTML page of the gateway's own (listings and errors): no
/// scripts, no outside resources.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body><h1>{title}</h1>{body}</body></html>\n",
        title = escape_html(title),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Text made safe inside HTML. By hand: five characters, and a crate for
/// them would weigh more than the function.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A header value from text known to be visible ASCII (ids, numbers, media
/// types checked when stored); an empty value otherwise.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_range(range: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        headers
    }

    #[test]
    fn ranges_first_middle_last_suffix_and_invalid() {
        let etag = "\"x\"";
        let want = |range: &str| wanted_range(&with_range(range), etag, 1000);
        assert_eq!(want("bytes=0-0"), Ok(Some(0..1)));
        assert_eq!(want("bytes=500-599"), Ok(Some(500..600)));
        assert_eq!(want("bytes=999-"), Ok(Some(999..1000)));
        assert_eq!(want("bytes=-10"), Ok(Some(990..1000)));
        assert_eq!(want("bytes=900-5000"), Ok(Some(900..1000)));
        assert_eq!(want("bytes=1000-"), Err(()));
        assert_eq!(want("bytes=5-2"), Err(()));
        assert_eq!(want("pages=1-2"), Err(()));
        assert_eq!(want("bytes=0-1,5-6"), Ok(None));
        assert_eq!(wanted_range(&HeaderMap::new(), etag, 1000), Ok(None));
        let mut other = with_range("bytes=0-9");
        other.insert(header::IF_RANGE, HeaderValue::from_static("\"y\""));
        assert_eq!(wanted_range(&other, etag, 1000), Ok(None));
    }

    #[test]
    fn etags_match_exactly_weakly_or_by_star() {
        let etag = "\"abc\"";
        let matches =
            |value: &str| matches_etag(Some(&HeaderValue::from_str(value).unwrap()), etag);
        assert!(matches("\"abc\""));
        assert!(matches("\"zzz\", W/\"abc\""));
        assert!(matches("*"));
        assert!(!matches("\"abcd\""));
        assert!(!matches_etag(None, etag));
    }

    fn with_host(host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        headers
    }

    #[test]
    fn sites_are_subdomains_of_localhost_and_only_of_it() {
        let identity = kith_base::Identity::generate();
        let parsed = Name::from_key(identity.public_key()).unwrap();
        let name = parsed.to_string();
        for host in [
            format!("{name}.localhost"),
            format!("{name}.localhost:8080"),
            format!("{}.LOCALHOST:1", name.to_uppercase()),
        ] {
            assert_eq!(subdomain_name(&with_host(&host)), Some(parsed), "{host}");
        }
        for host in [
            "localhost:80".to_owned(),
            "127.0.0.1:80".to_owned(),
            format!("{name}.example.org"),
            format!("x.{name}.localhost"),
            "nonsense.localhost".to_owned(),
        ] {
            assert_eq!(subdomain_name(&with_host(&host)), None, "{host}");
        }
        assert_eq!(
            plain_site_host(&with_host("localhost:8080")),
            Some(":8080".into())
        );
        assert_eq!(
            plain_site_host(&with_host("localhost")),
            Some(String::new())
        );
        assert_eq!(plain_site_host(&with_host("127.0.0.1:8080")), None);
        assert_eq!(plain_site_host(&HeaderMap::new()), None);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
