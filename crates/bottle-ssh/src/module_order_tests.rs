//! The host-side plan modules import in one direction (issue 32): the
//! validated-plan types (`valid`) import none of them, and no module
//! reaches back into one that imports it. Read from the sources, so a
//! `use` that closes a circle fails here, not in review.

/// Each module with its source up to its tests (tests may reach anywhere).
const MODULES: &[(&str, &str)] = &[
    ("agent", include_str!("agent.rs")),
    ("certificate", include_str!("certificate.rs")),
    ("ecdsa_fix", include_str!("ecdsa_fix.rs")),
    ("error", include_str!("error.rs")),
    ("keys", include_str!("keys.rs")),
    ("plan", include_str!("plan.rs")),
    ("render", include_str!("render.rs")),
    ("signing", include_str!("signing.rs")),
    ("valid", include_str!("valid.rs")),
    ("validate", include_str!("validate.rs")),
];

/// The modules of [`MODULES`] that `source` names as `crate::m` (in a path
/// or a `use crate::{…}` list), comments and tests left out.
fn imports(source: &str) -> Vec<&'static str> {
    let code: String = source
        .split("#[cfg(test)]")
        .next()
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut words: Vec<String> = Vec::new();
    for part in code.split("crate::").skip(1) {
        if let Some(list) = part.strip_prefix('{') {
            let list = &list[..list.find('}').unwrap_or(list.len())];
            words.extend(list.split(',').map(|w| w.trim().to_string()));
        } else {
            words.push(part.to_string());
        }
    }
    MODULES
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| {
            words.iter().any(|w| {
                w.strip_prefix(m).is_some_and(|rest| {
                    rest.starts_with("::") || rest.is_empty() || rest.starts_with(';')
                })
            })
        })
        .collect()
}

#[test]
fn plan_modules_import_in_one_direction() {
    let graph: Vec<(&str, Vec<&str>)> = MODULES.iter().map(|(m, s)| (*m, imports(s))).collect();
    let edges = |m: &str| graph.iter().find(|(n, _)| *n == m).unwrap().1.clone();
    assert!(
        edges("valid").is_empty(),
        "valid imports {:?}",
        edges("valid")
    );
    assert_eq!(edges("validate").len(), 6, "{:?}", edges("validate"));
    // Depth-first search for a path from each module back to itself.
    for (start, _) in &graph {
        let mut stack: Vec<Vec<&str>> = vec![vec![start]];
        while let Some(path) = stack.pop() {
            for next in edges(path.last().unwrap()) {
                assert_ne!(
                    next,
                    *start,
                    "import cycle: {} -> {next}",
                    path.join(" -> ")
                );
                if !path.contains(&next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
    }
}
