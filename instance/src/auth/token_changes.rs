//! Hears PostgreSQL's announcements of token changes (migration `token_change_notifications`)
//! and applies them to the process's `TokenCache`; proves, by a heartbeat, that it hears.
//!
//! The listener holds a connection of its own to the primary, never through a transaction
//! pooler (`FEDI_DATABASE_MIGRATION_URL` when set: PgBouncer in transaction mode hands a
//! LISTEN's server connection to other clients). The heartbeat is a NOTIFY on a channel of
//! this process's own, sent through the ordinary pool, as the revoking requests are: its
//! arrival shows that every change committed before it was sent has been applied, since
//! notifications reach a listener in commit order. While heartbeats stop arriving the
//! cache serves nothing (`token_cache::TRUST_FOR`); after `RECONNECT_AFTER` the listener is
//! replaced.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::task::AbortHandle;
use tokio::time::{MissedTickBehavior, timeout};
use tracing::{debug, info, warn};

use super::token_cache::{Change, TokenCache};
use crate::state::AppState;

/// The channel the migration's triggers announce on.
pub const CHANNEL: &str = "fedi_tokens";
/// The triggers the cache relies on; without all three it is never used.
const TRIGGERS: [&str; 3] = [
    "tokens_changed",
    "token_users_changed",
    "token_accounts_changed",
];
pub const APPLICATION_NAME: &str = "fedi-token-listener";
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// The triggers are checked again this often (in heartbeats): one dropped or disabled by
/// hand while the process runs turns the cache off within a minute.
const TRIGGERS_CHECKED_EVERY: u64 = 60;
/// No heartbeat heard for this long: the listener's connection is presumed dead even if
/// its socket says nothing (a silent network partition).
const RECONNECT_AFTER: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts listening for `state`'s token cache, unless the cache is off. The task ends with
/// the runtime.
pub fn spawn(state: &AppState) -> anyhow::Result<()> {
    if !state.tokens.enabled() {
        return Ok(());
    }
    // Named, so that an administrator finds it in pg_stat_activity.
    let options =
        crate::db::migration_options(&state.config.database)?.application_name(APPLICATION_NAME);
    tokio::spawn(follow(
        state.tokens.clone(),
        options,
        state.db.primary().clone(),
    ));
    Ok(())
}

/// Heartbeats sent and not heard yet, and when one was last heard.
struct Heartbeats {
    sent: VecDeque<(u64, Instant)>,
    last_heard: Instant,
}

async fn follow(cache: Arc<TokenCache>, options: PgConnectOptions, pool: PgPool) {
    let channel = heartbeat_channel();
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let why = session(&cache, &options, &pool, &channel).await;
        cache.distrust();
        // A session that ran a while was healthy: its end is news, and retrying starts over.
        if started.elapsed() > RECONNECT_AFTER {
            backoff = Duration::from_secs(1);
        }
        warn!(
            error = %format!("{why:#}"),
            retry_in_s = backoff.as_secs(),
            "token cache off: not hearing the database's token changes"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One listening connection, from connecting until it fails: the reason it ended.
async fn session(
    cache: &Arc<TokenCache>,
    options: &PgConnectOptions,
    pool: &PgPool,
    channel: &str,
) -> anyhow::Error {
    let listener = match timeout(CONNECT_TIMEOUT, listen(options, channel)).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return e,
        Err(_) => return anyhow::anyhow!("connecting took over {CONNECT_TIMEOUT:?}"),
    };
    if let Err(e) = triggers_in_place(pool).await {
        return e;
    }

    let beats = Arc::new(Mutex::new(Heartbeats {
        sent: VecDeque::new(),
        last_heard: Instant::now(),
    }));
    // The reader never shares a select with a timer: a notification half read when a
    // future is dropped would be lost. It is aborted whole, with its connection.
    let reader = tokio::spawn(read(
        listener,
        cache.clone(),
        channel.to_owned(),
        beats.clone(),
    ));
    let _stop_reader = AbortOnDrop(reader.abort_handle());
    let mut announced = false;
    let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        ticks.tick().await;
        seq += 1;
        if reader.is_finished() {
            return match reader.await {
                Ok(e) => e,
                Err(e) => anyhow::anyhow!("the listener task ended: {e}"),
            };
        }
        let last_heard = lock(&beats).last_heard;
        if last_heard.elapsed() > RECONNECT_AFTER {
            return anyhow::anyhow!(
                "no heartbeat heard for {} s",
                last_heard.elapsed().as_secs()
            );
        }
        if seq.is_multiple_of(TRIGGERS_CHECKED_EVERY)
            && let Err(e) = triggers_in_place(pool).await
        {
            return e;
        }
        if !announced && cache.trusted() {
            announced = true;
            info!("token cache on: the database's token changes are heard");
        }
        {
            let mut beats = lock(&beats);
            beats.sent.push_back((seq, Instant::now()));
            // One unanswered for RECONNECT_AFTER ends the session anyway.
            while beats.sent.len() > 64 {
                beats.sent.pop_front();
            }
        }
        let notify = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(seq.to_string())
            .execute(pool);
        match timeout(HEARTBEAT_EVERY, notify).await {
            Ok(Ok(_)) => {}
            // Not fatal: the cache stops being served by itself once beats stop arriving.
            Ok(Err(e)) => debug!(error = %e, "token cache heartbeat not sent"),
            Err(_) => debug!("token cache heartbeat took over a second to send"),
        }
    }
}

async fn listen(options: &PgConnectOptions, channel: &str) -> anyhow::Result<PgListener> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost connection ends the session (changes were missed): never reconnect quietly.
    listener.eager_reconnect(false);
    listener.listen_all([CHANNEL, channel]).await?;
    Ok(listener)
}

/// Fails unless every trigger the cache relies on exists and is enabled.
async fn triggers_in_place(pool: &PgPool) -> Result<(), anyhow::Error> {
    let present = sqlx::query_scalar::<_, String>(
        "SELECT tgname::text FROM pg_trigger WHERE tgname = ANY($1) AND tgenabled <> 'D'",
    )
    .bind(TRIGGERS)
    .fetch_all(pool);
    let present = match timeout(CONNECT_TIMEOUT, present).await {
        Ok(found) => found?,
        Err(_) => anyhow::bail!("checking the triggers took over {CONNECT_TIMEOUT:?}"),
    };
    let missing: Vec<&str> = TRIGGERS
        .into_iter()
        .filter(|t| !present.iter().any(|p| p == t))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "triggers {missing:?} are missing or disabled (is the schema migrated?)"
    );
    Ok(())
}

/// Applies notifications until the connection fails; returns why it did.
async fn read(
    mut listener: PgListener,
    cache: Arc<TokenCache>,
    channel: String,
    beats: Arc<Mutex<Heartbeats>>,
) -> anyhow::Error {
    loop {
        let notification = match listener.try_recv().await {
            Ok(Some(n)) => n,
            Ok(None) => return anyhow::anyhow!("the listening connection was lost"),
            Err(e) => return e.into(),
        };
        if notification.channel() == channel {
            let Ok(seq) = notification.payload().parse::<u64>() else {
                continue;
            };
            let sent_at = {
                let mut beats = lock(&beats);
                beats.last_heard = Instant::now();
                let sent_at = beats.sent.iter().find(|(s, _)| *s == seq).map(|(_, t)| *t);
                beats.sent.retain(|(s, _)| *s > seq);
                sent_at
            };
            if let Some(sent_at) = sent_at {
                cache.confirmed(sent_at);
            }
        } else {
            cache.invalidate(Change::parse(notification.payload()));
        }
    }
}

/// This process's own heartbeat channel: other processes' beats are not heard here.
fn heartbeat_channel() -> String {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).expect("the OS random generator works");
    format!("{CHANNEL}_beat_{:016x}", u64::from_le_bytes(id))
}

fn lock(beats: &Mutex<Heartbeats>) -> std::sync::MutexGuard<'_, Heartbeats> {
    beats.lock().unwrap_or_else(|e| e.into_inner())
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
