//! The bucket's CORS rules: the instance's web UI may read media from the bucket.

use std::collections::BTreeSet;

use aws_sdk_s3::types::CorsRule;

/// How long browsers may cache a preflight answer.
const MAX_AGE_SECONDS: i32 = 3600;

/// One rule: GET and HEAD from the web origin. Any request header is allowed because the
/// player asks for byte ranges (`Range`) when seeking in video and audio.
pub(crate) fn desired(web_origin: &str) -> Vec<CorsRule> {
    let rule = CorsRule::builder()
        .id("fedi-media")
        .allowed_origins(web_origin)
        .allowed_methods("GET")
        .allowed_methods("HEAD")
        .allowed_headers("*")
        .max_age_seconds(MAX_AGE_SECONDS)
        .build()
        .expect("allowed_methods and allowed_origins are set");
    vec![rule]
}

/// Whether the rules read from the store mean the same as `desired`. Rule IDs are labels
/// and ignored; the order of the rules matters (the first match wins), the order of the
/// values inside a rule does not.
pub(crate) fn same(current: &[CorsRule], desired: &[CorsRule]) -> bool {
    current.len() == desired.len()
        && current
            .iter()
            .zip(desired)
            .all(|(a, b)| Canonical::of(a) == Canonical::of(b))
}

#[derive(Debug, PartialEq, Eq)]
struct Canonical {
    origins: BTreeSet<String>,
    methods: BTreeSet<String>,
    headers: BTreeSet<String>,
    expose: BTreeSet<String>,
    max_age: Option<i32>,
}

impl Canonical {
    fn of(rule: &CorsRule) -> Self {
        // Origins and methods are matched exactly; header names without case.
        let exact = |v: &[String]| v.iter().cloned().collect();
        let any_case = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect();
        Canonical {
            origins: exact(rule.allowed_origins()),
            methods: exact(rule.allowed_methods()),
            headers: any_case(rule.allowed_headers()),
            expose: any_case(rule.expose_headers()),
            max_age: rule.max_age_seconds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://social.example.com";

    struct Rule {
        origins: &'static [&'static str],
        methods: &'static [&'static str],
        headers: &'static [&'static str],
        expose: &'static [&'static str],
        max_age: Option<i32>,
        id: Option<&'static str>,
    }

    const WANTED: Rule = Rule {
        origins: &[ORIGIN],
        methods: &["GET", "HEAD"],
        headers: &["*"],
        expose: &[],
        max_age: Some(3600),
        id: Some("fedi-media"),
    };

    fn rule(r: &Rule) -> CorsRule {
        let mut b = CorsRule::builder()
            .set_allowed_origins(Some(r.origins.iter().map(|s| s.to_string()).collect()))
            .set_allowed_methods(Some(r.methods.iter().map(|s| s.to_string()).collect()))
            .set_allowed_headers(Some(r.headers.iter().map(|s| s.to_string()).collect()))
            // As the store answers: no element rather than an empty one.
            .set_expose_headers(
                (!r.expose.is_empty()).then(|| r.expose.iter().map(|s| s.to_string()).collect()),
            )
            .set_max_age_seconds(r.max_age);
        if let Some(id) = r.id {
            b = b.id(id);
        }
        b.build().unwrap()
    }

    #[test]
    fn desired_is_the_wanted_rule() {
        let d = desired(ORIGIN);
        assert_eq!(d, vec![rule(&WANTED)]);
    }

    #[test]
    fn comparison() {
        let cases: &[(&str, &[Rule], bool)] = &[
            ("identical", &[WANTED], true),
            ("without ID", &[Rule { id: None, ..WANTED }], true),
            (
                "another ID",
                &[Rule {
                    id: Some("x"),
                    ..WANTED
                }],
                true,
            ),
            (
                "methods reordered",
                &[Rule {
                    methods: &["HEAD", "GET"],
                    ..WANTED
                }],
                true,
            ),
            (
                "methods repeated",
                &[Rule {
                    methods: &["GET", "HEAD", "GET"],
                    ..WANTED
                }],
                true,
            ),
            ("none", &[], false),
            (
                "another origin",
                &[Rule {
                    origins: &["https://evil.example"],
                    ..WANTED
                }],
                false,
            ),
            (
                "any origin",
                &[Rule {
                    origins: &["*"],
                    ..WANTED
                }],
                false,
            ),
            (
                "an origin more",
                &[Rule {
                    origins: &[ORIGIN, "https://b.example"],
                    ..WANTED
                }],
                false,
            ),
            (
                "PUT allowed",
                &[Rule {
                    methods: &["GET", "HEAD", "PUT"],
                    ..WANTED
                }],
                false,
            ),
            (
                "only GET",
                &[Rule {
                    methods: &["GET"],
                    ..WANTED
                }],
                false,
            ),
            (
                "no headers",
                &[Rule {
                    headers: &[],
                    ..WANTED
                }],
                false,
            ),
            (
                "headers exposed",
                &[Rule {
                    expose: &["ETag"],
                    ..WANTED
                }],
                false,
            ),
            (
                "another max age",
                &[Rule {
                    max_age: Some(60),
                    ..WANTED
                }],
                false,
            ),
            (
                "no max age",
                &[Rule {
                    max_age: None,
                    ..WANTED
                }],
                false,
            ),
            (
                "a rule more",
                &[
                    WANTED,
                    Rule {
                        origins: &["*"],
                        ..WANTED
                    },
                ],
                false,
            ),
        ];
        for (name, current, expected) in cases {
            let current: Vec<_> = current.iter().map(rule).collect();
            assert_eq!(same(&current, &desired(ORIGIN)), *expected, "{name}");
        }
    }

    #[test]
    fn header_names_compare_without_case() {
        let a = rule(&Rule {
            headers: &["Range", "If-None-Match"],
            ..WANTED
        });
        let b = rule(&Rule {
            headers: &["if-none-match", "range"],
            ..WANTED
        });
        assert!(same(&[a], &[b]));
    }
}
