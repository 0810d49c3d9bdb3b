//! Golden documents as Mastodon, GoToSocial, Akkoma and Misskey publish them (and a few
//! shapes other servers use), in `tests/fixtures/federation/<server>/`, read through the
//! parsing the inbox and the ingress use: actors (`remote::parse::actor`), their keys
//! (`remote_keys::key_from_document`), Notes (`remote::note`), and the activity fields the
//! ingress checks before dispatching (type, actor, object, origin).

use std::path::PathBuf;

use fedi_server::federation::keys::PublicKey;
use fedi_server::federation::remote::note::{self, Content};
use fedi_server::federation::remote::{parse, same_origin};
use fedi_server::federation::remote_keys::key_from_document;
use serde_json::Value;

fn fixture(server: &str, name: &str) -> Value {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/fixtures/federation",
        server,
        &format!("{name}.json"),
    ]
    .iter()
    .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

struct ExpectedActor<'a> {
    uri: &'a str,
    kind: &'a str,
    username: &'a str,
    display_name: &'a str,
    inbox: &'a str,
    shared_inbox: Option<&'a str>,
    key_id: &'a str,
    avatar: Option<&'a str>,
    locked: bool,
}

fn check_actor(doc: &Value, e: &ExpectedActor) {
    let actor = parse::actor(doc, e.uri).unwrap_or_else(|err| panic!("{}: {err}", e.uri));
    assert_eq!(actor.actor_type, e.kind);
    assert_eq!(actor.username, e.username);
    assert_eq!(actor.display_name, e.display_name);
    assert_eq!(actor.inbox_url, e.inbox);
    assert_eq!(actor.shared_inbox_url.as_deref(), e.shared_inbox);
    assert_eq!(actor.avatar_url.as_deref(), e.avatar);
    assert_eq!(actor.locked, e.locked);
    // The key as the inbox finds it when verifying a signature by `key_id`.
    let (owner, pem) = key_from_document(doc, e.key_id).expect("the key is published");
    assert_eq!(owner, e.uri);
    PublicKey::from_pem(&pem).expect("an RSA public key");
    // The key the actor store caches with the actor: the first one listed.
    assert_eq!(
        doc.get("publicKey").and_then(parse::id_of),
        Some(e.key_id),
        "publicKey id"
    );
}

/// What the ingress checks before dispatching: the actor, and that an activity's id (when
/// it has one) lives on its actor's server.
fn check_activity(doc: &Value, kind: &str, actor: &str, object: &str) {
    assert_eq!(parse::type_of(doc), Some(kind), "{doc}");
    assert_eq!(doc.get("actor").and_then(parse::id_of), Some(actor));
    assert_eq!(
        doc.get("object").and_then(parse::id_of),
        Some(object),
        "{kind} object"
    );
    if let Some(id) = doc.get("id").and_then(Value::as_str) {
        assert!(same_origin(id, actor), "{id} is on {actor}'s server");
    }
}

struct ExpectedNote<'a> {
    author: &'a str,
    contains: &'a str,
    spoiler: &'a str,
    sensitive: bool,
    language: Option<&'a str>,
    visibility: &'a str,
    mentions: &'a [&'a str],
    hashtags: &'a [&'a str],
    /// (kind, url, content type, description)
    media: &'a [(&'a str, &'a str, Option<&'a str>, &'a str)],
    in_reply_to: Option<&'a str>,
}

fn check_note(doc: &Value, followers: &str, e: &ExpectedNote) {
    assert_eq!(note::author(doc), Some(e.author));
    let content = Content::of(doc);
    assert!(content.html.contains(e.contains), "{}", content.html);
    assert!(
        !content.html.contains("<script"),
        "sanitized: {}",
        content.html
    );
    assert_eq!(content.spoiler_text, e.spoiler);
    assert_eq!(content.sensitive, e.sensitive);
    assert_eq!(content.language.as_deref(), e.language);
    assert_eq!(note::visibility(doc, Some(followers)), e.visibility);
    assert_eq!(note::mention_hrefs(doc), e.mentions);
    assert_eq!(note::hashtags(doc), e.hashtags);
    let media: Vec<(&str, String, Option<String>, String)> = note::attachments(doc)
        .into_iter()
        .map(|m| (m.kind, m.url, m.content_type, m.description))
        .collect();
    let expected: Vec<(&str, String, Option<String>, String)> = e
        .media
        .iter()
        .map(|(k, u, t, d)| (*k, u.to_string(), t.map(str::to_string), d.to_string()))
        .collect();
    assert_eq!(media, expected);
    assert_eq!(note::in_reply_to(doc), e.in_reply_to);
}

const ALICE: &str = "https://mastodon.example/users/alice";
const ALICE_NOTE: &str = "https://mastodon.example/users/alice/statuses/110000000000000001";
const BOB: &str = "https://gts.example/users/bob";
const BOB_NOTE: &str = "https://gts.example/users/bob/statuses/01HQ0000000000000000000000";
const CAROL: &str = "https://akkoma.example/users/carol";
const DAVE: &str = "https://misskey.example/users/9tj3g0a4o2";

#[test]
fn mastodon_documents_parse() {
    check_actor(
        &fixture("mastodon", "actor"),
        &ExpectedActor {
            uri: ALICE,
            kind: "Person",
            username: "alice",
            display_name: "Alice :blobcat:",
            inbox: "https://mastodon.example/users/alice/inbox",
            shared_inbox: Some("https://mastodon.example/inbox"),
            key_id: "https://mastodon.example/users/alice#main-key",
            avatar: Some(
                "https://files.mastodon.example/accounts/avatars/000/000/001/original/a.png",
            ),
            locked: true,
        },
    );
    let actor = parse::actor(&fixture("mastodon", "actor"), ALICE).unwrap();
    assert_eq!(actor.fields.len(), 1);
    assert_eq!(actor.fields[0].0, "Website");
    assert!(actor.fields[0].1.contains("https://alice.example"));
    check_actor(
        &fixture("mastodon", "service"),
        &ExpectedActor {
            uri: "https://mastodon.example/users/newsbot",
            kind: "Service",
            username: "newsbot",
            display_name: "News bot",
            inbox: "https://mastodon.example/users/newsbot/inbox",
            shared_inbox: Some("https://mastodon.example/inbox"),
            key_id: "https://mastodon.example/users/newsbot#main-key",
            avatar: None,
            locked: false,
        },
    );

    let create = fixture("mastodon", "create_note");
    check_activity(&create, "Create", ALICE, ALICE_NOTE);
    check_note(
        &create["object"],
        "https://mastodon.example/users/alice/followers",
        &ExpectedNote {
            author: ALICE,
            contains: "look :blobcat:",
            spoiler: "rust talk",
            sensitive: true,
            language: Some("en"),
            visibility: "public",
            mentions: &[BOB],
            hashtags: &["Rust"],
            media: &[(
                "image",
                "https://files.mastodon.example/media_attachments/files/110/000/000/original/pic.png",
                Some("image/png"),
                "A crab",
            )],
            in_reply_to: Some(BOB_NOTE),
        },
    );
    let blurhash = note::attachments(&create["object"])[0].blurhash.clone();
    assert_eq!(
        blurhash.as_deref(),
        Some("UBL_:rOpGG-oBUNG,qRj2so|=eE1w^n4S5NH")
    );

    let update = fixture("mastodon", "update_note");
    check_activity(&update, "Update", ALICE, ALICE_NOTE);
    assert_eq!(Content::of(&update["object"]).html, "<p>edited</p>");
    check_activity(
        &fixture("mastodon", "announce"),
        "Announce",
        ALICE,
        BOB_NOTE,
    );
    check_activity(&fixture("mastodon", "like"), "Like", ALICE, BOB_NOTE);
    check_activity(&fixture("mastodon", "follow"), "Follow", ALICE, BOB);
    let accept = fixture("mastodon", "accept");
    check_activity(
        &accept,
        "Accept",
        ALICE,
        "https://gts.example/users/bob/follow/01HQ0000000000000000000001",
    );
    assert_eq!(parse::type_of(&accept["object"]), Some("Follow"));
    let undo = fixture("mastodon", "undo_follow");
    check_activity(
        &undo,
        "Undo",
        ALICE,
        "https://mastodon.example/3f1c1c3e-7a8e-4f0a-9c7e-000000000001",
    );
    assert_eq!(undo["object"]["object"], BOB);
    let delete = fixture("mastodon", "delete");
    check_activity(&delete, "Delete", ALICE, ALICE_NOTE);
    assert_eq!(parse::type_of(&delete["object"]), Some("Tombstone"));
}

#[test]
fn gotosocial_documents_parse() {
    let actor = fixture("gotosocial", "actor");
    check_actor(
        &actor,
        &ExpectedActor {
            uri: BOB,
            kind: "Person",
            username: "bob",
            display_name: "Bob",
            inbox: "https://gts.example/users/bob/inbox",
            shared_inbox: Some("https://gts.example/sharedInbox"),
            key_id: "https://gts.example/users/bob/main-key",
            avatar: Some("https://gts.example/fileserver/01AAA/account/avatar/original/01BBB.jpeg"),
            locked: false,
        },
    );
    // GoToSocial's key ids have no fragment: the key is a document of its own.
    let (owner, pem) = key_from_document(
        &fixture("gotosocial", "public_key"),
        "https://gts.example/users/bob/main-key",
    )
    .unwrap();
    assert_eq!(owner, BOB);
    PublicKey::from_pem(&pem).unwrap();

    let create = fixture("gotosocial", "create_note");
    check_activity(&create, "Create", BOB, BOB_NOTE);
    // A lone tag, attachment and `to` come as an object and a string, not lists.
    check_note(
        &create["object"],
        "https://gts.example/users/bob/followers",
        &ExpectedNote {
            author: BOB,
            contains: "hello",
            spoiler: "",
            sensitive: false,
            language: Some("en"),
            visibility: "public",
            mentions: &[ALICE],
            hashtags: &[],
            media: &[(
                "image",
                "https://gts.example/fileserver/01AAA/attachment/original/01CCC.jpeg",
                Some("image/jpeg"),
                "a photo",
            )],
            in_reply_to: None,
        },
    );
    check_activity(
        &fixture("gotosocial", "announce"),
        "Announce",
        BOB,
        ALICE_NOTE,
    );
    check_activity(&fixture("gotosocial", "like"), "Like", BOB, ALICE_NOTE);
    check_activity(&fixture("gotosocial", "follow"), "Follow", BOB, ALICE);
    check_activity(
        &fixture("gotosocial", "undo_follow"),
        "Undo",
        BOB,
        "https://gts.example/users/bob/follow/01HQ0000000000000000000001",
    );
    check_activity(
        &fixture("gotosocial", "accept"),
        "Accept",
        BOB,
        "https://mastodon.example/3f1c1c3e-7a8e-4f0a-9c7e-000000000001",
    );
    check_activity(&fixture("gotosocial", "delete"), "Delete", BOB, BOB_NOTE);
    let update = fixture("gotosocial", "update_actor");
    check_activity(&update, "Update", BOB, BOB);
    assert_eq!(
        parse::actor(&update["object"], BOB).unwrap().username,
        "bob"
    );
}

#[test]
fn akkoma_documents_parse() {
    check_actor(
        &fixture("akkoma", "actor"),
        &ExpectedActor {
            uri: CAROL,
            kind: "Person",
            username: "carol",
            display_name: "Carol",
            inbox: "https://akkoma.example/users/carol/inbox",
            shared_inbox: Some("https://akkoma.example/inbox"),
            key_id: "https://akkoma.example/users/carol#main-key",
            avatar: Some("https://akkoma.example/media/avatar.png"),
            locked: false,
        },
    );
    let create = fixture("akkoma", "create_note");
    let note_id = "https://akkoma.example/objects/6e8b0a2e-0000-4000-8000-000000000001";
    check_activity(&create, "Create", CAROL, note_id);
    // `sensitive: null`, an empty `summary`, no `contentMap`, media as a list of Links.
    check_note(
        &create["object"],
        "https://akkoma.example/users/carol/followers",
        &ExpectedNote {
            author: CAROL,
            contains: "a clip",
            spoiler: "",
            sensitive: false,
            language: None,
            visibility: "public",
            mentions: &[ALICE],
            hashtags: &["fediverse"],
            media: &[(
                "video",
                "https://akkoma.example/media/clip.mp4",
                Some("video/mp4"),
                "",
            )],
            in_reply_to: Some(ALICE_NOTE),
        },
    );
    // Emoji reactions are read as what they are (the ingress does not store them).
    let react = fixture("akkoma", "emoji_react");
    check_activity(&react, "EmojiReact", CAROL, ALICE_NOTE);
    assert_eq!(react["content"], "🔥");
    check_activity(&fixture("akkoma", "like"), "Like", CAROL, ALICE_NOTE);
    check_activity(
        &fixture("akkoma", "announce"),
        "Announce",
        CAROL,
        ALICE_NOTE,
    );
    check_activity(&fixture("akkoma", "follow"), "Follow", CAROL, ALICE);
    check_activity(
        &fixture("akkoma", "undo_follow"),
        "Undo",
        CAROL,
        "https://akkoma.example/activities/6e8b0a2e-0000-4000-8000-000000000006",
    );
    check_activity(&fixture("akkoma", "delete"), "Delete", CAROL, note_id);
}

#[test]
fn misskey_documents_parse() {
    check_actor(
        &fixture("misskey", "actor"),
        &ExpectedActor {
            uri: DAVE,
            kind: "Person",
            username: "dave",
            display_name: "",
            inbox: "https://misskey.example/users/9tj3g0a4o2/inbox",
            shared_inbox: Some("https://misskey.example/inbox"),
            key_id: "https://misskey.example/users/9tj3g0a4o2#main-key",
            avatar: None,
            locked: false,
        },
    );
    let create = fixture("misskey", "create_note");
    let note_id = "https://misskey.example/notes/9tj3k1b2c3";
    check_activity(&create, "Create", DAVE, note_id);
    let object = &create["object"];
    check_note(
        object,
        "https://misskey.example/users/9tj3g0a4o2/followers",
        &ExpectedNote {
            author: DAVE,
            contains: "<i>nyaa</i>",
            spoiler: "",
            sensitive: true,
            language: None,
            visibility: "private",
            mentions: &[ALICE],
            hashtags: &["misskey"],
            media: &[(
                "image",
                "https://misskey.example/files/webpublic-0000",
                Some("image/webp"),
                "",
            )],
            in_reply_to: None,
        },
    );
    // The rendered HTML is what is kept, not the MFM source.
    assert!(!Content::of(object).html.contains("$[x2"));
    assert_eq!(note::quote(object), Some(ALICE_NOTE));
    // A reaction arrives as a Like carrying the emoji: a favourite here.
    let like = fixture("misskey", "like_reaction");
    check_activity(&like, "Like", DAVE, ALICE_NOTE);
    assert_eq!(like["_misskey_reaction"], ":blobcat@.:");
    check_activity(
        &fixture("misskey", "announce"),
        "Announce",
        DAVE,
        ALICE_NOTE,
    );
    check_activity(&fixture("misskey", "follow"), "Follow", DAVE, ALICE);
    check_activity(
        &fixture("misskey", "undo_follow"),
        "Undo",
        DAVE,
        "https://misskey.example/follows/9tj3g0a4o2/9aaaaaaaaa",
    );
    check_activity(&fixture("misskey", "delete"), "Delete", DAVE, note_id);
}

#[test]
fn other_shapes_parse() {
    let erin = "https://other.example/users/erin";
    // `publicKey` as a list, `inbox` as an object, `url` as a Link, `icon` as a list.
    let doc = fixture("other", "actor_key_list_url_link");
    check_actor(
        &doc,
        &ExpectedActor {
            uri: erin,
            kind: "Person",
            username: "erin",
            display_name: "",
            inbox: "https://other.example/users/erin/inbox",
            shared_inbox: None,
            key_id: "https://other.example/users/erin#main-key",
            avatar: Some("https://other.example/a.png"),
            locked: false,
        },
    );
    let actor = parse::actor(&doc, erin).unwrap();
    assert_eq!(actor.url.as_deref(), Some("https://other.example/@erin"));
    // PeerTube-style: the author among a channel (Group), content only in `contentMap`.
    check_note(
        &fixture("other", "note_content_map_only"),
        "https://other.example/users/erin/followers",
        &ExpectedNote {
            author: erin,
            contains: "Hallo <b>Welt</b>",
            spoiler: "",
            sensitive: false,
            language: Some("de"),
            visibility: "public",
            mentions: &[],
            hashtags: &[],
            media: &[("video", "https://other.example/v.mp4", None, "")],
            in_reply_to: None,
        },
    );
}

#[test]
fn every_fixture_is_checked() {
    // A fixture added without a check would prove nothing: list them all here.
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/federation"]
        .iter()
        .collect();
    let mut count = 0;
    for server in std::fs::read_dir(&dir).unwrap() {
        for file in std::fs::read_dir(server.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert!(doc.get("@context").is_some(), "{path:?} has a @context");
            count += 1;
        }
    }
    assert_eq!(count, 37, "update the checks above when adding fixtures");
}
