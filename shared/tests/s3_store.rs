//! The image store on an `s3://` location, against a real S3-compatible server: a private
//! `moto_server` (moto's server mode, from PyPI; `scripts/s3-server` installs it) on a port of
//! its own, a fresh bucket per test. What the store wrote is read back with plain HTTP, as a
//! browser or a CDN would: the key it has in the bucket, its headers, its bytes.
//!
//! Needs `moto_server` on the PATH, or its path in `MOTO_SERVER`. Without it the tests fail
//! rather than skip: nothing else exercises the store's S3 side.
//!
//! moto in this mode accepts any credentials and does not verify signatures (a request that
//! carries one is let through), so a pre-signed URL is checked here for its form, for naming
//! exactly its object, and for being what lets a private object out, not for its signature.

use std::{
    fs::File,
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use bytes::Bytes;
use reqwest::StatusCode;
use secrecy::SecretString;
use shared::{
    config::{ObjectStoreSettings, StoreLocation},
    domain::ImageFormat,
    images::{
        ImageStore,
        keys::{self, Rendition},
        storage::IMMUTABLE,
        upload::content_type,
    },
};
use uuid::Uuid;

const STARTUP: Duration = Duration::from_secs(30);
const URL_TTL: Duration = Duration::from_secs(600);
const ACCESS_KEY: &str = "moto-test-key";

/// The server every test here uses: started by the first test that asks, stopped when the last
/// one holding it ends (pass or fail), so the run leaves no process behind.
static MOTO: Mutex<Weak<Moto>> = Mutex::new(Weak::new());

fn moto() -> Arc<Moto> {
    let mut shared = MOTO.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(moto) = shared.upgrade() {
        return moto;
    }
    let moto = Arc::new(Moto::start());
    *shared = Arc::downgrade(&moto);
    moto
}

/// A running `moto_server`; stopped when dropped. Its output goes to a log file, shown when it
/// fails to start.
struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Moto {
    fn start() -> Self {
        let exe = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned());
        let port = free_port();
        let log = std::env::temp_dir().join(format!("mp-moto-{}.log", Uuid::new_v4().simple()));
        let out = File::create(&log).expect("create the moto log");
        let err = out.try_clone().expect("clone the moto log");
        let spawned = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn();
        // What it printed, for the failure; the log goes with it.
        let output = || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            text
        };
        let mut child = spawned.unwrap_or_else(|e| {
            output();
            panic!(
                "cannot start {exe:?} ({e}): install moto with scripts/s3-server, or set \
                 MOTO_SERVER to its moto_server"
            )
        });
        let deadline = Instant::now() + STARTUP;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{exe} exited ({status}):\n{}", output());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{exe} did not listen on {port} within {STARTUP:?}:\n{}",
                    output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, log }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// A bucket of its own on the shared server, and a client with no credentials to look at it.
struct Bucket {
    moto: Arc<Moto>,
    name: String,
    http: reqwest::Client,
}

impl Bucket {
    /// A new, empty bucket whose objects only signed requests may read (as S3 creates them).
    async fn private() -> Self {
        let this = Self::named(&format!("media-{}", Uuid::new_v4().simple()));
        let created = this
            .http
            .put(this.url(""))
            .send()
            .await
            .expect("create the bucket");
        assert_eq!(created.status(), StatusCode::OK, "create the bucket");
        this
    }

    /// A new, empty bucket whose objects anyone may read, as one behind
    /// `OBJECT_STORE_PUBLIC_URL` is; the tests read what the store wrote with plain GETs.
    async fn public_read() -> Self {
        let this = Self::private().await;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": "*",
                // S3 authorises a HEAD as s3:GetObject; moto asks for s3:HeadObject.
                "Action": ["s3:GetObject", "s3:HeadObject"],
                "Resource": format!("arn:aws:s3:::{}/*", this.name),
            }],
        });
        let set = this
            .http
            .put(format!("{}?policy", this.url("")))
            .body(policy.to_string())
            .send()
            .await
            .expect("set the bucket policy");
        assert!(set.status().is_success(), "set the bucket policy: {set:?}");
        this
    }

    /// A bucket that is not created.
    fn named(name: &str) -> Self {
        // reqwest and the store's client take the process's TLS provider, even for http://.
        shared::payments::install_crypto_provider();
        Self {
            moto: moto(),
            name: name.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The store on this bucket under `prefix`, configured as `OBJECT_STORE_URL` and the
    /// `AWS_*` variables would.
    fn store(&self, prefix: &str, public_url: Option<String>) -> ImageStore {
        let options = [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", "moto-test-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT", &self.moto.endpoint()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), SecretString::from(value)))
        .collect();
        ImageStore::from_settings(&ObjectStoreSettings {
            location: StoreLocation::S3 {
                bucket: self.name.clone(),
                prefix: prefix.to_owned(),
                options,
            },
            public_url,
            url_ttl: URL_TTL,
        })
        .expect("the S3 store opens")
    }

    /// The path-style URL of `key` as the bucket has it (any prefix included).
    fn url(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.moto.endpoint(), self.name)
    }

    /// Every key in the bucket, as the bucket has them, sorted.
    async fn keys(&self) -> Vec<String> {
        let listing = self
            .http
            .get(format!("{}?list-type=2", self.url("")))
            .send()
            .await
            .expect("list the bucket");
        assert_eq!(listing.status(), StatusCode::OK, "list the bucket");
        let xml = listing.text().await.expect("the bucket listing");
        let key = regex::Regex::new("<Key>([^<]*)</Key>").expect("regex");
        let mut keys: Vec<String> = key.captures_iter(&xml).map(|c| c[1].to_owned()).collect();
        keys.sort();
        keys
    }

    /// A plain GET of `url`, with no credentials: its status, headers and body.
    async fn fetch(&self, url: &str) -> (StatusCode, reqwest::header::HeaderMap, Bytes) {
        let got = self.http.get(url).send().await.expect("GET");
        let (status, headers) = (got.status(), got.headers().clone());
        (status, headers, got.bytes().await.expect("body"))
    }
}

/// Asserts `got` is `expected` byte for byte (saying how long each is, not what they hold).
#[track_caller]
fn assert_same(got: &[u8], expected: &[u8], what: &str) {
    assert!(
        got == expected,
        "{what}: {} bytes differ from the {} expected",
        got.len(),
        expected.len()
    );
}

/// Bytes no text decoding would survive (every byte value), different for each `seed`.
fn file(seed: &str, len: usize) -> Bytes {
    let mut bytes = seed.as_bytes().to_vec();
    bytes.extend((0..=255u8).cycle().take(len));
    bytes.into()
}

fn sorted(keys: &[&String]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| (*k).clone()).collect();
    keys.sort();
    keys
}

fn listed(files: &[shared::images::storage::StoredFile]) -> Vec<String> {
    let mut keys: Vec<String> = files.iter().map(|f| f.key.clone()).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn files_are_written_read_listed_and_deleted_under_the_key_prefix() {
    let bucket = Bucket::public_read().await;
    let store = bucket.store("prod", None);
    let image = Uuid::new_v4();
    let (thumb, large, original) = (
        file("thumb", 70_000),
        file("large", 200_000),
        file("original", 300_000),
    );
    let thumb_key = keys::rendition(image, Rendition::Thumb, &thumb);
    let large_key = keys::rendition(image, Rendition::Large, &large);
    let original_key = keys::original(image, ImageFormat::Jpeg, &original);
    let other = Uuid::new_v4();
    let other_thumb = file("other", 1000);
    let other_key = keys::rendition(other, Rendition::Thumb, &other_thumb);
    let webp = content_type(ImageFormat::Webp);
    store.put(&thumb_key, thumb.clone(), webp).await.unwrap();
    store.put(&large_key, large.clone(), webp).await.unwrap();
    let jpeg = content_type(ImageFormat::Jpeg);
    store
        .put(&original_key, original.clone(), jpeg)
        .await
        .unwrap();
    store
        .put(&other_key, other_thumb.clone(), webp)
        .await
        .unwrap();

    for (key, bytes) in [
        (&thumb_key, &thumb),
        (&large_key, &large),
        (&original_key, &original),
    ] {
        let got = store.get(key).await.unwrap().expect("a file just put");
        assert_same(&got, bytes, key);
    }
    let never_written = keys::rendition(image, Rendition::Thumb, b"other bytes");
    assert!(store.get(&never_written).await.unwrap().is_none());

    // In the bucket, every key is under the prefix, and nothing is outside it.
    let ours = [&large_key, &original_key, &thumb_key];
    let mut in_bucket: Vec<String> = ours
        .iter()
        .chain([&&other_key])
        .map(|k| format!("prod/{k}"))
        .collect();
    in_bucket.sort();
    assert_eq!(bucket.keys().await, in_bucket);
    let (status, _, raw) = bucket
        .fetch(&bucket.url(&format!("prod/{thumb_key}")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_same(&raw, &thumb, "the object under the prefix");
    let (status, _, _) = bucket.fetch(&bucket.url(&thumb_key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the key without the prefix");

    // Listed without the prefix, one image's folder only.
    let folder = keys::folder(image);
    let files = store.list(&folder).await.unwrap();
    assert_eq!(listed(&files), sorted(&ours));
    let now = chrono::Utc::now();
    for f in &files {
        let age = now - f.last_modified;
        assert!(
            age < chrono::Duration::minutes(5) && age > chrono::Duration::minutes(-5),
            "{} last modified {}",
            f.key,
            f.last_modified
        );
    }
    let first = store.list_page(&folder, None, 2).await.unwrap();
    let first: Vec<String> = first.into_iter().map(|f| f.key).collect();
    assert_eq!(first, sorted(&ours)[..2]);
    assert_eq!(
        listed(&store.list_page(&folder, None, 10).await.unwrap()),
        sorted(&ours)
    );
    assert_eq!(
        listed(&store.list(keys::ROOT).await.unwrap()),
        sorted(&[&large_key, &original_key, &other_key, &thumb_key])
    );
    assert!(
        store
            .list(&keys::folder(Uuid::new_v4()))
            .await
            .unwrap()
            .is_empty()
    );
    // The same bucket without the prefix sees the full keys.
    assert_eq!(
        listed(
            &bucket
                .store("", None)
                .list(&format!("prod/{folder}"))
                .await
                .unwrap()
        )
        .iter()
        .map(|k| k.strip_prefix("prod/").unwrap_or(k).to_owned())
        .collect::<Vec<_>>(),
        sorted(&ours)
    );

    // A file already gone is no error.
    let mut doomed: Vec<String> = ours.iter().map(|k| (*k).clone()).collect();
    doomed.push(never_written);
    store.delete(&doomed).await.unwrap();
    assert!(store.list(&folder).await.unwrap().is_empty());
    assert!(store.get(&thumb_key).await.unwrap().is_none());
    assert_eq!(bucket.keys().await, [format!("prod/{other_key}")]);
    store.delete(&doomed).await.unwrap();
    let kept = store
        .get(&other_key)
        .await
        .unwrap()
        .expect("another image's file");
    assert_same(&kept, &other_thumb, "another image's file");
}

#[tokio::test]
async fn a_walk_in_pages_sees_every_file_under_the_prefix_once_in_key_order() {
    let bucket = Bucket::private().await;
    let store = bucket.store("prod", None);
    // Keys beside the prefix (another deployment's, and one sorting between ours) that the
    // walk must not see.
    let beside = bucket.store("", None);
    let webp = content_type(ImageFormat::Webp);
    for key in [
        "images/outside.webp",
        "prod-old/images/x.webp",
        "pro/images/y.webp",
    ] {
        beside.put(key, file(key, 10), webp).await.unwrap();
    }
    let mut ours = Vec::new();
    for i in 0..3 {
        let image = Uuid::new_v4();
        for (j, rendition) in [Rendition::Thumb, Rendition::Large, Rendition::Thumb]
            .into_iter()
            .enumerate()
            .take(if i == 1 { 1 } else { 3 })
        {
            let bytes = file(&format!("{i} {j}"), 100);
            let key = keys::rendition(image, rendition, &bytes);
            store.put(&key, bytes, webp).await.unwrap();
            ours.push(key);
        }
    }
    ours.sort();

    let mut walked: Vec<String> = Vec::new();
    let mut pages = 0;
    loop {
        let page = store
            .list_page(keys::ROOT, walked.last().map(String::as_str), 3)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3, "{page:?}");
        walked.extend(page.into_iter().map(|f| f.key));
        pages += 1;
        assert!(pages <= ours.len(), "the walk does not end: {walked:?}");
    }
    assert_eq!(walked, ours, "every file once, in key order");
    assert_eq!(pages, ours.len().div_ceil(3));
}

#[tokio::test]
async fn each_file_is_stored_with_its_content_type_and_the_immutable_cache_policy() {
    let bucket = Bucket::public_read().await;
    let store = bucket.store("prod", None);
    let image = Uuid::new_v4();
    let (thumb, original) = (file("thumb", 5000), file("original", 9000));
    let thumb_key = keys::rendition(image, Rendition::Thumb, &thumb);
    let original_key = keys::original(image, ImageFormat::Png, &original);
    let webp = content_type(ImageFormat::Webp);
    store.put(&thumb_key, thumb.clone(), webp).await.unwrap();
    let png = content_type(ImageFormat::Png);
    store
        .put(&original_key, original.clone(), png)
        .await
        .unwrap();

    for (key, bytes, expected_type) in [
        (&thumb_key, thumb, "image/webp"),
        (&original_key, original, "image/png"),
    ] {
        let url = bucket.url(&format!("prod/{key}"));
        let head = bucket.http.head(&url).send().await.expect("HEAD");
        assert_eq!(head.status(), StatusCode::OK, "{key}");
        let (status, headers, body) = bucket.fetch(&url).await;
        assert_eq!(status, StatusCode::OK, "{key}");
        assert_same(&body, &bytes, key);
        for headers in [head.headers(), &headers] {
            assert_eq!(headers["content-type"], expected_type, "{key}");
            assert_eq!(headers["cache-control"], IMMUTABLE, "{key}");
        }
    }
    assert_eq!(IMMUTABLE, "public, max-age=31536000, immutable");
}

#[tokio::test]
async fn a_pre_signed_url_fetches_the_file_with_no_credentials() {
    let bucket = Bucket::private().await;
    for prefix in ["prod", "", "deep/er"] {
        let store = bucket.store(prefix, None);
        let image = Uuid::new_v4();
        let thumb = file(&format!("thumb {prefix}"), 4000);
        let key = keys::rendition(image, Rendition::Thumb, &thumb);
        store.put(&key, thumb.clone(), "image/webp").await.unwrap();
        let full = match prefix {
            "" => key.clone(),
            p => format!("{p}/{key}"),
        };

        let url = store.url(&key).await.unwrap();
        let (path, query) = url.split_once('?').expect("a query string");
        assert_eq!(path, bucket.url(&full), "{url}");
        for param in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256".to_owned(),
            format!("X-Amz-Credential={ACCESS_KEY}%2F"),
            format!("X-Amz-Expires={}", URL_TTL.as_secs()),
            "X-Amz-Signature=".to_owned(),
        ] {
            assert!(
                query.split('&').any(|p| p.starts_with(&param)),
                "{param} missing from {url}"
            );
        }
        let (status, headers, body) = bucket.fetch(&url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        assert_same(&body, &thumb, &url);
        assert_eq!(headers["content-type"], "image/webp");
        assert_eq!(headers["cache-control"], IMMUTABLE);

        // The bucket is private: the same address without the signature is refused.
        let (status, _, _) = bucket.fetch(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");

        // The URL names its one object: one for a file not stored finds nothing.
        let missing = keys::rendition(image, Rendition::Large, b"never stored");
        let (status, _, _) = bucket.fetch(&store.url(&missing).await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{prefix:?}");
    }
}

#[tokio::test]
async fn with_a_public_url_a_files_url_is_that_base_the_prefix_and_the_key() {
    let bucket = Bucket::public_read().await;
    // The public-read bucket's own address, where production would name a CDN in front of it.
    let base = bucket.url("");
    let base = base.trim_end_matches('/');
    for prefix in ["prod", ""] {
        let store = bucket.store(prefix, Some(base.to_owned()));
        let image = Uuid::new_v4();
        let large = file(&format!("large {prefix}"), 8000);
        let key = keys::rendition(image, Rendition::Large, &large);
        store.put(&key, large.clone(), "image/webp").await.unwrap();

        let url = store.url(&key).await.unwrap();
        let expected = match prefix {
            "" => format!("{base}/{key}"),
            p => format!("{base}/{p}/{key}"),
        };
        assert_eq!(url, expected);
        let (status, _, body) = bucket.fetch(&url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        assert_same(&body, &large, &url);
    }
    let cdn = bucket.store("prod", Some("https://cdn.example.test".to_owned()));
    assert_eq!(
        cdn.url("images/x/thumb-0123456789abcdef.webp")
            .await
            .unwrap(),
        "https://cdn.example.test/prod/images/x/thumb-0123456789abcdef.webp"
    );
}

#[tokio::test]
async fn a_bucket_that_does_not_exist_is_an_error() {
    let bucket = Bucket::named(&format!("absent-{}", Uuid::new_v4().simple()));
    let store = bucket.store("prod", None);
    let key = keys::rendition(Uuid::new_v4(), Rendition::Thumb, b"x");
    let put = store
        .put(&key, Bytes::from_static(b"x"), "image/webp")
        .await;
    assert!(put.is_err(), "{put:?}");
    let listed = store.list(keys::ROOT).await;
    assert!(listed.is_err(), "{listed:?}");
}
