//! Unity Catalog's rules for registered models, enforced by the local
//! registry whatever client calls it: the name (three levels,
//! `catalog.schema.model`, at most 255 characters) and what a version must
//! carry (a signature with inputs and outputs in its MLmodel). Any route that
//! creates or renames a model or adds a version calls these; a broken rule is
//! `400 INVALID_PARAMETER_VALUE`, as Unity Catalog answers.

/// Longest registered model name accepted.
pub const MAX_NAME: usize = 255;

/// Why `name` is not a Unity Catalog model name, or `None` if it is one.
pub fn name_problem(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Some(format!(
            "Invalid registered model name '{}': Unity Catalog models have three-level names, catalog.schema.model.",
            shown(name)
        ));
    }
    if name.chars().count() > MAX_NAME {
        return Some(format!(
            "Registered model name '{}' is {} characters long; at most {MAX_NAME} are allowed.",
            shown(name),
            name.chars().count()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || c.is_whitespace() || *c == '/') {
        return Some(format!("Registered model name '{}' contains the invalid character {c:?}.", shown(name)));
    }
    None
}

/// Why a version whose MLmodel file reads `mlmodel` cannot be registered:
/// Unity Catalog requires a signature with both inputs and outputs.
pub fn signature_problem(mlmodel: &str) -> Option<String> {
    let (mut inputs, mut outputs) = (false, false);
    let mut in_signature = false;
    for line in mlmodel.lines() {
        let indented = line.starts_with(' ');
        if !indented {
            in_signature = line.trim_end() == "signature:";
            continue;
        }
        if in_signature {
            let l = line.trim();
            let present = |key: &str| {
                l.strip_prefix(key).map(|v| v.trim()).is_some_and(|v| !v.is_empty() && v != "null" && v != "''")
            };
            inputs |= present("inputs:");
            outputs |= present("outputs:");
        }
    }
    (!(inputs && outputs)).then(|| {
        "Model versions in Unity Catalog must have a model signature with inputs and outputs; \
         log the model with a signature (e.g. mlflow.models.infer_signature(input, output))."
            .to_string()
    })
}

/// A name as an error message shows it: long ones cut.
fn shown(name: &str) -> String {
    if name.chars().count() > 80 {
        format!("{}...", name.chars().take(80).collect::<String>())
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_levels_of_at_most_255_characters() {
        assert!(name_problem("main.m.lm").is_none());
        for bad in ["evil.two", "lm", "a.b.c.d", "a..c", ".b.c", "a.b. c", "a/b.c.d"] {
            assert!(name_problem(bad).is_some(), "{bad}");
        }
        let long = format!("main.m.{}", "x".repeat(300));
        assert!(name_problem(&long).unwrap().contains("at most 255"));
        assert!(name_problem(&format!("main.m.{}", "x".repeat(MAX_NAME - 7))).is_none());
    }

    #[test]
    fn a_signature_needs_inputs_and_outputs() {
        let ok = "flavors:\n  python_function: {}\nsignature:\n  inputs: '[{\"type\": \"double\"}]'\n  outputs: '[{\"type\": \"double\"}]'\n  params: null\n";
        assert!(signature_problem(ok).is_none());
        assert!(signature_problem("flavors:\n  python_function: {}\n").is_some());
        let no_out = "signature:\n  inputs: '[{\"type\": \"double\"}]'\n  outputs: null\n";
        assert!(signature_problem(no_out).is_some());
    }
}
