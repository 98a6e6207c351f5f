//! Integration tests: one binary (links once), one module per capability. Everything runs on real
//! components: SQLite catalog files, the local filesystem, real Parquet and Iceberg metadata, the
//! compiled binary, and PyIceberg as an independent Iceberg implementation.

mod admin;
mod audit;
mod chaos;
mod compaction;
mod config_cli;
mod discovery;
mod faults;
mod generate;
mod leases;
mod matrix;
mod observability;
mod orphans;
mod postgres;
mod retention;
mod serve;
mod support;
mod table_kinds;
mod verify;
