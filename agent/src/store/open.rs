//! Opening a store from its URL: a local directory (a path or `file://`), S3-compatible
//! object storage (`s3://BUCKET/PREFIX`) or memory (`memory:`, for tests).

use super::retry::op_timeout;
use super::{Store, StoreError};
use object_store::ObjectStore;
use std::path::PathBuf;
use std::sync::Arc;

/// S3 settings from a config file (the environment is read too; these win).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub allow_http: bool,
}

impl Store {
    /// Opens a store by URL with settings from the environment. A local directory is
    /// created if `create` is set.
    pub fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        Self::open_with(url, create, &S3Options::default())
    }

    /// Opens a store by URL: a path, `file://PATH`, `s3://BUCKET/PREFIX` or `memory:`.
    pub fn open_with(url: &str, create: bool, s3: &S3Options) -> Result<Self, StoreError> {
        if url == "memory:" {
            return Ok(Self::from_object_store(
                Arc::new(object_store::memory::InMemory::new()),
                url,
            ));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            return Self::open_s3(url, rest, s3);
        }
        let path = if let Some(rest) = url.strip_prefix("file://") {
            PathBuf::from(rest)
        } else if url.contains("://") {
            return Err(StoreError::Open {
                url: url.into(),
                reason: "unsupported URL scheme (use a path, file://PATH or s3://BUCKET/PREFIX)"
                    .into(),
            });
        } else {
            PathBuf::from(url)
        };
        let path = std::path::absolute(&path).map_err(|e| StoreError::Open {
            url: url.into(),
            reason: e.to_string(),
        })?;
        if create {
            std::fs::create_dir_all(&path).map_err(|e| StoreError::Open {
                url: url.into(),
                reason: e.to_string(),
            })?;
        } else if !path.is_dir() {
            return Err(StoreError::NotFound {
                url: url.into(),
                path: String::new(),
            });
        }
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(|e| {
            StoreError::Open {
                url: url.into(),
                reason: e.to_string(),
            }
        })?;
        let mut s = Self::wrap(Arc::new(fs), url)?;
        s.local_root = Some(path);
        Ok(s)
    }

    fn open_s3(url: &str, rest: &str, o: &S3Options) -> Result<Self, StoreError> {
        use object_store::aws::AmazonS3Builder;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Open {
                url: url.into(),
                reason: "no bucket in the URL (s3://BUCKET/PREFIX)".into(),
            });
        }
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false);
        let allow_http =
            std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1") || o.allow_http;
        let endpoint = o
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok());
        if endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
            && !allow_http
        {
            return Err(StoreError::Open {
                url: url.into(),
                reason: format!(
                    "the endpoint {} is plain http; allow it with allow_http = true in the config or \
                     AWS_ALLOW_HTTP=true (only on loopback or a trusted LAN: credentials travel unencrypted)",
                    endpoint.unwrap_or_default()
                ),
            });
        }
        if std::env::var("AWS_REGION").is_err()
            && std::env::var("AWS_DEFAULT_REGION").is_err()
            && o.region.is_none()
        {
            b = b.with_region("us-east-1");
        }
        if let Some(v) = &o.endpoint {
            b = b.with_endpoint(v);
        }
        if let Some(v) = &o.region {
            b = b.with_region(v);
        }
        if let Some(v) = &o.access_key_id {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = &o.secret_access_key {
            b = b.with_secret_access_key(v);
        }
        let timeout = op_timeout();
        b = b
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_allow_http(allow_http)
                    .with_timeout(timeout)
                    .with_connect_timeout(std::time::Duration::from_secs(10)),
            )
            .with_retry(object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: std::time::Duration::from_secs(60),
                ..Default::default()
            });
        let s3 = b.build().map_err(|e| StoreError::Open {
            url: url.into(),
            reason: e.to_string(),
        })?;
        let inner: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                s3,
                prefix.trim_matches('/'),
            ))
        };
        Self::wrap(inner, url)
    }

    /// Applies the test-only fault wrapper when `COOP_FAULT_STORE` is set.
    fn wrap(inner: Arc<dyn ObjectStore>, url: &str) -> Result<Self, StoreError> {
        let mut inner = inner;
        if let Some(spec) = std::env::var("COOP_FAULT_STORE")
            .ok()
            .filter(|s| !s.is_empty())
        {
            let cfg =
                crate::fault::FaultConfig::parse(&spec).map_err(|reason| StoreError::Open {
                    url: url.into(),
                    reason,
                })?;
            inner = Arc::new(crate::fault::FaultStore::new(inner, cfg));
        }
        Ok(Self::from_object_store(inner, url))
    }
}
