//! Admin API under hostile clients: 2,000 seeded random requests on loopback (methods, paths, headers,
//! encodings, framings, bodies, tokens, scopes). Not one answer is 5xx or missing, no run touches a
//! table outside the token's scope, and no request that asked for a dry run or named a disabled job
//! starts a real run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use signaldb_compactor::config::{AdminRole, Mode};
use signaldb_compactor::job::{Job, JobKind};

use crate::admin::{ACME, ADMIN, RecordingJob, raw, serve_jobs, token};
use crate::support::{context, fixed_end, generate_small};

const GLOBEX: &str = "globex-operator-secret";
const REQUESTS: usize = 2_000;

fn pick<'a, T: ?Sized>(rng: &mut StdRng, items: &'a [&'a T]) -> &'a T {
    items[rng.random_range(0..items.len())]
}

/// A random JSON value for a selector field.
fn value(rng: &mut StdRng, field: &str) -> serde_json::Value {
    use serde_json::json;
    let strings: &[&str] = match field {
        "tenant" => {
            &["acme", "acme", "acme", "globex", "globex", "", "ACME", "acme.production", "initech", "acme "]
        }
        "dataset" => &["production", "staging", "", "production.traces"],
        "table" => &[
            "acme.production.traces",
            "globex.production.logs",
            "globex.production.traces",
            "traces",
            "logs",
            "a.b",
            "x.y.z.w",
            "",
            "acme..traces",
            "acme.production.traces.extra",
        ],
        _ => &["true", "false", "yes"],
    };
    if field == "dry_run" && rng.random_bool(0.7) {
        return json!(rng.random_bool(0.5));
    }
    match rng.random_range(0..20) {
        0 => json!(null),
        1 => json!(rng.random_range(-2..3)),
        2 => json!(rng.random_bool(0.5)),
        3 => json!([pick(rng, strings)]),
        _ => json!(pick(rng, strings)),
    }
}

/// A random body: a JSON object of some selectors (sometimes an unknown field), or something else.
fn body(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..12) {
        0 => Vec::new(),
        1 => b"{\"dry_run\": true".to_vec(),
        2 => (0..rng.random_range(1..64)).map(|_| rng.random::<u8>()).collect(),
        3 => b"[]".to_vec(),
        4 => format!("{{\"tenant\": \"{}\"}}", "a".repeat(20_000)).into_bytes(),
        _ => {
            let mut object = serde_json::Map::new();
            for field in ["tenant", "dataset", "table", "dry_run", "tabel"] {
                if rng.random_bool(if field == "tabel" { 0.05 } else { 0.5 }) {
                    object.insert(field.to_string(), value(rng, field));
                }
            }
            let text = serde_json::Value::Object(object).to_string();
            // Sometimes in another encoding than UTF-8.
            if rng.random_bool(0.05) {
                text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
            } else {
                text.into_bytes()
            }
        }
    }
}

struct Request {
    bytes: Vec<u8>,
    /// The token's tenants (`None`: every tenant) when the token is valid and exactly given.
    scope: Option<Option<Vec<&'static str>>>,
    job: Option<JobKind>,
    /// The body is a JSON object with `"dry_run": true`.
    asked_dry_run: bool,
}

/// A method and path: mostly the API's own routes, sometimes anything.
fn route(rng: &mut StdRng) -> (&'static str, &'static str) {
    match rng.random_range(0..10) {
        0..=4 => ("POST", pick(rng, &["/v1/compaction/run", "/v1/retention/run", "/v1/orphans/run"])),
        5 => {
            ("GET", pick(rng, &["/v1/runs", "/v1/runs?tenant=acme", "/v1/runs?tenant=globex", "/v1/tables"]))
        }
        _ => random_route(rng),
    }
}

fn random_route(rng: &mut StdRng) -> (&'static str, &'static str) {
    let method = pick(rng, &["POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS", "BREW"]);
    let path = pick(
        rng,
        &[
            "/v1/compaction/run",
            "/v1/retention/run",
            "/v1/orphans/run",
            "/v1/compaction/run",
            "/v1/retention/run",
            "/v1/runs",
            "/v1/runs?tenant=acme",
            "/v1/runs?tenant=globex&type=compaction&limit=99999",
            "/v1/runs?limit=-1",
            "/v1/runs?type=%ff%fe",
            "/v1/tables",
            "/v1/x/run",
            "/",
            "/v1/compaction/run/",
            "/v1//run",
            "/v1/%2e%2e/metrics",
            "/v1/compaction/run?dry_run=true",
        ],
    );
    (method, path)
}

fn request(rng: &mut StdRng) -> Request {
    let (method, path) = route(rng);
    let auth: (&[u8], Option<Option<Vec<&'static str>>>) = match rng.random_range(0..12) {
        0 => (b"", None),
        1 | 2 => (b"Authorization: Bearer admin-secret\r\n", Some(None)),
        3..=5 => (b"Authorization: Bearer acme-operator-secret\r\n", Some(Some(vec!["acme"]))),
        6 => (b"Authorization: Bearer globex-operator-secret\r\n", Some(Some(vec!["globex"]))),
        7 => (b"Authorization: Bearer  admin-secret\r\n", None),
        8 => (b"Authorization: bearer acme-operator-secret\r\n", None),
        9 => (b"Authorization: Bearer \xffadmin-secret\r\n", None),
        10 => (b"Authorization: Bearer wrong\r\nAuthorization: Bearer admin-secret\r\n", None),
        _ => (b"Authorization: Basic YWRtaW46c2VjcmV0\r\n", None),
    };
    let content_type: &[u8] = match rng.random_range(0..8) {
        0..=2 => b"",
        3 | 4 => b"Content-Type: application/json\r\n",
        5 => b"Content-Type: text/plain\r\n",
        6 => b"Content-Type: application/json; charset=utf-16\r\n",
        _ => b"Content-Type: \xfe\xff\r\n",
    };
    let payload = body(rng);
    let chunked = rng.random_bool(0.3);
    let huge_declared = rng.random_bool(0.02);
    let mut bytes = format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n").into_bytes();
    bytes.extend_from_slice(auth.0);
    bytes.extend_from_slice(content_type);
    if huge_declared {
        bytes.extend_from_slice(b"Content-Length: 1000000000\r\n\r\n");
    } else if chunked {
        bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for chunk in payload.chunks(rng.random_range(1..40)) {
            bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            bytes.extend_from_slice(chunk);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
    } else {
        bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", payload.len()).as_bytes());
        bytes.extend_from_slice(&payload);
    }
    let job = match (method, path.split('?').next().unwrap()) {
        ("POST", "/v1/compaction/run") => Some(JobKind::Compaction),
        ("POST", "/v1/retention/run") => Some(JobKind::Retention),
        ("POST", "/v1/orphans/run") => Some(JobKind::Orphans),
        _ => None,
    };
    let asked_dry_run = serde_json::from_slice::<serde_json::Value>(&payload)
        .is_ok_and(|v| v.get("dry_run") == Some(&serde_json::Value::Bool(true)));
    Request { bytes, scope: auth.1, job, asked_dry_run }
}

#[tokio::test]
async fn a_thousand_hostile_requests_no_5xx_no_escape_no_unasked_real_run() {
    let dir = tempfile::tempdir().unwrap();
    generate_small(dir.path()).await;
    let ctx = context(dir.path(), fixed_end(), |_| {}).await;
    let tables = ctx.catalog.discover().await.unwrap();
    let jobs: Vec<(Arc<RecordingJob>, bool)> = vec![
        (RecordingJob::new(JobKind::Compaction, Duration::ZERO), true),
        (RecordingJob::new(JobKind::Retention, Duration::ZERO), false),
        (RecordingJob::new(JobKind::Orphans, Duration::ZERO), true),
    ];
    let tokens = vec![
        token(ADMIN, AdminRole::OpsAdmin),
        token(ACME, AdminRole::TenantOperator { tenants: vec!["acme".into()] }),
        token(GLOBEX, AdminRole::TenantOperator { tenants: vec!["globex".into()] }),
    ];
    let served = jobs.iter().map(|(j, enabled)| (j.clone() as Arc<dyn Job>, *enabled)).collect();
    let (addr, state) = serve_jobs(&ctx, tokens, served).await;
    let runs_of = |kind: JobKind| jobs.iter().find(|(j, _)| j.kind == kind).unwrap().0.runs();
    let total = || jobs.iter().map(|(j, _)| j.runs().len()).sum::<usize>();

    let mut rng = StdRng::seed_from_u64(0xAD_0001);
    let started = Instant::now();
    let (mut codes, mut real_runs, mut dry_runs) = (std::collections::BTreeMap::new(), 0, 0);
    for i in 0..REQUESTS {
        // A bound against a hang, with room for a machine ten times slower than a quiet one.
        assert!(started.elapsed() < Duration::from_secs(1800), "bounded: {i} requests in 30 min");
        let r = request(&mut rng);
        let before = total();
        let (code, answer) = raw(&addr, r.bytes.clone(), Duration::from_secs(60)).await;
        let shown = String::from_utf8_lossy(&r.bytes).chars().take(400).collect::<String>();
        assert!((100..500).contains(&code), "request {i}: answer {code} {answer}\n{shown}");
        *codes.entry(code).or_insert(0) += 1;

        if code == 202 {
            // A real run starts in the background: wait for it to be recorded and to finish.
            let waited = Instant::now();
            while total() == before {
                assert!(waited.elapsed() < Duration::from_secs(10), "request {i}: 202 but no run");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        state.idle().await;
        let after = total();
        assert_eq!(
            after - before,
            usize::from(r.job.is_some() && matches!(code, 200 | 202)),
            "request {i}: {code} {answer}\n{shown}"
        );
        if after == before {
            continue;
        }
        let kind = r.job.expect("only a run route runs");
        let (mode, filter) = runs_of(kind).last().cloned().unwrap();
        let scope =
            r.scope.clone().unwrap_or_else(|| panic!("request {i}: a run without a valid token\n{shown}"));
        let touched: Vec<_> = tables.iter().filter(|t| filter.matches(t)).collect();
        assert!(!touched.is_empty(), "request {i}");
        if let Some(tenants) = &scope {
            assert!(
                touched.iter().all(|t| tenants.contains(&t.tenant.as_str())),
                "request {i}: a run outside the token's scope: {touched:?}\n{shown}"
            );
        }
        if r.asked_dry_run || kind == JobKind::Retention {
            assert_eq!(mode, Mode::DryRun, "request {i}: a real run that was not asked for\n{shown}");
        }
        assert_eq!(code == 202, mode == Mode::Execute, "request {i}: 202 means a real run");
        if mode == Mode::Execute { real_runs += 1 } else { dry_runs += 1 }
    }
    println!(
        "admin fuzz: {REQUESTS} requests in {:.1}s, answers {codes:?}, real runs {real_runs}, dry runs {dry_runs}",
        started.elapsed().as_secs_f64()
    );
    // The fuzz reached the interesting paths, not only the front door.
    for code in [200, 202, 400, 401, 403, 404, 409, 413, 415] {
        assert!(codes.contains_key(&code), "no {code} in {codes:?}");
    }
    assert!(real_runs > 0 && dry_runs > 0);
}
