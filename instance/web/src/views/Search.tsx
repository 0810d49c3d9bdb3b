import { useState } from "react";
import { ApiError } from "../api/client";
import type { SearchResults, Status } from "../api/types";
import { ErrorBox, Link, Loading, useLoad } from "../components/common";
import { StatusCard } from "../components/StatusCard";
import { useSession } from "../context";
import { navigate } from "../lib/router";
import { AccountRow } from "./Profile";

export function Search({ q }: { q: string }) {
  const { client } = useSession();
  const [input, setInput] = useState(q);
  const { data, error, loading, setData } = useLoad(async () => (q ? client.get<SearchResults>("/api/v2/search", { q, resolve: true, limit: 20 }) : null), [q]);
  const change = (s: Status) => setData((d) => d && { ...d, statuses: d.statuses.map((x) => (x.id === s.id ? s : x)) });
  const remove = (id: string) => setData((d) => d && { ...d, statuses: d.statuses.filter((x) => x.id !== id) });
  return (
    <section aria-label="Search" className="search">
      <form
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(`/search?q=${encodeURIComponent(input.trim())}`);
        }}
      >
        <input type="search" aria-label="Search for people, hashtags and posts" placeholder="Search people, #hashtags, posts" value={input} onChange={(e) => setInput(e.target.value)} />
        <button type="submit">Search</button>
      </form>
      <ErrorBox error={error instanceof ApiError && error.status === 404 ? new Error("This server does not offer search (the search API answered: not found).") : error} />
      {q && loading && <Loading label="Searching…" />}
      {data && (
        <>
          <h2>People</h2>
          {data.accounts.length === 0 ? <p className="empty">No people found.</p> : data.accounts.map((a) => <AccountRow key={a.id} account={a} />)}
          <h2>Hashtags</h2>
          {data.hashtags.length === 0 ? (
            <p className="empty">No hashtags found.</p>
          ) : (
            <ul className="tags">
              {data.hashtags.map((t) => (
                <li key={t.name}>
                  <Link to={`/tags/${encodeURIComponent(t.name)}`}>#{t.name}</Link>
                </li>
              ))}
            </ul>
          )}
          <h2>Posts</h2>
          {data.statuses.length === 0 ? <p className="empty">No posts found.</p> : data.statuses.map((s) => <StatusCard key={s.id} status={s} onChange={change} onDelete={remove} />)}
        </>
      )}
    </section>
  );
}
