-- Instance-wide settings an admin changes at run time (site title, rules text, contact
-- account...). Keys are namespaced strings; values are JSON so that a setting can grow a
-- structure without a migration.
CREATE TABLE instance_settings (
    key         text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 128),
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
