//! The reference the gateway serves without a key: `/openapi.json` names every route the
//! binary answers, and `/docs` renders every operation and explains every problem kind.

use serde_json::Value;

use crate::support::world;
use gitfleet_gateway::openapi::ROUTES;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_is_served_without_a_key_and_every_route_in_it_is_served() {
    let w = world().await;

    let doc = w.send(w.http.get(w.gw.url("/openapi.json"))).await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    assert_eq!(doc.header("content-type"), Some("application/json"));
    assert_eq!(doc.body["openapi"], "3.1.0");

    // Each route of the table, as the binary answers it without a key: the route is there
    // (a keyed route asks for a key; the router's fallback would say `no such route`, or
    // `405` for a method the path does not take).
    for route in ROUTES {
        let path = route
            .path
            .replace("{id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .replace("{org}", "acme");
        let method = route.method.to_uppercase().parse().expect("a method");
        let a = w.send(w.http.request(method, w.gw.url(&path))).await;
        let what = format!("{} {}: {} {}", route.method, path, a.status, a.text);
        let op = &doc.body["paths"][route.path][route.method];
        assert_eq!(op["operationId"], route.operation_id, "{what}");
        if op["x-gitfleet-role"].is_string() {
            a.problem(401, "auth");
        } else {
            assert_eq!(a.status, 200, "{what}");
        }
    }
    let documented: usize = doc.body["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().expect("a path item").len())
        .sum();
    assert_eq!(documented, ROUTES.len());

    let page = w.send(w.http.get(w.gw.url("/docs"))).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text.starts_with("<!doctype html>"), "{}", page.text);
    assert!(!page.text.contains("<script"), "no script");
    for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(
            !page.text.contains(external),
            "an external asset: {external}"
        );
    }
    for route in ROUTES {
        assert!(
            page.text
                .contains(&format!("id=\"op-{}\"", route.operation_id)),
            "/docs has no section for {}",
            route.operation_id
        );
    }
    for kind in gitfleet_gateway::problem::kinds() {
        assert!(
            page.text.contains(&format!("id=\"problem-{kind}\"")),
            "/docs has no #problem-{kind}"
        );
    }
    // Every schema of the document has its section, so the page's links land.
    for name in doc.body["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .keys()
    {
        assert!(
            page.text.contains(&format!("id=\"schema-{name}\"")),
            "/docs has no #schema-{name}"
        );
    }

    // A problem's `type` is a link into the page.
    let missing = w.send(w.http.get(w.gw.url("/nowhere"))).await;
    let kind = missing.problem(404, "not_found")["kind"].clone();
    assert_eq!(
        missing.body["type"],
        Value::from(format!("/docs#problem-{}", kind.as_str().unwrap()))
    );
}
