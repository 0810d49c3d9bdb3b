//! The dereference stage: what the instance refers to in the cluster. Referenced Secrets
//! must exist with the keys the pods will read (a missing one would otherwise surface only
//! as pods stuck in CreateContainerConfigError), and the Secret of generated keys is created
//! the first time. Values are never logged or reported; only key names are compared.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tracing::info;

use crate::build::{self, Defaults};
use crate::crd::FediInstance;
use crate::keys::{self, SECRET_KEYS};
use crate::{Error, Result};

/// Secrets the spec refers to, each with the keys it must hold.
pub fn referenced_secrets(fedi: &FediInstance) -> Vec<(String, Vec<String>)> {
    let spec = &fedi.spec;
    let mut refs: Vec<(String, Vec<String>)> = Vec::new();
    let mut need = |name: &str, key: &str| match refs.iter_mut().find(|(n, _)| n == name) {
        Some((_, keys)) => keys.push(key.to_string()),
        None => refs.push((name.to_string(), vec![key.to_string()])),
    };
    if let Some(name) = &spec.existing_secret {
        for (key, _) in SECRET_KEYS {
            need(name, key);
        }
    }
    if let Some(db) = &spec.database.external {
        need(&db.password_secret_ref.name, &db.password_secret_ref.key);
    }
    if let Some(redis) = &spec.redis.external {
        need(&redis.url_secret_ref.name, &redis.url_secret_ref.key);
    }
    if let Some(s3) = &spec.object_storage.external {
        need(&s3.credentials_secret_ref.name, build::S3_ACCESS_KEY_ID_KEY);
        need(
            &s3.credentials_secret_ref.name,
            build::S3_SECRET_ACCESS_KEY_KEY,
        );
    }
    if let Some(creds) = spec
        .search
        .as_ref()
        .and_then(|s| s.external.as_ref())
        .and_then(|e| e.credentials_secret_ref.as_ref())
    {
        need(&creds.name, "username");
        need(&creds.name, "password");
    }
    if let Some(backup) = spec
        .database
        .managed
        .as_ref()
        .and_then(|m| m.backup.as_ref())
    {
        let name = &backup.credentials_secret_ref.name;
        need(name, build::S3_ACCESS_KEY_ID_KEY);
        need(name, build::S3_SECRET_ACCESS_KEY_KEY);
    }
    if let Some(pw) = spec
        .smtp
        .as_ref()
        .and_then(|s| s.password_secret_ref.as_ref())
    {
        need(&pw.name, &pw.key);
    }
    refs
}

/// Secrets whose creation, change or deletion should reconcile the instance at once: the
/// referenced ones, the generated ones and CloudNativePG's application Secret.
pub fn watched_secrets(fedi: &FediInstance) -> Vec<String> {
    let mut names: Vec<String> = referenced_secrets(fedi)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.extend(generated_secrets(fedi).into_iter().map(|(n, _)| n));
    names.extend(crate::dependencies::database_secrets(fedi));
    names
}

/// Checks the referenced Secrets and creates the generated ones that are missing (the
/// instance's keys, the managed services' credentials); returns the names it created.
pub async fn secrets(
    client: &Client,
    fedi: &FediInstance,
    namespace: &str,
    defaults: &Defaults,
) -> Result<Vec<String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    // Every reconcile asks for these: all at once, since on a busy API server each round
    // trip is what a reconcile (a drift repair among them) waits on.
    let referenced = referenced_secrets(fedi);
    let found =
        futures::future::join_all(referenced.iter().map(|(name, _)| api.get_opt(name))).await;
    for ((name, wanted), secret) in referenced.into_iter().zip(found) {
        let secret = secret
            .map_err(Error::Kube)?
            .ok_or_else(|| Error::SecretNotFound(name.clone()))?;
        let has = |k: &String| {
            secret.data.as_ref().is_some_and(|d| d.contains_key(k))
                || secret
                    .string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(k))
        };
        let missing: Vec<String> = wanted.into_iter().filter(|k| !has(k)).collect();
        if !missing.is_empty() {
            return Err(Error::SecretKeyMissing {
                name,
                keys: missing,
            });
        }
    }
    let mut created = Vec::new();
    let generated = generated_secrets(fedi);
    let existing =
        futures::future::join_all(generated.iter().map(|(name, _)| api.get_metadata_opt(name)))
            .await;
    for ((name, generate), existing) in generated.into_iter().zip(existing) {
        if existing.map_err(Error::Kube)?.is_some() {
            continue;
        }
        let secret = if name == build::keys_secret_name(fedi) {
            build::generated_keys_secret(fedi, defaults, generate()?)?
        } else {
            build::generated_credentials(fedi, defaults, name.clone(), generate()?)?
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                info!(
                    namespace,
                    name,
                    instance = fedi.name_any(),
                    "generated a Secret"
                );
                created.push(name);
            }
            // Another reconcile (or replica) created it first: theirs stands, never
            // overwritten.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(Error::Apply(format!("Secret/{name}"), e)),
        }
    }
    Ok(created)
}

/// The names of the Secrets the operator generates for `fedi` (never the user's).
pub fn generated_secret_names(fedi: &FediInstance) -> Vec<String> {
    generated_secrets(fedi)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

type Generator = fn() -> std::result::Result<BTreeMap<String, String>, keys::RandomError>;

/// The Secrets the operator generates for `fedi`, each with how to make its contents.
fn generated_secrets(fedi: &FediInstance) -> Vec<(String, Generator)> {
    let name = fedi.name_any();
    let mut out: Vec<(String, Generator)> = Vec::new();
    if fedi.spec.existing_secret.is_none() {
        out.push((build::keys_secret_name(fedi), keys::generate));
    }
    if fedi.spec.redis.external.is_none() {
        out.push((build::managed::redis_secret(&name), keys::redis_credentials));
    }
    if fedi.spec.object_storage.external.is_none() {
        out.push((build::managed::s3_secret(&name), keys::s3_credentials));
    }
    out
}
