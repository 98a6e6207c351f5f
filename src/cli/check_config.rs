//! `check-config`: validate the configuration, print it as effective (with where each value came
//! from) and the resolved retention of every table in the catalog, opened read-only.

use std::path::PathBuf;
use std::process::ExitCode;

use super::print_json;
use crate::catalog::Access;
use crate::config::{Config, RetentionValue};

pub(super) async fn check_config(path: Option<&std::path::Path>, json: bool) -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let loaded =
        crate::config::utf8_vars(std::env::vars_os()).and_then(|vars| Config::load(path, vars, &cwd));
    let (config, sources) = match loaded {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let resolved = resolved_retention(&config).await;
    if json {
        return print_json(&serde_json::json!({
            "config": config,
            "sources": sources,
            "retention": resolved.as_ref().map_err(|e| crate::config::redact::secrets(&format!("{e:#}"))),
        }));
    }
    println!("# configuration is valid");
    match &sources.file {
        Some(f) => println!("# file: {}", f.display()),
        None => println!("# file: none (defaults)"),
    }
    for var in &sources.env {
        println!("# env: {var}");
    }
    match toml::to_string_pretty(&config) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{}", serde_json::to_string_pretty(&config).unwrap_or_default()),
    }
    match resolved {
        Ok(rows) if rows.is_empty() => println!("# retention: no tables in the catalog"),
        Ok(rows) => {
            println!("# resolved retention per table (tenant dataset table signal retention source)");
            for r in rows {
                println!("{:<16} {:<16} {:<32} {:<9} {:<10} {}", r.0, r.1, r.2, r.3, r.4, r.5);
            }
        }
        Err(e) => {
            println!("# retention: catalog not read ({})", crate::config::redact::secrets(&format!("{e:#}")))
        }
    }
    ExitCode::SUCCESS
}

type RetentionRow = (String, String, String, String, String, String);

/// The retention of every table in the catalog, without creating anything (a missing SQLite file is
/// reported, not created).
async fn resolved_retention(config: &Config) -> anyhow::Result<Vec<RetentionRow>> {
    if let Some(rest) = config.catalog.uri.strip_prefix("sqlite:") {
        let file = rest.trim_start_matches("//").split('?').next().unwrap_or("");
        anyhow::ensure!(std::path::Path::new(file).exists(), "catalog file {file} does not exist");
    }
    let warehouse = crate::storage::Warehouse::open(&config.storage, Access::ReadOnly)?;
    let catalog = crate::catalog::Catalog::connect(&config.catalog, &warehouse, Access::ReadOnly).await?;
    let policy = &config.retention.policy;
    let mut rows = Vec::new();
    for t in catalog.discover().await? {
        // A table's own `signaldb.compactor.retention` is the most specific level.
        let props = match catalog.load(&t).await {
            Ok(table) => crate::table::properties::TableProperties::of(&table),
            Err(_) => Ok(Default::default()),
        };
        let row = match props {
            Ok(props) => {
                let r =
                    policy.resolve_with_property(&t.tenant, &t.dataset, &t.table, t.signal, props.retention);
                let value = match r.value {
                    RetentionValue::Forever => "forever".to_string(),
                    v => v.to_string(),
                };
                let source = if props.enabled {
                    r.source.to_string()
                } else {
                    format!("{} (table disabled)", r.source)
                };
                (value, source)
            }
            Err(e) => (format!("none: table skipped ({e})"), "table_property".to_string()),
        };
        rows.push((t.tenant, t.dataset, t.table, t.signal.to_string(), row.0, row.1));
    }
    Ok(rows)
}
