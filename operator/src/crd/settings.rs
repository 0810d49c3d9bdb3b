//! Instance settings that are neither workloads nor dependencies.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who may create an account on the instance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Registrations {
    #[default]
    Open,
    Approval,
    Closed,
}

impl From<Registrations> for fedi_config::Registrations {
    fn from(r: Registrations) -> Self {
        match r {
            Registrations::Open => Self::Open,
            Registrations::Approval => Self::Approval,
            Registrations::Closed => Self::Closed,
        }
    }
}

/// Whether data outlives the FediInstance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

/// The first admin account.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminSpec {
    /// The admin's username (the part before the domain).
    #[schemars(length(min = 1, max = 30), regex(pattern = r"^[A-Za-z0-9_]+$"))]
    pub username: String,
    /// Where the admin's password-setting link is sent.
    #[schemars(length(min = 3, max = 254), regex(pattern = r"^[^@\s]+@[^@\s]+$"))]
    pub email: String,
}

/// A key of a Secret in the FediInstance's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Outgoing mail through an SMTP relay.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpSpec {
    /// Host name of the relay.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Port of the relay: usually 587 (STARTTLS) or 465 (TLS).
    #[serde(default = "default_smtp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// `starttls`, `tls` (implicit) or `none` (only inside a trusted network).
    #[serde(default)]
    pub tls: SmtpTls,
    /// The From address of every mail.
    #[schemars(length(min = 3, max = 254))]
    pub from: String,
    /// Login name, if the relay wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The relay's password, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

fn default_smtp_port() -> i32 {
    587
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Tls,
    None,
}

/// Which servers this instance federates with.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode == 'limited' || size(self.allowedDomains) == 0").message("allowedDomains only applies to mode: limited"))]
pub struct FederationSpec {
    /// `open`: federate with every server not blocked. `limited`: only with `allowedDomains`.
    #[serde(default)]
    pub mode: FederationMode,
    /// Servers this instance never exchanges anything with (subdomains included).
    #[serde(default)]
    #[schemars(length(max = 10000), inner(length(min = 1, max = 253)))]
    pub blocked_domains: Vec<String>,
    /// In `limited` mode, the only servers this instance federates with.
    #[serde(default)]
    #[schemars(length(max = 10000), inner(length(min = 1, max = 253)))]
    pub allowed_domains: Vec<String>,
    /// Domain blocks with a severity, as Mastodon's moderation has them (subdomains
    /// included). `blockedDomains` are suspended; a domain in both lists is suspended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    pub domain_blocks: Vec<DomainBlockSpec>,
    /// Secure mode: actors, statuses and collections are served only to requests signed by
    /// a server that is not blocked (unsigned ones get 401). The instance actor and a
    /// reduced profile with its public key stay public.
    #[serde(default)]
    pub authorized_fetch: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainBlockSpec {
    /// The domain (IDN or punycode, any case); its subdomains are blocked too.
    #[schemars(length(min = 1, max = 253))]
    pub domain: String,
    /// `suspend`: nothing is exchanged and its content is hidden. `silence`: its accounts
    /// are kept out of public timelines and of notifications from accounts one does not
    /// follow. `rejectMedia`: its attachments and avatars are neither fetched nor shown.
    #[serde(default)]
    pub severity: DomainBlockSeverity,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DomainBlockSeverity {
    #[default]
    Suspend,
    Silence,
    RejectMedia,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FederationMode {
    #[default]
    Open,
    Limited,
}

/// Limits on what users can post.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Maximum characters in a post.
    #[serde(default = "default_max_post_length")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_post_length: i32,
    /// Maximum size of an uploaded image.
    #[serde(default = "default_max_image_size")]
    pub max_image_size: Quantity,
    /// Maximum size of an uploaded video or audio file.
    #[serde(default = "default_max_video_size")]
    pub max_video_size: Quantity,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            max_post_length: default_max_post_length(),
            max_image_size: default_max_image_size(),
            max_video_size: default_max_video_size(),
        }
    }
}

fn default_max_post_length() -> i32 {
    500
}
fn default_max_image_size() -> Quantity {
    Quantity("16Mi".into())
}
fn default_max_video_size() -> Quantity {
    Quantity("99Mi".into())
}
