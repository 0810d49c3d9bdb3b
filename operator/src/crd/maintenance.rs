use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How long the server keeps what it keeps only for a while. The server's worker deletes
/// each kind once it is older than its retention (a periodic job of the scheduler pool).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceSpec {
    /// Hours after which media uploaded but never attached to a post are deleted from the
    /// bucket and the database (Mastodon keeps them a day).
    #[serde(default = "default_orphaned_media_hours")]
    #[schemars(range(min = 1, max = 8760))]
    pub orphaned_media_retention_hours: i32,
    /// Days after which the bucket's copies of remote servers' media are deleted (the
    /// attachment is fetched from its server again when viewed). Mastodon's `tootctl media
    /// remove` default: 7. With an external bucket it must not exceed
    /// `objectStorage.external.remoteMediaCacheDays` (the bucket's own expiry of the cache).
    #[serde(default = "default_media_cache_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub media_cache_retention_days: i32,
    /// Days after which link previews' cached images are deleted (the card stays, without
    /// its image). Also at most `objectStorage.external.remoteMediaCacheDays`: the images live
    /// under the same cache prefix.
    #[serde(default = "default_preview_card_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub preview_card_retention_days: i32,
    /// The daily UTC window in which these deletion sweeps may start (hourly within it),
    /// for hosts that want them in their quiet hours. Absent: at any hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<MaintenanceWindowSpec>,
}

/// A daily window, in UTC; it may run past midnight (`22:00` for 4 hours ends at 02:00).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindowSpec {
    /// When it opens, `HH:MM` UTC (24-hour clock).
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// How long it stays open, in hours (24: all day).
    #[schemars(range(min = 1, max = 24))]
    pub hours: i32,
}

impl MaintenanceWindowSpec {
    /// The server's `FEDI_MAINTENANCE_WINDOW` form, `HH:MM+Nh`.
    pub fn env_value(&self) -> String {
        format!("{}+{}h", self.start, self.hours)
    }
}

impl Default for MaintenanceSpec {
    fn default() -> Self {
        Self {
            orphaned_media_retention_hours: default_orphaned_media_hours(),
            media_cache_retention_days: default_media_cache_days(),
            preview_card_retention_days: default_preview_card_days(),
            window: None,
        }
    }
}

/// The floor of the managed store's expiry of the cache prefix.
pub const MANAGED_CACHE_EXPIRY_DAYS: i32 = 30;

impl MaintenanceSpec {
    /// Days after which the managed object store itself expires the cache prefix: a safety
    /// net behind the server's own deletion, so it stays a week beyond the longest retention
    /// of what lives there (an object expiring first would leave an attachment pointing at
    /// nothing), and never under a month.
    pub fn managed_cache_expiry_days(&self) -> i32 {
        let longest = self
            .media_cache_retention_days
            .max(self.preview_card_retention_days);
        MANAGED_CACHE_EXPIRY_DAYS.max(longest.saturating_add(7))
    }
}

fn default_orphaned_media_hours() -> i32 {
    24
}
fn default_media_cache_days() -> i32 {
    7
}
fn default_preview_card_days() -> i32 {
    14
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_mastodons_and_the_managed_expiry_stays_behind_the_retention() {
        let m: MaintenanceSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(m, MaintenanceSpec::default());
        assert_eq!(
            (
                m.orphaned_media_retention_hours,
                m.media_cache_retention_days,
                m.preview_card_retention_days
            ),
            (24, 7, 14)
        );
        assert_eq!(m.managed_cache_expiry_days(), 30);
        let long = MaintenanceSpec {
            media_cache_retention_days: 40,
            preview_card_retention_days: 90,
            ..Default::default()
        };
        assert_eq!(long.managed_cache_expiry_days(), 97);
        let max = MaintenanceSpec {
            preview_card_retention_days: i32::MAX,
            ..Default::default()
        };
        assert_eq!(max.managed_cache_expiry_days(), i32::MAX);
    }
}
