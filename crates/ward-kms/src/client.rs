//! The KMS v2 gRPC client: kube-apiserver's view of a plugin.
//!
//! The channel connects lazily over the unix socket (authority `localhost`, as kube-apiserver
//! dials) and reconnects after the plugin restarts. Every call is bounded by the configured
//! timeout (`kms.timeout`, default 3 s), sent as `grpc-timeout` and enforced locally.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};
use zeroize::Zeroizing;

use crate::endpoint::KmsEndpoint;
use crate::error::KmsError;
use crate::metrics;
use crate::proto::v2::key_management_service_client::KeyManagementServiceClient;
use crate::proto::v2::{DecryptRequest, EncryptRequest, StatusRequest};
use crate::service::{KmsService, KmsStatus, WrappedKey};

/// What both plugin clients (KMS v2 here, v1 in `crate::v1`) share: a lazily connected
/// channel to the socket, the per-call timeout and the provider name of the metrics.
#[derive(Clone)]
pub(crate) struct PluginChannel {
    pub(crate) endpoint: KmsEndpoint,
    pub(crate) provider: String,
    pub(crate) channel: Channel,
    pub(crate) timeout: Duration,
}

impl PluginChannel {
    /// Connects on first use. Must be called within a Tokio runtime.
    pub(crate) fn connect_lazy(endpoint: KmsEndpoint, provider: &str, timeout: Duration) -> Self {
        let target = endpoint.clone();
        let connector = tower::service_fn(move |_: tonic::transport::Uri| {
            let target = target.clone();
            async move { target.connect().await.map(TokioIo::new) }
        });
        let channel = Endpoint::from_static("http://localhost")
            .connect_timeout(timeout)
            .connect_with_connector_lazy(connector);
        Self {
            endpoint,
            provider: provider.to_owned(),
            channel,
            timeout,
        }
    }

    /// Runs one call bounded by the timeout and records it in the operation metrics.
    pub(crate) async fn call<T, F>(
        &self,
        full_method: &'static str,
        method: &'static str,
        call: F,
    ) -> Result<T, KmsError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let started = Instant::now();
        let result = bounded(method, self.timeout, call).await;
        metrics::kms_operation(
            &self.provider,
            full_method,
            result_code(&result),
            started.elapsed(),
        );
        result
    }

    /// A request carrying the timeout as `grpc-timeout`.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }
}

impl fmt::Debug for PluginChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginChannel")
            .field("endpoint", &self.endpoint)
            .field("provider", &self.provider)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A KMS v2 plugin reached over gRPC on a unix socket.
#[derive(Clone)]
pub struct GrpcKmsClient {
    plugin: PluginChannel,
    client: KeyManagementServiceClient<Channel>,
}

impl GrpcKmsClient {
    /// A client that connects on first use. Must be called within a Tokio runtime.
    pub fn connect_lazy(endpoint: KmsEndpoint, timeout: Duration) -> Self {
        let plugin = PluginChannel::connect_lazy(endpoint, "", timeout);
        let client = KeyManagementServiceClient::new(plugin.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_LEN)
            .max_encoding_message_size(MAX_MESSAGE_LEN);
        Self { plugin, client }
    }

    /// Names the provider in the `provider_name` label of the KMS operation metrics.
    pub fn with_provider_name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.plugin.provider);
        self
    }

    /// The plugin's endpoint.
    pub fn endpoint(&self) -> &KmsEndpoint {
        &self.plugin.endpoint
    }

    async fn call<T, F>(
        &self,
        full_method: &'static str,
        method: &'static str,
        call: F,
    ) -> Result<T, KmsError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.plugin.call(full_method, method, call).await
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.plugin.request(message)
    }
}

impl fmt::Debug for GrpcKmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcKmsClient")
            .field("plugin", &self.plugin)
            .finish()
    }
}

#[async_trait::async_trait]
impl KmsService for GrpcKmsClient {
    async fn status(&self) -> Result<KmsStatus, KmsError> {
        let mut client = self.client.clone();
        let response = self
            .call(
                STATUS_METHOD,
                "Status",
                client.status(self.request(StatusRequest {})),
            )
            .await?;
        Ok(KmsStatus {
            version: response.version,
            healthz: response.healthz,
            key_id: response.key_id,
        })
    }

    async fn encrypt(&self, uid: &str, plaintext: &[u8]) -> Result<WrappedKey, KmsError> {
        let mut client = self.client.clone();
        // The DEK or seed goes through tonic's buffers, which are not wiped; it is random,
        // single-purpose material that only ever leaves wrapped.
        let message = self.request(EncryptRequest {
            plaintext: plaintext.to_vec(),
            uid: uid.to_owned(),
        });
        let response = self
            .call(ENCRYPT_METHOD, "Encrypt", client.encrypt(message))
            .await?;
        Ok(WrappedKey {
            ciphertext: response.ciphertext,
            key_id: response.key_id,
            annotations: response.annotations,
        })
    }

    async fn decrypt(
        &self,
        uid: &str,
        wrapped: &WrappedKey,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let mut client = self.client.clone();
        let request = DecryptRequest {
            ciphertext: wrapped.ciphertext.clone(),
            uid: uid.to_owned(),
            key_id: wrapped.key_id.clone(),
            annotations: wrapped.annotations.clone(),
        };
        let response = self
            .call(
                DECRYPT_METHOD,
                "Decrypt",
                client.decrypt(self.request(request)),
            )
            .await?;
        Ok(Zeroizing::new(response.plaintext))
    }
}

/// Runs one plugin call bounded by `timeout`, mapping gRPC failures to [`KmsError`].
pub(crate) async fn bounded<T, F>(
    method: &'static str,
    timeout: Duration,
    call: F,
) -> Result<T, KmsError>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(KmsError::Timeout { method, timeout }),
        // The plugin's server enforces the `grpc-timeout` we send and may answer first.
        Ok(Err(status))
            if status.code() == tonic::Code::DeadlineExceeded
                || (status.code() == tonic::Code::Cancelled
                    && status.message().contains("Timeout expired")) =>
        {
            Err(KmsError::Timeout { method, timeout })
        }
        Ok(Err(status)) => Err(KmsError::Rpc {
            method,
            code: status.code(),
            message: status.message().to_owned(),
        }),
        Ok(Ok(response)) => Ok(response.into_inner()),
    }
}

/// The `grpc_status_code` label of a call's outcome, as upstream's `getErrorCode`.
pub(crate) fn result_code<T>(result: &Result<T, KmsError>) -> &'static str {
    match result {
        Ok(_) => metrics::grpc_code_name(tonic::Code::Ok),
        Err(KmsError::Rpc { code, .. }) => metrics::grpc_code_name(*code),
        Err(KmsError::Timeout { .. }) => metrics::grpc_code_name(tonic::Code::DeadlineExceeded),
        Err(_) => "unknown-non-grpc",
    }
}

const STATUS_METHOD: &str = "/v2.KeyManagementService/Status";
const ENCRYPT_METHOD: &str = "/v2.KeyManagementService/Encrypt";
const DECRYPT_METHOD: &str = "/v2.KeyManagementService/Decrypt";

/// Requests and responses are a few KiB at most (annotations are capped at 32 KiB).
pub(crate) const MAX_MESSAGE_LEN: usize = 64 * 1024;
