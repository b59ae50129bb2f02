//! `ward scan`: find where Kubernetes Secrets are exposed, before adopting anything new.
//!
//! The scanner reads manifests (files, directories, standard input; multi-document YAML, JSON,
//! `List` kinds, `kubectl get -A -o yaml` dumps, Helm output), EncryptionConfigurations, audit
//! policies and control-plane static pods, and checks them against the threat model: at rest
//! (etcd, backups, audit logs), in transit (API server ↔ etcd), through the API (RBAC, objects
//! readable by `view`) and on the node (environment variables, host access, file modes). Each
//! [`Finding`] carries a stable [`Rule`] id, a [`Severity`], the [`Threat`] it serves, the
//! evidence (file, document, line, object, field path) and a fix.
//!
//! - [`ScanArgs`] and [`run`] are the `ward scan` command; the `ward` binary only dispatches.
//! - [`Scanner`] is the library entry: add inputs, then [`Scanner::finish`] into a [`Report`],
//!   which writes a table, JSON or SARIF 2.1.0; or ask [`Scanner::who_can_read`] who can obtain
//!   a Secret's value through the scanned RBAC objects (evaluated by `ward-rbac`).
//!
//! # Secrets
//!
//! The input is full of secrets. Findings name where a secret is exposed and what looked wrong
//! (key names, field paths, token formats), never a value or part of one; parse errors give a
//! line and column, never input text. Secret values are not even read: only ConfigMaps and env
//! literals are classified. Tests feed canary values through every output format.
//!
//! The [`Scanner`] reads files and standard input and does no network IO. The live-cluster mode
//! (`ward scan --kubeconfig`, in [`run`]) is a separate input: it lists objects read-only (`GET`
//! only) through `ward-client` and adds each list as one document, so every rule sees the same
//! objects either way. This crate must never depend on a storage backend, a server crate or a
//! crypto crate (it uses `ward-rbac`, which does no IO).
//!
//! ```
//! use ward_scan::{Rule, Scanner, Severity};
//!
//! # fn main() -> Result<(), ward_scan::ScanError> {
//! let mut scanner = Scanner::new();
//! scanner.add_str("deploy.yaml", r#"
//! apiVersion: apps/v1
//! kind: Deployment
//! metadata: {name: web, namespace: shop}
//! spec:
//!   template:
//!     spec:
//!       automountServiceAccountToken: false
//!       containers:
//!         - name: app
//!           image: shop/web:1.2
//!           env:
//!             - name: API_KEY
//!               valueFrom:
//!                 secretKeyRef: {name: my-api-secret, key: API_KEY}
//! "#)?;
//! let report = scanner.finish();
//! assert_eq!(report.findings.len(), 1);
//! let finding = &report.findings[0];
//! assert_eq!(finding.rule, Rule::SecretEnvVar);
//! assert_eq!(finding.severity, Severity::Medium);
//! assert_eq!(finding.path, "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef");
//! assert_eq!(finding.line, Some(15));
//!
//! let mut json = Vec::new();
//! report.write_json(&mut json)?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod cli;
mod cluster;
mod detect;
mod error;
mod finding;
mod input;
mod output;
mod progress;
mod rules;
mod who_can;
mod yaml;

use std::fs::File;
use std::io::Read;
use std::path::Path;

pub use cli::{
    OutputFormat, ScanArgs, ScanCommand, WhoCanAction, WhoCanArgs, WhoCanFormat, WhoCanKind, run,
};
pub use error::ScanError;
pub use finding::{Finding, Resource, Rule, Severity, Threat};
pub use output::Report;
pub use who_can::{Access, AccessPath, SecretRef, SubjectRef, WhoCanOptions, WhoCanReport};

use input::Object;

/// Collects inputs, then runs every rule over all of them at once (some rules relate objects
/// from different files, such as static pods of etcd and kube-apiserver in one directory).
#[derive(Default)]
pub struct Scanner {
    objects: Vec<Object>,
    files: usize,
    skipped: Vec<String>,
}

/// Counts only: the objects hold the scanned values.
impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("objects", &self.objects.len())
            .field("files", &self.files)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl Scanner {
    /// An empty scanner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file, or every `*.yaml`, `*.yml` and `*.json` under a directory.
    ///
    /// # Errors
    /// - [`ScanError::Read`] if the path (or a directory entry) cannot be read;
    /// - [`ScanError::NotUtf8`], [`ScanError::TooLarge`], [`ScanError::Parse`] if a file named
    ///   directly is not a readable manifest. Files found in a directory that fail to parse are
    ///   skipped with a warning and listed in [`Report::skipped`].
    pub fn add_path(&mut self, path: &Path) -> Result<(), ScanError> {
        let metadata = std::fs::metadata(path).map_err(|source| ScanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if !metadata.is_dir() {
            return self.add_file(path);
        }
        for file in input::walk(path)? {
            self.add_found_file(&file)?;
        }
        Ok(())
    }

    /// Adds everything a reader yields (standard input, say) under the name `name`.
    ///
    /// # Errors
    /// [`ScanError::Read`], [`ScanError::NotUtf8`], [`ScanError::TooLarge`] or
    /// [`ScanError::Parse`].
    pub fn add_reader(&mut self, name: &str, reader: impl Read) -> Result<(), ScanError> {
        let text = input::read_text(name, reader)?;
        self.add_str(name, &text)
    }

    /// Adds YAML or JSON text under the file name `name` (used in findings; its directory
    /// groups static pods onto one node).
    ///
    /// # Errors
    /// [`ScanError::Parse`] if the text is neither YAML nor JSON.
    pub fn add_str(&mut self, name: &str, text: &str) -> Result<(), ScanError> {
        let objects = input::objects_from_text(name, text)?;
        tracing::debug!(file = name, objects = objects.len(), "read");
        self.objects.extend(objects);
        self.files += 1;
        Ok(())
    }

    /// Adds a JSON value read from a live cluster (a list) under the name `name`. Findings on
    /// it have no line: there is no file to open.
    pub(crate) fn add_json(&mut self, name: &str, value: serde_json::Value) {
        let objects = input::objects_from_json(name, value);
        tracing::debug!(source = name, objects = objects.len(), "read");
        self.objects.extend(objects);
        self.files += 1;
    }

    /// Answers `who-can read secret`: every subject that can obtain the value of `secret`
    /// through the RBAC objects added so far, directly or indirectly, with the binding for
    /// each path.
    pub fn who_can_read(&self, secret: &SecretRef, options: &WhoCanOptions) -> WhoCanReport {
        who_can::who_can_read(&self.objects, secret, options)
    }

    /// Runs every rule and returns the report.
    pub fn finish(self) -> Report {
        let findings = rules::run_all(&self.objects);
        Report {
            findings,
            objects: self.objects.len(),
            files: self.files,
            skipped: self.skipped,
        }
    }

    /// Adds a file found in a directory walk: one that is not YAML or JSON is skipped with a
    /// warning and listed in [`Report::skipped`].
    ///
    /// # Errors
    /// [`ScanError::Read`] if the file cannot be read.
    pub(crate) fn add_found_file(&mut self, file: &Path) -> Result<(), ScanError> {
        match self.add_file(file) {
            Ok(()) => Ok(()),
            Err(
                error @ (ScanError::Parse { .. }
                | ScanError::NotUtf8 { .. }
                | ScanError::TooLarge { .. }),
            ) => {
                tracing::warn!(%error, "skipping file");
                self.skipped.push(file.display().to_string());
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Objects added so far.
    pub(crate) fn object_count(&self) -> usize {
        self.objects.len()
    }

    fn add_file(&mut self, path: &Path) -> Result<(), ScanError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| ScanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.add_reader(&name, file)
    }
}
