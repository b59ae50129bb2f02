//! Test support (feature `testing`): a real KMS v1 plugin served over gRPC in process, and
//! values laid out exactly as kube-apiserver's KMS v1 envelope transformer writes them. Ward
//! itself never writes KMS v1; this exists so that tests of the read path (here, in the server
//! and end to end) run against real gRPC and real bytes rather than a mock of the client.
//!
//! Test code: helpers panic on failure, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockEncryptMut as _, KeyIvInit as _};
use rand::TryRngCore as _;
use rand::rngs::OsRng;
use tokio::sync::oneshot;
use tokio_stream::wrappers::UnixListenerStream;

use crate::proto::v1beta1::key_management_service_client::KeyManagementServiceClient;
use crate::proto::v1beta1::key_management_service_server::{
    KeyManagementService, KeyManagementServiceServer,
};
use crate::proto::v1beta1::{
    DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, VersionRequest,
    VersionResponse,
};

/// How the test plugin "encrypts" DEKs.
#[derive(Clone, Copy)]
pub enum Wrap {
    /// kube-apiserver's KMS v1 integration-test plugin: base64.
    Base64,
    /// AES-256-GCM under a fixed KEK, nonce first: tampering is detected.
    Gcm([u8; 32]),
}

/// A KMS v1 plugin served over real gRPC on a unix socket.
struct V1Plugin {
    wrap: Wrap,
    version: &'static str,
    decrypts: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl KeyManagementService for V1Plugin {
    async fn version(
        &self,
        request: tonic::Request<VersionRequest>,
    ) -> Result<tonic::Response<VersionResponse>, tonic::Status> {
        assert_eq!(request.into_inner().version, "v1beta1");
        Ok(tonic::Response::new(VersionResponse {
            version: self.version.to_owned(),
            runtime_name: "test-v1".to_owned(),
            runtime_version: "0.1.0".to_owned(),
        }))
    }

    async fn decrypt(
        &self,
        request: tonic::Request<DecryptRequest>,
    ) -> Result<tonic::Response<DecryptResponse>, tonic::Status> {
        self.decrypts.fetch_add(1, Ordering::SeqCst);
        let request = request.into_inner();
        assert_eq!(request.version, "v1beta1");
        let plain = match self.wrap {
            Wrap::Base64 => B64
                .decode(&request.cipher)
                .map_err(|_| tonic::Status::invalid_argument("not base64"))?,
            Wrap::Gcm(kek) => {
                if request.cipher.len() < 12 {
                    return Err(tonic::Status::invalid_argument("ciphertext too short"));
                }
                let (nonce, ct) = request.cipher.split_at(12);
                Aes256Gcm::new_from_slice(&kek)
                    .unwrap()
                    .decrypt(Nonce::from_slice(nonce), ct)
                    .map_err(|_| tonic::Status::invalid_argument("cannot unwrap the DEK"))?
            }
        };
        Ok(tonic::Response::new(DecryptResponse { plain }))
    }

    async fn encrypt(
        &self,
        request: tonic::Request<EncryptRequest>,
    ) -> Result<tonic::Response<EncryptResponse>, tonic::Status> {
        let plain = request.into_inner().plain;
        let cipher = match self.wrap {
            Wrap::Base64 => B64.encode(&plain).into_bytes(),
            Wrap::Gcm(kek) => {
                let mut nonce = [0u8; 12];
                OsRng.try_fill_bytes(&mut nonce).unwrap();
                let ct = Aes256Gcm::new_from_slice(&kek)
                    .unwrap()
                    .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
                    .unwrap();
                [nonce.as_slice(), &ct].concat()
            }
        };
        Ok(tonic::Response::new(EncryptResponse { cipher }))
    }
}

pub struct Running {
    pub endpoint: String,
    pub decrypts: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// kube-apiserver's `envelopeTransformer.TransformToStorage`: a fresh 32-byte DEK, wrapped by
    /// the plugin's `Encrypt` (over gRPC), then `u16 BE len ‖ encrypted DEK ‖ data` after the
    /// prefix, where data is the aesgcm (GCM, 1.25+) or aescbc (CBC, older) payload under the DEK.
    pub async fn kube_value(&self, name: &str, plaintext: &[u8], aad: &[u8], gcm: bool) -> Vec<u8> {
        let mut dek = [0u8; 32];
        OsRng.try_fill_bytes(&mut dek).unwrap();
        let mut client = KeyManagementServiceClient::new(channel(&self.endpoint).await);
        let encrypted_dek = client
            .encrypt(EncryptRequest {
                version: "v1beta1".to_owned(),
                plain: dek.to_vec(),
            })
            .await
            .unwrap()
            .into_inner()
            .cipher;
        let data = if gcm {
            let mut nonce = [0u8; 12];
            OsRng.try_fill_bytes(&mut nonce).unwrap();
            let ct = Aes256Gcm::new_from_slice(&dek)
                .unwrap()
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: plaintext,
                        aad,
                    },
                )
                .unwrap();
            [nonce.as_slice(), &ct].concat()
        } else {
            let mut iv = [0u8; 16];
            OsRng.try_fill_bytes(&mut iv).unwrap();
            let ct = cbc::Encryptor::<aes::Aes256>::new_from_slices(&dek, &iv)
                .unwrap()
                .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
            [iv.as_slice(), &ct].concat()
        };
        let len = u16::try_from(encrypted_dek.len()).unwrap().to_be_bytes();
        [
            format!("k8s:enc:kms:v1:{name}:").as_bytes(),
            &len,
            &encrypted_dek,
            &data,
        ]
        .concat()
    }
}

async fn channel(endpoint: &str) -> tonic::transport::Channel {
    let path = endpoint.strip_prefix("unix://").unwrap().to_owned();
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                tokio::net::UnixStream::connect(path)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await
        .unwrap()
}

/// Serves a KMS v1 plugin on `dir/kms-v1.sock` that reports `version` from `Version`.
pub async fn serve(dir: &Path, wrap: Wrap, version: &'static str) -> Running {
    let path = dir.join("kms-v1.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let decrypts = Arc::new(AtomicUsize::new(0));
    let plugin = V1Plugin {
        wrap,
        version,
        decrypts: Arc::clone(&decrypts),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(KeyManagementServiceServer::new(plugin))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stopped.await;
        });
    let task = tokio::spawn(async move { server.await.unwrap() });
    Running {
        endpoint: format!("unix://{}", path.display()),
        decrypts,
        stop: Some(stop),
        task: Some(task),
    }
}
