//! The OpenAPI drift check: the committed `api/openapi.json` must match what the code generates,
//! so API changes show up in review. `UPDATE_OPENAPI=1` rewrites the committed copy.

use test_support::TestApp;

#[tokio::test]
async fn committed_openapi_document_matches_the_code() {
    let app = TestApp::spawn().await;
    let generated = api::spec(&app.state);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, format!("{generated}\n")).expect("write openapi.json");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "api/openapi.json is out of date; run `UPDATE_OPENAPI=1 cargo test -p api --test api openapi` and commit it"
    );
}

#[tokio::test]
async fn the_document_is_served_and_lists_error_statuses() {
    let app = TestApp::spawn().await;
    let resp = app.get("/openapi.json", None).await;
    assert_eq!(resp.status, poem::http::StatusCode::OK);
    let register = &resp.body["paths"]["/api/v1/auth/register"]["post"]["responses"];
    for status in ["201", "400", "409", "422", "500"] {
        assert!(register.get(status).is_some(), "register lacks {status}");
    }
}

#[tokio::test]
async fn the_interactive_docs_are_served_at_docs_with_the_document() {
    let app = TestApp::spawn().await;
    for path in ["/docs", "/docs/"] {
        let resp = app.get(path, None).await;
        assert_eq!(resp.status, poem::http::StatusCode::OK, "{path}");
        let content_type = resp.headers["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        assert!(
            resp.text.contains("SwaggerUIBundle"),
            "{path}: no Swagger UI"
        );
        assert!(
            resp.text.contains("/api/v1/checkout"),
            "{path}: the page does not carry the document"
        );
    }
}

/// Every property a schema does not require is one the code may send as `null` (an `Option`),
/// so it must say `nullable`: a client generated from the document must expect the `null`.
#[tokio::test]
async fn every_optional_property_is_declared_nullable() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value =
        serde_json::from_str(&api::spec(&app.state)).expect("the document is JSON");
    let mut missing = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        for (prop, s) in schema["properties"].as_object().into_iter().flatten() {
            if !required.contains(&prop.as_str()) && s["nullable"] != true {
                missing.push(format!("{name}.{prop}"));
            }
        }
    }
    assert!(missing.is_empty(), "optional but not nullable: {missing:?}");
}

/// Statuses and error codes are enums, so a client can switch on them exhaustively.
#[tokio::test]
async fn statuses_kinds_and_error_codes_are_enums() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value =
        serde_json::from_str(&api::spec(&app.state)).expect("the document is JSON");
    let schemas = &doc["components"]["schemas"];
    for name in [
        "ErrorCode",
        "OrderStatus",
        "LineStatus",
        "JobStatus",
        "AddressStatus",
    ] {
        let values = schemas[name]["enum"].as_array();
        assert!(
            values.is_some_and(|v| !v.is_empty()),
            "{name} is not an enum"
        );
    }
    let code = schemas["ErrorDetail"]["properties"]["code"].to_string();
    assert!(code.contains("#/components/schemas/ErrorCode"), "{code}");
    let kinds: Vec<&str> = schemas["Job"]["discriminator"]["mapping"]
        .as_object()
        .expect("jobs are told apart by kind")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(kinds, ["checkout", "geocode_address", "refund_order"]);
    let checkout = &doc["paths"]["/api/v1/checkout"]["post"]["parameters"][0];
    assert_eq!(checkout["name"], "Idempotency-Key");
    assert_eq!(checkout["required"], true);
}

/// Upload bodies take exactly their declared parts: the document says so, and the server refuses
/// any other part (`deny_unknown_fields`), so a client cannot send what the server ignores.
#[tokio::test]
async fn multipart_bodies_declare_that_they_take_no_other_parts() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value =
        serde_json::from_str(&api::spec(&app.state)).expect("the document is JSON");
    let mut multipart = 0;
    for operation in doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
    {
        let schema = &operation["requestBody"]["content"]["multipart/form-data"]["schema"];
        if schema.is_object() {
            multipart += 1;
            assert_eq!(schema["additionalProperties"], false, "{schema}");
            assert_eq!(schema["type"], "object");
        }
    }
    assert_eq!(multipart, 2, "the listing upload and the avatar");
}
