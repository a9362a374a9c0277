//! Settings of images: the upload limits the api enforces, the renditions the worker makes, and
//! the object store both keep the files in.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;

use super::{AppEnv, ConfigError, Env};

/// Where image files are kept.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// A directory on the local filesystem (`file://` URL, or `OBJECT_STORE_DIR`). The api
    /// serves its files itself.
    Local(PathBuf),
    /// An S3-compatible bucket (`s3://bucket[/prefix]`); files are served by pre-signed URLs
    /// or from `OBJECT_STORE_PUBLIC_URL`.
    S3 {
        /// The bucket name.
        bucket: String,
        /// A key prefix inside the bucket (no leading or trailing `/`; may be empty).
        prefix: String,
        /// The `AWS_*` settings found in the environment (keys as named there).
        options: Vec<(String, SecretString)>,
    },
}

/// The object store and how its files reach a browser.
#[derive(Debug, Clone)]
pub struct ObjectStoreSettings {
    /// `OBJECT_STORE_URL` (unset = the local directory `OBJECT_STORE_DIR`, `data/objects`).
    /// Required in production: files written to one machine's disk are lost to every other
    /// replica, so that must be a choice (`file:///shared/volume`), not a default.
    pub location: StoreLocation,
    /// `OBJECT_STORE_PUBLIC_URL` (unset): a public base URL (CDN, public-read bucket) the keys
    /// are appended to, instead of pre-signed URLs. Only with an S3 store.
    pub public_url: Option<String>,
    /// `IMAGE_URL_TTL_SECS` (3600): how long a pre-signed URL stays valid.
    pub url_ttl: Duration,
}

/// What an upload may be and what processing makes of it.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    /// `IMAGE_MAX_BYTES` (5 MiB): the largest file accepted.
    pub max_bytes: usize,
    /// `IMAGE_MAX_PIXELS` (25,000,000): the largest width × height accepted, checked from the
    /// header before anything is decoded (a small file can declare a huge image).
    pub max_pixels: u64,
    /// `IMAGE_MAX_PER_LISTING` (10): images one listing may have.
    pub max_per_listing: i64,
    /// `IMAGE_UPLOAD_MAX_BYTES` (25 MiB): the body limit of an upload request (several files);
    /// every other request keeps `MAX_BODY_BYTES`.
    pub upload_max_bytes: usize,
    /// `IMAGE_DECODE_CONCURRENCY` (2): images one process decodes at once (a 25-megapixel
    /// image takes about 100 MB while it is decoded).
    pub decode_concurrency: usize,
    /// `IMAGE_THUMB_PX` (320): the longest side of the thumbnail.
    pub thumb_px: u32,
    /// `IMAGE_LARGE_PX` (1024): the longest side of the display rendition.
    pub large_px: u32,
    /// `IMAGE_WEBP_QUALITY` (80): lossy WebP quality of the renditions, 1-100.
    pub webp_quality: u8,
    /// `IMAGE_ORPHAN_GRACE_SECS` (3600): a file without a row is removed only once it is this
    /// old, so the sweep never races an upload whose row is not committed yet.
    pub orphan_grace: Duration,
    /// Where the files are kept.
    pub store: ObjectStoreSettings,
}

/// The `AWS_*` variables passed to an S3 store (credentials, region, endpoint).
const S3_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
];

pub(super) fn image_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
    app_env: AppEnv,
) -> Result<ImageSettings, ConfigError> {
    const MIB: usize = 1024 * 1024;
    let max_bytes = env.bounded("IMAGE_MAX_BYTES", 5 * MIB, 1024, 256 * MIB)?;
    let upload_max_bytes = env.bounded("IMAGE_UPLOAD_MAX_BYTES", 25 * MIB, 1024, 1024 * MIB)?;
    if upload_max_bytes < max_bytes {
        return Err(env.invalid(
            "IMAGE_UPLOAD_MAX_BYTES",
            "must be at least IMAGE_MAX_BYTES".into(),
        ));
    }
    let thumb_px = env.bounded("IMAGE_THUMB_PX", 320, 16, 4096)?;
    let large_px = env.bounded("IMAGE_LARGE_PX", 1024, 16, 8192)?;
    if large_px < thumb_px {
        return Err(env.invalid("IMAGE_LARGE_PX", "must be at least IMAGE_THUMB_PX".into()));
    }
    Ok(ImageSettings {
        max_bytes,
        max_pixels: env.bounded("IMAGE_MAX_PIXELS", 25_000_000, 1, 200_000_000)?,
        max_per_listing: env.bounded("IMAGE_MAX_PER_LISTING", 10, 1, 100)?,
        upload_max_bytes,
        decode_concurrency: env.bounded("IMAGE_DECODE_CONCURRENCY", 2, 1, 64)?,
        thumb_px,
        large_px,
        webp_quality: env.bounded("IMAGE_WEBP_QUALITY", 80, 1, 100)?,
        orphan_grace: env.secs("IMAGE_ORPHAN_GRACE_SECS", 3600)?,
        store: store_settings(env, app_env)?,
    })
}

fn store_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
    app_env: AppEnv,
) -> Result<ObjectStoreSettings, ConfigError> {
    let location = match env.optional("OBJECT_STORE_URL") {
        None if app_env == AppEnv::Production => {
            return Err(env.required_in_production("OBJECT_STORE_URL"));
        }
        None => StoreLocation::Local(env.string("OBJECT_STORE_DIR", "data/objects").into()),
        Some(url) => parse_location(env, url.trim())?,
    };
    let public_url = env
        .optional("OBJECT_STORE_PUBLIC_URL")
        .map(|u| u.trim().trim_end_matches('/').to_owned());
    if let Some(url) = &public_url {
        if matches!(location, StoreLocation::Local(_)) {
            return Err(env.invalid(
                "OBJECT_STORE_PUBLIC_URL",
                "only used with an s3:// OBJECT_STORE_URL (the api serves local files)".into(),
            ));
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(env.invalid(
                "OBJECT_STORE_PUBLIC_URL",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
    }
    let url_ttl = env.secs("IMAGE_URL_TTL_SECS", 3600)?;
    // SigV4 refuses a pre-signed URL valid for more than 7 days.
    if url_ttl > Duration::from_secs(7 * 86_400) {
        return Err(env.invalid(
            "IMAGE_URL_TTL_SECS",
            "must be at most 604800 (7 days)".into(),
        ));
    }
    Ok(ObjectStoreSettings {
        location,
        public_url,
        url_ttl,
    })
}

fn parse_location<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
    url: &str,
) -> Result<StoreLocation, ConfigError> {
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(env.invalid(
                "OBJECT_STORE_URL",
                format!("{url:?}: a file:// URL needs an absolute path (file:///var/lib/...)"),
            ));
        }
        return Ok(StoreLocation::Local(path.into()));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(env.invalid("OBJECT_STORE_URL", format!("{url:?} names no bucket")));
        }
        let options = S3_VARIABLES
            .iter()
            .filter_map(|name| {
                env.optional(name)
                    .map(|v| ((*name).to_owned(), SecretString::from(v)))
            })
            .collect();
        return Ok(StoreLocation::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            options,
        });
    }
    Err(env.invalid(
        "OBJECT_STORE_URL",
        format!("{url:?}: expected file:///path or s3://bucket[/prefix]"),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::Settings;
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn a_developer_machine_keeps_files_in_a_local_directory() {
        let s = settings(&[]).unwrap().images;
        assert!(
            matches!(&s.store.location, StoreLocation::Local(dir) if dir.ends_with("data/objects"))
        );
        assert_eq!(s.max_bytes, 5 * 1024 * 1024);
        assert_eq!(s.max_per_listing, 10);
    }

    #[test]
    fn production_refuses_to_start_without_an_object_store() {
        for blank in [None, Some(" ")] {
            let env = Env {
                get: &|k: &str| {
                    (k == "OBJECT_STORE_URL")
                        .then(|| blank.map(str::to_owned))
                        .flatten()
                },
            };
            let err = store_settings(&env, AppEnv::Production).unwrap_err();
            assert_eq!(err.name, "OBJECT_STORE_URL");
        }
    }

    #[test]
    fn s3_urls_carry_bucket_prefix_and_aws_settings() {
        let lookup: HashMap<&str, &str> = [
            ("OBJECT_STORE_URL", "s3://shop-media/prod/images/"),
            ("AWS_REGION", "eu-west-1"),
        ]
        .into_iter()
        .collect();
        let env = Env {
            get: &|k: &str| lookup.get(k).map(|v| v.to_string()),
        };
        let s = store_settings(&env, AppEnv::Production).unwrap();
        let StoreLocation::S3 {
            bucket,
            prefix,
            options,
        } = s.location
        else {
            panic!("an S3 location");
        };
        assert_eq!(
            (bucket.as_str(), prefix.as_str()),
            ("shop-media", "prod/images")
        );
        assert_eq!(options.len(), 1);
        assert_eq!(options[0].0, "AWS_REGION");
    }

    #[test]
    fn bad_store_settings_are_refused_by_name() {
        for (vars, name) in [
            (vec![("OBJECT_STORE_URL", "ftp://x")], "OBJECT_STORE_URL"),
            (
                vec![("OBJECT_STORE_URL", "file://relative")],
                "OBJECT_STORE_URL",
            ),
            (vec![("OBJECT_STORE_URL", "s3://")], "OBJECT_STORE_URL"),
            (
                vec![("OBJECT_STORE_PUBLIC_URL", "https://cdn")],
                "OBJECT_STORE_PUBLIC_URL",
            ),
            (vec![("IMAGE_URL_TTL_SECS", "999999")], "IMAGE_URL_TTL_SECS"),
            (
                vec![
                    ("IMAGE_UPLOAD_MAX_BYTES", "2000"),
                    ("IMAGE_MAX_BYTES", "4000"),
                ],
                "IMAGE_UPLOAD_MAX_BYTES",
            ),
            (vec![("IMAGE_WEBP_QUALITY", "0")], "IMAGE_WEBP_QUALITY"),
        ] {
            assert_eq!(settings(&vars).unwrap_err().name, name, "{vars:?}");
        }
    }
}
