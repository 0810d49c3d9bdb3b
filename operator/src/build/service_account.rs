use k8s_openapi::api::core::v1::ServiceAccount;

use super::Ctx;

/// The identity of the server's pods. It has no RBAC: the server never talks to the
/// Kubernetes API, so its token is not even mounted.
pub(crate) fn build(ctx: &Ctx) -> ServiceAccount {
    ServiceAccount {
        metadata: ctx.metadata(ctx.name.clone(), None),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}
