//! Folds the pending changes of authors' status counts into `accounts.statuses_count`.
//!
//! A trigger on `statuses` appends each statement's change per author to
//! `account_statuses_count_changes` rather than updating the author's row, so that an
//! author's concurrent posts never wait on each other (migration `statuses_count`). Reads
//! add the pending changes to the column, so the count is exact at any time; folding only
//! keeps the pending rows few, which keeps those reads cheap.

use std::time::Duration;

use tracing::debug;

use crate::jobs::{JobError, Registry};

pub const FOLD: &str = "accounts.fold_statuses_count";
/// An author posting all the time has at most this long of posts pending.
const EVERY: Duration = Duration::from_secs(10);
/// Changes folded per statement: a short transaction even after a bulk import or a long
/// pause of the worker.
const BATCH: i64 = 5_000;

pub fn register(r: &mut Registry) {
    r.register(FOLD, 3, |state, _| async move {
        let folded = fold(state.db.primary()).await.map_err(JobError::retry)?;
        debug!(folded, "status count changes folded");
        Ok(())
    });
    r.periodic(FOLD, EVERY);
}

/// Folds every pending change, a batch per statement; returns how many.
///
/// Each statement deletes a batch of changes and adds them to their authors in one
/// snapshot: a concurrent read sees a change either pending or folded, never both or
/// neither. Changes another fold holds are skipped, so two folds never count one twice.
/// Authors' rows are locked in id order, as the follow counters' trigger locks them, so a
/// fold and a follow never deadlock; and only as an UPDATE of a non-key column locks them,
/// so that a fold does not wait for a transaction inserting a status (its foreign key
/// check holds a KEY SHARE lock on the author). Changes of deleted accounts are dropped.
pub async fn fold(db: &sqlx::PgPool) -> Result<u64, sqlx::Error> {
    let mut folded = 0;
    loop {
        let moved: i64 = sqlx::query_scalar(
            "WITH moved AS ( \
                 DELETE FROM account_statuses_count_changes WHERE id IN ( \
                     SELECT id FROM account_statuses_count_changes \
                     ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
                 RETURNING account_id, delta), \
             sums AS (SELECT account_id, sum(delta)::bigint AS delta FROM moved GROUP BY account_id), \
             locked AS MATERIALIZED ( \
                 SELECT a.id FROM accounts a JOIN sums s ON s.account_id = a.id \
                 ORDER BY a.id FOR NO KEY UPDATE OF a), \
             updated AS ( \
                 UPDATE accounts a SET statuses_count = a.statuses_count + s.delta \
                   FROM sums s JOIN locked l ON l.id = s.account_id \
                  WHERE a.id = s.account_id) \
             SELECT count(*) FROM moved",
        )
        .bind(BATCH)
        .fetch_one(db)
        .await?;
        folded += moved as u64;
        if moved < BATCH {
            return Ok(folded);
        }
    }
}
