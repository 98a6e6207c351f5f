//! The dependency rule of ARCHITECTURE.md's code map: every top-level module of `src/` belongs to one
//! layer, and uses only its own layer and the layers below. A lower layer that reaches up (the commit
//! path calling the service, a job reaching for the daemon's context) fails this test by name.

use std::path::Path;

/// Bottom to top. Keep in step with ARCHITECTURE.md's code map.
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &["model", "clock", "window", "failpoint", "metrics", "stats", "alloc", "avro_names"]),
    ("config", &["config"]),
    ("storage", &["storage"]),
    ("catalog", &["catalog"]),
    ("table", &["table"]),
    ("runtime", &["runtime", "job", "audit"]),
    ("jobs", &["compaction", "retention", "orphans", "verify", "generate", "simulate"]),
    ("service", &["service", "cli", "demo"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// The top-level modules `text` names through `crate::` paths (`crate::a::b`, `crate::{a, b::c}`),
/// outside comment lines and the file's trailing `#[cfg(test)] mod tests`.
fn crate_paths(text: &str) -> Vec<String> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            // `signaldb_crate::` or `my_crate::` are other paths.
            let preceded = rest[..i].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[i + "crate::".len()..];
            if preceded {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::{c, d}}`: the names at the group's first level.
                let mut depth = 0usize;
                let mut item = String::new();
                let mut first_level = Vec::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => first_level.push(std::mem::take(&mut item)),
                        _ => {}
                    }
                    if depth == 0 && c != ',' && c != '}' {
                        item.push(c);
                    }
                }
                first_level.push(item);
                out.extend(first_level.iter().map(|i| head(i.trim())).filter(|h| !h.is_empty()));
            } else {
                out.push(head(rest));
            }
        }
    }
    out
}

fn head(path: &str) -> String {
    path.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// `(file, module it is in, module it uses)` for every use that reaches a higher layer, and every
/// module the layer table does not place.
fn violations(files: &[(String, String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (file, module, text) in files {
        let Some(own) = layer_of(module) else {
            out.push(format!(
                "{file}: module `{module}` is in no layer (add it to LAYERS and ARCHITECTURE.md)"
            ));
            continue;
        };
        for used in crate_paths(text) {
            match layer_of(&used) {
                Some(l) if l > own => out.push(format!(
                    "{file}: `{module}` ({}) uses `crate::{used}` ({}), a higher layer",
                    LAYERS[own].0, LAYERS[l].0
                )),
                Some(_) => {}
                None => out.push(format!("{file}: uses `crate::{used}`, which is in no layer")),
            }
        }
    }
    out
}

/// Every `.rs` file under `src/` except the crate roots and test-only modules: (path, top-level
/// module, text).
fn sources() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap().to_string_lossy().to_string();
            let test_only = path.file_name().is_some_and(|n| n == "tests.rs");
            if !relative.ends_with(".rs") || relative == "lib.rs" || relative == "main.rs" || test_only {
                continue;
            }
            let module = relative.split('/').next().unwrap().trim_end_matches(".rs").to_string();
            out.push((relative, module, std::fs::read_to_string(&path).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn no_module_uses_a_higher_layer() {
    let files = sources();
    assert!(files.len() > 40, "src/ was read: {} files", files.len());
    let found = violations(&files);
    assert!(found.is_empty(), "layering violations:\n{}", found.join("\n"));
}

#[test]
fn a_planted_violation_is_caught() {
    let file = |module: &str, text: &str| (format!("{module}/x.rs"), module.to_string(), text.to_string());
    // The commit path reaching for the service, a job for the daemon, storage for the catalog.
    let planted = [
        file("table", "use crate::service::leases;\n"),
        file("compaction", "    let x = crate::service::run_pass;\n"),
        file("storage", "use crate::{config::Mode, catalog::Access};\n"),
        file("model", "use crate::{runtime::{Claim, TablePass}};\n"),
    ];
    let found = violations(&planted);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(found[0].contains("uses `crate::service`"), "{found:#?}");
    assert!(found[2].contains("uses `crate::catalog`"), "{found:#?}");
    assert!(found[3].contains("uses `crate::runtime`"), "{found:#?}");
    // Downward uses, comments and the test module are fine.
    let fine = [
        file("service", "use crate::{table::Fence, runtime::Context};\n"),
        file("table", "// crate::service is mentioned in a comment\n/// [`crate::service::run`]\n"),
        file(
            "config",
            "use crate::model::Mode;\n#[cfg(test)]\nmod tests {\n    use crate::service::Context;\n}\n",
        ),
    ];
    assert_eq!(violations(&fine), Vec::<String>::new());
    // A new top-level module must be placed in a layer.
    assert_eq!(violations(&[file("newthing", "")]).len(), 1);
}
