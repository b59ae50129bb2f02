//! `ward rewrite`: re-encrypt stored objects through the API, as the Kubernetes key-rotation
//! procedure does with `kubectl get secrets -A -o json | kubectl replace -f -`, but online,
//! paginated, conflict-safe and resumable.
//!
//! Every object is written back unchanged with its `resourceVersion` (a compare-and-swap), so the
//! server stores it again through the first provider and key of its current encryption
//! configuration. A conflict means someone else wrote it meanwhile, which re-encrypted it already:
//! it counts as done. Progress is saved after every page to a state file, so an interrupted run
//! resumes after the last object it finished. The next page is fetched while the current one is
//! written, so the list and the writes overlap.

use std::path::PathBuf;

use futures_util::StreamExt as _;
use http::Method;
use serde_json::Value;

use crate::{Client, ClientError};

/// What to rewrite.
#[derive(Clone, Debug)]
pub struct RewriteOptions {
    /// Resources, e.g. `secrets`, `configmaps` (core group).
    pub resources: Vec<String>,
    /// One namespace, or every namespace with `None`.
    pub namespace: Option<String>,
    /// Where progress is saved; `None` = not resumable.
    pub state_file: Option<PathBuf>,
    /// Page size of the lists.
    pub page_size: usize,
}

/// The outcome of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// Objects written back.
    pub rewritten: u64,
    /// Objects changed by someone else meanwhile (already rewritten by that write).
    pub conflicts: u64,
    /// Objects deleted meanwhile.
    pub gone: u64,
    /// Objects skipped because an earlier run finished them.
    pub resumed: u64,
}

/// Progress callbacks: `total` once per resource when known, `done` after each object.
pub trait Progress {
    /// A resource starts; `total` objects are expected (an estimate).
    fn start(&mut self, resource: &str, total: u64);
    /// One more object is finished.
    fn done(&mut self);
}

/// Rewrites every object of the given resources.
///
/// `Err` on the first request that fails for a reason other than a conflict or a deletion; the
/// state file then lets a new run continue.
pub async fn rewrite(
    client: &Client,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<RewriteReport, ClientError> {
    let mut report = RewriteReport::default();
    let resume = match &opts.state_file {
        Some(p) => std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        None => None,
    };
    for resource in &opts.resources {
        let base = match &opts.namespace {
            Some(ns) => format!("/api/v1/namespaces/{ns}/{resource}"),
            None => format!("/api/v1/{resource}"),
        };
        let mut continue_token = String::new();
        // The next page, fetched while the previous one was being written.
        let mut prefetched: Option<Result<Value, ClientError>> = None;
        let mut first = true;
        // The last object this run finished in this resource (lists are key-ordered).
        let mut done_here: Option<String> = None;
        loop {
            let fetched = match prefetched.take() {
                Some(fetched) => fetched,
                None => {
                    let path = page_path(&base, opts.page_size, &continue_token);
                    client.json(Method::GET, &path, None).await
                }
            };
            let page = match fetched {
                Ok(page) => page,
                // The list's snapshot was compacted away while we wrote (a long run on a busy
                // or small history): go on with the server's inconsistent continue token (the
                // rest, at the latest revision), or else list again from the start; either way
                // skip what this run did.
                Err(e) if e.code() == Some(410) && !continue_token.is_empty() => {
                    match e.continue_token() {
                        Some(rest) => rest.clone_into(&mut continue_token),
                        None => continue_token.clear(),
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let items = page
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if first {
                let more = page
                    .pointer("/metadata/remainingItemCount")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                progress.start(resource, items.len() as u64 + more);
                first = false;
            }
            let mut last = None;
            let mut todo = Vec::new();
            for item in items {
                let ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let position = format!("{resource}/{ns}/{name}");
                if done_here.as_deref().is_some_and(|d| position.as_str() <= d) {
                    continue;
                }
                if resume
                    .as_deref()
                    .is_some_and(|r| resume_skips(r, resource, &opts.resources, &position))
                {
                    report.resumed += 1;
                    progress.done();
                    continue;
                }
                last = Some(position);
                todo.push((format!("/api/v1/namespaces/{ns}/{resource}/{name}"), item));
            }
            let next_token = page
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            // Write the page's objects back a few at a time (each is an independent CAS), and
            // meanwhile fetch the next page (it holds other keys, so the writes cannot change it).
            let writes = async {
                let mut results =
                    futures_util::stream::iter(todo.into_iter().map(|(path, item)| async move {
                        client.json(Method::PUT, &path, Some(&item)).await
                    }))
                    .buffer_unordered(CONCURRENCY);
                while let Some(result) = results.next().await {
                    match result {
                        Ok(_) => report.rewritten += 1,
                        Err(e) if e.code() == Some(409) => report.conflicts += 1,
                        Err(e) if e.code() == Some(404) => report.gone += 1,
                        Err(e) => return Err(e),
                    }
                    progress.done();
                }
                Ok(())
            };
            let next = async {
                if next_token.is_empty() {
                    return None;
                }
                let path = page_path(&base, opts.page_size, &next_token);
                Some(client.json(Method::GET, &path, None).await)
            };
            let (written, next) = futures_util::future::join(writes, next).await;
            written?;
            prefetched = next;
            if let Some(l) = &last {
                done_here = Some(l.clone());
            }
            if let (Some(state), Some(last)) = (&opts.state_file, last) {
                std::fs::write(state, last).map_err(|e| {
                    ClientError::Decode(format!("{}: cannot save progress: {e}", state.display()))
                })?;
            }
            continue_token = next_token;
            if continue_token.is_empty() {
                break;
            }
        }
    }
    if let Some(state) = &opts.state_file {
        let _ = std::fs::remove_file(state);
    }
    Ok(report)
}

/// The list path of one page.
fn page_path(base: &str, page_size: usize, continue_token: &str) -> String {
    let mut path = format!("{base}?limit={}", page_size.max(1));
    if !continue_token.is_empty() {
        path.push_str(&format!("&continue={continue_token}"));
    }
    path
}

/// How many writes are in flight at once.
const CONCURRENCY: usize = 16;

/// Whether `position` was finished by the run that saved `saved`: an earlier resource in the
/// list, or the same resource at or before the saved `namespace/name` (lists are key-ordered).
fn resume_skips(saved: &str, resource: &str, resources: &[String], position: &str) -> bool {
    let Some((saved_resource, _)) = saved.split_once('/') else {
        return false;
    };
    let index = |r: &str| resources.iter().position(|x| x == r);
    match (index(saved_resource), index(resource)) {
        (Some(s), Some(c)) if c < s => true,
        (Some(s), Some(c)) if c == s => position <= saved,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_positions() {
        let rs = vec!["secrets".to_owned(), "configmaps".to_owned()];
        assert!(resume_skips(
            "secrets/default/b",
            "secrets",
            &rs,
            "secrets/default/a"
        ));
        assert!(resume_skips(
            "secrets/default/b",
            "secrets",
            &rs,
            "secrets/default/b"
        ));
        assert!(!resume_skips(
            "secrets/default/b",
            "secrets",
            &rs,
            "secrets/default/c"
        ));
        assert!(!resume_skips(
            "secrets/default/b",
            "configmaps",
            &rs,
            "configmaps/a/a"
        ));
        assert!(resume_skips(
            "configmaps/x/y",
            "secrets",
            &rs,
            "secrets/z/z"
        ));
    }
}
