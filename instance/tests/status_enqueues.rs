//! What posting a status queues, against real PostgreSQL and Redis: a job only when it has
//! something to do. A plain local post queues its fan-out alone; a link brings the preview
//! job (`pull`), a remote recipient the delivery job (`push`): a follower for a public
//! post, a mention for a direct one, never followers for a direct one.

mod common;

use common::*;

struct Queues {
    domain: String,
    redis: redis::aio::MultiplexedConnection,
}

impl Queues {
    async fn new(domain: &str) -> Self {
        let client = redis::Client::open(service_env("FEDI_TEST_REDIS_URL")).unwrap();
        Self {
            domain: domain.to_owned(),
            redis: client.get_multiplexed_async_connection().await.unwrap(),
        }
    }

    /// Jobs waiting in each of the default, pull and push queues (no worker runs here).
    async fn depths(&mut self) -> [i64; 3] {
        let mut out = [0; 3];
        for (i, queue) in ["default", "pull", "push"].iter().enumerate() {
            let key = format!("{{fedi:jobs:{}:{queue}}}:stream", self.domain);
            out[i] = redis::cmd("XLEN")
                .arg(key)
                .query_async(&mut self.redis)
                .await
                .unwrap();
        }
        out
    }

    async fn drop_all(&mut self) {
        for queue in ["default", "pull", "push"] {
            let key = format!("{{fedi:jobs:{}:{queue}}}:stream", self.domain);
            let _: i64 = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut self.redis)
                .await
                .unwrap();
        }
    }
}

async fn post(api: &TestApi, token: &str, form: &[(&str, &str)]) {
    let reply = api
        .call("POST", "/api/v1/statuses", Some(token), Body::Form(form))
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

#[tokio::test]
async fn posting_queues_only_the_jobs_that_have_work() {
    let domain = unique_domain();
    let api = TestApi::start_with(&[("FEDI_DOMAIN", &domain)]).await;
    let mut queues = Queues::new(&domain).await;
    queues.drop_all().await;
    let (_, user) = create_user(&api.db, "poster", "a long password 123").await;
    let token = issue_token(&api.db, Some(user), "read write").await;

    post(&api, &token, &[("status", "just words, no link")]).await;
    assert_eq!(queues.depths().await, [1, 0, 0], "the fan-out alone");

    post(&api, &token, &[("status", "read https://example.com/page")]).await;
    assert_eq!(queues.depths().await, [2, 1, 0], "a link: its preview");

    let mut conn = api.conn().await;
    let (remote,): (i64,) = sqlx::query_as(
        "INSERT INTO accounts (username, domain, uri, inbox_url) \
         VALUES ('far', 'remote.example', 'https://remote.example/users/far', \
                 'https://remote.example/users/far/inbox') RETURNING id",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    // A remote account known but not addressed receives nothing.
    post(&api, &token, &[("status", "still nobody far away")]).await;
    assert_eq!(queues.depths().await, [3, 1, 0]);

    sqlx::query(
        "INSERT INTO follows (account_id, target_account_id) \
         SELECT $1, account_id FROM users WHERE id = $2",
    )
    .bind(remote)
    .bind(user)
    .execute(&mut conn)
    .await
    .unwrap();
    post(&api, &token, &[("status", "hello followers")]).await;
    assert_eq!(
        queues.depths().await,
        [4, 1, 1],
        "a remote follower: delivery"
    );

    // A direct post goes to its mentions only, not to followers.
    post(
        &api,
        &token,
        &[("status", "only for me"), ("visibility", "direct")],
    )
    .await;
    assert_eq!(queues.depths().await, [5, 1, 1]);
    post(
        &api,
        &token,
        &[
            ("status", "@far@remote.example psst"),
            ("visibility", "direct"),
        ],
    )
    .await;
    assert_eq!(
        queues.depths().await,
        [6, 1, 2],
        "a remote mention: delivery"
    );
    queues.drop_all().await;
}
