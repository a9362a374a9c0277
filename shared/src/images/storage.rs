//! The object store image files are kept in (through the `object_store` crate): a local
//! directory by default, an S3-compatible bucket in production. Also how a file reaches a
//! browser: served by the api from a local store, or by a pre-signed (or public) URL from S3.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt as _, PutOptions, PutPayload,
    aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey},
    local::LocalFileSystem,
    path::Path,
    prefix::PrefixStore,
    signer::Signer as _,
};
use secrecy::ExposeSecret as _;

use crate::config::{ObjectStoreSettings, StoreLocation};

/// The path the api serves local files under (`<MEDIA_PATH>/<image id>/<file>`).
pub const MEDIA_PATH: &str = "/api/v1/media";

/// Cache policy of every file: names are content-addressed, so a name's bytes never change.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A failure of the object store.
pub type StoreFailure = object_store::Error;

/// A file in the store.
#[derive(Debug, Clone)]
pub struct StoredFile {
    /// Its key.
    pub key: String,
    /// When it was last written.
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// How files reach a browser.
#[derive(Clone)]
enum Serving {
    /// The api serves them (`MEDIA_PATH`).
    Api,
    /// Pre-signed GET URLs, valid for the TTL.
    Signed {
        s3: Arc<AmazonS3>,
        prefix: String,
        ttl: Duration,
    },
    /// A public base URL the full key is appended to.
    Public(String),
}

/// The image files' store. Cheap to clone.
#[derive(Clone)]
pub struct ImageStore {
    store: Arc<dyn ObjectStore>,
    serving: Serving,
    /// Whether the store keeps per-file headers (S3 does; the local filesystem does not).
    attributes: bool,
    /// Whether listings come in key order (S3's do; a directory walk's do not).
    ordered_listing: bool,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ImageStore({})", self.store)
    }
}

impl ImageStore {
    /// Opens the store `settings` names (creating a local directory if needed).
    pub fn from_settings(settings: &ObjectStoreSettings) -> Result<Self, StoreFailure> {
        match &settings.location {
            StoreLocation::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(e),
                })?;
                Ok(Self {
                    store: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
                    serving: Serving::Api,
                    attributes: false,
                    ordered_listing: false,
                })
            }
            StoreLocation::S3 {
                bucket,
                prefix,
                options,
            } => {
                let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
                for (name, value) in options {
                    match name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                        Ok(key) => builder = builder.with_config(key, value.expose_secret()),
                        Err(_) => tracing::warn!(variable = %name, "not an S3 setting; ignored"),
                    }
                }
                let s3 = Arc::new(builder.build()?);
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    s3.clone()
                } else {
                    Arc::new(PrefixStore::new(s3.clone(), prefix.as_str()))
                };
                let serving = match &settings.public_url {
                    Some(base) => Serving::Public(match prefix.as_str() {
                        "" => base.clone(),
                        p => format!("{base}/{p}"),
                    }),
                    None => Serving::Signed {
                        s3,
                        prefix: prefix.clone(),
                        ttl: settings.url_ttl,
                    },
                };
                Ok(Self {
                    store,
                    serving,
                    attributes: true,
                    ordered_listing: true,
                })
            }
        }
    }

    /// Lists one file, so a store that cannot be used (a bucket that does not exist, wrong
    /// credentials, an unreachable endpoint) stops start-up. Needed because S3 answers a read
    /// from a missing bucket like a missing file: without it a misnamed bucket would look like
    /// images whose originals are gone.
    pub async fn verify(&self) -> Result<(), StoreFailure> {
        let root = Path::from(super::keys::ROOT);
        match self.store.list(Some(&root)).next().await {
            Some(Err(e)) => Err(e),
            Some(Ok(_)) | None => Ok(()),
        }
    }

    /// Whether the api serves the files itself (a local store).
    pub fn served_by_api(&self) -> bool {
        matches!(self.serving, Serving::Api)
    }

    /// Writes `bytes` under `key` (replacing a file of the same name, which by construction
    /// has the same bytes).
    pub async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &'static str,
    ) -> Result<(), StoreFailure> {
        let mut options = PutOptions::default();
        if self.attributes {
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::ContentType, content_type.into());
            attributes.insert(Attribute::CacheControl, IMMUTABLE.into());
            options.attributes = attributes;
        }
        self.store
            .put_opts(&Path::from(key), PutPayload::from_bytes(bytes), options)
            .await?;
        Ok(())
    }

    /// The bytes under `key`, or `None` when there is no such file.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreFailure> {
        match self.store.get(&Path::from(key)).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the files under `keys`; a file already gone is fine.
    pub async fn delete(&self, keys: &[String]) -> Result<(), StoreFailure> {
        for key in keys {
            match self.store.delete(&Path::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The files under the folder `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<StoredFile>, StoreFailure> {
        let prefix = Path::from(prefix);
        self.store
            .list(Some(&prefix))
            .map_ok(|meta| StoredFile {
                key: meta.location.to_string(),
                last_modified: meta.last_modified,
            })
            .try_collect()
            .await
    }

    /// Up to `limit` files under the folder `prefix` whose keys sort after `after`, in key
    /// order: one page of a walk through the store that resumes where the previous page ended.
    pub async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredFile>, StoreFailure> {
        let prefix = Path::from(prefix);
        let stream = match after {
            Some(after) => self
                .store
                .list_with_offset(Some(&prefix), &Path::from(after)),
            None => self.store.list(Some(&prefix)),
        };
        let to_file = |meta: object_store::ObjectMeta| StoredFile {
            key: meta.location.to_string(),
            last_modified: meta.last_modified,
        };
        if self.ordered_listing {
            // S3 lists in key order: the first `limit` are the page.
            return stream.take(limit).map_ok(to_file).try_collect().await;
        }
        // A local directory lists in no particular order: the page is the smallest keys.
        let mut files: Vec<StoredFile> = stream.map_ok(to_file).try_collect().await?;
        files.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        files.truncate(limit);
        Ok(files)
    }

    /// The URL a browser loads the file `key` from.
    pub async fn url(&self, key: &str) -> Result<String, StoreFailure> {
        match &self.serving {
            Serving::Api => {
                let rest = key
                    .strip_prefix(super::keys::ROOT)
                    .and_then(|r| r.strip_prefix('/'))
                    .unwrap_or(key);
                Ok(format!("{MEDIA_PATH}/{rest}"))
            }
            Serving::Public(base) => Ok(format!("{base}/{key}")),
            Serving::Signed { s3, prefix, ttl } => {
                let full = match prefix.as_str() {
                    "" => key.to_owned(),
                    p => format!("{p}/{key}"),
                };
                let url = s3
                    .signed_url(poem::http::Method::GET, &Path::from(full), *ttl)
                    .await?;
                Ok(url.to_string())
            }
        }
    }
}
