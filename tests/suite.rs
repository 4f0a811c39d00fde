//! The end-to-end tests: the real `coop` binary against real stores (a temp directory,
//! moto and Garage on loopback, PostgreSQL), in one test binary. Each file is a module;
//! `cargo test --test suite integrity::` runs one file's tests.

mod common;

mod access_log;
mod config_init;
mod e2e;
mod federation;
mod fixture;
mod garage;
mod hostile_input;
mod hostile_site;
mod integrity;
mod members;
mod operations;
mod replica_deletion;
mod report;
mod trust;
