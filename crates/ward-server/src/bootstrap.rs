//! First start and later starts: the data directory, PKI, admin credential, kubeconfig and the
//! default encryption configuration.
//!
//! Layout of `DIR` (every file holding a key or credential is 0600, directories 0700):
//! ```text
//! DIR/pki/ca.crt  ca.key  server.crt  server.key
//! DIR/admin.token             the admin bearer token (kept so the kubeconfig can be rewritten)
//! DIR/admin.kubeconfig        works with kubectl as is
//! DIR/encryption-config.yaml  generated on first start unless --encryption-provider-config
//! DIR/db/ward.redb            the store (ciphertext only for encrypted resources)
//! ```
//! The serving certificate is reissued on every start from the kept CA, so new `--tls-san`
//! values take effect and it never silently expires.

use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use zeroize::Zeroizing;

use crate::ServeError;

/// What a start needs from the data directory.
pub(crate) struct Bootstrap {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: Zeroizing<String>,
    pub(crate) admin_token: Zeroizing<String>,
    /// The ServiceAccount token signing key, PKCS#8 DER (ECDSA P-256).
    pub(crate) sa_key_pkcs8: Zeroizing<Vec<u8>>,
    pub(crate) encryption_config: PathBuf,
    pub(crate) db_path: PathBuf,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) first_start: bool,
}

/// Prepares `dir`: creates what is missing, reuses what exists.
pub(crate) fn prepare(
    dir: &Path,
    extra_sans: &[String],
    encryption_config: Option<&Path>,
    sa_key_file: Option<&Path>,
) -> Result<Bootstrap, ServeError> {
    let first_start = !dir.join("pki").join("ca.key").exists();
    make_private_dir(dir)?;
    make_private_dir(&dir.join("pki"))?;
    make_private_dir(&dir.join("db"))?;

    let (ca_pem, ca_key_pem) = load_or_create_ca(&dir.join("pki"))?;
    let (cert_pem, key_pem) = issue_serving_cert(&ca_pem, &ca_key_pem, extra_sans)?;
    write_private(&dir.join("pki").join("server.crt"), cert_pem.as_bytes())?;
    write_private(&dir.join("pki").join("server.key"), key_pem.as_bytes())?;

    let token_path = dir.join("admin.token");
    let admin_token = if token_path.exists() {
        let text = Zeroizing::new(read_to_string(&token_path)?);
        Zeroizing::new(text.trim().to_owned())
    } else {
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(raw.as_mut());
        let token = Zeroizing::new(hex(raw.as_ref()));
        write_private(&token_path, token.as_bytes())?;
        token
    };
    if admin_token.len() < 32 {
        return Err(ServeError::Config(format!(
            "{}: the admin token must be at least 32 characters",
            token_path.display()
        )));
    }

    let encryption_config = match encryption_config {
        Some(p) => p.to_path_buf(),
        None => {
            let p = dir.join("encryption-config.yaml");
            if !p.exists() {
                let yaml = ward_crypto::generate_default_config().map_err(|e| {
                    ServeError::Config(format!("cannot generate an encryption key: {e}"))
                })?;
                write_private(&p, yaml.as_bytes())?;
            }
            p
        }
    };

    let sa_key_pkcs8 = load_or_create_sa_key(&dir.join("pki").join("sa.key"), sa_key_file)?;

    Ok(Bootstrap {
        sa_key_pkcs8,
        ca_pem,
        cert_pem,
        key_pem,
        admin_token,
        encryption_config,
        db_path: dir.join("db").join("ward.redb"),
        kubeconfig: dir.join("admin.kubeconfig"),
        first_start,
    })
}

/// Writes `DIR/admin.kubeconfig` for `server_url`.
pub(crate) fn write_kubeconfig(b: &Bootstrap, server_url: &str) -> Result<(), ServeError> {
    let text = Zeroizing::new(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ward\n  cluster:\n    server: {server_url}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: ward-admin\n  user:\n    token: {token}\n\
         contexts:\n- name: ward\n  context:\n    cluster: ward\n    user: ward-admin\n    \
         namespace: default\ncurrent-context: ward\npreferences: {{}}\n",
        ca = B64.encode(b.ca_pem.as_bytes()),
        token = b.admin_token.as_str(),
    ));
    write_private(&b.kubeconfig, text.as_bytes())
}

fn load_or_create_ca(pki: &Path) -> Result<(String, Zeroizing<String>), ServeError> {
    let crt = pki.join("ca.crt");
    let key = pki.join("ca.key");
    if crt.exists() && key.exists() {
        check_private(&key)?;
        return Ok((read_to_string(&crt)?, Zeroizing::new(read_to_string(&key)?)));
    }
    let key_pair = KeyPair::generate().map_err(pki_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "ward-ca");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let (start, end) = validity(3650);
    params.not_before = start;
    params.not_after = end;
    let cert = params.self_signed(&key_pair).map_err(pki_err)?;
    let key_pem = Zeroizing::new(key_pair.serialize_pem());
    write_private(&key, key_pem.as_bytes())?;
    write_private(&crt, cert.pem().as_bytes())?;
    Ok((cert.pem(), key_pem))
}

/// The ServiceAccount signing key: `--service-account-signing-key-file` if given, else
/// `DIR/pki/sa.key`, generated on first start.
fn load_or_create_sa_key(
    default_path: &Path,
    given: Option<&Path>,
) -> Result<Zeroizing<Vec<u8>>, ServeError> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject as _;
    let path = given.unwrap_or(default_path);
    if given.is_none() && !path.exists() {
        let key = KeyPair::generate().map_err(pki_err)?;
        write_private(path, Zeroizing::new(key.serialize_pem()).as_bytes())?;
    }
    check_private(path)?;
    let pem = Zeroizing::new(fs::read(path).map_err(|e| ServeError::io(path, e))?);
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(PrivateKeyDer::Pkcs8(k)) => Ok(Zeroizing::new(k.secret_pkcs8_der().to_vec())),
        _ => Err(ServeError::Config(format!(
            "{}: expected a PKCS#8 PEM ECDSA P-256 private key (\"BEGIN PRIVATE KEY\")",
            path.display()
        ))),
    }
}

fn issue_serving_cert(
    ca_pem: &str,
    ca_key_pem: &str,
    extra_sans: &[String],
) -> Result<(String, Zeroizing<String>), ServeError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(pki_err)?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).map_err(pki_err)?;
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(h) = hostname() {
        sans.push(h);
    }
    for s in extra_sans {
        let s = s.trim();
        if s.is_empty() {
            continue;
        }
        if s.parse::<IpAddr>().is_err()
            && !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-*".contains(c))
        {
            return Err(ServeError::Config(format!(
                "--tls-san: {s:?} is neither an IP address nor a DNS name"
            )));
        }
        sans.push(s.to_owned());
    }
    sans.dedup();
    let mut params = CertificateParams::new(sans).map_err(pki_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "ward-serve");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (start, end) = validity(365);
    params.not_before = start;
    params.not_after = end;
    let key = KeyPair::generate().map_err(pki_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(pki_err)?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

fn validity(days: i64) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::hours(1),
        now + time::Duration::days(days),
    )
}

fn hostname() -> Option<String> {
    let h = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim().to_ascii_lowercase();
    (!h.is_empty()
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    .then_some(h)
}

fn pki_err(e: rcgen::Error) -> ServeError {
    ServeError::Config(format!("certificate generation failed: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn make_private_dir(dir: &Path) -> Result<(), ServeError> {
    fs::create_dir_all(dir).map_err(|e| ServeError::io(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| ServeError::io(dir, e))
}

fn read_to_string(path: &Path) -> Result<String, ServeError> {
    fs::read_to_string(path).map_err(|e| ServeError::io(path, e))
}

/// Refuses a key file that group or others can read.
fn check_private(path: &Path) -> Result<(), ServeError> {
    let mode = fs::metadata(path)
        .map_err(|e| ServeError::io(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(ServeError::Config(format!(
            "{}: mode {:o} lets others read a private key; run chmod 600 on it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

/// Writes a file with mode 0600, atomically (temp file in the same dir, fsync, rename).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServeError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ServeError::io(path, e)
    })
}
