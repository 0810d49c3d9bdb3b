//! The instance endpoints and NodeInfo over HTTP, against a real server on PostgreSQL and
//! Redis, and read by a real client library (Mastodon.py).

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

async fn get(url: &str) -> reqwest::Response {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response
}

async fn get_json(url: &str) -> Value {
    get(url).await.json().await.unwrap()
}

async fn connect(db: &str) -> sqlx::PgConnection {
    <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .unwrap()
}

async fn set_setting(db: &str, key: &str, value: Value) {
    sqlx::query(
        "INSERT INTO instance_settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()",
    )
    .bind(key)
    .bind(value)
    .execute(&mut connect(db).await)
    .await
    .unwrap();
}

/// A remote account, as federation will create them.
async fn remote_account(db: &str, username: &str, domain: &str) {
    sqlx::query("INSERT INTO accounts (username, domain) VALUES ($1, $2)")
        .bind(username)
        .bind(domain)
        .execute(&mut connect(db).await)
        .await
        .unwrap();
}

fn assert_version(version: &Value) {
    let version = version.as_str().expect("version is a string");
    let (first, rest) = version.split_once(' ').expect("a space after the version");
    let parts: Vec<u32> = first
        .split('.')
        .map(|p| p.parse().expect("numeric version part"))
        .collect();
    assert_eq!(parts, [4, 3, 0], "{version}");
    assert_eq!(
        rest,
        format!("(compatible; fedi {})", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn v1_and_v2_describe_the_instance_with_mastodons_shapes() {
    let (server, db) = api_on_fresh_database(&[]).await;
    create_user(&db, "alice", "password-1").await;
    remote_account(&db, "bob", "remote.example").await;
    remote_account(&db, "carol", "remote.example").await;
    remote_account(&db, "dave", "other.example").await;
    let base = &server.base_url;

    let response = get(&format!("{base}/api/v1/instance")).await;
    assert_eq!(
        response.headers()["cache-control"],
        "max-age=180, public",
        "clients and proxies may cache it, as Mastodon's"
    );
    let v1: Value = response.json().await.unwrap();
    assert_eq!(v1["uri"], "test.example");
    assert_eq!(
        v1["title"], "test.example",
        "the domain until an admin sets one"
    );
    assert_eq!(v1["short_description"], "");
    assert_eq!(v1["description"], "");
    assert_eq!(v1["email"], "");
    assert_version(&v1["version"]);
    assert_eq!(v1["urls"], json!({"streaming_api": "wss://test.example"}));
    assert_eq!(
        v1["stats"],
        json!({"user_count": 1, "status_count": 0, "domain_count": 2})
    );
    assert_eq!(v1["languages"], json!(["en"]));
    assert_eq!(v1["registrations"], true);
    assert_eq!(v1["approval_required"], false);
    assert_eq!(v1["invites_enabled"], false);
    assert_eq!(v1["contact_account"], Value::Null);
    assert_eq!(v1["rules"], json!([]));
    let c = &v1["configuration"];
    assert_eq!(
        c["statuses"],
        json!({"max_characters": 500, "max_media_attachments": 4, "characters_reserved_per_url": 23})
    );
    assert_eq!(
        c["polls"],
        json!({"max_options": 4, "max_characters_per_option": 50, "min_expiration": 300, "max_expiration": 2629746})
    );
    assert_eq!(c["accounts"]["max_featured_tags"], 10);
    let media = &c["media_attachments"];
    for key in [
        "image_size_limit",
        "image_matrix_limit",
        "video_size_limit",
        "video_frame_rate_limit",
        "video_matrix_limit",
    ] {
        assert!(media[key].as_u64().unwrap() > 0, "{key}: {media}");
    }
    let types = media["supported_mime_types"].as_array().unwrap();
    for t in [
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "video/mp4",
    ] {
        assert!(types.contains(&json!(t)), "{t} missing from {types:?}");
    }

    let thumbnail = v1["thumbnail"].as_str().unwrap();
    let path = thumbnail
        .strip_prefix("https://test.example")
        .expect("an absolute URL on the instance's domain");
    let image = get(&format!("{base}{path}")).await;
    assert_eq!(image.headers()["content-type"], "image/png");
    assert!(image.bytes().await.unwrap().starts_with(b"\x89PNG"));

    let v2 = get_json(&format!("{base}/api/v2/instance")).await;
    assert_eq!(v2["domain"], "test.example");
    assert_eq!(v2["title"], "test.example");
    assert_version(&v2["version"]);
    assert_eq!(v2["version"], v1["version"]);
    assert!(v2["source_url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(v2["description"], "");
    assert_eq!(v2["usage"], json!({"users": {"active_month": 0}}));
    assert_eq!(v2["thumbnail"]["url"], thumbnail);
    assert_eq!(v2["languages"], json!(["en"]));
    // Elk and Phanpy find the streaming server and the push key here.
    assert_eq!(
        v2["configuration"]["urls"]["streaming"],
        "wss://test.example"
    );
    assert_eq!(v2["configuration"]["vapid"], json!({"public_key": ""}));
    assert_eq!(v2["configuration"]["statuses"], c["statuses"]);
    assert_eq!(v2["configuration"]["polls"], c["polls"]);
    assert_eq!(
        v2["configuration"]["accounts"],
        json!({"max_featured_tags": 10, "max_pinned_statuses": 5})
    );
    assert_eq!(
        v2["configuration"]["media_attachments"]["description_limit"],
        1500
    );
    assert_eq!(
        v2["configuration"]["translation"],
        json!({"enabled": false})
    );
    assert_eq!(
        v2["registrations"],
        json!({"enabled": true, "approval_required": false, "message": null, "url": null})
    );
    // Phanpy switches to grouped notifications at 2: never claim more than exists.
    assert_eq!(v2["api_versions"], json!({"mastodon": 1}));
    assert_eq!(v2["contact"], json!({"email": "", "account": null}));
    assert_eq!(v2["rules"], json!([]));

    // Mastodon.py asks with a trailing slash.
    assert_eq!(get_json(&format!("{base}/api/v1/instance/")).await, v1);
    assert_eq!(get_json(&format!("{base}/api/v2/instance/")).await, v2);
}

#[tokio::test]
async fn registrations_follow_fedi_registrations() {
    let db = migrated_database().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    for (mode, enabled, approval) in [
        ("open", true, false),
        ("approval", true, true),
        ("closed", false, false),
    ] {
        let server = start_api_with(&db, &redis, &[("FEDI_REGISTRATIONS", mode)]).await;
        let base = &server.base_url;
        let v1 = get_json(&format!("{base}/api/v1/instance")).await;
        assert_eq!(v1["registrations"], enabled, "{mode}");
        assert_eq!(v1["approval_required"], approval, "{mode}");
        let v2 = get_json(&format!("{base}/api/v2/instance")).await;
        assert_eq!(v2["registrations"]["enabled"], enabled, "{mode}");
        assert_eq!(v2["registrations"]["approval_required"], approval, "{mode}");
        let nodeinfo = get_json(&format!("{base}/nodeinfo/2.0")).await;
        // As Mastodon: approval-mode sign-ups are open registrations.
        assert_eq!(nodeinfo["openRegistrations"], enabled, "{mode}");
    }
}

#[tokio::test]
async fn instance_settings_change_what_the_instance_says() {
    let (server, db) = api_on_fresh_database(&[]).await;
    let base = &server.base_url;
    set_setting(&db, "site.title", json!("Example Social")).await;
    set_setting(&db, "site.description", json!("A small place")).await;
    set_setting(&db, "site.contact_email", json!("admin@test.example")).await;
    set_setting(&db, "site.languages", json!(["de", "en"])).await;
    set_setting(
        &db,
        "site.rules",
        json!(["Be kind", {"text": "No spam", "hint": "Ads count as spam"}]),
    )
    .await;
    set_setting(
        &db,
        "site.extended_description",
        json!("<p>All about us</p>"),
    )
    .await;
    let rules = json!([
        {"id": "1", "text": "Be kind", "hint": ""},
        {"id": "2", "text": "No spam", "hint": "Ads count as spam"},
    ]);

    let v1 = get_json(&format!("{base}/api/v1/instance")).await;
    assert_eq!(v1["title"], "Example Social");
    assert_eq!(v1["description"], "A small place");
    assert_eq!(v1["short_description"], "A small place");
    assert_eq!(v1["email"], "admin@test.example");
    assert_eq!(v1["languages"], json!(["de", "en"]));
    assert_eq!(v1["rules"], rules);

    let v2 = get_json(&format!("{base}/api/v2/instance")).await;
    assert_eq!(v2["title"], "Example Social");
    assert_eq!(v2["description"], "A small place");
    assert_eq!(v2["contact"]["email"], "admin@test.example");
    assert_eq!(v2["rules"], rules);

    assert_eq!(
        get_json(&format!("{base}/api/v1/instance/rules")).await,
        rules
    );
    let extended = get_json(&format!("{base}/api/v1/instance/extended_description")).await;
    assert_eq!(extended["content"], "<p>All about us</p>");
    let updated_at = extended["updated_at"].as_str().unwrap();
    assert!(
        updated_at.len() == 24 && updated_at.ends_with('Z') && updated_at.contains('T'),
        "ISO 8601 with milliseconds, as Mastodon: {updated_at}"
    );
    let nodeinfo = get_json(&format!("{base}/nodeinfo/2.1")).await;
    assert_eq!(nodeinfo["metadata"]["nodeName"], "Example Social");
    assert_eq!(nodeinfo["metadata"]["nodeDescription"], "A small place");

    // A row of the wrong type is ignored, not an error for every client.
    set_setting(&db, "site.title", json!(42)).await;
    set_setting(&db, "site.rules", json!("Be kind")).await;
    let v2 = get_json(&format!("{base}/api/v2/instance")).await;
    assert_eq!(v2["title"], "test.example");
    assert_eq!(v2["rules"], json!([]));
}

#[tokio::test]
async fn the_contact_is_the_chosen_account_else_the_first_owner_or_admin() {
    let (server, db) = api_on_fresh_database(&[]).await;
    let base = &server.base_url;
    let contact = || async {
        let v1 = get_json(&format!("{base}/api/v1/instance")).await;
        let v2 = get_json(&format!("{base}/api/v2/instance")).await;
        assert_eq!(v1["contact_account"], v2["contact"]["account"]);
        v2["contact"]["account"]["username"].clone()
    };
    create_user(&db, "plain", "password-1").await;
    assert_eq!(contact().await, Value::Null, "no admin, no contact");

    let (admin_account, _) = create_user(&db, "theadmin", "password-2").await;
    let (owner_account, _) = create_user(&db, "theowner", "password-3").await;
    let mut conn = connect(&db).await;
    for (account, role) in [(admin_account, "admin"), (owner_account, "owner")] {
        sqlx::query("UPDATE users SET role = $2 WHERE account_id = $1")
            .bind(account)
            .bind(role)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    assert_eq!(contact().await, "theowner", "owners come first");
    let v1 = get_json(&format!("{base}/api/v1/instance")).await;
    let account = &v1["contact_account"];
    assert_eq!(account["id"], owner_account.to_string());
    assert_eq!(account["acct"], "theowner");
    assert_eq!(account["url"], "https://test.example/@theowner");

    set_setting(&db, "site.contact_username", json!("@Plain")).await;
    assert_eq!(contact().await, "plain", "the setting wins");
    set_setting(&db, "site.contact_username", json!("gone")).await;
    assert_eq!(contact().await, "theowner", "a stale setting falls back");

    sqlx::query("UPDATE accounts SET suspended_at = now() WHERE id = $1")
        .bind(owner_account)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        contact().await,
        "theadmin",
        "a suspended account is nobody's contact"
    );
}

#[tokio::test]
async fn extended_description_is_empty_until_set() {
    let (server, _db) = api_on_fresh_database(&[]).await;
    let extended = get_json(&format!(
        "{}/api/v1/instance/extended_description",
        server.base_url
    ))
    .await;
    assert_eq!(extended, json!({"updated_at": null, "content": ""}));
}

#[tokio::test]
async fn nodeinfo_is_found_where_elk_and_phanpy_look() {
    let (server, db) = api_on_fresh_database(&[]).await;
    let base = &server.base_url;
    let (_, alice) = create_user(&db, "alice", "password-1").await;
    create_user(&db, "bob", "password-2").await;
    issue_token(&db, Some(alice), "read").await;

    // Phanpy follows the discovery document.
    let response = get(&format!("{base}/.well-known/nodeinfo")).await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let discovery: Value = response.json().await.unwrap();
    assert_eq!(
        discovery,
        json!({"links": [
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": "https://test.example/nodeinfo/2.0"},
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": "https://test.example/nodeinfo/2.1"},
        ]})
    );

    // Elk asks for /nodeinfo/2.0 directly.
    for version in ["2.0", "2.1"] {
        let response = get(&format!("{base}/nodeinfo/{version}")).await;
        assert_eq!(
            response.headers()["content-type"],
            format!(
                "application/json; profile=\"http://nodeinfo.diaspora.software/ns/schema/{version}#\""
            )
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["version"], version);
        assert_eq!(body["software"]["name"], "fedi");
        assert_eq!(body["software"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(body["protocols"], json!(["activitypub"]));
        assert_eq!(body["services"], json!({"outbound": [], "inbound": []}));
        assert_eq!(
            body["usage"],
            json!({"users": {"total": 2, "activeMonth": 1, "activeHalfyear": 1}, "localPosts": 0})
        );
        assert_eq!(body["openRegistrations"], true);
        assert_eq!(body["metadata"]["nodeName"], "test.example");
        assert_eq!(
            body["software"].get("repository").is_some(),
            version == "2.1",
            "repository exists in 2.1 only: {body}"
        );
    }
}

#[tokio::test]
async fn users_mastodon_does_not_count_are_not_counted() {
    let (server, db) = api_on_fresh_database(&[]).await;
    let (alice_account, alice) = create_user(&db, "alice", "password-1").await;
    let (_, bob) = create_user(&db, "bob", "password-2").await;
    issue_token(&db, Some(alice), "read").await;
    issue_token(&db, Some(bob), "read").await;
    // An application token is no user's activity.
    issue_token(&db, None, "read").await;
    let mut conn = connect(&db).await;
    sqlx::query("UPDATE accounts SET suspended_at = now() WHERE id = $1")
        .bind(alice_account)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET confirmed_at = NULL WHERE id = $1")
        .bind(bob)
        .execute(&mut conn)
        .await
        .unwrap();
    create_user(&db, "carol", "password-3").await;

    let base = &server.base_url;
    let v1 = get_json(&format!("{base}/api/v1/instance")).await;
    assert_eq!(v1["stats"]["user_count"], 1, "only carol: {v1}");
    let v2 = get_json(&format!("{base}/api/v2/instance")).await;
    assert_eq!(v2["usage"]["users"]["active_month"], 0, "{v2}");
}

#[tokio::test]
async fn peers_activity_and_custom_emojis() {
    let (server, db) = api_on_fresh_database(&[]).await;
    let base = &server.base_url;
    assert_eq!(
        get_json(&format!("{base}/api/v1/instance/peers")).await,
        json!([])
    );
    remote_account(&db, "bob", "remote.example").await;
    remote_account(&db, "carol", "remote.example").await;
    remote_account(&db, "dave", "another.example").await;
    assert_eq!(
        get_json(&format!("{base}/api/v1/instance/peers")).await,
        json!(["another.example", "remote.example"])
    );

    let (_, alice) = create_user(&db, "alice", "password-1").await;
    issue_token(&db, Some(alice), "read").await;
    issue_token(&db, Some(alice), "write").await;
    create_user(&db, "erin", "password-2").await;

    let activity = get_json(&format!("{base}/api/v1/instance/activity")).await;
    let weeks = activity.as_array().unwrap();
    assert_eq!(weeks.len(), 12, "{activity}");
    let starts: Vec<i64> = weeks
        .iter()
        .map(|w| w["week"].as_str().unwrap().parse().unwrap())
        .collect();
    for pair in starts.windows(2) {
        assert_eq!(pair[0] - pair[1], 7 * 86_400, "newest first, a week apart");
    }
    // 1970-01-01 was a Thursday: Mondays are 4 days past a multiple of 7 days.
    assert_eq!(
        starts[0].rem_euclid(7 * 86_400),
        4 * 86_400,
        "weeks start on Monday 00:00 UTC"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(starts[0] <= now && now < starts[0] + 7 * 86_400);
    assert_eq!(
        weeks[0],
        json!({"week": weeks[0]["week"], "statuses": "0", "logins": "1", "registrations": "2"})
    );
    for week in &weeks[1..] {
        assert_eq!(week["logins"], "0");
        assert_eq!(week["registrations"], "0");
    }

    assert_eq!(
        get_json(&format!("{base}/api/v1/custom_emojis")).await,
        json!([])
    );
}

/// The venv of scripts/client-venv.sh, built on first use and cached.
fn client_python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/client-venv.sh");
    let out = Command::new(script).output().unwrap_or_else(|e| {
        panic!("cannot run {script}: {e}");
    });
    assert!(
        out.status.success(),
        "{script} failed: the Mastodon.py tests need python3 with venv and pip, and PyPI (or \
         PIP_INDEX_URL). Install python3-venv, then run the script by hand to see more.\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn mastodon_py_reads_the_instance() {
    let python = client_python();
    let (server, db) = api_on_fresh_database(&[("FEDI_REGISTRATIONS", "approval")]).await;
    create_user(&db, "alice", "password-1").await;
    set_setting(&db, "site.title", json!("Python's Place")).await;
    set_setting(&db, "site.rules", json!(["Be kind"])).await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/mastodon_py_instance.py"
    );
    // Blocking is fine: the server is another process.
    let out = Command::new(&python)
        .arg(script)
        .arg(&server.base_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Mastodon.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["version"], "4.3.0", "{seen}");
    assert_eq!(seen["parsed"], json!([4, 3, 0]));
    assert_eq!(seen["api_version"], 1);
    // 4.x: the library's `instance()` is the v2 entity.
    assert_eq!(seen["v2_type"], "InstanceV2");
    assert_eq!(
        seen["v2"],
        json!({
            "domain": "test.example",
            "title": "Python's Place",
            "streaming": "wss://test.example",
            "vapid": "",
            "max_characters": 500,
            "registrations_enabled": true,
            "approval_required": true,
            "api_versions": {"mastodon": 1},
            "rules": ["Be kind"],
        })
    );
    assert_eq!(
        seen["v1"],
        json!({
            "uri": "test.example",
            "title": "Python's Place",
            "streaming_api": "wss://test.example",
            "user_count": 1,
            "registrations": true,
            "max_options": 4,
        })
    );
    assert_eq!(seen["rules"], json!([{"id": "1", "text": "Be kind"}]));
    assert_eq!(seen["peers"], json!([]));
    assert_eq!(seen["activity_weeks"], 12);
    assert_eq!(seen["activity_first_week_is_datetime"], true);
    assert_eq!(seen["custom_emojis"], json!([]));
    assert_eq!(seen["healthy"], true);
}
