//! Seeding in bulk: set-based SQL (no per-row round trips, no password hashing: nobody signs
//! in with a password), tokens written for the load generators, home feeds warmed through
//! the server's own rebuild.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, ensure};
use fedi_config::ServerConfig;
use fedi_server::auth::credentials::{digest, new_secret};
use fedi_server::state::AppState;
use fedi_server::tasks::timeline::{Rebuild, rebuild};
use futures::{StreamExt, TryStreamExt};
use sqlx::{Connection, PgConnection};

use crate::outcome::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, env = "FEDI_DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "FEDI_REDIS_URL")]
    redis_url: String,
    #[arg(long, env = "FEDI_DOMAIN")]
    domain: String,
    #[arg(long, default_value_t = 10_000)]
    accounts: i64,
    #[arg(long, default_value_t = 1_000_000)]
    statuses: i64,
    /// Followers of the fan-out author (account 0).
    #[arg(long, default_value_t = 1_000)]
    followers: i64,
    /// Accounts each account follows besides the author, for home feeds of some depth.
    #[arg(long, default_value_t = 20)]
    follows_each: i64,
    /// Where tokens, the author's id and the outcome go.
    #[arg(long)]
    out: PathBuf,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    ensure!(
        a.accounts > a.followers && a.follows_each < a.accounts,
        "need more accounts than followers and follows per account"
    );
    let started = Instant::now();
    let mut db = PgConnection::connect(&a.database_url).await?;
    let mut steps = Vec::new();
    let mut step = |what: &str, at: &mut Instant| {
        steps.push(format!("{what} {:.1} s", at.elapsed().as_secs_f64()));
        *at = Instant::now();
    };
    let mut at = Instant::now();

    sqlx::query(
        "INSERT INTO accounts (username) SELECT 'bench' || g FROM generate_series(0, $1 - 1) g",
    )
    .bind(a.accounts)
    .execute(&mut db)
    .await
    .context("accounts (seed an empty, migrated database)")?;
    // Account n of the benchmark, whatever id it got: every later step joins on n.
    sqlx::query(
        "CREATE TEMP TABLE bench_ids AS \
         SELECT substr(username, 6)::int AS n, id FROM accounts WHERE username ~ '^bench[0-9]+$'",
    )
    .execute(&mut db)
    .await?;
    sqlx::query("CREATE UNIQUE INDEX ON bench_ids (n)")
        .execute(&mut db)
        .await?;
    sqlx::query(
        "INSERT INTO users (account_id, email, password_hash, confirmed_at) \
         SELECT id, 'bench' || n || '@bench.example', 'unused', now() FROM bench_ids",
    )
    .execute(&mut db)
    .await?;
    step("accounts and users", &mut at);

    // One token per account, in account order.
    let users: Vec<i64> = sqlx::query_scalar(
        "SELECT u.id FROM bench_ids b JOIN users u ON u.account_id = b.id ORDER BY b.n",
    )
    .fetch_all(&mut db)
    .await?;
    let tokens: Vec<String> = users.iter().map(|_| new_secret()).collect();
    let hashes: Vec<String> = tokens.iter().map(|t| digest(t)).collect();
    let app: i64 = sqlx::query_scalar(
        "INSERT INTO oauth_applications (name, redirect_uris, scopes, client_id, client_secret_hash) \
         VALUES ('fedi-bench', ARRAY['urn:ietf:wg:oauth:2.0:oob'], 'read write follow', $1, $2) \
         RETURNING id",
    )
    .bind(new_secret())
    .bind(digest(&new_secret()))
    .fetch_one(&mut db)
    .await?;
    sqlx::query(
        "INSERT INTO oauth_access_tokens (token_hash, application_id, user_id, scopes) \
         SELECT h, $3, u, 'read write follow' FROM unnest($1::text[], $2::bigint[]) AS t(h, u)",
    )
    .bind(&hashes)
    .bind(&users)
    .bind(app)
    .execute(&mut db)
    .await?;
    step("tokens", &mut at);

    // Accounts 1..=followers follow the author (0); every account follows `follows_each`
    // others spread over the range, never the author, so that its follower count is exact.
    sqlx::query(
        "INSERT INTO follows (account_id, target_account_id) \
         SELECT f.id, a.id FROM bench_ids f, bench_ids a WHERE a.n = 0 AND f.n BETWEEN 1 AND $1",
    )
    .bind(a.followers)
    .execute(&mut db)
    .await?;
    sqlx::query(
        "INSERT INTO follows (account_id, target_account_id) \
         SELECT f.id, t.id FROM bench_ids f CROSS JOIN generate_series(1, $1) k \
         JOIN bench_ids t ON t.n = 1 + (f.n + k * 37) % ($2 - 1) \
         WHERE t.id <> f.id ON CONFLICT DO NOTHING",
    )
    .bind(a.follows_each)
    .bind(a.accounts)
    .execute(&mut db)
    .await?;
    step("follows", &mut at);

    sqlx::query(
        "INSERT INTO statuses (account_id, text, content_html, visibility, language) \
         SELECT b.id, 'Benchmark status ' || g, '<p>Benchmark status ' || g || '</p>', 'public', 'en' \
         FROM generate_series(0, $1 - 1) g JOIN bench_ids b ON b.n = g % $2",
    )
    .bind(a.statuses)
    .bind(a.accounts)
    .execute(&mut db)
    .await?;
    step("statuses", &mut at);
    // As the worker of a running instance would have done by the time anyone reads.
    let state = app_state(&a.database_url, &a.redis_url, &a.domain)?;
    fedi_server::tasks::statuses_count::fold(state.db.primary()).await?;
    step("status counts folded", &mut at);
    sqlx::query("ANALYZE").execute(&mut db).await?;
    step("analyze", &mut at);

    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM bench_ids ORDER BY n")
        .fetch_all(&mut db)
        .await?;
    // The readers of the home timeline benchmark are the author's followers: their feeds
    // are warm, as an active user's are.
    futures::stream::iter(ids[1..=a.followers as usize].iter().copied())
        .map(|account_id| {
            let state = state.clone();
            async move { rebuild(&state, &Rebuild { account_id }).await }
        })
        .buffer_unordered(8)
        .try_collect::<()>()
        .await
        .context("warming home feeds")?;
    step("home feeds warmed", &mut at);

    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("tokens.txt"), tokens.join("\n") + "\n")?;
    std::fs::write(
        a.out.join("followers.txt"),
        tokens[1..=a.followers as usize].join("\n") + "\n",
    )?;
    std::fs::write(a.out.join("author.txt"), format!("{}\n", tokens[0]))?;
    std::fs::write(a.out.join("author_id"), ids[0].to_string())?;

    let elapsed = started.elapsed().as_secs_f64();
    Outcome {
        order: 0,
        name: "seed".into(),
        requests: a.statuses as u64,
        duration_s: elapsed,
        per_second: a.statuses as f64 / elapsed,
        unit: "statuses/s".into(),
        latency_ms: None,
        errors: 0,
        roles: Default::default(),
        hotspot: None,
        target: None,
        notes: vec![format!(
            "{} accounts, {} statuses, {} followers of the fan-out author, {} follows each; {}",
            a.accounts,
            a.statuses,
            a.followers,
            a.follows_each,
            steps.join(", ")
        )],
    }
    .write(&a.out.join("outcomes"))
}

/// The server's state on the benchmark's database and Redis, to call its code directly.
pub fn app_state(database: &str, redis: &str, domain: &str) -> anyhow::Result<AppState> {
    let (database, redis, domain) = (database.to_string(), redis.to_string(), domain.to_string());
    let config = ServerConfig::from_lookup(move |name| match name {
        "FEDI_DOMAIN" => Some(domain.clone()),
        "FEDI_DATABASE_URL" => Some(database.clone()),
        "FEDI_REDIS_URL" => Some(redis.clone()),
        _ => None,
    })?;
    AppState::new(&config)
}
