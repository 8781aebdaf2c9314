//! Aborting the S3 multipart uploads that a copy killed with its process left behind. A
//! copy that fails aborts its own upload, and so does one whose future is dropped (see
//! `AbortOnDrop` in `upload.rs`), but one cut short by a crash leaves the upload open on
//! the server, where its parts are stored, and billed, until a lifecycle rule
//! removes them. So before a large file goes up, the open multipart uploads of exactly its
//! key that began before this process started are aborted: the retry of a killed copy,
//! after the restart, removes what the kill left. Uploads begun since are left alone, so
//! that processes uploading the same key at once do not keep aborting each other's (a
//! process that starts while another uploads the key may abort that upload once; the
//! other's attempt fails and its retry goes through). (Azure needs nothing of the kind:
//! committing a block list discards the blob's uncommitted blocks.) object_store has no
//! call for these, so the requests are S3's own ("ListMultipartUploads",
//! "AbortMultipartUpload"), signed and sent as [`container::send`] does. This is a
//! best effort: a failure is only logged, and a store that cannot list multipart uploads
//! (it answers 501) is said so once and not asked again.

use super::container::{self, Credentials, Target};
use chrono::{DateTime, Utc};
use object_store::client::HttpClient;
use object_store::path::Path as BlobPath;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::atomic::{AtomicBool, Ordering};

/// What S3 leaves unencoded in a query value (and, with `/`, in a key in a path).
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const STRICT_PATH: &AsciiSet = &STRICT.remove(b'/');

/// The open multipart uploads of one S3 bucket.
pub(super) struct Orphans {
    bucket: Target,
    credentials: Credentials,
    /// Made once: a connection is kept for the next large file.
    client: HttpClient,
    /// When this process began to use the bucket: uploads begun before are orphans.
    since: DateTime<Utc>,
    /// The store answered that it cannot list multipart uploads.
    unsupported: AtomicBool,
}

/// The part of a `ListMultipartUploadsResult` that matters here.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Listing {
    #[serde(default, rename = "Upload")]
    uploads: Vec<Upload>,
    /// More uploads follow, from `NextKeyMarker` and `NextUploadIdMarker`.
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: String,
    #[serde(default)]
    next_upload_id_marker: String,
}

/// The most pages of open uploads read for one blob (1,000 uploads each).
const MAX_PAGES: usize = 10;

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Upload {
    key: String,
    upload_id: String,
    /// When the upload began (RFC 3339).
    initiated: String,
}

/// The part of an S3 error answer a message may show (never the signature details).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Refusal {
    code: String,
    message: String,
}

impl Orphans {
    pub(super) fn new(bucket: Target, credentials: Credentials) -> Result<Self, String> {
        Ok(Self {
            client: bucket.client()?,
            bucket,
            credentials,
            since: Utc::now(),
            unsupported: AtomicBool::new(false),
        })
    }

    /// Aborts every open multipart upload of the blob at `location`; returns how many.
    pub(super) async fn abort(&self, location: &BlobPath) -> Result<usize, String> {
        if self.unsupported.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let base = self.bucket.url().trim_end_matches('/');
        let key = location.as_ref();
        let mut aborted = 0;
        let mut marker: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES {
            let mut listing = format!(
                "{base}?prefix={}&uploads=",
                utf8_percent_encode(key, STRICT)
            );
            if let Some((next_key, next_id)) = &marker {
                listing.push_str(&format!(
                    "&key-marker={}&upload-id-marker={}",
                    utf8_percent_encode(next_key, STRICT),
                    utf8_percent_encode(next_id, STRICT)
                ));
            }
            let listed = self.list(&listing, key).await?;
            for upload in listed
                .uploads
                .iter()
                .filter(|upload| self.orphaned(upload, key))
            {
                aborted += self.abort_one(base, key, &upload.upload_id).await?;
            }
            // Uploads are listed by key: once past this key, none of its follow.
            let past = listed
                .uploads
                .last()
                .is_some_and(|upload| upload.key != key);
            if !listed.is_truncated || past || listed.next_key_marker.is_empty() {
                return Ok(aborted);
            }
            marker = Some((listed.next_key_marker, listed.next_upload_id_marker));
        }
        Ok(aborted)
    }

    /// Whether `upload` is an open upload of `key` that began before this process.
    fn orphaned(&self, upload: &Upload, key: &str) -> bool {
        upload.key == key
            && DateTime::parse_from_rfc3339(&upload.initiated)
                .is_ok_and(|initiated| initiated < self.since)
    }

    /// One page of the open uploads whose keys start with `key`.
    async fn list(&self, url: &str, key: &str) -> Result<Listing, String> {
        let (status, body) = self.send(http::Method::GET, url).await?;
        if status == http::StatusCode::NOT_IMPLEMENTED {
            if self.unsupported.swap(true, Ordering::Relaxed) {
                return Ok(Listing::default());
            }
            return Err(format!(
                "the store cannot list open multipart uploads ({status}{}), so the parts of \
                 uploads a killed copy left open stay until a lifecycle rule of the bucket \
                 removes them; not asking again",
                refusal(&body)
            ));
        }
        if !status.is_success() {
            return Err(format!(
                "listing the open multipart uploads of {key} answered {status}{}",
                refusal(&body)
            ));
        }
        quick_xml::de::from_reader(body.as_ref())
            .map_err(|e| format!("cannot read the list of open multipart uploads: {e}"))
    }

    /// Aborts the upload `upload_id` of `key`: 1 if it did, 0 if it had ended meanwhile.
    async fn abort_one(&self, base: &str, key: &str, upload_id: &str) -> Result<usize, String> {
        let url = format!(
            "{base}/{}?uploadId={}",
            utf8_percent_encode(key, STRICT_PATH),
            utf8_percent_encode(upload_id, STRICT)
        );
        let (status, body) = self.send(http::Method::DELETE, &url).await?;
        if status == http::StatusCode::NOT_FOUND {
            return Ok(0);
        }
        if !status.is_success() {
            return Err(format!(
                "aborting an open multipart upload of {key} answered {status}{}",
                refusal(&body)
            ));
        }
        Ok(1)
    }

    /// Sends a signed `method` request without a body to `url` in the bucket.
    async fn send(
        &self,
        method: http::Method,
        url: &str,
    ) -> Result<(http::StatusCode, bytes::Bytes), String> {
        container::send(
            &self.client,
            &self.bucket,
            method,
            url,
            String::new(),
            &self.credentials,
        )
        .await
    }
}

/// `: CODE: MESSAGE` of an S3 error answer, if it is one.
fn refusal(body: &[u8]) -> String {
    match quick_xml::de::from_reader::<_, Refusal>(body) {
        Ok(refusal) if !refusal.code.is_empty() => {
            let message: String = refusal.message.chars().take(300).collect();
            format!(": {}: {message}", refusal.code)
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_gives_each_uploads_key_and_id() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <Prefix>backups/big.bin</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>
  <Upload><Key>backups/big.bin</Key><UploadId>id-1</UploadId>
    <Initiator><ID>x</ID></Initiator><StorageClass>STANDARD</StorageClass>
    <Initiated>2026-11-26T06:00:00.000Z</Initiated></Upload>
  <Upload><Key>backups/big.bin.2</Key><UploadId>id-2</UploadId><Initiated>x</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let listed: Listing = quick_xml::de::from_reader(xml.as_bytes()).unwrap();
        let found: Vec<_> = listed
            .uploads
            .iter()
            .map(|u| (u.key.as_str(), u.upload_id.as_str()))
            .collect();
        assert_eq!(
            found,
            [("backups/big.bin", "id-1"), ("backups/big.bin.2", "id-2")]
        );
        assert_eq!(listed.uploads[0].initiated, "2026-11-26T06:00:00.000Z");
        assert!(!listed.is_truncated);
        let truncated = r#"<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>true</IsTruncated>
  <NextKeyMarker>backups/big.bin</NextKeyMarker><NextUploadIdMarker>id-1000</NextUploadIdMarker>
  <Upload><Key>backups/big.bin</Key><UploadId>id-1000</UploadId><Initiated>x</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let listed: Listing = quick_xml::de::from_reader(truncated.as_bytes()).unwrap();
        assert!(listed.is_truncated);
        assert_eq!(
            (
                listed.next_key_marker.as_str(),
                listed.next_upload_id_marker.as_str()
            ),
            ("backups/big.bin", "id-1000")
        );
        let empty = r#"<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>"#;
        let listed: Listing = quick_xml::de::from_reader(empty.as_bytes()).unwrap();
        assert!(listed.uploads.is_empty());
    }

    #[test]
    fn a_refusal_shows_its_code_and_message_but_not_the_signature() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message>
<AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId><SignatureProvided>abc123</SignatureProvided></Error>"#;
        let shown = refusal(xml.as_bytes());
        assert!(
            shown.starts_with(": SignatureDoesNotMatch: The request signature"),
            "{shown}"
        );
        assert!(
            !shown.contains("AKIDEXAMPLE") && !shown.contains("abc123"),
            "{shown}"
        );
        assert_eq!(refusal(b"<html>proxy error</html>"), "");
    }
}
