//! E-mail: the rows requests leave in `outgoing_mail` (in the transaction of what the mail is
//! about), sent through SMTP with lettre on the mailers queue. What is mailed: e-mail
//! confirmations (`api::accounts::registration`), password resets
//! (`api::oauth::password_reset`) and notifications (`notifications`).
//!
//! Each row is sent under its row lock and marked sent in the same transaction, so a
//! retried or duplicated job finds it sent and does nothing; the one window left is a
//! worker dying between the SMTP server accepting the message and the commit, where the
//! message goes again (SMTP offers nothing better; the fixed Message-ID lets receivers
//! drop the copy). A sweep re-queues rows whose job was lost (enqueued after the commit,
//! with Redis down).

pub mod notifications;

use std::time::Duration;

use fedi_config::{SmtpConfig, SmtpTls};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::jobs::{JobError, Queue, Registry};
use crate::state::AppState;

pub const DELIVER: &str = "mail.deliver";
pub const SWEEP: &str = "mail.sweep";

/// A connection or an SMTP dialogue taking longer is a failure, retried later.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows older than this and still unsent have lost their job (jobs are queued at once).
const SWEEP_AFTER: &str = "10 minutes";

/// Mail a day late is still worth sending; beyond that (about 7 hours of back-off), the
/// job is dead and an admin can retry it.
const MAX_RETRIES: u32 = 10;
/// How often the sweep looks for rows whose job was lost.
const SWEEP_EVERY: Duration = Duration::from_secs(300);

pub fn register(r: &mut Registry) {
    r.register(DELIVER, MAX_RETRIES, |state, args| async move {
        let job: Deliver = crate::jobs::args(args)?;
        deliver(&state, job.id).await.map(drop)
    });
    r.register(SWEEP, 3, |state, _| async move { sweep(&state).await });
    r.periodic(SWEEP, SWEEP_EVERY);
}

/// Job arguments of a delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deliver {
    pub id: i64,
}

/// Writes a mail to send in `tx`, the transaction of what it is about; returns its id, for
/// [`enqueue`] once `tx` committed.
pub async fn queue(
    tx: &mut sqlx::PgConnection,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO outgoing_mail (to_address, subject, body_text) VALUES ($1, $2, $3) \
         RETURNING id",
    )
    .bind(to)
    .bind(subject)
    .bind(body)
    .fetch_one(tx)
    .await
}

/// Queues the delivery of `outgoing_mail` row `id`; call it after the row's transaction
/// committed. A failure is logged: the sweep sends the row later.
pub async fn enqueue(state: &AppState, id: i64) {
    let args = serde_json::json!(Deliver { id });
    if let Err(e) = crate::jobs::enqueue(state, Queue::Mailers, DELIVER, args).await {
        warn!(error = %e, mail = id, "cannot queue an e-mail; the sweep will send it");
    }
}

/// What a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Sent,
    /// Sent before (a retried or duplicated job), failed for good, or being sent by another
    /// worker right now.
    Nothing,
}

#[derive(sqlx::FromRow)]
struct Row {
    to_address: String,
    subject: String,
    body_text: String,
}

/// Sends row `id` unless it was sent already.
pub async fn deliver(state: &AppState, id: i64) -> Result<Delivered, JobError> {
    let Some(smtp) = state.config.smtp.as_ref() else {
        return Err(JobError::permanent(anyhow::anyhow!(
            "SMTP is not configured (FEDI_SMTP_HOST): e-mail cannot be sent"
        )));
    };
    let mut tx = state.db.begin().await?;
    // SKIP LOCKED: a duplicate job running at the same time leaves the row to its twin.
    let row: Option<Row> = sqlx::query_as(
        "SELECT to_address, subject, body_text FROM outgoing_mail \
         WHERE id = $1 AND sent_at IS NULL AND failed_at IS NULL FOR UPDATE SKIP LOCKED",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Delivered::Nothing);
    };
    let message = match message(state, smtp, id, &row) {
        Ok(m) => m,
        Err(e) => {
            // Nothing will ever make this row sendable: recorded, so the sweep skips it.
            fail(&mut tx, id, &e).await?;
            tx.commit().await?;
            return Err(JobError::permanent(e));
        }
    };
    match transport(smtp)?.send(message).await {
        Ok(_) => {}
        Err(e) if e.is_permanent() => {
            let e = anyhow::anyhow!("the SMTP server refused the message: {e}");
            fail(&mut tx, id, &e).await?;
            tx.commit().await?;
            return Err(JobError::permanent(e));
        }
        Err(e) => return Err(JobError::retry(anyhow::anyhow!("SMTP: {e}"))),
    }
    // The body may hold a one-time secret (a confirmation link): not kept once sent.
    sqlx::query("UPDATE outgoing_mail SET sent_at = now(), body_text = '' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    info!(mail = id, "e-mail sent");
    Ok(Delivered::Sent)
}

async fn fail(
    tx: &mut sqlx::PgTransaction<'_>,
    id: i64,
    e: &anyhow::Error,
) -> Result<(), sqlx::Error> {
    warn!(mail = id, error = %e, "e-mail cannot be sent");
    sqlx::query("UPDATE outgoing_mail SET failed_at = now(), error = $2 WHERE id = $1")
        .bind(id)
        .bind(format!("{e:#}").chars().take(2000).collect::<String>())
        .execute(&mut **tx)
        .await
        .map(drop)
}

fn message(state: &AppState, smtp: &SmtpConfig, id: i64, row: &Row) -> anyhow::Result<Message> {
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|e| anyhow::anyhow!("FEDI_SMTP_FROM is not an address: {e}"))?;
    let to: Mailbox = row
        .to_address
        .parse()
        .map_err(|e| anyhow::anyhow!("the recipient is not an address: {e}"))?;
    Ok(Message::builder()
        .from(from)
        .to(to)
        .subject(row.subject.as_str())
        // Fixed per row: a copy sent again after a crash is recognisably the same message.
        .message_id(Some(format!("<mail-{id}@{}>", state.config.domain)))
        .header(ContentType::TEXT_PLAIN)
        .body(row.body_text.clone())?)
}

fn transport(smtp: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, JobError> {
    type T = AsyncSmtpTransport<Tokio1Executor>;
    let builder = match smtp.tls {
        // Only for a relay on the same host or network (and the test sink).
        SmtpTls::None => T::builder_dangerous(&smtp.host),
        SmtpTls::StartTls => T::starttls_relay(&smtp.host).map_err(JobError::permanent)?,
        SmtpTls::Tls => T::relay(&smtp.host).map_err(JobError::permanent)?,
    };
    let mut builder = builder.port(smtp.port).timeout(Some(SMTP_TIMEOUT));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

/// A row the sweep queued is not queued again for this long: its job may be retrying with
/// back-off (SMTP down), and one job per row is enough.
const SWEPT_FOR: Duration = Duration::from_secs(6 * 3600);

/// Queues a delivery for every row left unsent for a while.
pub async fn sweep(state: &AppState) -> Result<(), JobError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM outgoing_mail WHERE sent_at IS NULL AND failed_at IS NULL \
           AND created_at < now() - $1::interval ORDER BY id LIMIT 1000",
    )
    .bind(SWEEP_AFTER)
    .fetch_all(state.db.primary())
    .await?;
    for id in ids {
        let marker = state.redis.keys().key(&format!("mail:swept:{id}"));
        if !state.redis.set_ex(&marker, "1", SWEPT_FOR, true).await? {
            continue;
        }
        crate::jobs::enqueue(
            state,
            Queue::Mailers,
            DELIVER,
            serde_json::json!(Deliver { id }),
        )
        .await?;
    }
    Ok(())
}
