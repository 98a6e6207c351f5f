//! Cheap per-table figures read from the current snapshot's summary (no manifest reads): what the
//! demo's before/after table and `/v1/tables` show.

use iceberg::table::Table;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TableStats {
    pub data_files: u64,
    pub delete_files: u64,
    pub bytes: u64,
    pub rows: u64,
    pub snapshots: u64,
}

impl TableStats {
    pub fn of(table: &Table) -> TableStats {
        let metadata = table.metadata();
        let snapshots = metadata.snapshots().count() as u64;
        let Some(current) = metadata.current_snapshot() else {
            return TableStats { snapshots, ..Default::default() };
        };
        let props = &current.summary().additional_properties;
        let get = |k: &str| props.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        TableStats {
            data_files: get("total-data-files"),
            delete_files: get("total-delete-files"),
            bytes: get("total-files-size"),
            rows: get("total-records"),
            snapshots,
        }
    }
}

impl std::ops::Add for TableStats {
    type Output = TableStats;
    fn add(self, o: TableStats) -> TableStats {
        TableStats {
            data_files: self.data_files + o.data_files,
            delete_files: self.delete_files + o.delete_files,
            bytes: self.bytes + o.bytes,
            rows: self.rows + o.rows,
            snapshots: self.snapshots + o.snapshots,
        }
    }
}

/// `12.3 MiB`-style sizes for human output.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_scales() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(128 * 1024 * 1024), "128.0 MiB");
    }
}
