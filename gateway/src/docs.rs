//! `/docs`: the API reference as one HTML page, rendered on the server from the OpenAPI
//! document ([`crate::openapi::document`]), so the page and `/openapi.json` cannot disagree.
//! No script, no external asset: a page any browser (or `curl`) reads, light or dark as the
//! reader's system is. The problem kinds are explained at `#problem-<kind>`, where every
//! problem document's `type` points.

use std::fmt::Write;
use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gitfleet_client::ErrorKind;
use serde_json::Value;

use crate::openapi;
use crate::problem;

/// The statuses a kind comes with, and what it means (the job contract's kinds).
fn contract_kind(kind: ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::InvalidInput => (
            "400",
            "The request is wrong: not JSON, an unknown op or field, a wrong type, a value out \
             of range. `field` names what (`args.repo_url`, `[3].op`, `wait`, \
             `Idempotency-Key`) and `detail` says why. Sending it again unchanged cannot help. \
             A job that ran and failed this way has it as its `error.kind`.",
        ),
        ErrorKind::Auth => (
            "401, 403",
            "`401`: no API key, or an unknown, revoked or expired one (all alike, with \
             `WWW-Authenticate`). `403`: the key is good but its role does not allow the \
             request, or it asks for another organization's listing. As a job's error: the git \
             server refused the fleet's credentials.",
        ),
        ErrorKind::Network => (
            "502",
            "A job's error: the git server could not be reached. Retried by the worker.",
        ),
        ErrorKind::Timeout => (
            "504",
            "A job's error: a run took longer than its `timeout_secs`. Retried by the worker.",
        ),
        ErrorKind::Conflict => (
            "409, 422",
            "`409`: the job is not in a state that allows this (cancelling a running or \
             finished job, retrying one that is not dead). `422`: an `Idempotency-Key` reused \
             with another body (`field`: `Idempotency-Key`). As a job's error: the remote moved \
             (a push that is not a fast-forward).",
        ),
        ErrorKind::SandboxNotFound => (
            "404",
            "A job's error: the sandbox it names is gone (released, expired, or its worker \
             stopped). Clone again.",
        ),
        ErrorKind::BudgetExceeded => (
            "402",
            "The organization has spent its monthly budget; nothing more is enqueued for it \
             this month.",
        ),
        ErrorKind::Internal => (
            "500",
            "Something the gateway or the worker did not expect; the log says what. Bad input \
             is never answered this way.",
        ),
    }
}

/// The gateway's own kinds ([`problem::GATEWAY_KINDS`]).
fn gateway_kind(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "not_found" => (
            "404",
            "No such job, sandbox, organization, key or route, or one of another organization \
             (answered word for word alike: a key never learns what others have).",
        ),
        "rate_limited" => (
            "429",
            "The API key is over its request rate (`GITFLEET_GATEWAY_RATE_PER_SEC`, bursts of \
             `GITFLEET_GATEWAY_RATE_BURST`); retry after `Retry-After` seconds.",
        ),
        "payload_too_large" => (
            "413",
            "The request body is over `GITFLEET_GATEWAY_MAX_BODY_BYTES` (16 MiB by default).",
        ),
        "method_not_allowed" => ("405", "The route does not take that method."),
        "unavailable" => (
            "503",
            "Redis or Postgres cannot be reached; retry after `Retry-After` seconds.",
        ),
        _ => return None,
    })
}

/// A kind's statuses and meaning.
fn kind_doc(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind.parse::<ErrorKind>() {
        Ok(k) => Some(contract_kind(k)),
        Err(_) => gateway_kind(kind),
    }
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
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

/// Escapes `text` and sets its `` `code` `` spans (the documents' descriptions use them).
fn prose(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The component a `$ref` names.
fn ref_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

/// A schema as a short type expression, named components linked.
fn type_of(s: &Value) -> String {
    let Some(obj) = s.as_object() else {
        return if s == &Value::Bool(false) {
            "nothing".into()
        } else {
            "any".into()
        };
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = ref_name(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    if let Some(c) = obj.get("const") {
        return format!("<code>{}</code>", esc(&c.to_string()));
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| format!("<code>{}</code>", esc(&v.to_string())))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(items) = obj.get(key).and_then(Value::as_array) {
            let sep = if key == "allOf" { " &amp; " } else { " | " };
            return items.iter().map(type_of).collect::<Vec<_>>().join(sep);
        }
    }
    let types: Vec<&str> = match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return "any".into(),
    };
    types
        .iter()
        .map(|t| match *t {
            "array" => match obj.get("items") {
                Some(items) => format!("array of {}", type_of(items)),
                None => "array".into(),
            },
            "object" => match obj.get("additionalProperties") {
                Some(v @ Value::Object(_)) => format!("map of {}", type_of(v)),
                _ => "object".into(),
            },
            "null" => "null".into(),
            t => match obj.get("format").and_then(Value::as_str) {
                Some(f) => format!("{t} ({})", esc(f)),
                None => t.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The limits a schema sets, in words.
fn limits(s: &Value) -> String {
    let mut parts = Vec::new();
    let num = |k: &str| s.get(k).filter(|v| v.is_number()).map(Value::to_string);
    match (num("minimum"), num("maximum")) {
        (Some(a), Some(b)) => parts.push(format!("{a} to {b}")),
        (Some(a), None) if a != "0" => parts.push(format!("at least {a}")),
        (None, Some(b)) => parts.push(format!("at most {b}")),
        _ => {}
    }
    match (num("minLength"), num("maxLength")) {
        (Some(a), Some(b)) => parts.push(format!("{a}-{b} characters")),
        (None, Some(b)) => parts.push(format!("at most {b} characters")),
        _ => {}
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        parts.push(format!("matches <code>{}</code>", esc(p)));
    }
    if let Some(d) = s.get("default") {
        parts.push(format!("default <code>{}</code>", esc(&d.to_string())));
    }
    parts.join("; ")
}

/// A cell: the description, then the limits.
fn described(s: &Value) -> String {
    let mut out = prose(str_of(s, "description"));
    let l = limits(s);
    if !l.is_empty() {
        if !out.is_empty() {
            out.push_str("<br>");
        }
        let _ = write!(out, "<span class=\"limits\">{l}</span>");
    }
    out
}

/// An object schema's properties as a table.
fn properties_table(out: &mut String, s: &Value) {
    let Some(props) = s.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("<table><tr><th>field</th><th>type</th><th></th></tr>");
    for (name, p) in props {
        let req = if required.contains(&name.as_str()) {
            " <span class=\"req\">required</span>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr><td><code>{}</code>{req}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            type_of(p),
            described(p)
        );
    }
    out.push_str("</table>");
    if s.get("additionalProperties") == Some(&Value::Bool(false)) {
        out.push_str("<p class=\"note\">No other fields.</p>");
    }
}

/// Object variants (`oneOf`): the fields they share, once, then a row per variant with the
/// fields that tell them apart (`NewJob`: each op and its args).
fn variants_tables(out: &mut String, variants: &[Value]) {
    let props = |v: &Value| v["properties"].as_object().cloned().unwrap_or_default();
    let first = props(&variants[0]);
    let differing: Vec<&String> = first
        .keys()
        .filter(|k| variants.iter().any(|v| props(v).get(*k) != first.get(*k)))
        .collect();
    let mut shared = variants[0].clone();
    if let Some(p) = shared["properties"].as_object_mut() {
        p.retain(|k, _| !differing.contains(&k));
    }
    out.push_str("<p>One of the variants below, each with these fields:</p>");
    properties_table(out, &shared);
    out.push_str("<table><tr><th>variant</th>");
    for k in &differing {
        let _ = write!(out, "<th><code>{}</code></th>", esc(k));
    }
    out.push_str("</tr>");
    for v in variants {
        let required: Vec<&str> = v["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let _ = write!(out, "<tr><td>{}</td>", esc(str_of(v, "title")));
        for k in &differing {
            let req = if required.contains(&k.as_str()) {
                " <span class=\"req\">required</span>"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<td>{}{req}</td>",
                type_of(&v["properties"][k.as_str()])
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// A component schema: its description, and its fields (or its variants' fields).
fn schema_section(out: &mut String, name: &str, s: &Value) {
    let _ = write!(
        out,
        "<section class=\"schema\" id=\"schema-{0}\"><h3>{0}</h3>",
        esc(name)
    );
    let d = str_of(s, "description");
    if !d.is_empty() {
        let _ = write!(out, "<p>{}</p>", prose(d));
    }
    if s.get("properties").is_some() {
        properties_table(out, s);
    } else if let Some(variants) = s.get("oneOf").and_then(Value::as_array)
        && variants.iter().all(|v| v.get("properties").is_some())
    {
        variants_tables(out, variants);
    } else {
        let _ = write!(out, "<p>{}</p>", type_of(s));
    }
    out.push_str("</section>");
}

fn operation_section(out: &mut String, method: &str, path: &str, op: &Value) {
    let id = str_of(op, "operationId");
    let _ = write!(
        out,
        "<section class=\"op\" id=\"op-{id}\"><h3><span class=\"method {m}\">{M}</span> \
         <code>{path}</code></h3><p class=\"opid\">{summary} · <code>{id}</code>",
        id = esc(id),
        m = esc(method),
        M = esc(&method.to_uppercase()),
        path = esc(path),
        summary = prose(str_of(op, "summary")),
    );
    match op.get("x-gitfleet-role").and_then(Value::as_str) {
        Some(role) => {
            let _ = write!(out, " · <span class=\"role\">{} key</span>", esc(role));
        }
        None => out.push_str(" · <span class=\"role\">no key</span>"),
    }
    out.push_str("</p>");
    let _ = write!(out, "<p>{}</p>", prose(str_of(op, "description")));
    if let Some(params) = op.get("parameters").and_then(Value::as_array) {
        out.push_str(
            "<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th></th></tr>",
        );
        for p in params {
            let req = if p["required"] == true {
                " <span class=\"req\">required</span>"
            } else {
                ""
            };
            let mut cell = prose(str_of(p, "description"));
            let l = limits(&p["schema"]);
            if !l.is_empty() {
                let _ = write!(cell, "<br><span class=\"limits\">{l}</span>");
            }
            let _ = write!(
                out,
                "<tr><td><code>{}</code>{req}</td><td>{}</td><td>{}</td><td>{cell}</td></tr>",
                esc(str_of(p, "name")),
                esc(str_of(p, "in")),
                type_of(&p["schema"]),
            );
        }
        out.push_str("</table>");
    }
    if let Some(body) = op.get("requestBody") {
        let _ = write!(
            out,
            "<h4>Body</h4><p>{}</p>",
            prose(str_of(body, "description"))
        );
        if let Some(content) = body["content"].as_object() {
            for (media, c) in content {
                let _ = write!(
                    out,
                    "<p><code>{}</code>: {}</p>",
                    esc(media),
                    type_of(&c["schema"])
                );
            }
        }
    }
    out.push_str("<h4>Responses</h4><table><tr><th>status</th><th>body</th><th></th></tr>");
    let doc = openapi::document();
    if let Some(responses) = op["responses"].as_object() {
        for (status, r) in responses {
            let r = match r.get("$ref").and_then(Value::as_str) {
                Some(pointer) => doc
                    .pointer(pointer.trim_start_matches('#'))
                    .unwrap_or(&Value::Null),
                None => r,
            };
            let body = r["content"]
                .as_object()
                .map(|c| {
                    c.iter()
                        .map(|(media, m)| {
                            format!("<code>{}</code> {}", esc(media), type_of(&m["schema"]))
                        })
                        .collect::<Vec<_>>()
                        .join("<br>")
                })
                .unwrap_or_default();
            let mut cell = prose(str_of(r, "description"));
            if let Some(headers) = r["headers"].as_object() {
                for (name, h) in headers {
                    let _ = write!(
                        cell,
                        "<br><code>{}</code>: {}",
                        esc(name),
                        prose(str_of(h, "description"))
                    );
                }
            }
            let _ = write!(
                out,
                "<tr><td class=\"status\">{}</td><td>{body}</td><td>{cell}</td></tr>",
                esc(status)
            );
        }
    }
    out.push_str("</table></section>");
}

const STYLE: &str = "
:root { color-scheme: light dark; --fg: #1d232b; --bg: #fdfdfc; --muted: #5b6470;
  --line: #dde1e6; --code: #f1f3f5; --accent: #0b5cad; --get: #1f7a3a; --post: #8a5a00;
  --delete: #a32020; }
@media (prefers-color-scheme: dark) { :root { --fg: #e3e6ea; --bg: #15181c; --muted: #9aa3ad;
  --line: #2e343b; --code: #22272d; --accent: #7ab4f5; --get: #6fd08c; --post: #f0b653;
  --delete: #f27b7b; } }
body { font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg);
  margin: 0 auto; max-width: 64rem; padding: 1rem 1.5rem 4rem; }
a { color: var(--accent); }
code { font: 0.9em ui-monospace, monospace; background: var(--code); padding: 0 0.25em;
  border-radius: 3px; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid var(--line); }
h3 { margin: 0 0 0.3rem; } h4 { margin: 1rem 0 0.3rem; }
section.op, section.schema, div.kind { border-top: 1px solid var(--line); padding: 1rem 0; }
.method { font: bold 0.85em ui-monospace, monospace; padding: 0.1em 0.4em; border-radius: 3px;
  border: 1px solid currentColor; }
.get { color: var(--get); } .post { color: var(--post); } .delete { color: var(--delete); }
.opid, .note, .limits { color: var(--muted); } .note { font-size: 0.9em; }
.req { color: var(--delete); font-size: 0.8em; } .role { font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: 0.93em; }
th, td { text-align: left; vertical-align: top; padding: 0.3rem 0.5rem;
  border-bottom: 1px solid var(--line); }
td.status { font-weight: 600; white-space: nowrap; }
nav ul { columns: 2; padding-left: 1.2rem; }
";

fn render() -> String {
    let doc = openapi::document();
    let info = &doc["info"];
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} API</title><style>{STYLE}</style></head><body>\
         <h1>{title} API</h1><p class=\"opid\">version {version} · \
         <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1)</p><p>{summary} {desc}</p>",
        title = esc(str_of(info, "title")),
        version = esc(str_of(info, "version")),
        summary = prose(str_of(info, "summary")),
        desc = prose(str_of(info, "description")),
    );
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    let _ = write!(
        out,
        "<p><strong>Auth.</strong> {}</p>",
        prose(str_of(scheme, "description"))
    );
    out.push_str("<nav><h2>Contents</h2><ul>");
    for (tag, _) in tags(doc) {
        for (method, path, op) in operations(doc, &tag) {
            let _ = write!(
                out,
                "<li><a href=\"#op-{id}\"><span class=\"method {m}\">{M}</span> {path}</a></li>",
                id = esc(str_of(op, "operationId")),
                m = esc(&method),
                M = esc(&method.to_uppercase()),
                path = esc(&path),
            );
        }
    }
    out.push_str(
        "<li><a href=\"#problems\">Problems</a></li><li><a href=\"#schemas\">Schemas</a></li>\
         </ul></nav>",
    );
    for (tag, description) in tags(doc) {
        let _ = write!(
            out,
            "<h2 id=\"tag-{0}\">{0}</h2><p>{1}</p>",
            esc(&tag),
            prose(&description)
        );
        for (method, path, op) in operations(doc, &tag) {
            operation_section(&mut out, &method, &path, op);
        }
    }
    out.push_str(
        "<h2 id=\"problems\">Problems</h2><p>Every error is an RFC 9457 problem document \
         (<code>application/problem+json</code>): <code>type</code> (a link here), \
         <code>title</code>, <code>status</code>, <code>detail</code>, gitfleet's \
         <code>kind</code>, and <code>field</code> when one field of the request is wrong. Bad \
         input is never a 5xx. A job that runs and fails is not an HTTP error: its record has \
         <code>status: dead</code> and <code>error: {kind, message}</code>, with the same \
         kinds.</p>",
    );
    for kind in problem::kinds() {
        let (statuses, meaning) = kind_doc(kind).unwrap_or(("", ""));
        let _ = write!(
            out,
            "<div class=\"kind\" id=\"problem-{k}\"><h3><code>{k}</code> \
             <span class=\"opid\">{statuses}</span></h3><p>{meaning}</p></div>",
            k = esc(kind),
            statuses = esc(statuses),
            meaning = prose(meaning),
        );
    }
    out.push_str("<h2 id=\"schemas\">Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        let mut names: Vec<&String> = schemas.keys().collect();
        names.sort();
        for name in names {
            schema_section(&mut out, name, &schemas[name]);
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// The document's tags and what each groups.
fn tags(doc: &Value) -> Vec<(String, String)> {
    doc["tags"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        str_of(t, "name").to_string(),
                        str_of(t, "description").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The operations of `tag`, in the order of [`openapi::ROUTES`].
fn operations<'a>(doc: &'a Value, tag: &str) -> Vec<(String, String, &'a Value)> {
    openapi::ROUTES
        .iter()
        .filter(|r| r.tag == tag)
        .filter_map(|r| {
            let op = doc["paths"][r.path].get(r.method)?;
            Some((r.method.to_string(), r.path.to_string(), op))
        })
        .collect()
}

/// `GET /docs`.
pub async fn serve() -> Response {
    static PAGE: OnceLock<String> = OnceLock::new();
    let page = PAGE.get_or_init(render);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        page.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_explained() {
        for kind in problem::kinds() {
            let (statuses, meaning) =
                kind_doc(kind).unwrap_or_else(|| panic!("{kind} has no explanation"));
            assert!(!statuses.is_empty() && !meaning.is_empty(), "{kind}");
        }
    }

    #[test]
    fn prose_escapes_and_sets_code() {
        assert_eq!(prose("a `<b>` & c"), "a <code>&lt;b&gt;</code> &amp; c");
    }
}
