//! The managed database, delegated to CloudNativePG: a `Cluster` (primary + hot standbys),
//! a `Pooler` (PgBouncer, transaction mode) for the server's connections, and a
//! `ScheduledBackup` when backups are configured. Built as JSON: CloudNativePG's types are
//! CRDs, not k8s-openapi types.
//!
//! Services CloudNativePG creates, and who uses them: `<cluster>-rw` (the primary:
//! migrations), `<cluster>-ro` (the standbys: reads), `<pooler>` (PgBouncer in front of the
//! primary: everything else). Its Secret `<cluster>-app` holds the application password.

use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use super::env::{S3_ACCESS_KEY_ID_KEY, S3_SECRET_ACCESS_KEY_KEY};
use super::{Child, Ctx};
use crate::crd::{DeletionPolicy, ManagedDatabase};

pub const GROUP: &str = "postgresql.cnpg.io";
/// The database and its owner, created by CloudNativePG's `initdb` bootstrap.
pub const DATABASE: &str = "fedi";
pub const OWNER: &str = "fedi";

pub fn cluster_resource() -> ApiResource {
    resource("Cluster", "clusters")
}

pub fn pooler_resource() -> ApiResource {
    resource("Pooler", "poolers")
}

pub fn scheduled_backup_resource() -> ApiResource {
    resource("ScheduledBackup", "scheduledbackups")
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1".into(),
        api_version: format!("{GROUP}/v1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Names of the objects and Services of the managed database of instance `name`.
pub struct Names {
    pub cluster: String,
    pub pooler: String,
}

impl Names {
    pub fn of(instance: &str) -> Self {
        Self {
            cluster: format!("{instance}-db"),
            pooler: format!("{instance}-db-pooler"),
        }
    }
    /// The Service of the primary.
    pub fn rw(&self) -> String {
        format!("{}-rw", self.cluster)
    }
    /// The Service of the hot standbys.
    pub fn ro(&self) -> String {
        format!("{}-ro", self.cluster)
    }
    /// CloudNativePG's Secret of the application user (keys `username`, `password`, `uri`).
    pub fn app_secret(&self) -> String {
        format!("{}-app", self.cluster)
    }
}

pub(crate) fn build(ctx: &Ctx) -> Vec<Child> {
    let Some(db) = &ctx.fedi.spec.database.managed else {
        return Vec::new();
    };
    let names = Names::of(&ctx.name);
    let mut out = vec![cluster(ctx, db, &names), pooler(ctx, db, &names)];
    if let Some(backup) = &db.backup {
        let spec = json!({
            "schedule": backup.schedule,
            "cluster": {"name": names.cluster},
            "method": "barmanObjectStore",
            // Backups belong to the ScheduledBackup: they go with it, not with the cluster.
            "backupOwnerReference": "self",
            "immediate": true,
        });
        let metadata = ctx.metadata(names.cluster.clone(), Some("database"));
        out.push(child(scheduled_backup_resource(), metadata, spec));
    }
    out
}

fn cluster(ctx: &Ctx, db: &ManagedDatabase, names: &Names) -> Child {
    let mut storage = json!({"size": db.storage.size.0});
    if let Some(class) = &db.storage.storage_class_name {
        storage["storageClass"] = json!(class);
    }
    let mut spec = json!({
        "instances": db.instances,
        "storage": storage,
        "enableSuperuserAccess": false,
        "bootstrap": {"initdb": {"database": DATABASE, "owner": OWNER}},
        "postgresql": {"parameters": db.parameters},
    });
    if let Some(resources) = &db.resources {
        spec["resources"] = serde_json::to_value(resources).expect("serializable");
    }
    if let Some(backup) = &db.backup {
        let key = |k: &str| json!({"name": backup.credentials_secret_ref.name, "key": k});
        let mut store = json!({
            "destinationPath": backup.destination_path,
            "s3Credentials": {
                "accessKeyId": key(S3_ACCESS_KEY_ID_KEY),
                "secretAccessKey": key(S3_SECRET_ACCESS_KEY_KEY),
            },
            "wal": {"compression": "gzip"},
            "data": {"compression": "gzip"},
        });
        if let Some(endpoint) = &backup.endpoint_url {
            store["endpointURL"] = json!(endpoint);
        }
        spec["backup"] = json!({
            "barmanObjectStore": store,
            "retentionPolicy": backup.retention_policy,
        });
    }
    let mut metadata = ctx.metadata(names.cluster.clone(), Some("database"));
    // The cluster is the data: under Retain, no owner, so deleting the instance keeps it
    // (CloudNativePG removes its volumes with the Cluster).
    if ctx.fedi.spec.deletion_policy == DeletionPolicy::Retain {
        metadata.owner_references = None;
    }
    child(cluster_resource(), metadata, spec)
}

fn pooler(ctx: &Ctx, db: &ManagedDatabase, names: &Names) -> Child {
    let p = &db.pooler;
    let spec = json!({
        "cluster": {"name": names.cluster},
        "instances": p.instances,
        "type": "rw",
        "pgbouncer": {
            "poolMode": "transaction",
            "parameters": {
                "max_client_conn": p.max_client_connections.to_string(),
                "default_pool_size": p.default_pool_size.to_string(),
                // The server's driver prepares its statements; PgBouncer >= 1.21 keeps them
                // working in transaction mode when this is set.
                "max_prepared_statements": "200",
            },
        },
    });
    let metadata = ctx.metadata(names.pooler.clone(), Some("database"));
    child(pooler_resource(), metadata, spec)
}

fn child(
    resource: ApiResource,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: Value,
) -> Child {
    Child {
        object: DynamicObject {
            types: Some(kube::api::TypeMeta {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
            }),
            metadata,
            data: json!({ "spec": spec }),
        },
        resource,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Ctx, Defaults};
    use super::*;

    fn built(spec: Value) -> Vec<Child> {
        let fedi = instance(spec);
        build(&Ctx::new(&fedi, &Defaults::default()).unwrap())
    }

    fn kinds(children: &[Child]) -> Vec<String> {
        children.iter().map(|c| c.describe()).collect()
    }

    #[test]
    fn the_objects_follow_the_spec() {
        let cases: &[(&str, Value, &[&str])] = &[
            (
                "defaults: a cluster and its pooler",
                json!({"domain": "social.example"}),
                &["Cluster/social-db", "Pooler/social-db-pooler"],
            ),
            (
                "backups add a schedule",
                json!({"domain": "social.example", "database": {"managed": {"backup": {
                    "destinationPath": "s3://b/social", "credentialsSecretRef": {"name": "bk"}}}}}),
                &[
                    "Cluster/social-db",
                    "Pooler/social-db-pooler",
                    "ScheduledBackup/social-db",
                ],
            ),
            (
                "external: nothing",
                json!({"domain": "social.example", "database": {"external": {
                    "host": "pg", "database": "d", "user": "u",
                    "passwordSecretRef": {"name": "s", "key": "k"}}}}),
                &[],
            ),
        ];
        for (what, spec, want) in cases {
            assert_eq!(kinds(&built(spec.clone())), *want, "{what}");
        }
    }

    #[test]
    fn the_cluster_outlives_a_retained_instance_only() {
        for (policy, owned) in [("Retain", false), ("Delete", true)] {
            let children = built(json!({"domain": "social.example", "deletionPolicy": policy}));
            let cluster = &children[0].object;
            assert_eq!(
                cluster.metadata.owner_references.is_some(),
                owned,
                "{policy}"
            );
            // The pooler holds no data: always owned.
            assert!(children[1].object.metadata.owner_references.is_some());
        }
    }

    #[test]
    fn the_cluster_and_pooler_carry_the_spec() {
        let children = built(json!({"domain": "social.example", "database": {"managed": {
            "instances": 3, "storage": {"size": "50Gi", "storageClassName": "fast"},
            "parameters": {"shared_buffers": "1GB"},
            "pooler": {"instances": 3, "defaultPoolSize": 40},
            "backup": {"destinationPath": "s3://b/social", "endpointUrl": "https://s3.example",
                       "credentialsSecretRef": {"name": "bk"}, "retentionPolicy": "4w"}}}}));
        let cluster = &children[0].object.data["spec"];
        assert_eq!(cluster["instances"], 3);
        assert_eq!(
            cluster["storage"],
            json!({"size": "50Gi", "storageClass": "fast"})
        );
        assert_eq!(cluster["postgresql"]["parameters"]["shared_buffers"], "1GB");
        assert_eq!(cluster["bootstrap"]["initdb"]["owner"], OWNER);
        assert_eq!(cluster["enableSuperuserAccess"], false);
        let store = &cluster["backup"]["barmanObjectStore"];
        assert_eq!(store["endpointURL"], "https://s3.example");
        assert_eq!(
            store["s3Credentials"]["secretAccessKey"],
            json!({"name": "bk", "key": "secretAccessKey"})
        );
        assert_eq!(cluster["backup"]["retentionPolicy"], "4w");
        let pooler = &children[1].object.data["spec"];
        assert_eq!(pooler["type"], "rw");
        assert_eq!(pooler["pgbouncer"]["poolMode"], "transaction");
        assert_eq!(pooler["pgbouncer"]["parameters"]["default_pool_size"], "40");
        assert_eq!(pooler["instances"], 3);
        let schedule = &children[2].object.data["spec"];
        assert_eq!(schedule["cluster"]["name"], "social-db");
        assert_eq!(schedule["schedule"], "0 0 3 * * *");
    }
}
