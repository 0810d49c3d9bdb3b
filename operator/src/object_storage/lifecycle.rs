//! The bucket's lifecycle rules: the remote media cache expires, and uploads that were
//! started but never completed do not keep their parts forever.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter,
};

/// Parts of an upload nobody completed within a day will never be completed: the server
/// uploads media in one request or in a multipart upload that lasts seconds.
const ABORT_UPLOADS_AFTER_DAYS: i32 = 1;

pub(crate) fn desired(cache_prefix: &str, cache_days: i32) -> Vec<LifecycleRule> {
    let expire_cache = LifecycleRule::builder()
        .id("expire-remote-media-cache")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(cache_prefix).build())
        .expiration(LifecycleExpiration::builder().days(cache_days).build())
        .build()
        .expect("status is set");
    let abort_uploads = LifecycleRule::builder()
        .id("abort-incomplete-multipart-uploads")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(ABORT_UPLOADS_AFTER_DAYS)
                .build(),
        )
        .build()
        .expect("status is set");
    vec![expire_cache, abort_uploads]
}

/// Whether the rules read from the store mean the same as `desired`, in any order and
/// whatever their IDs (labels only).
pub(crate) fn same(current: &[LifecycleRule], desired: &[LifecycleRule]) -> bool {
    let canonical = |rules: &[LifecycleRule]| {
        let mut all: Vec<_> = rules.iter().map(Canonical::of).collect();
        all.sort();
        all.dedup();
        all
    };
    canonical(current) == canonical(desired)
}

/// What a rule does, in the terms this module writes. A rule with anything else (tags, size
/// bounds, transitions, noncurrent versions, dates) is marked `other`, so it never equals a
/// desired rule and gets replaced.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Canonical {
    enabled: bool,
    prefix: String,
    expiration_days: Option<i32>,
    abort_uploads_days: Option<i32>,
    other: bool,
}

impl Canonical {
    fn of(rule: &LifecycleRule) -> Self {
        let mut other = !rule.transitions().is_empty()
            || !rule.noncurrent_version_transitions().is_empty()
            || rule.noncurrent_version_expiration().is_some();
        // No filter, an empty filter, `<Prefix/>` (the deprecated form) and `<And>` with
        // only a prefix all select by prefix alone; "" is the whole bucket. The deprecated
        // form is still what older tools and stores write.
        #[allow(deprecated)]
        let mut prefix = rule.prefix().unwrap_or_default().to_owned();
        if let Some(filter) = rule.filter() {
            other |= filter.tag().is_some()
                || filter.object_size_greater_than().is_some()
                || filter.object_size_less_than().is_some();
            if let Some(p) = filter.prefix() {
                prefix = p.to_owned();
            }
            if let Some(and) = filter.and() {
                other |= !and.tags().is_empty()
                    || and.object_size_greater_than().is_some()
                    || and.object_size_less_than().is_some();
                if let Some(p) = and.prefix() {
                    prefix = p.to_owned();
                }
            }
        }
        let expiration_days = rule.expiration().and_then(|e| {
            other |= e.date().is_some() || e.expired_object_delete_marker().is_some();
            e.days()
        });
        Canonical {
            enabled: *rule.status() == ExpirationStatus::Enabled,
            prefix,
            expiration_days,
            abort_uploads_days: rule
                .abort_incomplete_multipart_upload()
                .and_then(|a| a.days_after_initiation()),
            other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::{LifecycleRuleAndOperator, Tag};

    fn expire(prefix: &str, days: i32) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
        LifecycleRule::builder()
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .expiration(LifecycleExpiration::builder().days(days).build())
    }

    fn abort(days: i32) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
        LifecycleRule::builder()
            .status(ExpirationStatus::Enabled)
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(days)
                    .build(),
            )
    }

    fn rules(
        builders: Vec<aws_sdk_s3::types::builders::LifecycleRuleBuilder>,
    ) -> Vec<LifecycleRule> {
        builders.into_iter().map(|b| b.build().unwrap()).collect()
    }

    #[test]
    fn desired_expires_the_cache_and_aborts_stale_uploads() {
        let d = desired("cache/", 7);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].filter().and_then(|f| f.prefix()), Some("cache/"));
        assert_eq!(d[0].expiration().and_then(|e| e.days()), Some(7));
        assert_eq!(d[1].filter().and_then(|f| f.prefix()), Some(""));
        let abort = d[1].abort_incomplete_multipart_upload();
        assert_eq!(abort.and_then(|a| a.days_after_initiation()), Some(1));
        assert!(d.iter().all(|r| *r.status() == ExpirationStatus::Enabled));
    }

    #[test]
    #[allow(deprecated)] // the deprecated top-level prefix is one of the cases
    fn comparison() {
        let and_prefix = LifecycleRuleFilter::builder()
            .and(LifecycleRuleAndOperator::builder().prefix("cache/").build())
            .build();
        let cases: Vec<(&str, Vec<LifecycleRule>, bool)> = vec![
            ("identical", desired("cache/", 7), true),
            (
                "reordered, other IDs, no filter on the abort rule",
                rules(vec![abort(1).id("b"), expire("cache/", 7).id("a")]),
                true,
            ),
            (
                "deprecated top-level prefix",
                rules(vec![
                    LifecycleRule::builder()
                        .status(ExpirationStatus::Enabled)
                        .prefix("cache/")
                        .expiration(LifecycleExpiration::builder().days(7).build()),
                    abort(1).prefix(""),
                ]),
                true,
            ),
            (
                "prefix inside <And>",
                rules(vec![expire("x", 7).filter(and_prefix.clone()), abort(1)]),
                true,
            ),
            ("none", vec![], false),
            (
                "only the cache rule",
                rules(vec![expire("cache/", 7)]),
                false,
            ),
            (
                "other days",
                rules(vec![expire("cache/", 30), abort(1)]),
                false,
            ),
            (
                "other prefix",
                rules(vec![expire("media/", 7), abort(1)]),
                false,
            ),
            (
                "whole bucket expires",
                rules(vec![expire("", 7), abort(1)]),
                false,
            ),
            (
                "abort after a week",
                rules(vec![expire("cache/", 7), abort(7)]),
                false,
            ),
            (
                "disabled",
                rules(vec![
                    expire("cache/", 7).status(ExpirationStatus::Disabled),
                    abort(1),
                ]),
                false,
            ),
            (
                "a rule more",
                rules(vec![expire("cache/", 7), abort(1), expire("tmp/", 1)]),
                false,
            ),
            (
                "tag filter",
                rules(vec![
                    expire("cache/", 7).filter(
                        LifecycleRuleFilter::builder()
                            .prefix("cache/")
                            .tag(Tag::builder().key("k").value("v").build().unwrap())
                            .build(),
                    ),
                    abort(1),
                ]),
                false,
            ),
            (
                "expiration by date",
                rules(vec![
                    expire("cache/", 7).expiration(
                        LifecycleExpiration::builder()
                            .days(7)
                            .date(DateTime::from_secs(0))
                            .build(),
                    ),
                    abort(1),
                ]),
                false,
            ),
        ];
        for (name, current, expected) in cases {
            assert_eq!(same(&current, &desired("cache/", 7)), expected, "{name}");
        }
    }
}
