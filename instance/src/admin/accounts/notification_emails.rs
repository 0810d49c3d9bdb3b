//! `fedi-server admin accounts notification-emails`: which notifications a user is e-mailed
//! about (`users.notification_emails`). Mastodon's users choose in its web settings, which
//! neither its REST API nor our web client has; until then the operator sets them.

use clap::ValueEnum;
use sqlx::PgConnection;

use super::find;

/// The notification types that have an e-mail (`tasks::mail::notifications`), named as
/// Mastodon names them.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailType {
    Mention,
    Follow,
    #[value(name = "follow_request", alias = "follow-request")]
    FollowRequest,
    Reblog,
    Favourite,
}

impl MailType {
    fn as_str(self) -> &'static str {
        match self {
            MailType::Mention => "mention",
            MailType::Follow => "follow",
            MailType::FollowRequest => "follow_request",
            MailType::Reblog => "reblog",
            MailType::Favourite => "favourite",
        }
    }
}

/// Turns `on` on and `off` off (off wins when both name a type), then prints the types now
/// mailed on stdout, one a line.
pub async fn run(
    conn: &mut PgConnection,
    domain: &str,
    username: &str,
    on: &[MailType],
    off: &[MailType],
) -> anyhow::Result<()> {
    let user = find(conn, domain, username).await?;
    let names = |types: &[MailType]| types.iter().map(|t| t.as_str()).collect::<Vec<_>>();
    let now: Vec<String> = sqlx::query_scalar(
        "UPDATE users SET notification_emails = ARRAY( \
             SELECT DISTINCT t FROM unnest(notification_emails || $2::text[]) t \
             WHERE t <> ALL($3::text[]) ORDER BY t) \
         WHERE id = $1 RETURNING notification_emails",
    )
    .bind(user.user_id)
    .bind(names(on))
    .bind(names(off))
    .fetch_one(&mut *conn)
    .await?;
    eprintln!(
        "@{}: notification e-mails for: {}",
        user.username,
        if now.is_empty() {
            "nothing".to_string()
        } else {
            now.join(", ")
        }
    );
    for t in now {
        println!("{t}");
    }
    Ok(())
}
