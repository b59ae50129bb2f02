//! Integration tests of the etcd backend, each against a real etcd it starts (see `kit`).

mod backend;
mod conformance;
mod kit;
mod restart;
mod tls;
