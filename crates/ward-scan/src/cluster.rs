//! `--kubeconfig`/`--context`: read a live cluster, read-only.
//!
//! Each list in [`LISTS`] is fetched with one `GET` and fed to the scanner as one document,
//! named `cluster:PATH`. A 404 (the server does not serve that kind; Ward serves no pods) or a
//! 403 (the credentials may not list it) skips the list with a warning: a partial scan is still
//! useful, and the warning says what was not seen. Any other failure ends the scan.
//!
//! Secrets are listed for their metadata (type, ServiceAccount annotations); the rules never
//! read Secret values, and Ward withholds them from a `list` without `get`. Only `GET` is sent.

use std::path::Path;

use http::Method;
use ward_client::Client;

use crate::{ScanError, Scanner};

/// Adds every list of [`LISTS`] that the cluster serves and allows to `scanner`.
///
/// # Errors
/// - [`ScanError::Runtime`]: the async runtime for the client could not be built;
/// - [`ScanError::Connect`]: the kubeconfig is unusable (named with the field at fault);
/// - [`ScanError::Cluster`]: a list failed other than with 404 or 403.
pub(crate) fn add_cluster(
    scanner: &mut Scanner,
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<(), ScanError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ScanError::Runtime { source })?;
    let client = Client::from_kubeconfig(kubeconfig, context)
        .map_err(|source| ScanError::Connect { source })?;
    for path in LISTS {
        let list = match runtime.block_on(client.json(Method::GET, path, None)) {
            Ok(list) => list,
            Err(error) if matches!(error.code(), Some(403 | 404)) => {
                tracing::warn!(%path, %error, "skipping a list the cluster does not serve or allow");
                continue;
            }
            Err(source) => {
                return Err(ScanError::Cluster {
                    path: (*path).to_owned(),
                    source,
                });
            }
        };
        scanner.add_json(&format!("cluster:{path}"), list);
    }
    Ok(())
}

/// What a live scan lists, cluster-wide.
const LISTS: &[&str] = &[
    "/api/v1/configmaps",
    "/api/v1/pods",
    "/api/v1/serviceaccounts",
    "/api/v1/secrets",
    "/apis/apps/v1/deployments",
    "/apis/apps/v1/statefulsets",
    "/apis/apps/v1/daemonsets",
    "/apis/batch/v1/jobs",
    "/apis/batch/v1/cronjobs",
    "/apis/rbac.authorization.k8s.io/v1/roles",
    "/apis/rbac.authorization.k8s.io/v1/rolebindings",
    "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
];
