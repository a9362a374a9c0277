//! Listing pictures: what an upload must be, what processing makes of it, how it is served.

mod lifecycle;

use std::io::Cursor;

use image::{DynamicImage, GenericImageView as _, ImageFormat};
use poem::http::StatusCode;
use serde_json::{Value, json};
use shared::images::process::ProcessOutcome;
use test_support::{TestApp, TestResponse};

use crate::helpers::{assert_error, count, id_of};

/// An image of `width`×`height` in `format`, with some detail so it does not compress away.
pub fn picture(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 3 % 256) as u8,
            ((x ^ y) % 256) as u8,
        ])
    }));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encodes");
    out.into_inner()
}

/// A JPEG with an EXIF block (APP1) saying "rotate 90° clockwise" and carrying a GPS tag.
pub fn jpeg_with_exif(width: u32, height: u32) -> Vec<u8> {
    let jpeg = picture(ImageFormat::Jpeg, width, height);
    // TIFF header (big endian), one IFD entry: Orientation (0x0112) = 6, then the GPS IFD
    // pointer tag (0x8825) whose presence is what a stripped file must not show.
    let tiff: &[u8] = b"MM\x00\x2a\x00\x00\x00\x08\x00\x02\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x88\x25\x00\x04\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00GPS-52.3702N-4.8952E";
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(tiff);
    let len = u16::try_from(app1.len() + 2).unwrap().to_be_bytes();
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1, len[0], len[1]]);
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A seller with a listing: `(token, listing id)`.
pub async fn seller_listing(app: &TestApp, username: &str) -> (String, String) {
    let (_, token) = app.signed_up(username).await;
    let listing = id_of(&app.create_listing(&token, "Teapot", 1_500, 3).await);
    (token, listing)
}

/// Uploads `files` (name, bytes) to a listing as the holder of `token`.
pub async fn upload(
    app: &TestApp,
    token: &str,
    listing: &str,
    files: &[(&str, &[u8])],
) -> TestResponse {
    let parts: Vec<(&str, &str, &[u8])> = files
        .iter()
        .map(|(name, bytes)| (*name, "image/jpeg", *bytes))
        .collect();
    app.upload(
        "POST",
        &format!("/api/v1/listings/{listing}/images"),
        Some(token),
        "files",
        &parts,
    )
    .await
}

/// The listing as an anonymous visitor sees it.
pub async fn public_listing(app: &TestApp, listing: &str) -> Value {
    let resp = app.get(&format!("/api/v1/listings/{listing}"), None).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    resp.body
}

/// GETs a file URL the API gave out.
pub async fn fetch(app: &TestApp, url: &Value) -> TestResponse {
    app.get(url.as_str().expect("a URL"), None).await
}

async fn images_rows(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM images").await
}

#[tokio::test]
async fn jpeg_png_and_webp_are_accepted_processed_and_shown() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    let jpeg = picture(ImageFormat::Jpeg, 1600, 1200);
    let png = picture(ImageFormat::Png, 300, 200);
    let webp = picture(ImageFormat::WebP, 2048, 512);

    let resp = upload(
        &app,
        &token,
        &listing,
        &[("a.jpg", &jpeg), ("b.png", &png), ("c.webp", &webp)],
    )
    .await;

    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    let images = resp.body["images"].as_array().expect("images").clone();
    assert_eq!(images.len(), 3);
    assert!(
        images
            .iter()
            .all(|i| i["status"] == "pending" && i["url"].is_null()),
        "{images:?}"
    );
    // Nothing is shown to others before processing.
    let before = public_listing(&app, &listing).await;
    assert_eq!(before["images"], json!([]));
    assert!(before["main_image"].is_null());

    let outcomes = app.run_image_jobs().await;

    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ProcessOutcome::Ready { .. })),
        "{outcomes:?}"
    );
    let shown = public_listing(&app, &listing).await;
    let gallery = shown["images"].as_array().expect("gallery");
    let sizes: Vec<(i64, i64)> = gallery
        .iter()
        .map(|i| (i["width"].as_i64().unwrap(), i["height"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        sizes,
        [(1600, 1200), (300, 200), (2048, 512)],
        "upload order kept"
    );
    assert_eq!(shown["main_image"]["id"], gallery[0]["id"]);
    assert_eq!(gallery.iter().filter(|i| i["is_main"] == true).count(), 1);
    for (image, (large, thumb)) in gallery.iter().zip([
        ((1024, 768), (320, 240)),
        ((300, 200), (300, 200)),
        ((1024, 256), (320, 80)),
    ]) {
        assert_eq!(image["status"], "ready");
        for (url, size) in [(&image["url"], large), (&image["thumb_url"], thumb)] {
            let file = fetch(&app, url).await;
            assert_eq!(file.status, StatusCode::OK, "{url}");
            assert_eq!(file.headers["content-type"], "image/webp");
            assert_eq!(
                file.headers["cache-control"],
                "public, max-age=31536000, immutable"
            );
            let decoded = image::load_from_memory_with_format(&file.bytes, ImageFormat::WebP)
                .expect("a WebP");
            assert_eq!(decoded.dimensions(), size, "{url}");
        }
    }
    // Lists carry the main image too.
    let page = app.get("/api/v1/listings", None).await;
    assert_eq!(page.body["items"][0]["main_image"]["id"], gallery[0]["id"]);
}

#[tokio::test]
async fn a_text_file_named_jpg_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    let good = picture(ImageFormat::Png, 10, 10);

    for bytes in [
        b"definitely a photo, trust me".to_vec(),
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
        b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
    ] {
        // A good file first: one bad file refuses the whole upload.
        let resp = upload(
            &app,
            &token,
            &listing,
            &[("ok.png", &good), ("photo.jpg", &bytes)],
        )
        .await;
        assert_error(
            &resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_unsupported_format",
        );
        assert_eq!(resp.body["error"]["details"]["file"], 1);
    }
    let mut truncated = picture(ImageFormat::Jpeg, 400, 400);
    truncated.truncate(truncated.len() / 3);
    let resp = upload(&app, &token, &listing, &[("cut.jpg", &truncated)]).await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "image_corrupt");
    let resp = upload(&app, &token, &listing, &[("empty.jpg", b"")]).await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "image_empty");
    let resp = upload(&app, &token, &listing, &[]).await;
    assert_eq!(
        resp.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        resp.body
    );

    assert_eq!(images_rows(&app).await, 0);
    assert_eq!(app.stored_files(), Vec::<String>::new());
}

#[tokio::test]
async fn an_oversized_file_is_refused_and_an_oversized_request_too() {
    let app = TestApp::spawn_with(|s| {
        s.images.max_bytes = 50_000;
        s.images.upload_max_bytes = 200_000;
    })
    .await;
    let (token, listing) = seller_listing(&app, "painter").await;
    let big = picture(ImageFormat::Png, 400, 400);
    assert!(big.len() > 50_000 && big.len() < 200_000, "{}", big.len());

    let resp = upload(&app, &token, &listing, &[("big.png", &big)]).await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "image_too_large");
    assert_eq!(resp.body["error"]["details"]["max_bytes"], 50_000);

    let huge = vec![0u8; 300_000];
    let resp = upload(&app, &token, &listing, &[("huge.jpg", &huge)]).await;
    assert_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Other routes keep the small JSON limit.
    let resp = app
        .raw(
            "POST",
            "/api/v1/listings",
            "application/json",
            &"x".repeat(100_000),
        )
        .await;
    assert_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(images_rows(&app).await, 0);
    assert!(app.stored_files().is_empty());
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_before_it_is_decoded() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    // 8000×8000 grey pixels (64 MB decoded) in a file of a few tens of kilobytes.
    let bomb = {
        let img = DynamicImage::ImageLuma8(image::GrayImage::new(8000, 8000));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    };
    assert!(bomb.len() < 500_000, "{}", bomb.len());

    let resp = upload(&app, &token, &listing, &[("small.png", &bomb)]).await;

    assert_error(
        &resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "image_too_many_pixels",
    );
    assert_eq!(resp.body["error"]["details"]["max_pixels"], 25_000_000);
    assert!(app.stored_files().is_empty());
}

#[tokio::test]
async fn metadata_is_stripped_and_the_picture_shown_upright() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    let photo = jpeg_with_exif(400, 200);
    assert!(photo.windows(3).any(|w| w == b"GPS"));

    let resp = upload(&app, &token, &listing, &[("holiday.jpg", &photo)]).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    app.run_image_jobs().await;

    let files = app.stored_files();
    let original = files
        .iter()
        .find(|f| f.contains("/original-"))
        .expect("the original");
    let stored = std::fs::read(app.objects_dir.join(original)).unwrap();
    assert!(!stored.windows(4).any(|w| w == b"Exif"), "EXIF kept");
    assert!(!stored.windows(3).any(|w| w == b"GPS"), "GPS kept");
    // The pixels are the uploaded ones: the JPEG decodes to the same size.
    assert_eq!(
        image::load_from_memory(&stored).unwrap().dimensions(),
        (400, 200)
    );
    let shown = public_listing(&app, &listing).await;
    assert_eq!(
        (&shown["images"][0]["width"], &shown["images"][0]["height"]),
        (&json!(200), &json!(400)),
        "rotated by its orientation"
    );
}

#[tokio::test]
async fn a_strangers_upload_is_refused_before_anything_is_read() {
    let app = TestApp::spawn().await;
    let (_, listing) = seller_listing(&app, "painter").await;
    let (_, stranger) = app.signed_up("stranger").await;
    let png = picture(ImageFormat::Png, 20, 20);

    let resp = upload(&app, &stranger, &listing, &[("mine.png", &png)]).await;
    assert_error(&resp, StatusCode::FORBIDDEN, "not_owner");
    let resp = upload(
        &app,
        &stranger,
        &uuid::Uuid::now_v7().to_string(),
        &[("x.png", &png)],
    )
    .await;
    assert_error(&resp, StatusCode::NOT_FOUND, "listing_not_found");
    let resp = app
        .upload(
            "POST",
            &format!("/api/v1/listings/{listing}/images"),
            None,
            "files",
            &[("x.png", "image/png", &png)],
        )
        .await;
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
    let resp = upload(&app, &stranger, "not-a-uuid", &[("x.png", &png)]).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.body);

    assert_eq!(images_rows(&app).await, 0);
    assert!(app.stored_files().is_empty());
}

#[tokio::test]
async fn the_job_run_twice_changes_nothing_the_second_time() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    let jpeg = picture(ImageFormat::Jpeg, 900, 600);
    upload(&app, &token, &listing, &[("a.jpg", &jpeg)]).await;
    let [ProcessOutcome::Ready { image_id, .. }] = app.run_image_jobs().await[..] else {
        panic!("one ready image");
    };
    let files = app.stored_files();
    let shown = public_listing(&app, &listing).await;
    let job_id: uuid::Uuid = sqlx::query_scalar("SELECT job_id FROM images WHERE id = $1")
        .bind(image_id)
        .fetch_one(app.pool())
        .await
        .unwrap();

    // A duplicate delivery of the finished job does nothing.
    let again = shared::images::process::process(&app.image_deps(), job_id)
        .await
        .unwrap();
    assert_eq!(again, ProcessOutcome::Skipped);
    // Even a job put back to queued (a lost result) redoes nothing harmful.
    sqlx::query("UPDATE jobs SET status = 'queued' WHERE id = $1")
        .bind(job_id)
        .execute(app.pool())
        .await
        .unwrap();
    let redo = app.run_image_jobs().await;
    assert!(
        matches!(redo[..], [ProcessOutcome::Ready { image_id: id, width: 900, height: 600 }] if id == image_id),
        "{redo:?}"
    );

    assert_eq!(app.stored_files(), files);
    assert_eq!(public_listing(&app, &listing).await, shown);
}

#[tokio::test]
async fn only_renditions_are_served_and_a_current_copy_is_not_sent_again() {
    let app = TestApp::spawn().await;
    let (token, listing) = seller_listing(&app, "painter").await;
    upload(
        &app,
        &token,
        &listing,
        &[("a.png", &picture(ImageFormat::Png, 50, 50))],
    )
    .await;
    app.run_image_jobs().await;
    let shown = public_listing(&app, &listing).await;
    let image_id = shown["images"][0]["id"].as_str().unwrap().to_owned();
    let url = shown["images"][0]["thumb_url"].as_str().unwrap().to_owned();
    let original = app
        .stored_files()
        .into_iter()
        .find(|f| f.contains("original"))
        .unwrap();
    let original_name = original.rsplit('/').next().unwrap();

    let first = app.get(&url, None).await;
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await;
    let again = TestApp::collect(again).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);

    for path in [
        format!("/api/v1/media/{image_id}/{original_name}"),
        format!("/api/v1/media/{image_id}/thumb-0000000000000000.webp"),
        format!("/api/v1/media/{image_id}/..%2F..%2Fetc%2Fpasswd"),
        format!(
            "/api/v1/media/{}/{}",
            uuid::Uuid::now_v7(),
            url.rsplit('/').next().unwrap()
        ),
    ] {
        let resp = app.get(&path, None).await;
        assert_error(&resp, StatusCode::NOT_FOUND, "image_not_found");
    }
}
