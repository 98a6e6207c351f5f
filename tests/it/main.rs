//! Integration tests: one binary (links once), one module per capability. Everything runs on real
//! components: SQLite catalog files, the local filesystem, real Parquet and Iceberg metadata, the
//! compiled binary, and PyIceberg as an independent Iceberg implementation.

mod admin;
mod admin_fuzz;
mod attack12;
mod audit;
mod avro_names;
mod chaos;
mod compaction;
mod config_cli;
mod deletion_props;
mod deletion_safety;
mod demo;
mod discovery;
mod divide;
mod divide_attack;
mod faults;
mod generate;
mod hostile;
mod layers;
mod leases;
mod maintenance;
mod manifest_decode;
mod manifests;
mod matrix;
mod merge_attack;
mod metadata_backlog;
mod noop;
mod observability;
mod opt_in;
mod orphans;
mod postgres;
mod reports;
mod retention;
mod review17;
mod review_manifests;
mod schedule;
mod serve;
mod share_attack;
mod support;
mod table_kinds;
mod verify;
