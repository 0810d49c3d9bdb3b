//! Optional parts of the schema that filtering uses when they exist: users' chosen languages
//! and per-user domain blocks (Mastodon's `users.chosen_languages` and
//! `account_domain_blocks`). Probed once per process: a migration that adds them ships with
//! a new image, and so with a restart.

use tokio::sync::OnceCell;

use crate::state::AppState;

#[derive(Debug, Clone, Copy, Default)]
pub struct Schema {
    pub chosen_languages: bool,
    pub domain_blocks: bool,
}

/// The probe, retried on the next use until the database answers once.
#[derive(Default)]
pub struct Probe(OnceCell<Schema>);

impl Probe {
    pub async fn get(&self, state: &AppState) -> Result<Schema, sqlx::Error> {
        self.0
            .get_or_try_init(|| async {
                let (chosen_languages, domain_blocks): (bool, bool) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
                                    WHERE table_schema = current_schema() \
                                      AND table_name = 'users' \
                                      AND column_name = 'chosen_languages'), \
                            to_regclass('account_domain_blocks') IS NOT NULL",
                )
                .fetch_one(state.db.primary())
                .await?;
                Ok(Schema {
                    chosen_languages,
                    domain_blocks,
                })
            })
            .await
            .copied()
    }
}
