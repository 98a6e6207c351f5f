//! `demo` shows the whole lifecycle on generated data spanning more than a day, as a few short lines:
//! compaction, retention (drops and snapshot expiry), orphan cleanup (dry-run, then real) and verify,
//! with the daemon's logs in a file and only warnings on the terminal.

use crate::support::bin;

/// The number right after `prefix` in `line`.
fn number_after(line: &str, prefix: &str) -> u64 {
    let rest = line.split_once(prefix).unwrap_or_else(|| panic!("no {prefix:?} in {line}")).1;
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn the_demo_shows_compaction_retention_orphans_and_verify_in_a_few_lines() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let out = bin()
        .current_dir(dir.path())
        .args(["demo", "--no-daemon", "--hours", "30", "--listen", "127.0.0.1:0", "--dir"])
        .arg(&demo)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let step = |name: &str| {
        stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} line in:\n{stdout}"))
    };
    let compaction = step("1/5 compaction");
    assert!(number_after(compaction, "data files ") > number_after(compaction, " -> "), "{compaction}");
    // The lag and debt /status shows: every compacted hour counted, none left owing.
    let lag = step("compaction lag");
    assert!(number_after(lag, " over ") > 0 && lag.contains(" p99 "), "{lag}");
    assert!(lag.contains("debt 0 partition(s), 0 file(s)"), "{lag}");
    let retention = step("2/5 retention");
    assert!(number_after(retention, "dropped ") > 0, "{retention}");
    assert!(number_after(retention, "), expired ") > 0, "{retention}");
    let dry = step("3/5 orphans (dry-run)");
    assert!(dry.contains("3 planted") && dry.contains("deleted nothing"), "{dry}");
    let identified = number_after(dry, "identified ");
    let real = step("4/5 orphans");
    assert_eq!(number_after(real, "deleted "), identified, "{real}");
    assert!(step("5/5 verify").contains(" 0 problem(s)"), "{stdout}");
    // Compact: no log lines on the terminal, short lines, the log file named and written.
    assert!(!stderr.contains(" INFO "), "{stderr}");
    assert!(stdout.lines().all(|l| l.len() < 200), "{stdout}");
    let log = demo.join("demo.log");
    assert!(stdout.contains(&log.display().to_string()), "{stdout}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("dropped partition"));
}
