//! Notification e-mails, as Mastodon's NotificationMailer: a mention, follow, follow request,
//! boost or favourite is mailed to a local user whose address is confirmed, if the type is
//! among their `users.notification_emails` (Mastodon's defaults: follows, follow requests,
//! mentions).
//!
//! The rows are written in the transaction that records the notifications, so a mail goes
//! out exactly for the notifications that exist; blocked or muted actors never get that far
//! (the notification is not created).

use crate::state::AppState;

/// The notification types that have an e-mail.
pub const TYPES: &[&str] = &["mention", "follow", "follow_request", "reblog", "favourite"];

/// Status text quoted in a mail beyond this many characters is cut.
const EXCERPT_MAX: usize = 500;

#[derive(Debug, sqlx::FromRow)]
struct Wanted {
    r#type: String,
    email: String,
    recipient: String,
    /// The actor's `acct`: `name` for a local account, `name@domain` for a remote one.
    actor: String,
    status_id: Option<i64>,
    status_author: Option<String>,
    status_text: Option<String>,
    spoiler_text: Option<String>,
}

/// Writes, in `tx`, the mails the notifications `ids` (just inserted in `tx`) call for;
/// returns the `outgoing_mail` ids to [`super::enqueue`] once `tx` committed.
pub async fn queue(
    tx: &mut sqlx::PgConnection,
    state: &AppState,
    ids: &[i64],
) -> Result<Vec<i64>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Remote statuses keep their text as HTML only: tags dropped for a plain-text mail.
    let wanted: Vec<Wanted> = sqlx::query_as(
        "SELECT n.type, u.email, r.username AS recipient, \
                f.username || coalesce('@' || f.domain, '') AS actor, \
                s.id AS status_id, \
                sa.username || coalesce('@' || sa.domain, '') AS status_author, \
                CASE WHEN s.text <> '' THEN s.text \
                     ELSE regexp_replace(s.content_html, '<[^>]*>', ' ', 'g') END AS status_text, \
                s.spoiler_text \
         FROM notifications n \
         JOIN users u ON u.account_id = n.account_id \
         JOIN accounts r ON r.id = n.account_id \
         JOIN accounts f ON f.id = n.from_account_id \
         LEFT JOIN statuses s ON s.id = n.status_id \
         LEFT JOIN accounts sa ON sa.id = s.account_id \
         WHERE n.id = ANY($1) AND n.type = ANY($2) AND n.type = ANY(u.notification_emails) \
           AND u.confirmed_at IS NOT NULL \
         ORDER BY n.id",
    )
    .bind(ids)
    .bind(TYPES)
    .fetch_all(&mut *tx)
    .await?;
    let mut mails = Vec::with_capacity(wanted.len());
    for w in &wanted {
        let (subject, body) = compose(state, w);
        mails.push(super::queue(&mut *tx, &w.email, &subject, &body).await?);
    }
    Ok(mails)
}

/// Subject and plain-text body, in Mastodon's words (its `notification_mailer` strings).
fn compose(state: &AppState, w: &Wanted) -> (String, String) {
    let name = &w.actor;
    let (subject, line) = match w.r#type.as_str() {
        "mention" => (
            format!("You were mentioned by {name}"),
            format!("You were mentioned by {name} in:"),
        ),
        "follow" => (
            format!("{name} is now following you"),
            format!("{name} is now following you!"),
        ),
        "follow_request" => (
            format!("Pending follower: {name}"),
            format!("{name} has requested to follow you"),
        ),
        "reblog" => (
            format!("{name} boosted your post"),
            format!("Your post was boosted by {name}:"),
        ),
        _ => (
            format!("{name} favorited your post"),
            format!("Your post was favorited by {name}:"),
        ),
    };
    let base = state.base_url();
    let mut body = format!("Hi @{},\n\n{line}\n\n", w.recipient);
    match (w.status_id, &w.status_author) {
        (Some(id), Some(author)) => {
            body.push_str(&quote(
                w.spoiler_text.as_deref().unwrap_or(""),
                w.status_text.as_deref().unwrap_or(""),
            ));
            body.push_str(&format!("\nView: {base}/@{author}/{id}\n"));
        }
        _ if w.r#type == "follow_request" => {
            body.push_str(&format!("Manage follow requests: {base}/follow_requests\n"));
        }
        _ => body.push_str(&format!("View profile: {base}/@{name}\n")),
    }
    body.push_str(&format!(
        "\n--\nYou receive this e-mail because of your notification e-mail settings on {}.\n",
        state.config.domain
    ));
    (subject, body)
}

/// The status as a quoted block; behind its content warning, only the warning is shown.
fn quote(spoiler_text: &str, text: &str) -> String {
    let shown = if spoiler_text.trim().is_empty() {
        excerpt(text)
    } else {
        format!("Content warning: {}", excerpt(spoiler_text))
    };
    shown.lines().map(|l| format!("> {l}\n")).collect()
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= EXCERPT_MAX {
        return text.to_string();
    }
    let cut: String = text.chars().take(EXCERPT_MAX).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_quoted_and_content_warnings_kept_closed() {
        assert_eq!(quote("", "hello\nworld"), "> hello\n> world\n");
        assert_eq!(
            quote("spoilers", "the butler did it"),
            "> Content warning: spoilers\n"
        );
        let long = "x".repeat(EXCERPT_MAX + 10);
        let quoted = quote("", &long);
        assert_eq!(quoted.chars().count(), 2 + EXCERPT_MAX + 1 + 1);
        assert!(quoted.ends_with("…\n"));
    }
}
