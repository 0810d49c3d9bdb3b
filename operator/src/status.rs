//! Computes the status the operator reports. Pure: the controller posts the result only
//! when it differs from what is stored, so a no-op reconcile writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{FediInstance, FediInstanceStatus};

pub const READY: &str = "Ready";

/// The reason reported until the reconcile pipeline creates workloads. Saying so is the
/// honest answer: the instance is accepted and validated, and nothing runs yet.
pub const REASON_NOT_IMPLEMENTED: &str = "WorkloadsNotImplemented";

/// The status this operator build reports for `fedi`, keeping transition times of
/// conditions whose status did not change.
pub fn desired(fedi: &FediInstance, now: Timestamp) -> FediInstanceStatus {
    let generation = fedi.metadata.generation;
    let ready = condition(
        fedi,
        READY,
        false,
        REASON_NOT_IMPLEMENTED,
        "The FediInstance is valid and observed, but this operator version does not create \
         its workloads yet.",
        generation,
        now,
    );
    FediInstanceStatus {
        observed_generation: generation,
        conditions: vec![ready],
        components: Vec::new(),
        version: None,
        url: Some(format!("https://{}", fedi.spec.domain)),
    }
}

/// A condition whose `lastTransitionTime` moves only when its status changes, as the
/// Kubernetes API conventions ask.
fn condition(
    fedi: &FediInstance,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = fedi
        .condition(type_)
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::FediInstanceSpec;

    fn instance(generation: i64) -> FediInstance {
        let spec: FediInstanceSpec =
            serde_json::from_value(serde_json::json!({"domain": "social.example.com"})).unwrap();
        let mut f = FediInstance::new("social", spec);
        f.metadata.generation = Some(generation);
        f
    }

    #[test]
    fn reports_the_generation_it_observed_and_why_it_is_not_ready() {
        let s = desired(&instance(3), Timestamp::UNIX_EPOCH);
        assert_eq!(s.observed_generation, Some(3));
        let ready = &s.conditions[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            (READY, "False")
        );
        assert_eq!(ready.reason, REASON_NOT_IMPLEMENTED);
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(s.url.as_deref(), Some("https://social.example.com"));
    }

    #[test]
    fn an_unchanged_status_is_identical_so_nothing_is_written() {
        let mut f = instance(1);
        let first = desired(&f, Timestamp::UNIX_EPOCH);
        f.status = Some(first.clone());
        let later = Timestamp::from_second(1_000_000).unwrap();
        assert_eq!(desired(&f, later), first);
    }

    #[test]
    fn a_new_generation_is_reported_without_moving_the_transition_time() {
        let mut f = instance(1);
        f.status = Some(desired(&f, Timestamp::UNIX_EPOCH));
        f.metadata.generation = Some(2);
        let later = Timestamp::from_second(1_000_000).unwrap();
        let s = desired(&f, later);
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(
            s.conditions[0].last_transition_time,
            Time(Timestamp::UNIX_EPOCH)
        );
    }
}
