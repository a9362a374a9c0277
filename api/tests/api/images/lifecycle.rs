//! What happens to pictures over time: the per-listing limit (also under racing uploads), the
//! gallery order, deletion, order snapshots, profile pictures and the orphan sweep.

use std::time::{Duration, SystemTime};

use image::ImageFormat;
use poem::http::StatusCode;
use serde_json::json;
use shared::images::sweep::ImageSweepReport;
use test_support::TestApp;
use uuid::Uuid;

use super::{fetch, picture, public_listing, seller_listing, upload};
use crate::{
    helpers::{assert_error, count, delete, put},
    payments::{order, shop},
};

#[tokio::test]
async fn a_listing_takes_at_most_the_configured_number_of_images_even_under_racing_uploads() {
    let app = TestApp::spawn_with(|s| s.images.max_per_listing = 3).await;
    let (token, listing) = seller_listing(&app, "painter").await;
    let png = picture(ImageFormat::Png, 16, 16);

    let resp = upload(&app, &token, &listing, &[("a.png", &png), ("b.png", &png)]).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    let resp = upload(&app, &token, &listing, &[("c.png", &png), ("d.png", &png)]).await;
    assert_error(&resp, StatusCode::CONFLICT, "too_many_images");
    assert_eq!(resp.body["error"]["details"]["max_images"], 3);

    // Five single-file uploads at once for the one free place: exactly one gets it.
    let one: [(&str, &[u8]); 1] = [("e.png", &png)];
    let racing = (0..5).map(|_| upload(&app, &token, &listing, &one));
    let answers = futures::future::join_all(racing).await;
    let created = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        1,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for refused in answers.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_error(refused, StatusCode::CONFLICT, "too_many_images");
    }
    assert_eq!(count(&app, "SELECT count(*) FROM images").await, 3);
    app.run_image_jobs().await;
    // The refused uploads left no files behind: 3 images × (original, thumb, large).
    assert_eq!(app.stored_files().len(), 9, "{:?}", app.stored_files());
}

#[tokio::test]
async fn the_seller_chooses_the_main_image_and_the_order() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    let files: Vec<Vec<u8>> = [10, 20, 30]
        .map(|w| picture(ImageFormat::Png, w, 10))
        .to_vec();
    let named: Vec<(&str, &[u8])> = files.iter().map(|f| ("p.png", f.as_slice())).collect();
    let resp = upload(&app, &token, &listing, &named).await;
    let ids: Vec<String> = resp.body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    app.run_image_jobs().await;
    let path = format!("/api/v1/listings/{listing}/images/order");

    let resp = put(
        &app,
        &path,
        Some(&token),
        json!({ "image_ids": [ids[2], ids[0], ids[1]] }),
    )
    .await;

    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let shown = public_listing(&app, &listing).await;
    let widths: Vec<_> = shown["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["width"].as_i64().unwrap())
        .collect();
    assert_eq!(widths, [30, 10, 20]);
    assert_eq!(shown["main_image"]["id"], ids[2].as_str());

    let (_, other_listing) = seller_listing(&app, "sculptor").await;
    for bad in [
        json!({ "image_ids": [ids[0], ids[1]] }),
        json!({ "image_ids": [ids[0], ids[0], ids[1]] }),
        json!({ "image_ids": [ids[0], ids[1], Uuid::now_v7()] }),
    ] {
        let resp = put(&app, &path, Some(&token), bad).await;
        assert_error(
            &resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_order_mismatch",
        );
    }
    let resp = put(&app, &path, Some(&token), json!({ "image_ids": ["nope"] })).await;
    assert_eq!(resp.status.as_u16() / 100, 4, "{}", resp.body);
    let (_, stranger) = app.signed_up("stranger").await;
    let resp = put(
        &app,
        &path,
        Some(&stranger),
        json!({ "image_ids": [ids[0], ids[1], ids[2]] }),
    )
    .await;
    assert_error(&resp, StatusCode::FORBIDDEN, "not_owner");
    let resp = put(
        &app,
        &format!("/api/v1/listings/{other_listing}/images/order"),
        Some(&stranger),
        json!({ "image_ids": ids }),
    )
    .await;
    assert_error(&resp, StatusCode::FORBIDDEN, "not_owner");
    assert_eq!(
        public_listing(&app, &listing).await["main_image"]["id"],
        ids[2].as_str()
    );
}

#[tokio::test]
async fn deleting_an_image_removes_every_stored_file() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    let jpeg = picture(ImageFormat::Jpeg, 700, 500);
    let resp = upload(
        &app,
        &token,
        &listing,
        &[("a.jpg", &jpeg), ("b.jpg", &jpeg)],
    )
    .await;
    let ids: Vec<String> = resp.body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    app.run_image_jobs().await;
    assert_eq!(app.stored_files().len(), 6);
    let (_, stranger) = app.signed_up("stranger").await;

    let refused = delete(
        &app,
        &format!("/api/v1/listings/{listing}/images/{}", ids[0]),
        Some(&stranger),
    )
    .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "not_owner");
    let resp = delete(
        &app,
        &format!("/api/v1/listings/{listing}/images/{}", ids[0]),
        Some(&token),
    )
    .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.body);
    let again = delete(
        &app,
        &format!("/api/v1/listings/{listing}/images/{}", ids[0]),
        Some(&token),
    )
    .await;
    assert_error(&again, StatusCode::NOT_FOUND, "image_not_found");

    let left = app.stored_files();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|f| f.contains(&ids[1])), "{left:?}");
    delete(
        &app,
        &format!("/api/v1/listings/{listing}/images/{}", ids[1]),
        Some(&token),
    )
    .await;
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
    assert_eq!(count(&app, "SELECT count(*) FROM images").await, 0);
    assert!(public_listing(&app, &listing).await["main_image"].is_null());
}

#[tokio::test]
async fn an_image_deleted_before_it_is_processed_leaves_nothing() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    let resp = upload(
        &app,
        &token,
        &listing,
        &[("a.png", &picture(ImageFormat::Png, 40, 40))],
    )
    .await;
    let id = resp.body["images"][0]["id"].as_str().unwrap().to_owned();
    delete(
        &app,
        &format!("/api/v1/listings/{listing}/images/{id}"),
        Some(&token),
    )
    .await;

    let outcomes = app.run_image_jobs().await;

    assert!(
        matches!(
            outcomes[..],
            [shared::images::process::ProcessOutcome::Deleted { .. }]
        ),
        "{outcomes:?}"
    );
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
}

#[tokio::test]
async fn an_order_keeps_the_thumbnail_it_was_bought_with() {
    let app = TestApp::spawn().await;
    let shop = shop(&app, 1_000, 5).await;
    let resp = upload(
        &app,
        &shop.seller,
        &shop.listing,
        &[("a.png", &picture(ImageFormat::Png, 64, 64))],
    )
    .await;
    let image = resp.body["images"][0]["id"].as_str().unwrap().to_owned();
    app.run_image_jobs().await;
    let thumb = public_listing(&app, &shop.listing).await["main_image"]["thumb_url"].clone();

    let order_id = order(&app, &shop, 1).await;
    let shown = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(&shop.buyer))
        .await;
    assert_eq!(shown.body["lines"][0]["thumb_url"], thumb, "{}", shown.body);
    // The seller replaces the picture: the order still shows, and can load, the old one.
    delete(
        &app,
        &format!("/api/v1/listings/{}/images/{image}", shop.listing),
        Some(&shop.seller),
    )
    .await;
    let shown = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(&shop.buyer))
        .await;
    assert_eq!(shown.body["lines"][0]["thumb_url"], thumb);
    assert_eq!(fetch(&app, &thumb).await.status, StatusCode::OK);
    assert_eq!(
        app.stored_files().len(),
        1,
        "only the kept thumbnail: {:?}",
        app.stored_files()
    );
    // The cart shows thumbnails too.
    app.add_to_cart(&shop.buyer, &shop.listing, 1).await;
    let cart = app.get("/api/v1/cart", Some(&shop.buyer)).await;
    assert!(
        cart.body["items"][0]["thumb_url"].is_null(),
        "no picture left: {}",
        cart.body
    );
}

#[tokio::test]
async fn a_profile_picture_is_set_replaced_and_removed() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signed_up("painter").await;
    let set = |bytes: Vec<u8>| {
        let app = &app;
        let token = token.clone();
        async move {
            app.upload(
                "PUT",
                "/api/v1/users/me/avatar",
                Some(&token),
                "file",
                &[("me.webp", "image/webp", &bytes)],
            )
            .await
        }
    };

    let first = set(picture(ImageFormat::WebP, 500, 500)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["status"], "pending");
    assert!(app.get("/api/v1/users/me", Some(&token)).await.body["avatar_url"].is_null());
    app.run_image_jobs().await;
    let me = app.get("/api/v1/users/me", Some(&token)).await;
    let url = me.body["avatar_url"].clone();
    assert_eq!(fetch(&app, &url).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/users/painter", None).await.body["avatar_url"],
        url
    );
    let first_files = app.stored_files();

    let bad = set(b"not an image".to_vec()).await;
    assert_error(
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "image_unsupported_format",
    );
    let second = set(picture(ImageFormat::Png, 100, 80)).await;
    assert_eq!(second.status, StatusCode::OK);
    app.run_image_jobs().await;
    let files = app.stored_files();
    assert_eq!(files.len(), 3);
    assert!(
        files.iter().all(|f| !first_files.contains(f)),
        "the old picture's files are gone"
    );

    let resp = delete(&app, "/api/v1/users/me/avatar", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert!(app.get("/api/v1/users/me", Some(&token)).await.body["avatar_url"].is_null());
    assert!(app.stored_files().is_empty());
    assert_eq!(count(&app, "SELECT count(*) FROM images").await, 0);
}

#[tokio::test]
async fn the_sweep_removes_orphaned_rows_and_files_without_rows_but_not_recent_uploads() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    upload(
        &app,
        &token,
        &listing,
        &[("a.png", &picture(ImageFormat::Png, 30, 30))],
    )
    .await;
    app.run_image_jobs().await;
    // A file an upload left behind when it crashed before its row, an hour and a half ago, and
    // one of an upload in flight right now.
    let stale = format!("images/{}/original-0123456789abcdef.png", Uuid::now_v7());
    let fresh = format!("images/{}/original-fedcba9876543210.png", Uuid::now_v7());
    for key in [&stale, &fresh] {
        let path = app.objects_dir.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"bytes").unwrap();
    }
    let old = SystemTime::now() - Duration::from_secs(5400);
    std::fs::File::options()
        .write(true)
        .open(app.objects_dir.join(&stale))
        .unwrap()
        .set_modified(old)
        .unwrap();
    // The listing is purged an hour and a half after its picture was uploaded.
    sqlx::query("UPDATE images SET created_at = now() - interval '90 minutes'")
        .execute(app.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM listings WHERE id = $1")
        .bind(listing.parse::<Uuid>().unwrap())
        .execute(app.pool())
        .await
        .unwrap();

    let report = shared::images::sweep::sweep(&app.image_deps())
        .await
        .unwrap();

    assert_eq!(
        report,
        ImageSweepReport {
            orphan_images: 1,
            orphan_files: 1
        }
    );
    assert_eq!(count(&app, "SELECT count(*) FROM images").await, 0);
    assert_eq!(app.stored_files(), [fresh]);
}

#[tokio::test]
async fn image_routes_refuse_what_is_not_theirs() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    let (sculptor, other) = seller_listing(&app, "sculptor").await;
    let resp = upload(
        &app,
        &token,
        &listing,
        &[("a.png", &picture(ImageFormat::Png, 8, 8))],
    )
    .await;
    let image = resp.body["images"][0]["id"].as_str().unwrap().to_owned();

    // Another seller names this image under their own listing: not found there, nothing deleted.
    let resp = delete(
        &app,
        &format!("/api/v1/listings/{other}/images/{image}"),
        Some(&sculptor),
    )
    .await;
    assert_error(&resp, StatusCode::NOT_FOUND, "image_not_found");
    let resp = delete(
        &app,
        &format!("/api/v1/listings/{listing}/images/{image}"),
        Some(&sculptor),
    )
    .await;
    assert_error(&resp, StatusCode::FORBIDDEN, "not_owner");
    let list = app
        .get(&format!("/api/v1/listings/{listing}/images"), Some(&token))
        .await;
    assert_eq!(list.body["images"][0]["status"], "pending");
    let public = app
        .get(&format!("/api/v1/listings/{listing}/images"), None)
        .await;
    assert_eq!(
        public.body["images"],
        json!([]),
        "pending images are the owner's only"
    );
    app.run_image_jobs().await;
}

#[tokio::test]
async fn the_sweep_walks_a_large_store_a_page_per_run() {
    let app = TestApp::spawn().await;
    let old = SystemTime::now() - Duration::from_secs(7200);
    let mut orphans = Vec::new();
    for _ in 0..5 {
        let key = format!("images/{}/original-0123456789abcdef.png", Uuid::now_v7());
        let path = app.objects_dir.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"bytes").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        orphans.push(key);
    }
    let deps = app.image_deps();

    let mut swept = Vec::new();
    for _ in 0..3 {
        let report = shared::images::sweep::sweep_paged(&deps, 2).await.unwrap();
        swept.push(report.orphan_files);
    }

    assert_eq!(swept, [2, 2, 1], "two files a run, in key order");
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
}
