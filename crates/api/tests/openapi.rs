//! `crates/api/openapi.json`, the OpenAPI description of the API, against
//! the code and a running node (issue 22, item 6):
//!
//! - it parses as OpenAPI 3.0 (the `openapiv3` crate), every `$ref` in it
//!   resolves, and every operation has a summary and a 2xx answer;
//! - the routes it describes are the routes the code registers: every
//!   `.route("PATH", get(…).post(…))` in `crates/api/src/*.rs` (the
//!   gateway, a server of its own, aside), and the web app's files from the
//!   table in `dashboard.rs`;
//! - a running node serves it at `GET /v1/openapi.json`, and answers every
//!   GET that needs no parameter with a status, content type and JSON body
//!   it describes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use kith_node::DataDir;
use serde_json::Value;

/// The description, as checked in (and as the API serves it).
const SPEC: &str = include_str!("../openapi.json");

/// The HTTP methods an OpenAPI path item can hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Source files of the API crate that register no API route: the gateway
/// is a separate, read-only server with routes of its own.
const NOT_API: [&str; 1] = ["gateway.rs"];

fn spec() -> Value {
    serde_json::from_str(SPEC).expect("openapi.json is not JSON")
}

/// Every (method, path) the description has.
fn described(spec: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("no paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                found.insert((method.to_owned(), path.clone()));
            }
        }
    }
    found
}

/// Every operation: (method, path, the operation).
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("no paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.push((method.to_owned(), path.clone(), operation.clone()));
            }
        }
    }
    found
}

/// What a `$ref` (`#/components/…`) points at.
fn resolve<'a>(spec: &'a Value, reference: &str) -> Option<&'a Value> {
    spec.pointer(reference.strip_prefix('#')?)
}

/// `value`, or what it points at if it is a `{"$ref": …}`.
fn deref<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            resolve(spec, reference).unwrap_or_else(|| panic!("{reference} does not resolve"))
        }
        None => value,
    }
}

#[test]
fn the_description_is_valid_openapi_3_0() {
    let parsed: openapiv3::OpenAPI =
        serde_json::from_str(SPEC).expect("openapi.json is not a valid OpenAPI document");
    assert!(
        parsed.openapi.starts_with("3.0."),
        "OpenAPI {}",
        parsed.openapi
    );
    assert_eq!(parsed.info.title, "kith API");
    assert_eq!(
        parsed.info.version,
        env!("CARGO_PKG_VERSION"),
        "info.version is not the workspace's version"
    );
    assert_eq!(
        parsed.servers.first().map(|server| server.url.as_str()),
        Some("http://127.0.0.1:{port}")
    );
    let security = parsed.security.expect("no global security requirement");
    assert!(
        security
            .iter()
            .any(|requirement| requirement.contains_key("bearerAuth")),
        "the bearer token is not required globally"
    );
    let components = parsed.components.expect("no components");
    match components.security_schemes.get("bearerAuth") {
        Some(openapiv3::ReferenceOr::Item(openapiv3::SecurityScheme::HTTP { scheme, .. })) => {
            assert_eq!(scheme, "bearer");
        }
        other => panic!("bearerAuth is not an HTTP bearer scheme: {other:?}"),
    }
}

#[test]
fn every_operation_has_a_summary_a_2xx_answer_and_its_path_parameters() {
    let spec = spec();
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    for (method, path, operation) in operations(&spec) {
        let at = format!("{} {path}", method.to_uppercase());
        let summary = operation["summary"].as_str().unwrap_or_default();
        if summary.trim().is_empty() {
            problems.push(format!("{at}: no summary"));
        }
        match operation["operationId"].as_str() {
            Some(id) if ids.insert(id.to_owned()) => {}
            Some(id) => problems.push(format!("{at}: operationId {id} is used twice")),
            None => problems.push(format!("{at}: no operationId")),
        }
        let responses = operation["responses"].as_object();
        if !responses.is_some_and(|responses| responses.keys().any(|code| code.starts_with('2'))) {
            problems.push(format!("{at}: no 2xx answer"));
        }
        let declared: BTreeSet<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|parameter| deref(&spec, parameter))
            .filter(|parameter| parameter["in"] == "path")
            .filter_map(|parameter| parameter["name"].as_str().map(str::to_owned))
            .collect();
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        if declared != in_path {
            problems.push(format!(
                "{at}: path parameters {in_path:?}, described {declared:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_ref_resolves() {
    fn walk(spec: &Value, value: &Value, at: &str, broken: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref") {
                    let reference = reference.as_str().unwrap_or_default();
                    if !reference.starts_with("#/") || resolve(spec, reference).is_none() {
                        broken.push(format!("{at}: {reference}"));
                    }
                }
                for (key, inner) in map {
                    walk(spec, inner, &format!("{at}/{key}"), broken);
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    walk(spec, inner, &format!("{at}/{i}"), broken);
                }
            }
            _ => {}
        }
    }
    let spec = spec();
    let mut broken = Vec::new();
    walk(&spec, &spec, "#", &mut broken);
    assert!(
        broken.is_empty(),
        "$refs that resolve to nothing:\n{}",
        broken.join("\n")
    );
    // A discriminator's mapping points at schemas too.
    let text = SPEC;
    for part in text.split("\"#/components/").skip(1) {
        let name = part.split('"').next().unwrap_or_default();
        assert!(
            resolve(&spec, &format!("#/components/{name}")).is_some(),
            "#/components/{name} does not resolve"
        );
    }
}

#[test]
fn the_description_has_every_route_of_the_code_and_no_other() {
    let in_code = routes_in_code(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let in_spec = described(&spec());
    let show = |routes: Vec<&(String, String)>| {
        routes
            .iter()
            .map(|(method, path)| format!("  {} {path}", method.to_uppercase()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let undescribed: Vec<_> = in_code.difference(&in_spec).collect();
    let gone: Vec<_> = in_spec.difference(&in_code).collect();
    assert!(
        undescribed.is_empty() && gone.is_empty(),
        "crates/api/openapi.json is out of step with the routes.\n\
         In the code but not described:\n{}\n\
         Described but not in the code:\n{}",
        show(undescribed),
        show(gone)
    );
    assert!(
        in_code.len() > 30,
        "only {} routes found: is the scanner still reading the code?",
        in_code.len()
    );
}

#[test]
fn the_scanner_reads_chained_multi_line_and_commented_routes() {
    let source = r#"
        // .route("/v1/commented", get(nothing))
        Router::new()
            .route("/v1/a", get(a).post(b)) // a comment with "quotes" and (parens
            .route(
                "/v1/folder",
                post(put_folder).layer(DefaultBodyLimit::max(MAX)),
            )
            .route("/v1/items/{id}", axum::routing::delete(remove))
            .route_layer(something(get(x)))
            .with_state(state);
        let c = '"';
        let d = ')';
    "#;
    let mut found = BTreeSet::new();
    let dynamic = scan(source, &mut found).unwrap();
    let expected: BTreeSet<(String, String)> = [
        ("get", "/v1/a"),
        ("post", "/v1/a"),
        ("post", "/v1/folder"),
        ("delete", "/v1/items/{id}"),
    ]
    .iter()
    .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
    .collect();
    assert_eq!(found, expected);
    assert!(dynamic.is_empty());
    assert!(scan(r#".route("/v1/x", any(handler))"#, &mut BTreeSet::new()).is_err());
    assert!(scan(r#".nest("/v1", inner)"#, &mut BTreeSet::new()).is_err());
}

/// Every (method, path) that the API crate's sources register.
fn routes_in_code(src: &Path) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut problems = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if NOT_API.contains(&name.as_str()) {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        match scan(&source, &mut routes) {
            Ok(dynamic) => {
                for (methods, first) in dynamic {
                    if name == "dashboard.rs" {
                        // The web app's files: one `get` route per row of
                        // the `FILES` table, by the row's path.
                        for path in dashboard_paths(&source) {
                            for method in &methods {
                                routes.insert((method.clone(), path.clone()));
                            }
                        }
                    } else {
                        problems.push(format!(
                            "{name}: a route whose path is not a string literal ({first}); \
                             teach tests/openapi.rs where its paths come from"
                        ));
                    }
                }
            }
            Err(problem) => problems.push(format!("{name}: {problem}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    routes
}

/// The paths in `dashboard.rs`'s `FILES` table.
fn dashboard_paths(source: &str) -> Vec<String> {
    let start = source
        .find("const FILES")
        .expect("dashboard.rs has no FILES table");
    let table = &source[start..];
    let table = &table[..table.find("];").expect("the FILES table does not end")];
    let paths: Vec<String> = table
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| literal.starts_with('/'))
        .map(str::to_owned)
        .collect();
    assert!(!paths.is_empty(), "no paths in dashboard.rs's FILES table");
    paths
}

/// `source` without its comments; strings and characters kept as they are.
fn without_comments(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            let end = string_end(&chars, i);
            out.extend(&chars[i..end]);
            i = end;
        } else if c == '\'' {
            let end = char_end(&chars, i);
            out.extend(&chars[i..end]);
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Where the string literal opening at `start` ends (just past its quote).
fn string_end(chars: &[char], start: usize) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// Where a `'` at `start` ends: past a character literal (`'x'`, `'\n'`),
/// or just past the `'` of a lifetime.
fn char_end(chars: &[char], start: usize) -> usize {
    if chars.get(start + 1) == Some(&'\\') {
        let mut i = start + 2;
        while i < chars.len() && chars[i] != '\'' {
            i += 1;
        }
        return i + 1;
    }
    if chars.get(start + 2) == Some(&'\'') {
        return start + 3;
    }
    start + 1
}

/// Where the bracket opening at `open` closes (its index), with strings
/// and characters read over.
fn closing(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            '"' => {
                i = string_end(chars, i);
                continue;
            }
            '\'' => {
                i = char_end(chars, i);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The method routers' constructors, by the method they route.
fn method_of(function: &str) -> Option<&'static str> {
    let method = function.strip_suffix("_service").unwrap_or(function);
    METHODS
        .into_iter()
        .chain(["connect"])
        .find(|known| *known == method)
}

/// What a method router may be wrapped in, beside its methods.
const MODIFIERS: [&str; 6] = [
    "layer",
    "route_layer",
    "with_state",
    "fallback",
    "fallback_service",
    "handle_error",
];

/// What the route scanner cannot read, said so that the reader knows
/// which registration to look at.
#[derive(Debug, thiserror::Error)]
enum ScanError {
    /// A registration the scanner does not follow (`.nest(`, …).
    #[error("`{0}` registers routes the scanner in tests/openapi.rs cannot read")]
    Unreadable(&'static str),
    /// A call in a method router that is neither a method nor a modifier.
    #[error("`{0}(…)` is not a method the scanner in tests/openapi.rs knows")]
    UnknownCall(String),
    /// Brackets that do not close, or a `.route(` without two arguments.
    #[error("{0}")]
    Malformed(&'static str),
    /// A `.route(` whose method router routes no method.
    #[error(".route({0}, …) with no method")]
    NoMethod(String),
    /// A problem inside the method router of `.route(PATH, …)`.
    #[error(".route({path}, …): {problem}")]
    InRoute {
        /// The route's first argument, as written.
        path: String,
        /// What is wrong in its method router.
        problem: Box<ScanError>,
    },
}

/// Adds every `.route("PATH", METHODS)` of `source` to `routes`; answers
/// the routes whose path is not a string literal, as (methods, the path's
/// text). An error for what the scanner cannot read.
fn scan(
    source: &str,
    routes: &mut BTreeSet<(String, String)>,
) -> Result<Vec<(Vec<String>, String)>, ScanError> {
    let text = without_comments(source);
    for unreadable in [".nest(", ".nest_service(", ".route_service("] {
        if text.contains(unreadable) {
            return Err(ScanError::Unreadable(unreadable));
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let mut dynamic = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(".route(") {
        let at = from + found;
        from = at + ".route(".len();
        // `text` is ASCII up to here in practice; count chars to be safe.
        let open = text[..at].chars().count() + ".route".len();
        let close =
            closing(&chars, open).ok_or(ScanError::Malformed("a .route( that does not close"))?;
        let args: Vec<char> = chars[open + 1..close].to_vec();
        let comma =
            top_level_comma(&args).ok_or(ScanError::Malformed("a .route( with one argument"))?;
        let first: String = args[..comma].iter().collect::<String>().trim().to_owned();
        let rest = &args[comma + 1..];
        let methods = methods_in(rest).map_err(|problem| ScanError::InRoute {
            path: first.clone(),
            problem: Box::new(problem),
        })?;
        if methods.is_empty() {
            return Err(ScanError::NoMethod(first));
        }
        match first
            .strip_prefix('"')
            .and_then(|path| path.strip_suffix('"'))
        {
            Some(path) => {
                for method in methods {
                    routes.insert((method, path.to_owned()));
                }
            }
            None => dynamic.push((methods, first)),
        }
    }
    Ok(dynamic)
}

/// The index of the first comma of `args` outside brackets and strings.
fn top_level_comma(args: &[char]) -> Option<usize> {
    let mut i = 0;
    while i < args.len() {
        match args[i] {
            ',' => return Some(i),
            '(' | '[' | '{' => i = closing(args, i)?,
            '"' => {
                i = string_end(args, i);
                continue;
            }
            '\'' => {
                i = char_end(args, i);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The methods a method-router expression (`get(a).post(b).layer(…)`)
/// routes: the calls at its top level.
fn methods_in(expression: &[char]) -> Result<Vec<String>, ScanError> {
    let mut methods = Vec::new();
    let mut i = 0;
    while i < expression.len() {
        let c = expression[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < expression.len() && (expression[i].is_alphanumeric() || expression[i] == '_')
            {
                i += 1;
            }
            let word: String = expression[start..i].iter().collect();
            let mut j = i;
            while j < expression.len() && expression[j].is_whitespace() {
                j += 1;
            }
            if expression.get(j) == Some(&'(') {
                match method_of(&word) {
                    Some(method) => methods.push(method.to_owned()),
                    None if MODIFIERS.contains(&word.as_str()) => {}
                    None => {
                        return Err(ScanError::UnknownCall(word));
                    }
                }
                i = closing(expression, j)
                    .ok_or(ScanError::Malformed("a call that does not close"))?
                    + 1;
            }
            continue;
        }
        match c {
            '"' => i = string_end(expression, i),
            '\'' => i = char_end(expression, i),
            '(' | '[' | '{' => {
                i = closing(expression, i)
                    .ok_or(ScanError::Malformed("a bracket that does not close"))?
                    + 1;
            }
            _ => i += 1,
        }
    }
    Ok(methods)
}

/// A JSON value checked against a schema of the description: the problems
/// found, each with where in the value.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str, strict: bool) -> Vec<String> {
    let schema = deref(spec, schema);
    let mut problems = Vec::new();
    if value.is_null() {
        if schema["nullable"] != Value::Bool(true) && schema.get("type").is_some() {
            problems.push(format!("{at}: null, which the description does not allow"));
        }
        return problems;
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        problems.extend(check(spec, part, value, at, false));
    }
    if let Some(choices) = schema["oneOf"].as_array() {
        let fits = choices
            .iter()
            .filter(|choice| check(spec, choice, value, at, false).is_empty())
            .count();
        if fits == 0 {
            problems.push(format!("{at}: fits none of the oneOf choices: {value}"));
        }
    }
    let kind = schema["type"].as_str().unwrap_or_default();
    let fits = match kind {
        "" => true,
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => {
            problems.push(format!("{at}: a schema of unknown type {other}"));
            true
        }
    };
    if !fits {
        problems.push(format!("{at}: not a JSON {kind}: {value}"));
        return problems;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(minimum) = schema["minimum"].as_f64()
        && value.as_f64().is_some_and(|number| number < minimum)
    {
        problems.push(format!("{at}: {value} is below {minimum}"));
    }
    if let Value::Array(items) = value
        && let Some(item_schema) = schema.get("items")
    {
        for (i, item) in items.iter().enumerate() {
            problems.extend(check(spec, item_schema, item, &format!("{at}[{i}]"), true));
        }
    }
    if let Value::Object(fields) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                problems.push(format!("{at}: no `{name}`, which the description requires"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, field) in fields {
                if let Some(field_schema) = properties.get(name) {
                    problems.extend(check(
                        spec,
                        field_schema,
                        field,
                        &format!("{at}.{name}"),
                        true,
                    ));
                }
            }
        }
        if strict {
            let mut known = BTreeSet::new();
            properties_of(spec, schema, &mut known);
            if !known.is_empty() {
                for name in fields.keys().filter(|name| !known.contains(*name)) {
                    problems.push(format!("{at}: `{name}` is not described"));
                }
            }
        }
    }
    problems
}

/// Every property name `schema` may have, through `allOf` and `oneOf`.
fn properties_of(spec: &Value, schema: &Value, known: &mut BTreeSet<String>) {
    let schema = deref(spec, schema);
    if let Some(properties) = schema["properties"].as_object() {
        known.extend(properties.keys().cloned());
    }
    for part in ["allOf", "oneOf", "anyOf"] {
        for inner in schema[part].as_array().into_iter().flatten() {
            properties_of(spec, inner, known);
        }
    }
}

/// What the node answered: status, content type, body.
type Answer = (u16, String, String);

/// Whether `answer` to `operation` is one the description gives: its
/// status, its content type, and (for JSON) its body by the schema.
fn conforms(spec: &Value, operation: &Value, at: &str, answer: &Answer) -> Vec<String> {
    let (status, content_type, body) = answer;
    let Some(described) = operation["responses"].get(status.to_string()) else {
        return vec![format!(
            "{at}: answered {status}, which is not described: {body}"
        )];
    };
    let described = deref(spec, described);
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let Some(content) = described["content"]
        .as_object()
        .and_then(|content| content.get(media).or_else(|| content.get("*/*")))
    else {
        return vec![format!(
            "{at}: answered {status} `{content_type}`, described {}",
            described["content"]
        )];
    };
    if media != "application/json" {
        return Vec::new();
    }
    match serde_json::from_str::<Value>(body) {
        Ok(value) => check(spec, &content["schema"], &value, at, true),
        Err(error) => vec![format!("{at}: not JSON ({error}): {body}")],
    }
}

/// The operation `method path` (a path as the description writes it).
fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    spec["paths"][path]
        .get(method)
        .unwrap_or_else(|| panic!("{method} {path} is not described"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_serves_the_description_and_answers_as_it_says() {
    let temp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(temp.path().join("node"));
    let config = common::lone_node_config();
    let running = kith_api::up(dir.clone(), config).await.unwrap();
    let base = format!("http://{}", running.api_addr());
    let token = dir.api_token().unwrap();

    let problems = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let auth = format!("Bearer {token}");
        let read = |response: Result<ureq::http::Response<ureq::Body>, ureq::Error>| -> Answer {
            let mut response = response.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = response.body_mut().read_to_string().unwrap();
            (status, content_type, body)
        };
        let get = |path: &str| {
            read(
                agent
                    .get(format!("{base}{path}"))
                    .header("Authorization", &auth)
                    .call(),
            )
        };
        let post = |path: &str, body: Option<Value>| {
            let request = agent
                .post(format!("{base}{path}"))
                .header("Authorization", &auth);
            read(match body {
                Some(body) => request.send_json(body),
                None => request.send_empty(),
            })
        };
        let mut problems = Vec::new();

        let (status, content_type, served) = get("/v1/openapi.json");
        assert_eq!(status, 200, "{served}");
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        assert!(
            served == SPEC,
            "GET /v1/openapi.json is not crates/api/openapi.json"
        );
        // Without the token: refused like every API route.
        let refused = read(agent.get(format!("{base}/v1/openapi.json")).call());
        assert_eq!(refused.0, 401, "{refused:?}");

        // Every GET that needs no parameter: a route of the node, answered
        // as described.
        let spec = spec();
        let mut asked = 0;
        for (method, path, operation) in operations(&spec) {
            let needs_parameters = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|parameter| deref(&spec, parameter)["required"] == Value::Bool(true));
            if method != "get" || needs_parameters {
                continue;
            }
            asked += 1;
            let answer = get(&path);
            let at = format!("GET {path}");
            if answer.0 == 404 && answer.2.contains("no such API endpoint") {
                problems.push(format!("{at}: the node has no such route"));
            } else if !(200..300).contains(&answer.0) {
                problems.push(format!("{at}: answered {}: {}", answer.0, answer.2));
            } else {
                problems.extend(conforms(&spec, &operation, &at, &answer));
            }
        }
        assert!(asked > 10, "only {asked} GET routes were asked");

        // A few writes, so that the lists above are read with something in
        // them, and a few refusals, answered with their described errors.
        let friend = kith_node::PeerId::random().to_string();
        let post_text = "written by tests/openapi.rs";
        let exchanges: Vec<(&str, &str, Answer)> = vec![
            (
                "post",
                "/v1/friends",
                post(
                    "/v1/friends",
                    Some(serde_json::json!({"name": "alice", "peer_id": friend})),
                ),
            ),
            ("get", "/v1/friends", get("/v1/friends")),
            (
                "post",
                "/v1/post",
                post("/v1/post", Some(serde_json::json!({"text": post_text}))),
            ),
            ("get", "/v1/feed", get("/v1/feed?limit=5")),
            (
                "post",
                "/v1/friends/rm",
                post("/v1/friends/rm", Some(serde_json::json!({"name": "alice"}))),
            ),
            ("post", "/v1/repair", post("/v1/repair", None)),
            ("post", "/v1/mail/check", post("/v1/mail/check", None)),
            ("get", "/v1/qr", get("/v1/qr?text=kith")),
            ("get", "/v1/stat", get("/v1/stat?cap=kith:nonsense")),
            ("get", "/v1/downloads/{id}", get("/v1/downloads/999999")),
            (
                "get",
                "/v1/failures/{id}",
                get("/v1/failures/no-such-request"),
            ),
            (
                "post",
                "/v1/connect",
                read(
                    agent
                        .post(format!("{base}/v1/connect"))
                        .header("Authorization", &auth)
                        .header("Content-Type", "application/json")
                        .send("{not json"),
                ),
            ),
            (
                "post",
                "/v1/ping",
                post(
                    "/v1/ping",
                    Some(serde_json::json!({"peer": "no such field"})),
                ),
            ),
        ];
        let expected = [
            200, 200, 200, 200, 200, 200, 200, 200, 400, 404, 404, 400, 422,
        ];
        for ((method, path, answer), status) in exchanges.iter().zip(expected) {
            let at = format!("{} {path}", method.to_uppercase());
            if answer.0 != status {
                problems.push(format!(
                    "{at}: answered {}, not {status}: {}",
                    answer.0, answer.2
                ));
            }
            problems.extend(conforms(&spec, operation(&spec, method, path), &at, answer));
        }
        if !exchanges[3].2.2.contains(post_text) {
            problems.push(format!(
                "GET /v1/feed: the post is not in {}",
                exchanges[3].2.2
            ));
        }
        if !exchanges[1].2.2.contains(&friend) {
            problems.push(format!(
                "GET /v1/friends: alice is not in {}",
                exchanges[1].2.2
            ));
        }
        problems
    })
    .await
    .unwrap();
    running.stop().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
