//! Which of a fan-out's stream channels have a client listening: Mastodon's
//! `push_update_required?`. The streamer keeps a `subscribed:<channel>` key alive while a
//! client listens (see `events::channel::subscribed_key`); a status of an author with a
//! thousand followers, of whom a few have a stream open, then costs a few `PUBLISH`es of
//! the rendered status instead of a thousand that Redis would read and drop.

use futures::StreamExt;

use crate::events::channel;
use crate::state::Redis;

/// Keys per `MGET` (standalone) or `EXISTS` in flight (cluster).
const BATCH: usize = 256;

/// `channels` (stream channel names) without those nobody listens to. When Redis cannot
/// tell, the channel stays: an event sent to nobody costs little, a lost one is missed.
pub async fn retain_listened(redis: &Redis, channels: Vec<String>) -> Vec<String> {
    let keys: Vec<String> = channels
        .iter()
        .map(|c| redis.keys().key(&channel::subscribed_key(c)))
        .collect();
    let listened: Vec<bool> = match redis {
        Redis::Standalone { .. } => {
            let mut listened = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(BATCH) {
                let mut cmd = redis::cmd("MGET");
                cmd.arg(chunk);
                match redis.query::<Vec<Option<String>>>(&cmd).await {
                    Ok(values) => listened.extend(values.iter().map(Option::is_some)),
                    Err(_) => listened.extend(std::iter::repeat_n(true, chunk.len())),
                }
            }
            listened
        }
        Redis::Cluster { .. } => {
            futures::stream::iter(keys)
                .map(|k| listened(redis, k))
                .buffered(BATCH)
                .collect()
                .await
        }
    };
    channels
        .into_iter()
        .zip(listened)
        .filter_map(|(c, listened)| listened.then_some(c))
        .collect()
}

async fn listened(redis: &Redis, key: String) -> bool {
    redis.exists(&key).await.unwrap_or(true)
}
