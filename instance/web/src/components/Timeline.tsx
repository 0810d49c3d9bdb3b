import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "../api/client";
import type { Status } from "../api/types";
import { useSession } from "../context";
import type { Subscription } from "../lib/stream";
import { ErrorBox, Loading } from "./common";
import { StatusCard } from "./StatusCard";

export const POSTED_EVENT = "fedi:posted";

/** Puts `incoming` (newest first) ahead of `list`, without duplicates. */
export function mergeNewer(list: Status[], incoming: Status[]): Status[] {
  const seen = new Set(list.map((s) => s.id));
  return [...incoming.filter((s) => !seen.has(s.id)), ...list];
}

/**
 * A paged timeline. Posts arriving over the stream wait behind a "new posts" button
 * instead of moving what the reader is looking at; the reader's own posts go in at once.
 */
export function Timeline({ path, query, stream, label, acceptOwn }: { path: string; query?: Record<string, unknown>; stream?: Subscription; label: string; acceptOwn?: (s: Status) => boolean }) {
  const { client, stream: streamClient } = useSession();
  const [items, setItems] = useState<Status[] | null>(null);
  const [pending, setPending] = useState<Status[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const key = path + JSON.stringify(query ?? {});
  const keyRef = useRef(key);
  keyRef.current = key;

  const load = useCallback(async () => {
    setError(null);
    setItems(null);
    setPending([]);
    try {
      const page = await client.page<Status[]>(path, { limit: 20, ...query });
      if (keyRef.current !== key) return;
      // Mastodon answers 206 while a home feed is being rebuilt: show what there is and look again.
      setNotice(page.status === 206 ? "Your home timeline is being prepared; it will fill in shortly." : null);
      if (page.status === 206) setTimeout(() => keyRef.current === key && load(), 3000);
      setItems(page.items);
      setNext(page.next);
    } catch (e) {
      setError(e);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, client]);

  useEffect(() => {
    load();
  }, [load]);

  useEffect(() => {
    if (!stream || !streamClient) return;
    return streamClient.subscribe(stream, (e) => {
      if (e.event === "update") setPending((p) => mergeNewer(p, [e.status]));
      else if (e.event === "delete") {
        const gone = (s: Status) => s.id !== e.id && s.reblog?.id !== e.id;
        setItems((l) => l && l.filter(gone));
        setPending((p) => p.filter(gone));
      } else if (e.event === "status.update") {
        setItems((l) => l && l.map((s) => (s.id === e.status.id ? e.status : s.reblog?.id === e.status.id ? { ...s, reblog: e.status } : s)));
      }
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [streamClient, stream?.stream, stream?.tag, stream?.list]);

  useEffect(() => {
    if (!acceptOwn) return;
    const onPosted = (ev: Event) => {
      const s = (ev as CustomEvent<Status>).detail;
      if (acceptOwn(s)) setItems((l) => (l ? mergeNewer(l, [s]) : l));
    };
    window.addEventListener(POSTED_EVENT, onPosted);
    return () => window.removeEventListener(POSTED_EVENT, onPosted);
  }, [acceptOwn]);

  const more = async () => {
    if (!next) return;
    setLoadingMore(true);
    try {
      const page = await client.page<Status[]>(next);
      setItems((l) => [...(l ?? []), ...page.items.filter((s) => !(l ?? []).some((x) => x.id === s.id))]);
      setNext(page.items.length ? page.next : null);
    } catch (e) {
      setError(e);
    } finally {
      setLoadingMore(false);
    }
  };

  const change = (s: Status) => setItems((l) => l && l.map((x) => (x.id === s.id ? s : x)));
  const remove = (id: string) => setItems((l) => l && l.filter((x) => x.id !== id && x.reblog?.id !== id));

  return (
    <section aria-label={label} className="timeline">
      {pending.length > 0 && (
        <button
          type="button"
          className="new-posts"
          aria-live="polite"
          onClick={() => {
            setItems((l) => mergeNewer(l ?? [], pending));
            setPending([]);
            window.scrollTo(0, 0);
          }}
        >
          {pending.length === 1 ? "1 new post" : `${pending.length} new posts`}
        </button>
      )}
      {notice && <p className="notice" role="status">{notice}</p>}
      <ErrorBox error={error} onRetry={error instanceof ApiError && error.status === 401 ? undefined : load} />
      {items === null && !error && <Loading />}
      {items && items.length === 0 && <p className="empty">Nothing here yet.</p>}
      {items?.map((s) => <StatusCard key={s.id} status={s} onChange={change} onDelete={remove} />)}
      {next && items && items.length > 0 && (
        <button type="button" className="more" disabled={loadingMore} onClick={more}>
          {loadingMore ? "Loading…" : "Load older posts"}
        </button>
      )}
    </section>
  );
}
