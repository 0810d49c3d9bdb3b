//! Chosen languages (Mastodon's `users.chosen_languages`): set through `update_credentials`
//! (our extension), applied to the public and hashtag timelines (statuses without a language
//! always shown) and, by the streamer, to public streams but not to the user's own stream.

mod common;
#[path = "streaming/support.rs"]
mod support;

use std::time::Duration;

use common::*;
use fedi_server::events::{Event, channel};
use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

async fn choose(api: &TestApi, token: &str, languages: &[&str]) -> Reply {
    let form: Vec<(&str, &str)> = languages
        .iter()
        .map(|l| ("chosen_languages[]", *l))
        .collect();
    api.call(
        "PATCH",
        "/api/v1/accounts/update_credentials",
        Some(token),
        Body::Form(&form),
    )
    .await
}

async fn post(api: &TestApi, token: &str, text: &str, language: Option<&str>) -> String {
    let mut form = vec![("status", text)];
    if let Some(l) = language {
        form.push(("language", l));
    }
    let reply = api
        .call("POST", "/api/v1/statuses", Some(token), Body::Form(&form))
        .await
        .expect(200);
    let status = reply.json();
    assert_eq!(status["language"].as_str(), language, "{status}");
    status["id"].as_str().unwrap().to_string()
}

async fn stored(api: &TestApi, account: i64) -> Option<Vec<String>> {
    let mut conn = api.conn().await;
    sqlx::query_scalar("SELECT chosen_languages FROM users WHERE account_id = $1")
        .bind(account)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn public_and_tag_timelines_show_only_the_chosen_languages() {
    let api = TestApi::start().await;
    let (reader, reader_token) = api.token_user("reader").await;
    let (_, author) = api.token_user("author").await;
    let german = post(&api, &author, "Guten Tag #polyglot", Some("de")).await;
    let english = post(&api, &author, "Good day #polyglot", Some("en")).await;
    let french = post(&api, &author, "Bonjour #polyglot", Some("fr")).await;
    let unknown = post(&api, &author, "¯\\_(ツ)_/¯ #polyglot", None).await;
    let everything = [
        unknown.clone(),
        french.clone(),
        english.clone(),
        german.clone(),
    ];

    let public = "/api/v1/timelines/public";
    let tag = "/api/v1/timelines/tag/polyglot";
    assert_eq!(
        api.listed_ids(public, Some(&reader_token)).await,
        everything
    );

    choose(&api, &reader_token, &["en", "fr", "en"])
        .await
        .expect(200);
    assert_eq!(
        stored(&api, reader).await,
        Some(vec!["en".to_string(), "fr".to_string()])
    );
    let chosen = [unknown.clone(), french.clone(), english.clone()];
    assert_eq!(api.listed_ids(public, Some(&reader_token)).await, chosen);
    assert_eq!(api.listed_ids(tag, Some(&reader_token)).await, chosen);
    assert_eq!(
        api.listed_ids(&format!("{public}?local=true"), Some(&reader_token))
            .await,
        chosen
    );
    // Others, and anonymous readers, still see everything.
    assert_eq!(api.listed_ids(public, None).await, everything);
    assert_eq!(api.listed_ids(tag, Some(&author)).await, everything);

    // Codes only; a bad list changes nothing.
    choose(&api, &reader_token, &["English"])
        .await
        .refused("Chosen languages must be ISO 639 language codes");
    assert_eq!(stored(&api, reader).await.map(|l| l.len()), Some(2));

    // A profile update without the field keeps the choice; an empty list clears it.
    api.call(
        "PATCH",
        "/api/v1/accounts/update_credentials",
        Some(&reader_token),
        Body::Form(&[("display_name", "Reader")]),
    )
    .await
    .expect(200);
    assert_eq!(stored(&api, reader).await.map(|l| l.len()), Some(2));
    choose(&api, &reader_token, &[""]).await.expect(200);
    assert_eq!(stored(&api, reader).await, None);
    assert_eq!(
        api.listed_ids(public, Some(&reader_token)).await,
        everything
    );
    api.call(
        "PATCH",
        "/api/v1/accounts/update_credentials",
        Some(&reader_token),
        Body::Json(serde_json::json!({"chosen_languages": ["de"]})),
    )
    .await
    .expect(200);
    assert_eq!(
        api.listed_ids(public, Some(&reader_token)).await,
        [unknown, german]
    );
}

/// A status id no other test publishes.
fn unique_id(offset: i64) -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    nanos / 1000 * 10 + offset
}

#[tokio::test]
async fn the_streamer_withholds_other_languages_on_public_streams_only() {
    let api = TestApi::start().await;
    let redis = service_env("FEDI_TEST_REDIS_URL");
    let (reader, token) = api.token_user("reader").await;
    choose(&api, &token, &["en"]).await.expect(200);
    // The streamer reads the choice when a client connects.
    let streamer = start_streamer(&api.db, &redis, &[]).await;
    let state = app_state(&api.db, &redis, false);

    let mut ws = Ws::connect(&streamer.base_url, "stream=public", Auth::Header(&token))
        .await
        .unwrap();
    ws.subscribe("user", serde_json::json!({})).await;
    let public = channel::public(channel::Scope::All, false);
    let home = channel::user(reader);
    until_subscribed(&mut ws, &state, &public, WAIT).await;
    until_subscribed(&mut ws, &state, &home, WAIT).await;

    let (german, english) = (unique_id(1), unique_id(2));
    let de = Event::update(&status(german, 999, "author", Some("de")));
    let en = Event::update(&status(english, 999, "author", Some("en")));
    publish(&state, &public, &de).await;
    publish(&state, &home, &de).await;
    publish(&state, &public, &en).await;

    // Other tests publish on `timeline:public` too: frames are told apart by id. The
    // English status follows the German one on the same channel, so once it has arrived
    // the German one would have.
    let (mut public_ids, mut home_ids) = (Vec::new(), Vec::new());
    let id = |frame: &Value| -> i64 {
        let payload: Value = serde_json::from_str(frame["payload"].as_str().unwrap()).unwrap();
        payload["id"].as_str().unwrap().parse().unwrap()
    };
    while !(public_ids.contains(&english) && home_ids.contains(&german)) {
        let frame = ws
            .next(WAIT)
            .await
            .expect("the English status and the home copy");
        if frame["event"] != "update" {
            continue;
        }
        match frame["stream"][0].as_str() {
            Some("public") => public_ids.push(id(&frame)),
            Some("user") => home_ids.push(id(&frame)),
            _ => {}
        }
    }
    assert!(
        !public_ids.contains(&german),
        "German withheld from the public stream: {public_ids:?}"
    );
}
