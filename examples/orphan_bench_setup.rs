//! Builds the orphan-cleanup benchmark warehouse: `TABLES` tables × `FILES` objects, of which
//! `ORPHAN_PERCENT` % are unreferenced. Referenced files are registered with one fast-append per table
//! (tiny placeholder objects: orphan cleanup lists and compares, it never reads data files).
//!
//!   cargo run --release --example orphan_bench_setup -- DIR [TABLES] [FILES] [ORPHAN_PERCENT]
//!
//! `bench/orphans.sh` runs it, ages every object past the grace period and times `once orphans`.

use iceberg::spec::{DataContentType, DataFileBuilder, DataFileFormat, Literal, Struct};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use signaldb_compactor::generate::{GenerateOptions, generate};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(
        args.get(1).expect("usage: orphan_bench_setup DIR [TABLES] [FILES] [ORPHAN_PERCENT]"),
    );
    let tables: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let files: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let orphan_percent: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let started = std::time::Instant::now();
    generate(&GenerateOptions {
        dir: dir.clone(),
        tenants: 1,
        datasets: tables,
        hours: 1,
        files_per_hour: 1,
        rows_per_file: 1,
        seed: 1,
        all_signals: false,
        tables: vec!["traces".into()],
        unsorted: true,
        unsorted_files: false,
        windowed_files: false,
        end: chrono::Utc::now() - chrono::TimeDelta::days(2),
        concurrency: 2,
    })
    .await?;
    let (catalog_config, storage_config) = signaldb_compactor::generate::dir_config(&dir);
    let access = signaldb_compactor::catalog::Access::ReadWrite;
    let warehouse = signaldb_compactor::storage::Warehouse::open(&storage_config, access)?;
    let catalog = signaldb_compactor::catalog::Catalog::connect(&catalog_config, &warehouse, access).await?;
    let orphans = files * orphan_percent / 100;
    for t in catalog.discover().await? {
        let table = catalog.load(&t).await?;
        let location = table.metadata().location().trim_start_matches("file://").to_string();
        let hour = (chrono::Utc::now().timestamp() / 3600 - 48) as i32;
        let data_dir = format!("{location}/data/timestamp_hour={hour}");
        std::fs::create_dir_all(&data_dir)?;
        let mut data_files = Vec::with_capacity(files - orphans);
        for i in 0..files {
            let path = format!("{data_dir}/bench-{i:07}.parquet");
            std::fs::write(&path, b"x")?;
            if i % 100 >= orphan_percent {
                data_files.push(
                    DataFileBuilder::default()
                        .content(DataContentType::Data)
                        .file_path(format!("file://{path}"))
                        .file_format(DataFileFormat::Parquet)
                        .partition(Struct::from_iter([Some(Literal::int(hour))]))
                        .record_count(1)
                        .file_size_in_bytes(1)
                        .partition_spec_id(0)
                        .build()?,
                );
            }
        }
        let registered = data_files.len();
        let tx = Transaction::new(&table);
        let tx = tx.fast_append().with_check_duplicate(false).add_data_files(data_files).apply(tx)?;
        tx.commit(catalog.iceberg()).await?;
        println!("{t}: {files} objects, {registered} referenced, {} orphans", files - registered);
    }

    println!("setup took {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
