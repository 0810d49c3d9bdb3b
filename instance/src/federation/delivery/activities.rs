//! The activities we send that are not a status's own (`Create` / `Announce` come from
//! `documents::note`). Ids follow Mastodon's fragments on the actor (`#likes/…`,
//! `#follows/…`), derived from the objects involved so that an `Undo` can name the activity
//! it undoes without storing it, and an incoming `Accept` can be matched to our `Follow`.

use serde_json::{Value, json};

use crate::federation::urls::PUBLIC;

/// `activity` with a context as it is sent: `context` (the extensions its object uses), or
/// plain ActivityStreams.
pub fn with_context(mut activity: Value, context: Option<Value>) -> Value {
    if let Some(map) = activity.as_object_mut() {
        let context = context.unwrap_or_else(|| json!("https://www.w3.org/ns/activitystreams"));
        map.insert("@context".into(), context);
    }
    activity
}

/// The id of the `Follow` of `actor` to the account `target_id`.
pub fn follow_id(actor: &str, target_id: i64) -> String {
    format!("{actor}#follows/{target_id}")
}

pub fn follow(actor: &str, target_id: i64, target: &str) -> Value {
    json!({"id": follow_id(actor, target_id), "type": "Follow", "actor": actor, "object": target})
}

pub fn like(actor: &str, status_id: i64, status: &str) -> Value {
    json!({"id": format!("{actor}#likes/{status_id}"), "type": "Like", "actor": actor, "object": status})
}

pub fn block(actor: &str, target_id: i64, target: &str) -> Value {
    json!({"id": format!("{actor}#blocks/{target_id}"), "type": "Block", "actor": actor, "object": target})
}

/// `Undo` of `activity` (embedded whole: peers match the undone object by its content).
pub fn undo(actor: &str, activity: Value) -> Value {
    let id = format!("{}/undo", activity["id"].as_str().unwrap_or(actor));
    json!({"id": id, "type": "Undo", "actor": actor, "object": activity})
}

/// `Accept` or `Reject` of the `Follow` `follow_uri` of `follower` to `actor`.
pub fn answer_follow(
    kind: &str,
    actor: &str,
    follower_id: i64,
    follower: &str,
    follow_uri: &str,
) -> Value {
    let fragment = kind.to_ascii_lowercase();
    json!({
        "id": format!("{actor}#{fragment}s/follows/{follower_id}"),
        "type": kind,
        "actor": actor,
        "object": {"id": follow_uri, "type": "Follow", "actor": follower, "object": actor},
    })
}

/// `Delete` of a status, as a `Tombstone` (Mastodon's shape).
pub fn delete_status(actor: &str, status: &str) -> Value {
    json!({
        "id": format!("{status}#delete"),
        "type": "Delete",
        "actor": actor,
        "to": [PUBLIC],
        "object": {"id": status, "type": "Tombstone", "atomUri": status},
    })
}

/// `Update` of `object` (an edited Note or the actor's profile); `version` makes each
/// update's id unique.
pub fn update(actor: &str, object: Value, version: i64) -> Value {
    let object_id = object["id"].as_str().unwrap_or(actor).to_string();
    json!({
        "id": format!("{object_id}#updates/{version}"),
        "type": "Update",
        "actor": actor,
        "to": object.get("to").cloned().unwrap_or(json!([PUBLIC])),
        "cc": object.get("cc").cloned().unwrap_or(json!([])),
        "object": object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_embeds_what_it_undoes_and_ids_are_stable() {
        let a = "https://d.example/users/a";
        let f = follow(a, 42, "https://r.example/users/b");
        assert_eq!(f["id"], "https://d.example/users/a#follows/42");
        assert_eq!(follow(a, 42, "x")["id"], f["id"]);
        let u = undo(a, f.clone());
        assert_eq!(u["type"], "Undo");
        assert_eq!(u["object"], f);
        assert_eq!(u["id"], "https://d.example/users/a#follows/42/undo");
        let accept = answer_follow(
            "Accept",
            a,
            7,
            "https://r.example/users/b",
            "https://r.example/f/1",
        );
        assert_eq!(accept["object"]["id"], "https://r.example/f/1");
        assert_eq!(accept["object"]["object"], a);
        assert!(with_context(accept, None)["@context"].is_string());
    }
}
