//! The public and hashtag timelines' visibility rules written out in their query (not the
//! shared `status_visible!`, for the planner's sake): an author who blocks the viewer or is
//! suspended is not shown, the author always sees their own statuses, and `all[]` needs
//! every name, repeated names included.

mod common;

use common::*;

#[tokio::test]
async fn public_timelines_hide_authors_who_block_the_viewer_or_are_suspended() {
    let api = TestApi::start().await;
    let (alice_id, alice) = api.token_user("alice").await;
    let (bob_id, bob) = api.token_user("bob").await;
    let (_, carol) = api.token_user("carol").await;
    let by_alice = api.post_public(&alice, "hello #cats #dogs").await;
    let by_bob = api.post_public(&bob, "hi #cats").await;

    let public = "/api/v1/timelines/public";
    assert_eq!(
        api.listed_ids(public, Some(&carol)).await,
        [by_bob.as_str(), by_alice.as_str()]
    );

    // Alice blocks Bob: Bob no longer sees her, others still do; she sees herself (and not
    // Bob, whom she blocks).
    api.call(
        "POST",
        &format!("/api/v1/accounts/{bob_id}/block"),
        Some(&alice),
        Body::None,
    )
    .await
    .expect(200);
    assert_eq!(api.listed_ids(public, Some(&bob)).await, [by_bob.as_str()]);
    assert_eq!(
        api.listed_ids("/api/v1/timelines/tag/cats", Some(&bob))
            .await,
        [by_bob.as_str()]
    );
    assert_eq!(
        api.listed_ids(public, None).await,
        [by_bob.as_str(), by_alice.as_str()]
    );
    assert_eq!(
        api.listed_ids(public, Some(&alice)).await,
        [by_alice.as_str()]
    );

    // Every name of all[] is needed, a repeated one counting once.
    assert_eq!(
        api.listed_ids("/api/v1/timelines/tag/cats?all[]=dogs&all[]=DOGS", None)
            .await,
        [by_alice.as_str()]
    );
    assert_eq!(
        api.listed_ids("/api/v1/timelines/tag/cats?all[]=dogs&all[]=birds", None)
            .await,
        Vec::<String>::new()
    );

    // A suspended author is shown to nobody, not even through a hashtag.
    let mut conn = api.conn().await;
    sqlx::query("UPDATE accounts SET suspended_at = now() WHERE id = $1")
        .bind(alice_id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(api.listed_ids(public, None).await, [by_bob.as_str()]);
    assert_eq!(
        api.listed_ids(public, Some(&carol)).await,
        [by_bob.as_str()]
    );
    assert_eq!(
        api.listed_ids("/api/v1/timelines/tag/dogs", None).await,
        Vec::<String>::new()
    );
}
