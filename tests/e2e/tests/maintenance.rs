//! Retention from `spec.maintenance`: validated by the API server (ranges, and no retention
//! longer than the external bucket's own expiry of the cache), handed to the server as its
//! variables, and the bucket's expiry of the cache prefix follows `remoteMediaCacheDays`.

use std::time::Duration;

use fedi_e2e::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

/// The expiry in days of the bucket's rule on the cache prefix.
async fn cache_expiry_days(ns: &TestNamespace) -> Option<i32> {
    let target = fedi_operator::object_storage::Target {
        endpoint: service_env("FEDI_TEST_S3_ENDPOINT"),
        region: service_env("FEDI_TEST_S3_REGION"),
        bucket: ns.name.clone(),
        path_style: true,
        access_key_id: service_env("FEDI_TEST_S3_ACCESS_KEY"),
        secret_access_key: service_env("FEDI_TEST_S3_SECRET_KEY"),
    };
    let s3 = fedi_operator::object_storage::client(&target).unwrap();
    let rules = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&target.bucket)
        .send()
        .await
        .ok()?
        .rules
        .unwrap_or_default();
    rules.iter().find_map(|r| {
        let prefix = r.filter.as_ref()?.prefix.as_deref()?;
        (prefix == "media/cache/")
            .then(|| r.expiration.as_ref()?.days)
            .flatten()
    })
}

async fn config(ns: &TestNamespace) -> std::collections::BTreeMap<String, String> {
    ns.api::<ConfigMap>()
        .get("minimal-config")
        .await
        .unwrap()
        .data
        .unwrap_or_default()
}

#[tokio::test]
async fn retention_reaches_the_server_and_the_bucket_follows_the_cache_expiry() {
    let client = client().await;
    let (ns, api) = create_instance(&client, "maint", |f| {
        f.spec.maintenance = serde_json::from_value(json!({"orphanedMediaRetentionHours": 6,
            "mediaCacheRetentionDays": 3}))
        .unwrap();
        f.spec
            .object_storage
            .external
            .as_mut()
            .unwrap()
            .remote_media_cache_days = 20;
    })
    .await;
    await_instance(&api, "minimal", TIMEOUT, "Ready", ready_at(1))
        .await
        .unwrap();
    let data = config(&ns).await;
    let var = |k: &str| data.get(k).cloned().unwrap_or_default();
    assert_eq!(var("FEDI_ORPHANED_MEDIA_RETENTION_HOURS"), "6");
    assert_eq!(var("FEDI_MEDIA_CACHE_RETENTION_DAYS"), "3");
    // Unset fields take Mastodon's defaults.
    assert_eq!(var("FEDI_PREVIEW_CARD_RETENTION_DAYS"), "14");
    assert_eq!(cache_expiry_days(&ns).await, Some(20));

    merge_patch(
        &api,
        "minimal",
        json!({"spec": {"maintenance": {"previewCardRetentionDays": 25},
            "objectStorage": {"external": {"remoteMediaCacheDays": 25}}}}),
    )
    .await;
    await_until(TIMEOUT, "the new retention and expiry", || async {
        let data = config(&ns).await;
        (data
            .get("FEDI_PREVIEW_CARD_RETENTION_DAYS")
            .map(String::as_str)
            == Some("25")
            && cache_expiry_days(&ns).await == Some(25))
        .then_some(())
    })
    .await
    .unwrap();

    // Refused by the API server: a retention beyond the bucket's expiry, and out of range.
    let refused = |patch: serde_json::Value| {
        let api = api.clone();
        async move {
            let e = api
                .patch(
                    "minimal",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
                .expect_err("refused");
            e.to_string()
        }
    };
    let too_long = refused(json!({"spec": {"maintenance": {"mediaCacheRetentionDays": 26}}})).await;
    assert!(
        too_long.contains("must not exceed objectStorage.external.remoteMediaCacheDays"),
        "{too_long}"
    );
    let zero = refused(json!({"spec": {"maintenance": {"orphanedMediaRetentionHours": 0}}})).await;
    assert!(zero.contains("orphanedMediaRetentionHours"), "{zero}");
    // A new instance is checked the same way.
    let mut bad = instance("bad", json!({"domain": "bad.example"}));
    use_test_services_without_secrets(&ns, &mut bad);
    bad.spec.maintenance.preview_card_retention_days = 40;
    let e = api
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("previewCardRetentionDays"), "{e}");
}
