//! Objects named by activities: trusted as embedded only when they come from the actor's
//! own server, fetched from their origin otherwise (an Announce may embed anyone's Note
//! with any content; only the Note's server can vouch for it).

use serde_json::Value;

use super::context::{Ctx, Refused};
use crate::federation::fetch::FetchError;
use crate::federation::remote::{parse, same_origin};
use crate::federation::{fetcher, instance_signer};

/// The document of `value` (an id, or an embedded object) that may be trusted.
pub async fn document(ctx: &Ctx<'_>, value: &Value) -> Result<Value, Refused> {
    let id = parse::id_of(value).ok_or(Refused::Rule("object without an id".into()))?;
    if value.is_object() && same_origin(id, ctx.actor_uri) {
        return Ok(value.clone());
    }
    fetch(ctx, id).await
}

/// Fetches `id` from its origin through the guarded fetcher (id == final URL checked).
pub async fn fetch(ctx: &Ctx<'_>, id: &str) -> Result<Value, Refused> {
    let fetcher = fetcher(ctx.state).map_err(Refused::Retry)?;
    let signer = instance_signer(ctx.state).await.map_err(Refused::Retry)?;
    fetcher.get_object(id, &signer).await.map_err(|e| match e {
        FetchError::Timeout | FetchError::Network(_) | FetchError::Status(429 | 500..=599) => {
            Refused::Retry(anyhow::anyhow!("cannot fetch {id}: {e}"))
        }
        e => Refused::Rule(format!("cannot fetch {id}: {e}")),
    })
}
