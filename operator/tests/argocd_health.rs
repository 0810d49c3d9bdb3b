//! config/gitops/argocd/health.lua, run the way Argo CD runs it (Lua 5.1, `obj` global,
//! returns {status, message}) against the statuses the operator writes.

use mlua::{Lua, LuaSerdeExt, Table};
use serde_json::{Value, json};

fn health(object: Value) -> (String, String) {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/gitops/argocd/health.lua"
    ))
    .unwrap();
    let lua = Lua::new();
    lua.globals()
        .set("obj", lua.to_value(&object).unwrap())
        .unwrap();
    let hs: Table = lua.load(&script).eval().expect("the script runs");
    (hs.get("status").unwrap(), hs.get("message").unwrap())
}

fn condition(type_: &str, status: &str, reason: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": format!("{reason} message")})
}

#[test]
fn each_state_of_an_instance_maps_to_an_argo_cd_health() {
    let with = |generation: i64, observed: i64, conditions: Vec<Value>| {
        json!({"metadata": {"generation": generation},
               "status": {"observedGeneration": observed, "conditions": conditions}})
    };
    let cases = [
        ("new", json!({"metadata": {"generation": 1}}), "Progressing"),
        (
            "ready",
            with(
                2,
                2,
                vec![
                    condition("Ready", "True", "Available"),
                    condition("Degraded", "False", "ReconcileSucceeded"),
                ],
            ),
            "Healthy",
        ),
        (
            "a newer spec not seen yet",
            with(3, 2, vec![condition("Ready", "True", "Available")]),
            "Progressing",
        ),
        (
            "waiting for dependencies",
            with(
                1,
                1,
                vec![
                    condition("Ready", "False", "WaitingForDependencies"),
                    condition("Degraded", "False", "ReconcileSucceeded"),
                ],
            ),
            "Progressing",
        ),
        (
            "a missing Secret",
            with(
                1,
                1,
                vec![
                    condition("Ready", "False", "ComponentsNotReady"),
                    condition("Degraded", "True", "SecretNotFound"),
                ],
            ),
            "Degraded",
        ),
        (
            "suspended",
            with(1, 1, vec![condition("Ready", "False", "Suspended")]),
            "Suspended",
        ),
    ];
    for (what, object, want) in cases {
        let (status, message) = health(object);
        assert_eq!(status, want, "{what}: {message}");
    }
    let (_, message) = health(with(
        1,
        1,
        vec![condition("Degraded", "True", "SecretNotFound")],
    ));
    assert!(message.starts_with("SecretNotFound: "), "{message}");
}
