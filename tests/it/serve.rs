//! `run` on an empty catalog serves its four endpoints, joins the replicas dividing the compaction
//! survey, and exits 0 on SIGTERM within the timeout, leaving the replicas.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{bin, free_port, http_get};

/// The holders of the replicas' rows for the compaction survey (`compactor_replicas`).
fn survey_members(dir: &std::path::Path) -> Vec<String> {
    let uri = format!("sqlite:{}/catalog.db", dir.display());
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let pool = sqlx::SqlitePool::connect(&uri).await.unwrap();
        sqlx::query_scalar("SELECT holder_id FROM compactor_replicas WHERE job = 'compaction@signaldb'")
            .fetch_all(&pool)
            .await
            .unwrap()
    })
}

#[test]
fn run_serves_endpoints_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("signaldb.toml"),
        format!(
            "[schema]\ncatalog_uri = \"sqlite:{d}/catalog.db?mode=rwc\"\n[storage]\ndsn = \"file://{d}/warehouse\"\n\
             [compactor]\nshutdown_timeout = \"5s\"\n[compactor.http]\nlisten = \"{addr}\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let mut child = bin()
        .current_dir(dir.path())
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let health = loop {
        match http_get(&addr, "/health") {
            Ok(r) => break r,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("daemon did not come up: {e}"),
        }
    };
    assert_eq!(health, (200, "ok\n".to_string()));

    // Ready once the catalog and storage answer; on a loaded machine the first look may be late.
    let (code, body) = loop {
        let (code, body) = http_get(&addr, "/ready").unwrap();
        if code == 200 || started.elapsed() > Duration::from_secs(60) {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready, serde_json::json!({"ready": true, "catalog": "ok", "storage": "ok"}));

    let (code, body) = http_get(&addr, "/status").unwrap();
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let jobs: Vec<&str> =
        status["loops"].as_array().unwrap().iter().map(|l| l["job"].as_str().unwrap()).collect();
    assert_eq!(jobs, ["compaction", "retention", "orphans", "verify"]);
    assert_eq!(status["dry_run"], false);

    let (code, body) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("compactor_tables_discovered{signal=\"traces\"} 0"), "{body}");

    // The membership task writes its row beside the loops, shortly after the server answers.
    let joining = Instant::now();
    let mut members = survey_members(dir.path());
    while members.is_empty() && joining.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
        members = survey_members(dir.path());
    }
    assert_eq!(members.len(), 1, "the daemon is a member of the compaction survey: {members:?}");
    assert!(members[0].contains(&format!(":{}:", child.id())), "{members:?}");

    let term = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        // The shutdown timeout is 5 s; the rest is slack for a loaded machine, still far from a hang.
        assert!(stopping.elapsed() < Duration::from_secs(30), "did not exit within the shutdown timeout");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(survey_members(dir.path()), Vec::<String>::new(), "a stopping daemon leaves the replicas");
}
