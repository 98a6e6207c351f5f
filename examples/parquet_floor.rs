//! The floor under a rewrite's time: what parquet-rs alone takes to decode a partition's input files
//! and to encode their rows into one file, each on one thread, with nothing else (no catalog, no
//! manifests, no iceberg reader, no pipeline). A rewrite that decodes and re-encodes the rows with
//! this reader and writer at these settings does at least this work, so on `N` cores it takes at
//! least (decode + encode) / `N`.
//!
//!   cargo run --release --example parquet_floor -- DIR [PREFIX]
//!
//! Reads every `*.parquet` file directly in DIR whose name starts with PREFIX (default `gen-`, the
//! files `generate` writes), in name order, 8,192 rows per batch, and writes each batch as it comes
//! with the writer settings the daemon uses by default (`rewrite::parquet_properties`: zstd level 1,
//! `memory_limit_mb = 256`) to one temporary file. Prints one JSON line with the seconds spent
//! decoding and encoding. It is a floor for this reader and writer at these settings only: a writer
//! that did less work per row (no dictionaries for random ids, chunk-level statistics only) would go
//! below it.

use std::fs::File;
use std::time::{Duration, Instant};

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use signaldb_compactor::compaction::rewrite::parquet_properties;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).ok_or_else(|| anyhow::anyhow!("usage: parquet_floor DIR [PREFIX]"))?;
    let prefix = args.get(2).map_or("gen-", String::as_str);
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(prefix) && name.ends_with(".parquet")
        })
        .collect();
    paths.sort();
    anyhow::ensure!(!paths.is_empty(), "no {prefix}*.parquet files in {dir}");

    // The daemon's defaults: zstd level 1 (no `write.parquet.compression-*` table property) and
    // `memory_limit_mb = 256`.
    let props = parquet_properties(Compression::ZSTD(ZstdLevel::try_new(1)?), 256 << 20);
    let out = tempfile::NamedTempFile::new()?;
    let schema = ParquetRecordBatchReaderBuilder::try_new(File::open(&paths[0])?)?.schema().clone();
    let mut writer = ArrowWriter::try_new(out.reopen()?, schema, Some(props))?;
    // Each batch is encoded as soon as it is decoded (memory stays bounded, as in the daemon); the
    // two are timed apart.
    let (mut decode, mut encode, mut rows) = (Duration::ZERO, Duration::ZERO, 0usize);
    for path in &paths {
        let started = Instant::now();
        let mut reader =
            ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?.with_batch_size(8192).build()?;
        decode += started.elapsed();
        loop {
            let started = Instant::now();
            let Some(batch) = reader.next().transpose()? else {
                decode += started.elapsed();
                break;
            };
            decode += started.elapsed();
            rows += batch.num_rows();
            let started = Instant::now();
            writer.write(&batch)?;
            encode += started.elapsed();
        }
    }
    let started = Instant::now();
    writer.close()?;
    encode += started.elapsed();
    let (decode, encode) = (decode.as_secs_f64(), encode.as_secs_f64());

    let bytes_in: u64 = paths.iter().map(|p| std::fs::metadata(p).map(|m| m.len())).sum::<Result<_, _>>()?;
    let bytes_out = out.as_file().metadata()?.len();
    let report = serde_json::json!({
        "files": paths.len(),
        "rows": rows,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "decode_seconds": decode,
        "encode_seconds": encode,
    });
    println!("{report}");
    Ok(())
}
