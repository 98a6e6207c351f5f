//! signaldb-compactor: keeps SignalDB's Apache Iceberg tables healthy. See `ARCHITECTURE.md`.

pub mod alloc;
pub mod audit;
pub mod avro_names;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod compaction;
pub mod config;
pub mod demo;
pub mod failpoint;
pub mod generate;
pub mod job;
pub mod metrics;
pub mod model;
pub mod orphans;
pub mod retention;
pub mod runtime;
pub mod service;
pub mod simulate;
pub mod stats;
pub mod storage;
pub mod table;
pub mod verify;
pub mod window;
