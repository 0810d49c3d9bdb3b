import { useEffect, useState } from "react";
import type { Notification, Status } from "../api/types";
import { displayName, ErrorBox, Link, Loading, relativeTime } from "../components/common";
import { profilePath, StatusCard } from "../components/StatusCard";
import { useSession } from "../context";

const WORDS: Record<string, string> = {
  mention: "mentioned you",
  status: "posted",
  reblog: "boosted your post",
  follow: "followed you",
  follow_request: "asked to follow you",
  favourite: "favourited your post",
  poll: "a poll has ended",
  update: "edited a post",
};

function FollowRequest({ id }: { id: string }) {
  const { client } = useSession();
  const [done, setDone] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const decide = async (action: "authorize" | "reject") => {
    setError(null);
    try {
      await client.post(`/api/v1/follow_requests/${id}/${action}`);
      setDone(action === "authorize" ? "Accepted." : "Rejected.");
    } catch (e) {
      setError(e);
    }
  };
  if (done) return <p role="status">{done}</p>;
  return (
    <div className="actions">
      <button type="button" className="primary" onClick={() => decide("authorize")}>
        Accept
      </button>
      <button type="button" onClick={() => decide("reject")}>
        Reject
      </button>
      <ErrorBox error={error} />
    </div>
  );
}

/** Marks everything up to `id` as read (the notifications marker, shared with other apps). */
export async function markRead(client: import("../api/client").Client, id: string) {
  await client.post("/api/v1/markers", { notifications: { last_read_id: id } });
}

export function Notifications() {
  const { client, stream, setUnread } = useSession();
  const [items, setItems] = useState<Notification[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [next, setNext] = useState<string | null>(null);

  const load = async () => {
    setError(null);
    try {
      const page = await client.page<Notification[]>("/api/v1/notifications", { limit: 30 });
      setItems(page.items);
      setNext(page.next);
      setUnread(() => 0);
      if (page.items[0]) await markRead(client, page.items[0].id);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    if (!stream) return;
    return stream.subscribe({ stream: "user" }, (e) => {
      if (e.event !== "notification") return;
      setItems((l) => (l && !l.some((n) => n.id === e.notification.id) ? [e.notification, ...l] : l));
      // The reader is looking at this page: the new one counts as read.
      setUnread(() => 0);
      markRead(client, e.notification.id).catch(() => {});
    });
  }, [stream, client, setUnread]);

  const more = async () => {
    if (!next) return;
    try {
      const page = await client.page<Notification[]>(next);
      setItems((l) => [...(l ?? []), ...page.items]);
      setNext(page.items.length ? page.next : null);
    } catch (e) {
      setError(e);
    }
  };
  const change = (s: Status) => setItems((l) => l && l.map((n) => (n.status?.id === s.id ? { ...n, status: s } : n)));
  const remove = (id: string) => setItems((l) => l && l.filter((n) => n.status?.id !== id));

  return (
    <section aria-label="Notifications" className="timeline">
      <h1>Notifications</h1>
      <ErrorBox error={error} onRetry={load} />
      {items === null && !error && <Loading />}
      {items?.length === 0 && <p className="empty">No notifications yet.</p>}
      {items?.map((n) => (
        <div key={n.id} className={`notification notification-${n.type}`}>
          <p>
            <Link to={profilePath(n.account.acct)}>{displayName(n.account)}</Link> {WORDS[n.type] ?? n.type} <time dateTime={n.created_at}>{relativeTime(n.created_at)}</time>
          </p>
          {n.type === "follow_request" && <FollowRequest id={n.account.id} />}
          {n.status && <StatusCard status={n.status} onChange={change} onDelete={remove} />}
        </div>
      ))}
      {next && items && items.length > 0 && (
        <button type="button" className="more" onClick={more}>
          Load older notifications
        </button>
      )}
    </section>
  );
}
