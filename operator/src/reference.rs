//! The FediInstance reference in Markdown, generated from the CRD's schema: the same text
//! `kubectl explain` shows, as one page with every field, its type, default and bounds.
//! `make crds` writes it to `docs/reference/fediinstance.md`; the CRD check fails on drift.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
};

/// The whole page for the first served version of `crd`.
pub fn markdown(crd: &CustomResourceDefinition) -> String {
    let spec = &crd.spec;
    let mut out = format!(
        "# {kind} reference\n\n\
         Generated from the CRD by `make crds` (`crdgen --reference`); do not edit.\n\n\
         `apiVersion: {group}/{version}`, `kind: {kind}`, short names: {short}.\n\n\
         | Field | Type | Default | Description |\n|---|---|---|---|\n",
        kind = spec.names.kind,
        group = spec.group,
        version = spec
            .versions
            .first()
            .map(|v| v.name.as_str())
            .unwrap_or("?"),
        short = spec
            .names
            .short_names
            .as_ref()
            .map(|s| s
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_else(|| "none".into()),
    );
    let schema = spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref());
    if let Some(schema) = schema {
        for name in ["spec", "status"] {
            if let Some(props) = schema.properties.as_ref().and_then(|p| p.get(name)) {
                rows(&mut out, name, props, true);
            }
        }
    }
    out
}

fn rows(out: &mut String, path: &str, schema: &JSONSchemaProps, required: bool) {
    let description = schema
        .description
        .as_deref()
        .unwrap_or("")
        .replace('\n', " ")
        .replace('|', "\\|");
    let mut notes = Vec::new();
    if required {
        notes.push("required".to_string());
    }
    if let Some(values) = &schema.enum_ {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", v.0)).collect();
        notes.push(format!("one of {}", values.join(", ")));
    }
    match (schema.minimum, schema.maximum) {
        (Some(min), Some(max)) => notes.push(format!("{min} to {max}")),
        (Some(min), None) => notes.push(format!("at least {min}")),
        (None, Some(max)) => notes.push(format!("at most {max}")),
        _ => {}
    }
    if let Some(max) = schema.max_length {
        notes.push(format!("at most {max} characters"));
    }
    if let Some(max) = schema.max_items {
        notes.push(format!("at most {max} items"));
    }
    if let Some(pattern) = &schema.pattern {
        notes.push(format!("matches `{}`", pattern.replace('|', "\\|")));
    }
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        if let Some(message) = &rule.message {
            notes.push(format!("rule: {message}"));
        }
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    let default = schema
        .default
        .as_ref()
        .map(|d| format!("`{}`", d.0))
        .unwrap_or_default();
    out.push_str(&format!(
        "| `{path}` | {} | {default} | {description}{notes} |\n",
        type_name(schema)
    ));
    let required_children: Vec<&String> = schema.required.iter().flatten().collect();
    if let Some(props) = &schema.properties {
        for (name, child) in props {
            rows(
                out,
                &format!("{path}.{name}"),
                child,
                required_children.contains(&name),
            );
        }
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = &schema.items
        && items.properties.is_some()
    {
        let required_items: Vec<&String> = items.required.iter().flatten().collect();
        for (name, child) in items.properties.iter().flatten() {
            rows(
                out,
                &format!("{path}[].{name}"),
                child,
                required_items.contains(&name),
            );
        }
    }
}

fn type_name(schema: &JSONSchemaProps) -> String {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return "integer or string".into();
    }
    match schema.type_.as_deref() {
        Some("array") => match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(items)) => {
                format!("array of {}", type_name(items))
            }
            _ => "array".into(),
        },
        Some("object") if schema.properties.is_none() => "map".into(),
        Some(t) => t.into(),
        None => "any".into(),
    }
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    #[test]
    fn every_field_appears_with_its_description_and_bounds() {
        let page = super::markdown(&crate::crd::FediInstance::crd());
        for want in [
            "# FediInstance reference",
            "| `spec.domain` | string |",
            "`spec.worker.pools[].queues[].name`",
            "`spec.database.managed.pooler.defaultPoolSize`",
            "`status.conditions[].type`",
            "rule: set exactly one of database.managed and database.external",
        ] {
            assert!(page.contains(want), "missing {want:?}");
        }
        // Every row has four cells: no description broke the table.
        for line in page.lines().filter(|l| l.starts_with("| `")) {
            let cells = line.split(" | ").count();
            assert!(cells >= 4, "{line}");
        }
    }
}
