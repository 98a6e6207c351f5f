//! Avro name checks without a regex engine, for every Avro schema this process parses.
//!
//! Every manifest and manifest list iceberg reads or writes carries its Avro schema as JSON in the
//! file's header, and `apache-avro` parses that schema again for each file, checking every record,
//! field, enum symbol and namespace name against the Avro specification's regular expressions. Over
//! the 11,000 one-entry manifests of a retention pass those checks alone were 11.6 % of the CPU
//! (`perf record`, docs/BENCHMARKS.md "Retention at scale").
//!
//! `apache-avro` lets a process register its own checks once, before the first schema is parsed.
//! These accept exactly what the specification's expressions accept (the expressions are the
//! library's own, read through each trait's `regex()`; `tests` compares both over random names),
//! split a full name into name and namespace the same way, and reject with the library's own error
//! values (`Details`, naming the name and, where the library does, its expression).

use apache_avro::AvroResult;
use apache_avro::error::Details;
use apache_avro::schema::Namespace;
use apache_avro::validator::{
    EnumSymbolNameValidator, RecordFieldNameValidator, SchemaNameValidator, SchemaNamespaceValidator,
};

/// Registers the checks below with `apache-avro`. Call before anything parses an Avro schema; a call
/// after that (the library's own checks already registered) changes nothing and is harmless.
pub fn install() {
    // Each `set_*` fails only when a validator is registered already: the library's, which accepts
    // the same names.
    let _ = apache_avro::validator::set_schema_name_validator(Box::new(SpecNames));
    let _ = apache_avro::validator::set_schema_namespace_validator(Box::new(SpecNames));
    let _ = apache_avro::validator::set_record_field_name_validator(Box::new(SpecNames));
    let _ = apache_avro::validator::set_enum_symbol_name_validator(Box::new(SpecNames));
}

/// The Avro specification's names: `[A-Za-z_][A-Za-z0-9_]*`, namespaces of them joined by dots.
struct SpecNames;

/// `[A-Za-z_][A-Za-z0-9_]*`, the whole of `s`: an Avro name (of a record, field or enum symbol).
pub fn is_simple_name(s: &str) -> bool {
    match s.as_bytes().split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        }
        None => false,
    }
}

/// Empty, or simple names joined by single dots.
fn is_namespace(s: &str) -> bool {
    s.is_empty() || s.split('.').all(is_simple_name)
}

impl SchemaNameValidator for SpecNames {
    fn validate(&self, full_name: &str) -> AvroResult<(String, Namespace)> {
        // The name has no dot, so a full name splits at its last dot; no dot at all: no namespace.
        let split = match full_name.rsplit_once('.') {
            Some((namespace, name)) => (is_namespace(namespace) && is_simple_name(name))
                .then(|| (name.to_string(), Some(namespace.to_string()))),
            None => is_simple_name(full_name).then(|| (full_name.to_string(), None)),
        };
        split.ok_or_else(|| {
            Details::InvalidSchemaName(full_name.to_string(), SchemaNameValidator::regex(self).as_str())
                .into()
        })
    }
}

impl SchemaNamespaceValidator for SpecNames {
    fn validate(&self, namespace: &str) -> AvroResult<()> {
        if is_namespace(namespace) {
            return Ok(());
        }
        Err(Details::InvalidNamespace(namespace.to_string(), SchemaNamespaceValidator::regex(self).as_str())
            .into())
    }
}

impl RecordFieldNameValidator for SpecNames {
    fn validate(&self, field_name: &str) -> AvroResult<()> {
        if is_simple_name(field_name) {
            return Ok(());
        }
        Err(Details::FieldName(field_name.to_string()).into())
    }
}

impl EnumSymbolNameValidator for SpecNames {
    fn validate(&self, symbol: &str) -> AvroResult<()> {
        if is_simple_name(symbol) {
            return Ok(());
        }
        Err(Details::EnumSymbolName(symbol.to_string()).into())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Names over an alphabet with every class the expressions distinguish: letters, digits, `_`,
    /// dots (leading, trailing, doubled), and characters no name may hold (`-`, space, a newline,
    /// non-ASCII letters and digits).
    fn names() -> impl Strategy<Value = String> {
        let alphabet =
            prop::sample::select(vec!['a', 'Z', '_', '0', '9', '.', '.', '-', ' ', '\n', 'é', 'ß', '٣', '$']);
        prop::collection::vec(alphabet, 0..10).prop_map(|c| c.into_iter().collect())
    }

    /// The name and namespace the library's expression makes of `name`, `None` where it does not match.
    fn expression_split(name: &str) -> Option<(String, Namespace)> {
        SchemaNameValidator::regex(&SpecNames)
            .captures(name)
            .map(|caps| (caps["name"].to_string(), caps.name("namespace").map(|n| n.as_str().to_string())))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Accepted exactly when the library's expression matches, with the same name and namespace.
        #[test]
        fn full_names_split_as_the_specifications_expression_does(name in names()) {
            let ours = SchemaNameValidator::validate(&SpecNames, &name).ok();
            prop_assert_eq!(ours, expression_split(&name), "{:?}", name);
        }

        #[test]
        fn namespaces_field_names_and_symbols_as_the_expressions_accept(name in names()) {
            prop_assert_eq!(
                SchemaNamespaceValidator::validate(&SpecNames, &name).is_ok(),
                SchemaNamespaceValidator::regex(&SpecNames).is_match(&name),
                "namespace {:?}", name
            );
            prop_assert_eq!(
                RecordFieldNameValidator::validate(&SpecNames, &name).is_ok(),
                RecordFieldNameValidator::regex(&SpecNames).is_match(&name),
                "field {:?}", name
            );
            prop_assert_eq!(
                EnumSymbolNameValidator::validate(&SpecNames, &name).is_ok(),
                EnumSymbolNameValidator::regex(&SpecNames).is_match(&name),
                "symbol {:?}", name
            );
        }
    }

    /// Every string up to four characters over the neighbours of each class boundary (`@ [ ` { / :`
    /// around letters and digits), a dot, and characters no name may hold, against the expressions.
    #[test]
    fn every_short_name_over_the_class_boundaries() {
        let alphabet =
            ['a', 'z', 'A', 'Z', '_', '0', '9', '.', '@', '[', '`', '{', '/', ':', '-', '\n', 'é', '\u{0}'];
        let mut names = vec![String::new()];
        let mut level = vec![String::new()];
        for _ in 0..4 {
            level = level.iter().flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}"))).collect();
            names.extend(level.iter().cloned());
        }
        for name in &names {
            assert_eq!(
                SchemaNameValidator::validate(&SpecNames, name).ok(),
                expression_split(name),
                "{name:?}"
            );
            assert_eq!(
                SchemaNamespaceValidator::validate(&SpecNames, name).is_ok(),
                SchemaNamespaceValidator::regex(&SpecNames).is_match(name),
                "{name:?}"
            );
            assert_eq!(
                RecordFieldNameValidator::validate(&SpecNames, name).is_ok(),
                RecordFieldNameValidator::regex(&SpecNames).is_match(name),
                "{name:?}"
            );
        }
        assert!(names.len() > 100_000, "{}", names.len());
    }

    #[test]
    fn the_cases_the_expressions_single_out() {
        let split = |n: &str| SchemaNameValidator::validate(&SpecNames, n).ok();
        assert_eq!(split("manifest_entry"), Some(("manifest_entry".into(), None)));
        assert_eq!(
            split("org.apache.iceberg.r102"),
            Some(("r102".into(), Some("org.apache.iceberg".into())))
        );
        assert_eq!(split(".r102"), Some(("r102".into(), Some(String::new()))), "an empty namespace");
        for rejected in ["", "1a", "a.", "a..b", "a.1b", "a-b", "a b", "é", "a\n"] {
            assert_eq!(split(rejected), None, "{rejected:?}");
        }
        // A rejection is the library's own error, naming the name.
        let error = SchemaNameValidator::validate(&SpecNames, "a-b").unwrap_err().to_string();
        assert!(error.contains("a-b"), "{error}");
    }
}
