//! An instance routed through the Gateway API: reported while the Gateway API is missing,
//! served once it is installed (noticed without restarting the operator), and its route kept
//! as the instance says. One test, because it installs cluster-wide CRDs.

use std::time::Duration;

use fedi_e2e::*;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn an_httproute_waits_for_the_gateway_api_then_follows_the_instance() {
    let client = client().await;
    let had_gateway_api = ThirdPartyCrds::present(&client, "gateway-api").await;
    let (ns, api) = create_instance(&client, "route", |f| {
        let route = json!({"kind": "HTTPRoute", "parentRefs": [{"name": "gw"}]});
        f.spec.ingress = serde_json::from_value(route).unwrap();
    })
    .await;

    // Without the Gateway API: a condition that says what to do, and no crash.
    let _crds = if had_gateway_api {
        eprintln!("the Gateway API is installed on this cluster: its absence is not tested");
        None
    } else {
        let missing = degraded("GatewayAPINotInstalled");
        let f = await_instance(&api, "minimal", TIMEOUT, "GatewayAPINotInstalled", missing)
            .await
            .unwrap();
        let message = &f.condition("Degraded").unwrap().message;
        assert!(message.contains("use kind: Ingress"), "{message}");
        Some(ThirdPartyCrds::install(&client, "gateway-api").await)
    };

    // Installed: noticed by discovery, no restart, no change to the instance.
    let f = await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "Ready with an HTTPRoute",
        ready_at(1),
    )
    .await
    .unwrap();
    let routes: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &fedi_operator::build::http_route_resource(),
    );
    let route = routes.get("minimal").await.unwrap();
    let owner = &route.owner_references()[0];
    assert_eq!(owner.uid, f.uid().unwrap());
    assert_eq!(route.data["spec"]["parentRefs"][0]["name"], "gw");
    assert_eq!(route.data["spec"]["hostnames"][0], f.spec.domain);
    let backend_of = |path: &str| {
        route.data["spec"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["matches"][0]["path"]["value"] == path)
            .map(|r| r["backendRefs"][0]["name"].as_str().unwrap().to_string())
    };
    assert_eq!(
        backend_of("/api/v1/streaming").as_deref(),
        Some("minimal-streamer")
    );
    assert_eq!(backend_of("/").as_deref(), Some("minimal-api"));

    // Watched once the Gateway API exists: a deleted route is back within seconds.
    routes
        .delete("minimal", &DeleteParams::default())
        .await
        .unwrap();
    await_until(
        Duration::from_secs(5),
        "the HTTPRoute to be restored",
        || async {
            routes
                .get_opt("minimal")
                .await
                .unwrap()
                .filter(|r| r.uid() != route.uid())
        },
    )
    .await
    .unwrap();

    // Switching to an Ingress replaces the route.
    merge_patch(
        &api,
        "minimal",
        json!({"spec": {"ingress": {"kind": "Ingress", "parentRefs": []}}}),
    )
    .await;
    await_instance(
        &api,
        "minimal",
        TIMEOUT,
        "Ready with an Ingress",
        ready_at(2),
    )
    .await
    .unwrap();
    assert!(
        routes.get_opt("minimal").await.unwrap().is_none(),
        "the route is pruned"
    );
    assert!(
        ns.api::<Ingress>()
            .get_opt("minimal")
            .await
            .unwrap()
            .is_some()
    );
}
