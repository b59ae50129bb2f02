//! End-to-end tests: a real `ward serve` process, driven by the real `kubectl` and by `curl` for
//! raw protocol checks. One test binary (link time matters on 2 cores).

mod audit;
mod auth;
mod etcd;
mod ha;
mod harness;
mod kms;
mod kubectl_suite;
mod protocol;
mod rbac;
mod restart;
mod scan;
