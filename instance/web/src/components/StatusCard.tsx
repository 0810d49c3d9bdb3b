import { useState, type MouseEvent } from "react";
import type { MediaAttachment, Poll, Status } from "../api/types";
import { useSession } from "../context";
import { navigate } from "../lib/router";
import { Avatar, displayName, ErrorBox, Link, relativeTime } from "./common";

export function profilePath(acct: string): string {
  return `/@${acct}`;
}

/**
 * Links inside server-rendered content that point at a mention or hashtag open in the app;
 * everything else keeps the server's `target="_blank"`.
 */
function onContentClick(e: MouseEvent<HTMLDivElement>, status: Status) {
  const a = (e.target as HTMLElement).closest("a");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey) return;
  const href = a.getAttribute("href") ?? "";
  const mention = status.mentions.find((m) => m.url === href);
  if (mention) {
    e.preventDefault();
    navigate(profilePath(mention.acct));
    return;
  }
  const tag = status.tags.find((t) => t.url === href) ?? (a.classList.contains("hashtag") ? { name: a.textContent?.replace(/^#/, "") ?? "" } : null);
  if (tag && tag.name) {
    e.preventDefault();
    navigate(`/tags/${encodeURIComponent(tag.name.toLowerCase())}`);
  }
}

export function Media({ items, sensitive }: { items: MediaAttachment[]; sensitive: boolean }) {
  const [shown, setShown] = useState(!sensitive);
  if (items.length === 0) return null;
  if (!shown)
    return (
      <button type="button" className="media-hidden" onClick={() => setShown(true)}>
        Sensitive media ({items.length}) — show
      </button>
    );
  return (
    <div className={`media media-${Math.min(items.length, 4)}`}>
      {items.map((m) => {
        const alt = m.description ?? "";
        if (!m.url) return <div key={m.id} className="media-processing" role="status">Media is still being processed…</div>;
        if (m.type === "video" || m.type === "gifv")
          return <video key={m.id} src={m.url} controls={m.type === "video"} autoPlay={m.type === "gifv"} loop={m.type === "gifv"} muted={m.type === "gifv"} aria-label={alt || "Video without a description"} title={alt} />;
        if (m.type === "audio") return <audio key={m.id} src={m.url} controls aria-label={alt || "Audio without a description"} />;
        return (
          <a key={m.id} href={m.url} target="_blank" rel="noopener noreferrer">
            <img src={m.preview_url ?? m.url} alt={alt} title={alt} loading="lazy" />
            {alt && <span className="alt-badge" aria-hidden="true">ALT</span>}
          </a>
        );
      })}
    </div>
  );
}

function PollView({ poll, onChange }: { poll: Poll; onChange: (p: Poll) => void }) {
  const { client, me } = useSession();
  const [choices, setChoices] = useState<number[]>([]);
  const [error, setError] = useState<unknown>(null);
  const total = poll.votes_count || 0;
  const canVote = me && !poll.expired && !poll.voted;
  if (!canVote)
    return (
      <ul className="poll" aria-label="Poll results">
        {poll.options.map((o, i) => {
          const pct = total ? Math.round(((o.votes_count ?? 0) * 100) / total) : 0;
          return (
            <li key={i}>
              <span className="bar" style={{ width: `${pct}%` }} aria-hidden="true" />
              <span>
                {pct}% {o.title} {poll.own_votes?.includes(i) ? "(your vote)" : ""}
              </span>
            </li>
          );
        })}
        <li className="meta">
          {total} votes{poll.expired ? " · closed" : poll.expires_at ? ` · ends ${new Date(poll.expires_at).toLocaleString()}` : ""}
        </li>
      </ul>
    );
  const vote = async () => {
    setError(null);
    try {
      onChange(await client.post<Poll>(`/api/v1/polls/${poll.id}/votes`, { choices: choices.map(String) }));
    } catch (e) {
      setError(e);
    }
  };
  return (
    <fieldset className="poll">
      <legend>Poll{poll.multiple ? " (choose any)" : ""}</legend>
      {poll.options.map((o, i) => (
        <label key={i}>
          <input
            type={poll.multiple ? "checkbox" : "radio"}
            name={`poll-${poll.id}`}
            checked={choices.includes(i)}
            onChange={(e) => setChoices(poll.multiple ? (e.target.checked ? [...choices, i] : choices.filter((c) => c !== i)) : [i])}
          />{" "}
          {o.title}
        </label>
      ))}
      <button type="button" disabled={choices.length === 0} onClick={vote}>
        Vote
      </button>
      <ErrorBox error={error} />
    </fieldset>
  );
}

const VISIBILITY_WORDS = { public: "Public", unlisted: "Unlisted", private: "Followers only", direct: "Mentioned people only" };

export function StatusCard({ status: outer, onChange, onDelete, focused }: { status: Status; onChange: (s: Status) => void; onDelete: (id: string) => void; focused?: boolean }) {
  const { client, me, compose } = useSession();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [showCw, setShowCw] = useState(false);
  const s = outer.reblog ?? outer;
  const own = me !== null && s.account.id === me.id;
  const update = (inner: Status) => onChange(outer.reblog ? { ...outer, reblog: inner } : inner);

  const act = async (path: string, after?: (r: Status) => Status) => {
    setBusy(true);
    setError(null);
    try {
      const r = await client.post<Status>(`/api/v1/statuses/${s.id}/${path}`);
      update(after ? after(r) : r);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const remove = async () => {
    if (!confirm("Delete this post?")) return;
    setError(null);
    try {
      await client.delete(`/api/v1/statuses/${s.id}`);
      onDelete(s.id);
    } catch (e) {
      setError(e);
    }
  };

  return (
    <article className={`status${focused ? " focused" : ""}`} aria-label={`Post by ${displayName(s.account)}`} data-status-id={s.id}>
      {outer.reblog && (
        <p className="boosted-by">
          <Link to={profilePath(outer.account.acct)}>{displayName(outer.account)}</Link> boosted
        </p>
      )}
      <header>
        <Link to={profilePath(s.account.acct)} className="author">
          <Avatar src={s.account.avatar} />
          <span>
            <strong>{displayName(s.account)}</strong> <span className="acct">@{s.account.acct}</span>
          </span>
        </Link>
        <Link to={`/statuses/${s.id}`} className="time" aria-label={`Open thread, posted ${new Date(s.created_at).toLocaleString()}`}>
          <time dateTime={s.created_at}>{relativeTime(s.created_at)}</time>
          {s.edited_at ? " · edited" : ""}
        </Link>
      </header>
      {s.spoiler_text ? (
        <div className="cw">
          <p>
            <strong>Content warning:</strong> {s.spoiler_text}{" "}
            <button type="button" aria-expanded={showCw} onClick={() => setShowCw(!showCw)}>
              {showCw ? "Hide" : "Show"}
            </button>
          </p>
        </div>
      ) : null}
      {(!s.spoiler_text || showCw) && (
        <>
          <div className="content" lang={s.language ?? undefined} onClick={(e) => onContentClick(e, s)} dangerouslySetInnerHTML={{ __html: s.content }} />
          <Media items={s.media_attachments} sensitive={s.sensitive && !s.spoiler_text} />
          {s.poll && <PollView poll={s.poll} onChange={(p) => update({ ...s, poll: p })} />}
        </>
      )}
      <p className="meta">{VISIBILITY_WORDS[s.visibility] ?? s.visibility}</p>
      {me && (
        <div className="actions" role="group" aria-label="Actions">
          <button type="button" onClick={() => compose({ replyTo: s })} aria-label={`Reply (${s.replies_count})`}>
            Reply {s.replies_count || ""}
          </button>
          <button type="button" disabled={busy || s.visibility === "private" || s.visibility === "direct"} aria-pressed={!!s.reblogged} onClick={() => act(s.reblogged ? "unreblog" : "reblog", (r) => r.reblog ?? r)}>
            {s.reblogged ? "Boosted" : "Boost"} {s.reblogs_count || ""}
          </button>
          <button type="button" disabled={busy} aria-pressed={!!s.favourited} onClick={() => act(s.favourited ? "unfavourite" : "favourite")}>
            {s.favourited ? "Favourited" : "Favourite"} {s.favourites_count || ""}
          </button>
          <button type="button" disabled={busy} aria-pressed={!!s.bookmarked} onClick={() => act(s.bookmarked ? "unbookmark" : "bookmark")}>
            {s.bookmarked ? "Bookmarked" : "Bookmark"}
          </button>
          {own && (
            <>
              <button type="button" onClick={() => compose({ edit: s })}>
                Edit
              </button>
              <button type="button" className="danger" onClick={remove}>
                Delete
              </button>
            </>
          )}
        </div>
      )}
      <ErrorBox error={error} />
    </article>
  );
}
