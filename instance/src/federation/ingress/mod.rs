//! The `federation.ingress` job: an activity the inbox verified (its signer is its actor)
//! applied to the database, one module per family of activities. Rules every handler
//! follows (SECURITY.md): objects created, updated or deleted must live on the actor's
//! server; an object embedded by a third party is fetched again from its origin; a
//! redelivered activity changes nothing.

mod account;
mod context;
mod follow;
mod handoff;
mod objects;
mod status;

use serde::Deserialize;
use serde_json::Value;
use tracing::{debug, info};

pub use context::{Ctx, Refused};
pub use handoff::hand_off;

use super::remote::{parse, same_origin};
use crate::jobs::{self, JobError, Registry};
use crate::state::AppState;

/// The job kind the ingress worker registers.
pub const JOB_KIND: &str = "federation.ingress";

/// About an hour of back-off: a peer that is down when we fetch from it is retried, an
/// activity that still fails is dropped (its sender will not be less broken tomorrow).
const MAX_RETRIES: u32 = 6;

/// The job's arguments (`inbox_account_id` too, unused: who receives what follows from the
/// activity's addressing and the database, not from the inbox it came through).
#[derive(Debug, Deserialize)]
struct Job {
    activity: Value,
    signer: String,
}

/// Forgets processed activity ids after a week (peers stop retrying after two or three
/// days), hourly.
const CLEAN_KIND: &str = "federation.ingress.clean";
const CLEAN_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

pub fn register(r: &mut Registry) {
    r.register(JOB_KIND, MAX_RETRIES, |state, args| async move {
        let job: Job = jobs::args(args)?;
        // A peer chaining replies (or actors) without end gets a bounded number of fetches.
        crate::federation::fetch::budget::limited(process(&state, &job)).await
    });
    r.register(CLEAN_KIND, 3, |state, _| async move {
        sqlx::query(
            "DELETE FROM processed_activities WHERE processed_at < now() - interval '7 days'",
        )
        .execute(state.db.primary())
        .await
        .map(drop)
        .map_err(JobError::retry)
    });
    r.periodic(CLEAN_KIND, CLEAN_EVERY);
}

async fn process(state: &AppState, job: &Job) -> Result<(), JobError> {
    let activity = &job.activity;
    let kind = parse::type_of(activity).unwrap_or_default().to_string();
    let id = activity
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string);
    match run(state, job, &kind, id.as_deref()).await {
        Ok(()) => Ok(()),
        Err(Refused::Ignored(why)) => {
            debug!(kind, id, why, "activity ignored");
            Ok(())
        }
        Err(Refused::Rule(why)) => {
            // Permanent: the same activity will break the same rule on every try.
            info!(kind, id, why, "activity refused");
            Err(JobError::permanent(anyhow::anyhow!(
                "{kind} refused: {why}"
            )))
        }
        Err(Refused::Retry(e)) => Err(JobError::retry(e)),
    }
}

async fn run(state: &AppState, job: &Job, kind: &str, id: Option<&str>) -> Result<(), Refused> {
    let activity = &job.activity;
    let actor_uri = activity
        .get("actor")
        .and_then(parse::id_of)
        .ok_or(Refused::Rule("no actor".into()))?;
    if actor_uri != job.signer {
        return Err(Refused::Rule(format!(
            "signed by {}, not by the actor {actor_uri}",
            job.signer
        )));
    }
    if let Some(id) = id
        && !same_origin(id, actor_uri)
    {
        return Err(Refused::Rule(format!(
            "activity {id} is not on the actor's server"
        )));
    }
    if !context::handled(kind) {
        return Err(Refused::Ignored(format!(
            "{kind} activities are not handled"
        )));
    }
    // Claimed before it is applied, released if it fails: two deliveries of the same
    // activity (to a personal and to the shared inbox) never both apply it.
    if let Some(id) = id
        && !context::claim(state, id).await?
    {
        return Err(Refused::Ignored("already processed".into()));
    }
    let result = dispatch(state, job, kind, actor_uri).await;
    if result.is_err()
        && let Some(id) = id
    {
        context::release(state, id).await;
    }
    result
}

async fn dispatch(state: &AppState, job: &Job, kind: &str, actor_uri: &str) -> Result<(), Refused> {
    let activity = &job.activity;
    // A Delete of an actor we never stored is common (Mastodon sends them to every
    // server it knows) and must not fetch the gone actor.
    if kind == "Delete"
        && parse::id_of(activity.get("object").unwrap_or(&Value::Null)) == Some(actor_uri)
    {
        return account::delete_actor(state, actor_uri).await;
    }
    let ctx = Ctx::new(state, activity, actor_uri).await?;
    match kind {
        "Follow" => follow::follow(&ctx).await,
        "Accept" => follow::accept(&ctx, true).await,
        "Reject" => follow::accept(&ctx, false).await,
        "Block" => follow::block(&ctx).await,
        "Undo" => follow::undo(&ctx).await,
        "Create" => status::create(&ctx).await,
        "Update" => status::update(&ctx).await,
        "Delete" => status::delete(&ctx).await,
        "Announce" => status::announce(&ctx).await,
        "Like" => status::like(&ctx).await,
        "Flag" => account::flag(&ctx).await,
        "Move" => account::moved(&ctx).await,
        _ => Err(Refused::Ignored(format!(
            "{kind} activities are not handled"
        ))),
    }
}
