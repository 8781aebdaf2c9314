//! Creating a missing Azure container or S3 bucket (`--create-container`). object_store
//! has no call for it, so this sends the store's own request (Azure "Create Container",
//! S3 "CreateBucket"), signed by object_store's public authorizers with the credentials
//! the store was built with, through object_store's HTTP client ([`send`], which
//! [`super::orphans`] uses too).

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer, AwsCredentialProvider};
use object_store::azure::{
    AzureAuthorizer, AzureConfigKey, AzureCredential, AzureCredentialProvider,
    MicrosoftAzureBuilder,
};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::path::Path as BlobPath;
use object_store::{ClientConfigKey, ClientOptions};
use std::sync::Arc;

/// The account Azurite serves, as object_store assumes for the emulator.
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";

/// Where the container or bucket lives and how to sign a request for it.
#[derive(Clone)]
pub(super) struct Target {
    /// The URL that a `PUT` creates it at.
    url: String,
    body: String,
    /// The store's HTTP settings (plain HTTP, proxy, certificates, timeouts).
    client: ClientOptions,
    signer: Signer,
}

#[derive(Clone)]
enum Signer {
    Azure { account: String },
    S3 { region: String },
}

/// The credentials of the built store.
#[derive(Clone)]
pub(super) enum Credentials {
    Azure(AzureCredentialProvider),
    S3(AwsCredentialProvider),
}

/// The HTTP settings a request to the store uses, as the store's own builder has them.
fn client_options(get: impl Fn(ClientConfigKey) -> Option<String>) -> ClientOptions {
    use ClientConfigKey::*;
    [
        AllowHttp,
        AllowInvalidCertificates,
        NoSystemCertificates,
        ConnectTimeout,
        Http1Only,
        Http2Only,
        Http2KeepAliveInterval,
        Http2KeepAliveTimeout,
        Http2KeepAliveWhileIdle,
        Http2MaxFrameSize,
        PoolIdleTimeout,
        PoolMaxIdlePerHost,
        ProxyUrl,
        ProxyCaCertificate,
        ProxyExcludes,
        RandomizeAddresses,
        ReadTimeout,
        Timeout,
    ]
    .into_iter()
    .fold(ClientOptions::new(), |options, key| match get(key) {
        Some(value) => options.with_config(key, value),
        None => options,
    })
}

/// object_store's reading of a boolean configuration value.
pub(super) fn truthy(value: Option<String>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "on" | "yes" | "y"
        )
    })
}

impl Target {
    /// The container `name` of an Azure store configured by `builder`, with the same
    /// endpoint rules as object_store (the emulator, an explicit endpoint, or the
    /// account's public one).
    pub(super) fn azure(builder: &MicrosoftAzureBuilder, name: &str) -> Self {
        let emulator = truthy(builder.get_config_value(&AzureConfigKey::UseEmulator));
        let account = builder
            .get_config_value(&AzureConfigKey::AccountName)
            .unwrap_or_else(|| EMULATOR_ACCOUNT.to_string());
        let base = if emulator {
            let host = std::env::var("AZURITE_BLOB_STORAGE_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:10000".to_string());
            format!("{}/{account}", host.trim_end_matches('/'))
        } else {
            builder
                .get_config_value(&AzureConfigKey::Endpoint)
                .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"))
        };
        let client = client_options(|key| builder.get_config_value(&AzureConfigKey::Client(key)));
        Self {
            url: format!("{}/{name}?restype=container", base.trim_end_matches('/')),
            body: String::new(),
            // The emulator is plain HTTP, which object_store allows it whatever the options.
            client: if emulator {
                client.with_allow_http(true)
            } else {
                client
            },
            signer: Signer::Azure { account },
        }
    }

    /// The bucket `name` of an S3 store configured by `builder`, with object_store's
    /// endpoint rules (the S3 endpoint before the general one; virtual-hosted or path
    /// style).
    pub(super) fn s3(builder: &AmazonS3Builder, name: &str) -> Self {
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".to_string());
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
        let virtual_hosted =
            truthy(builder.get_config_value(&AmazonS3ConfigKey::VirtualHostedStyleRequest));
        let url = match (endpoint, virtual_hosted) {
            // With virtual-hosted requests the endpoint already names the bucket.
            (Some(endpoint), true) => format!("{}/", endpoint.trim_end_matches('/')),
            (Some(endpoint), false) => format!("{}/{name}", endpoint.trim_end_matches('/')),
            (None, true) => format!("https://{name}.s3.{region}.amazonaws.com/"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{name}"),
        };
        // Outside us-east-1 a bucket is created where the request says.
        let body = if region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
            )
        };
        Self {
            url,
            body,
            client: client_options(|key| builder.get_config_value(&AmazonS3ConfigKey::Client(key))),
            signer: Signer::S3 { region },
        }
    }
}

/// Makes sure the container exists: a listing that succeeds says it does; otherwise it is
/// created. The error is the store's own answer.
pub(super) async fn ensure(
    store: &Arc<dyn ObjectStore>,
    target: &Target,
    credentials: Credentials,
) -> Result<(), String> {
    let probe = store
        .list_with_delimiter(Some(&BlobPath::from("weft-container-probe")))
        .await;
    let Err(listing) = probe else {
        return Ok(());
    };
    create(target, credentials)
        .await
        .map_err(|created| format!("{created} (listing it first failed: {listing})"))
}

async fn create(target: &Target, credentials: Credentials) -> Result<(), String> {
    let (status, body) = send(
        &target.client()?,
        target,
        http::Method::PUT,
        &target.url,
        target.body.clone(),
        &credentials,
    )
    .await?;
    // 409: it exists already (another process made it between the listing and now).
    if status.is_success() || status == http::StatusCode::CONFLICT {
        return Ok(());
    }
    Err(format!(
        "PUT {} answered {status}: {}",
        target.url,
        String::from_utf8_lossy(&body)
            .chars()
            .take(500)
            .collect::<String>()
    ))
}

impl Target {
    /// The container's or bucket's URL (for S3 with virtual-hosted requests, the
    /// endpoint, with a trailing `/`).
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// An HTTP client for requests to it (object_store's, with its options).
    pub(super) fn client(&self) -> Result<HttpClient, String> {
        ReqwestConnector::default()
            .connect(&self.client)
            .map_err(|e| e.to_string())
    }
}

/// Sends a `method` request to `url` (in `target`'s container or bucket) with `body`,
/// signed with `credentials`, through `client` (see [`Target::client`]); returns the
/// status and the body of the answer.
pub(super) async fn send(
    client: &HttpClient,
    target: &Target,
    method: http::Method,
    url: &str,
    body: String,
    credentials: &Credentials,
) -> Result<(http::StatusCode, bytes::Bytes), String> {
    let mut request = http::Request::builder()
        .method(method.clone())
        .uri(url)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(HttpRequestBody::from(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    match (&target.signer, credentials) {
        (Signer::Azure { account }, Credentials::Azure(provider)) => {
            let credential = provider.get_credential().await.map_err(|e| e.to_string())?;
            let credential: &AzureCredential = &credential;
            AzureAuthorizer::new(credential, account)
                .try_authorize(&mut request)
                .map_err(|e| e.to_string())?;
        }
        (Signer::S3 { region }, Credentials::S3(provider)) => {
            let credential = provider.get_credential().await.map_err(|e| e.to_string())?;
            AwsAuthorizer::new(&credential, "s3", region)
                .try_authorize(&mut request, None)
                .map_err(|e| e.to_string())?;
        }
        _ => return Err("credentials of the wrong kind".to_string()),
    }
    let response = client
        .execute(request)
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status();
    let body = response.into_body().bytes().await.unwrap_or_default();
    Ok((status, body))
}
