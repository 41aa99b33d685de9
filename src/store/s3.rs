//! S3-compatible object storage through the `object_store` crate, driven by a
//! small current-thread tokio runtime owned by the tier: the rest of the
//! program stays synchronous.
//!
//! Credentials come only from the standard AWS environment variables
//! (`AmazonS3Builder::from_env`) or, when none are set there, from the shared
//! credentials file (`$AWS_SHARED_CREDENTIALS_FILE`, `~/.aws/credentials`,
//! profile `$AWS_PROFILE` or `default`). They are never read from the tier
//! configuration and are scrubbed from every error message, which carries
//! the store's error code and message rather than its XML body (`condense`).
//!
//! Uploads above [`MULTIPART_THRESHOLD`] are multipart, [`PART_SIZE`] parts,
//! at most [`MAX_IN_FLIGHT`] parts in flight (bounded memory); the upload is
//! completed only after the last byte was sent and the SHA-256 of what was
//! sent matched the sidecar, so an interrupted push never makes a partial
//! object visible (the bucket should abort incomplete multipart uploads after
//! a day by a lifecycle rule; see the README).

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use sha2::{Digest, Sha256};

use super::{Kind, Object, Store, Upload};
use crate::error::{Error, Result};
use crate::events::Events;

/// Files larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded concurrently (memory: about (1 + this) × [`PART_SIZE`]).
pub const MAX_IN_FLIGHT: usize = 2;

/// An S3 bucket (under a prefix) as a [`Store`].
pub struct S3Store {
    rt: Arc<tokio::runtime::Runtime>,
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    /// Secret values to scrub from messages.
    secrets: Vec<String>,
}

/// `[section]` → key/value pairs of an AWS ini-style file.
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || l.starts_with(';') || l.is_empty() {
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            inside = s.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = l.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
    }
    out
}

fn env_set(k: &str) -> bool {
    std::env::var_os(k).is_some_and(|v| !v.is_empty())
}

fn aws_dir_file(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    crate::paths::home().ok().map(|h| h.join(".aws").join(name))
}

/// Applies the shared credentials/config files when the environment names
/// no credentials (resp. no region). Returns the secret values used.
fn apply_profile(mut b: AmazonS3Builder, region_given: bool) -> (AmazonS3Builder, Vec<String>) {
    let mut secrets = Vec::new();
    let profile = std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".into());
    let env_creds = env_set("AWS_ACCESS_KEY_ID")
        || env_set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if !env_creds {
        if let Some(text) = aws_dir_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
            .and_then(|p| std::fs::read_to_string(p).ok())
        {
            for (k, v) in ini_section(&text, &profile) {
                match k.as_str() {
                    "aws_access_key_id" => b = b.with_access_key_id(v),
                    "aws_secret_access_key" => {
                        secrets.push(v.clone());
                        b = b.with_secret_access_key(v)
                    }
                    "aws_session_token" => {
                        secrets.push(v.clone());
                        b = b.with_token(v)
                    }
                    _ => {}
                }
            }
        }
    }
    if !region_given && !env_set("AWS_REGION") && !env_set("AWS_DEFAULT_REGION") {
        let section = if profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {profile}")
        };
        let region = aws_dir_file("AWS_CONFIG_FILE", "config")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| {
                ini_section(&t, &section)
                    .into_iter()
                    .find(|(k, _)| k == "region")
                    .map(|(_, v)| v)
            });
        b = b.with_region(region.unwrap_or_else(|| "us-east-1".into()));
    }
    (b, secrets)
}

/// `s3://bucket` or `s3://bucket/prefix`.
pub fn s3_url(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    }
}

impl S3Store {
    pub fn new(
        bucket: &str,
        prefix: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> Result<S3Store> {
        // TLS: rustls with the ring provider (no C toolchain beyond cc, no cmake)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::operational(format!("starting the I/O runtime: {e}")))?;
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                backoff: Default::default(),
                max_retries: 4,
                retry_timeout: Duration::from_secs(60),
            })
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(15))
                    .with_timeout(Duration::from_secs(300)),
            );
        if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
            b = b.with_allow_http(true);
        }
        if let Some(e) = endpoint {
            b = b.with_endpoint(e);
            // an http:// endpoint written in the configuration is explicit
            if e.starts_with("http://") {
                b = b.with_allow_http(true);
            }
        }
        if let Some(r) = region {
            b = b.with_region(r);
        }
        let (b, mut secrets) = apply_profile(b, region.is_some());
        for k in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            if let Ok(v) = std::env::var(k) {
                if !v.is_empty() {
                    secrets.push(v);
                }
            }
        }
        let url = s3_url(bucket, prefix);
        let store = b.build().map_err(|e| {
            Error::usage(format!(
                "S3 tier {url}: {}",
                scrub(&e.to_string(), &secrets)
            ))
            .hint("check the endpoint and region in the tier configuration or AWS_ENDPOINT_URL / AWS_REGION")
        })?;
        Ok(S3Store {
            rt: Arc::new(rt),
            store: Arc::new(store),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            secrets,
        })
    }

    fn key(&self, name: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(name)
        } else {
            ObjPath::from(format!("{}/{name}", self.prefix))
        }
    }

    fn obj_url(&self, name: &str) -> String {
        format!("{}/{name}", self.url())
    }

    /// Our error for an object-store failure: what, where, and a hint;
    /// never a secret.
    fn err(&self, what: &str, name: Option<&str>, e: object_store::Error) -> Error {
        let at = match name {
            Some(n) => self.obj_url(n),
            None => self.url(),
        };
        let msg = condense(&scrub(&format!("{e}"), &self.secrets));
        // the root cause (the display repeats the intermediate ones)
        let mut root: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(next) = root.and_then(|r| r.source()) {
            root = Some(next);
        }
        let detail = root
            .map(|r| condense(&scrub(&r.to_string(), &self.secrets)))
            .unwrap_or_default();
        let hint = match &e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                "the server refused the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws/credentials) and the bucket policy"
            }
            object_store::Error::NotFound { .. } => {
                "check the bucket, prefix and archive name (`list --tier NAME`)"
            }
            // listing errors come as Generic, whatever the status: the
            // store's code tells (moto: InvalidAccessKeyId; Garage:
            // 403 AccessDenied, for an unknown key and for a key not allowed
            // on the bucket)
            _ if [
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
                "403 Forbidden",
                "401 Unauthorized",
            ]
            .iter()
            .any(|c| detail.contains(c) || msg.contains(c)) =>
            {
                "the server refused the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws/credentials) and that the key may use the bucket (a bucket policy; Garage: `garage bucket allow`)"
            }
            // Garage checks the signature's region against its s3_region
            _ if ["AuthorizationHeaderMalformed", "unexpected scope"]
                .iter()
                .any(|c| detail.contains(c) || msg.contains(c)) =>
            {
                "the store expects another region (see the scope it expects above): set `region` in the tier configuration or AWS_REGION (Garage: its s3_region, often \"garage\")"
            }
            _ if ["503 Service Unavailable", "ServiceUnavailable", "SlowDown"]
                .iter()
                .any(|c| detail.contains(c) || msg.contains(c)) =>
            {
                "the store is unavailable: on a replicated store, check that enough of its nodes are up (Garage with 3 copies: 2 of 3), then run again"
            }
            _ => "check the endpoint (AWS_ENDPOINT_URL or the tier's endpoint; AWS_ALLOW_HTTP=true for plain http), the bucket and the network, then run again",
        };
        let text = if detail.is_empty() || msg.contains(&detail) {
            msg
        } else {
            format!("{msg} ({detail})")
        };
        Error::operational(format!("{what} {at}: {text}")).hint(hint)
    }

    async fn upload_async(
        &self,
        name: &str,
        src: Upload<'_>,
        events: &dyn Events,
    ) -> Result<String> {
        let Upload {
            reader: f,
            size,
            expected,
            label,
        } = src;
        let key = self.key(name);
        let pb = events.progress(size, name);
        let local = std::path::Path::new(label);
        let mismatch = |actual: &str| super::digest_mismatch(label, actual, expected);
        if size <= MULTIPART_THRESHOLD {
            let mut data = Vec::with_capacity(size as usize);
            f.read_to_end(&mut data)
                .map_err(|e| crate::error::from_io(e, "reading", local))?;
            let digest = hex::encode(Sha256::digest(&data));
            if digest != expected {
                return Err(mismatch(&digest));
            }
            pb.advance(data.len() as u64);
            self.store
                .put(&key, PutPayload::from(Bytes::from(data)))
                .await
                .map_err(|e| self.err("uploading to", Some(name), e))?;
            pb.finish();
            return Ok(digest);
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.err("starting a multipart upload of", Some(name), e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1024 * 1024];
        let mut sent: u64 = 0;
        let parts = size.div_ceil(PART_SIZE as u64);
        let res: Result<()> = async {
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| crate::error::from_io(e, "reading", local))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                w.wait_for_capacity(MAX_IN_FLIGHT)
                    .await
                    .map_err(|e| self.err("uploading a part of", Some(name), e))?;
                w.write(&buf[..n]);
                let before = sent / PART_SIZE as u64;
                sent += n as u64;
                pb.advance(n as u64);
                if sent / PART_SIZE as u64 > before {
                    events.detail(format!(
                        "{name}: part {}/{parts} queued ({sent} of {size} bytes)",
                        sent / PART_SIZE as u64
                    ));
                }
            }
            Ok(())
        }
        .await;
        let digest = hex::encode(h.finalize());
        let res = res.and_then(|_| {
            if digest != expected {
                Err(mismatch(&digest))
            } else {
                Ok(())
            }
        });
        if let Err(e) = res {
            let _ = w.abort().await;
            return Err(e);
        }
        w.finish()
            .await
            .map_err(|e| self.err("completing the multipart upload of", Some(name), e))?;
        pb.finish();
        events.detail(format!(
            "{name}: multipart upload completed ({parts} parts)"
        ));
        Ok(digest)
    }
}

/// An object-store message made readable: every XML error body of the store
/// (`<?xml …?><Error><Code>…</Code><Message>…</Message>…</Error>`, which the
/// client quotes whole) becomes `Code: Message` with its entities decoded,
/// a body quoted again (by a wrapping error) is dropped, and so are the query
/// strings of request URLs (upload ids) and the retry settings.
pub(crate) fn condense(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(512));
    let mut seen: Vec<String> = Vec::new();
    let mut rest = text;
    loop {
        let start = ["<?xml", "<Error>", "<Error "]
            .iter()
            .filter_map(|m| rest.find(m))
            .min();
        let Some(start) = start else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..start]);
        let body = &rest[start..];
        let end = body
            .find("</Error>")
            .map_or(body.len(), |i| i + "</Error>".len());
        let body = &body[..end];
        let field = |tag: &str| {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            let from = body.find(&open)? + open.len();
            // a body cut short (the client keeps a bounded prefix) ends
            // at the next tag or at its end
            let len = body[from..]
                .find(&close)
                .or_else(|| body[from..].find('<'))
                .unwrap_or(body.len() - from);
            let v = xml_unescape(body[from..from + len].trim());
            (!v.is_empty()).then_some(v)
        };
        let text = match (field("Code"), field("Message")) {
            (Some(c), Some(m)) if m.contains(&c) => m,
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c,
            (None, Some(m)) => m,
            (None, None) => "(an error body without a code)".to_owned(),
        };
        rest = &rest[start + end..];
        if seen.contains(&text) {
            // the same body again: drop it and what introduced it
            let t = out.trim_end_matches([':', ' ', '(']).len();
            let opened = out[t..].contains('(');
            out.truncate(t);
            if opened {
                rest = rest.strip_prefix(')').unwrap_or(rest);
            }
            continue;
        }
        out.push_str(&text);
        seen.push(text);
    }
    // request URLs: the query (part numbers, upload ids) is noise here
    let mut s = String::with_capacity(out.len());
    for (i, word) in out.split(' ').enumerate() {
        if i > 0 {
            s.push(' ');
        }
        match word.find('?') {
            Some(q) if word.starts_with("http://") || word.starts_with("https://") => {
                s.push_str(&word[..q])
            }
            _ => s.push_str(word),
        }
    }
    // "…, max_retries: 4, retry_timeout: 60s  - " (the configuration)
    if let Some(i) = s.find(", max_retries: ") {
        if let Some(j) = s[i..].find(" - ") {
            s.replace_range(i..i + j + " - ".len(), ": ");
        }
    }
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    // "Generic S3 error: Generic S3 error: …" (a wrapper of a wrapper)
    let mut clauses: Vec<&str> = Vec::new();
    for c in s.split(": ") {
        if clauses.last() != Some(&c) {
            clauses.push(c);
        }
    }
    clauses.join(": ")
}

/// The five XML entities and numeric character references.
fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(semi) = tail.find(';').filter(|&n| n <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let ent = &tail[1..semi];
        let ch = match ent {
            "quot" => Some('"'),
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Replaces every secret value in `s`.
fn scrub(s: &str, secrets: &[String]) -> String {
    let mut out = s.to_owned();
    for sec in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(sec.as_str(), "[redacted]");
    }
    out
}

/// A synchronous reader over an object's byte stream.
struct S3Reader {
    rt: Arc<tokio::runtime::Runtime>,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    cur: Bytes,
    url: String,
    secrets: Vec<String>,
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => {
                    return Err(crate::error::into_io(
                        Error::operational(format!(
                            "reading {}: {}",
                            self.url,
                            condense(&scrub(&e.to_string(), &self.secrets))
                        ))
                        .hint("check the network and the endpoint, then run again"),
                    ))
                }
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

impl Store for S3Store {
    fn url(&self) -> String {
        s3_url(&self.bucket, &self.prefix)
    }

    fn list(&self) -> Result<Vec<Object>> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjPath::from(self.prefix.as_str()));
        let res = self
            .rt
            .block_on(self.store.list_with_delimiter(prefix.as_ref()))
            .map_err(|e| self.err("listing", None, e))?;
        let mut out: Vec<Object> = res
            .objects
            .into_iter()
            .filter_map(|m| {
                Some(Object {
                    name: m.location.filename()?.to_owned(),
                    size: m.size,
                    kind: Kind::File,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        match self.rt.block_on(self.store.head(&self.key(name))) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("reading the metadata of", Some(name), e)),
        }
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let r = self
            .rt
            .block_on(self.store.get(&self.key(name)))
            .map_err(|e| self.err("downloading", Some(name), e))?;
        Ok(Box::new(S3Reader {
            rt: self.rt.clone(),
            stream: r.into_stream(),
            cur: Bytes::new(),
            url: self.obj_url(name),
            secrets: self.secrets.clone(),
        }))
    }

    fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        let size = self.size(name)?.ok_or_else(|| {
            Error::operational(format!("{}: no such object", self.obj_url(name)))
                .hint("check the name with `list --tier NAME`")
        })?;
        let end = start.saturating_add(len).min(size);
        if start >= end {
            return Ok(Vec::new());
        }
        self.rt
            .block_on(self.store.get_range(&self.key(name), start..end))
            .map(|b| b.to_vec())
            .map_err(|e| self.err("downloading", Some(name), e))
    }

    fn read_small(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(name);
        let res = self.rt.block_on(async {
            let r = self.store.get(&key).await?;
            r.bytes().await
        });
        match res {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("downloading", Some(name), e)),
        }
    }

    fn put(&self, name: &str, src: Upload<'_>, events: &dyn Events) -> Result<String> {
        self.rt.block_on(self.upload_async(name, src, events))
    }

    fn put_small(&self, name: &str, data: &[u8]) -> Result<()> {
        self.rt
            .block_on(self.store.put(
                &self.key(name),
                PutPayload::from(Bytes::from(data.to_vec())),
            ))
            .map(|_| ())
            .map_err(|e| self.err("uploading to", Some(name), e))
    }

    /// A bucket does not say whether the object was there: `true`.
    fn remove(&self, name: &str) -> Result<bool> {
        match self.rt.block_on(self.store.delete(&self.key(name))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(self.err("deleting", Some(name), e)),
        }
    }

    fn lock_key(&self) -> PathBuf {
        PathBuf::from(format!(
            "/secureclaw-backup-s3/{}/{}",
            self.bucket, self.prefix
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What object_store printed for a Garage node without quorum (two of
    /// three nodes down), body quoted by the retry error and again by its
    /// source.
    const GARAGE_503: &str = "Generic S3 error: Error performing PUT http://127.0.0.1:21901/secureclaw-test/fleet/a/weekly_20261201_201500.tar.gz.age?partNumber=1&uploadId=0f3a in 1.6s, after 4 retries, max_retries: 4, retry_timeout: 60s  - Server returned non-2xx status code: 503 Service Unavailable: <?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>ServiceUnavailable</Code><Message>Internal error: Could not reach quorum of 2 (sets=[3]). 1 of 3 request succeeded, others returned errors: [&quot;Netapp error: Not connected: 7f3c&quot;, &quot;Netapp error: Not connected: 9a1e&quot;]</Message><Resource>/secureclaw-test/fleet/a</Resource><Region>garage</Region></Error>";

    #[test]
    fn condense_keeps_the_code_and_message_of_an_xml_body() {
        let c = condense(GARAGE_503);
        assert_eq!(
            c,
            "Generic S3 error: Error performing PUT http://127.0.0.1:21901/secureclaw-test/fleet/a/weekly_20261201_201500.tar.gz.age in 1.6s, after 4 retries: Server returned non-2xx status code: 503 Service Unavailable: ServiceUnavailable: Internal error: Could not reach quorum of 2 (sets=[3]). 1 of 3 request succeeded, others returned errors: [\"Netapp error: Not connected: 7f3c\", \"Netapp error: Not connected: 9a1e\"]"
        );
        // the same body quoted twice (a wrapper and its source) stays once
        let body = &GARAGE_503[GARAGE_503.find("<?xml").unwrap()..];
        let c2 = condense(&format!("uploading: {body}: {body}"));
        assert_eq!(c2.matches("Could not reach quorum").count(), 1, "{c2}");
        assert!(c2.starts_with("uploading: ServiceUnavailable: Internal error"));
        assert!(c2.ends_with("9a1e\"]"), "{c2}");
        let c3 = condense(&format!("a: {body} (b: {body})"));
        assert!(c3.ends_with("9a1e\"] (b)"), "{c3}");
    }

    #[test]
    fn condense_drops_a_repeated_wrapper() {
        assert_eq!(
            condense("Generic S3 error: Generic S3 error: Error performing GET http://h/b/k?x=1 in 1s: HTTP error: error sending request"),
            "Generic S3 error: Error performing GET http://h/b/k in 1s: HTTP error: error sending request"
        );
    }

    #[test]
    fn condense_leaves_plain_messages_alone() {
        let m = "Generic S3 error: error sending request: connection refused";
        assert_eq!(condense(m), m);
        assert_eq!(
            condense("x: <Error><Code>AccessDenied</Code></Error>"),
            "x: AccessDenied"
        );
        assert_eq!(condense("x: <Error><Message>only"), "x: only");
        assert_eq!(
            xml_unescape("a&amp;b &lt;c&gt; &#65;&#x42; &bogus; & end"),
            "a&b <c> AB &bogus; & end"
        );
    }
}
