import { useState } from "react";
import type { Account, Relationship } from "../api/types";
import { Avatar, displayName, ErrorBox, Link, Loading, useLoad } from "../components/common";
import { profilePath } from "../components/StatusCard";
import { Timeline } from "../components/Timeline";
import { useSession } from "../context";

function useAccount(acct: string) {
  const { client } = useSession();
  return useLoad(() => client.get<Account>("/api/v1/accounts/lookup", { acct }), [acct]);
}

export function AccountRow({ account }: { account: Account }) {
  return (
    <Link to={profilePath(account.acct)} className="account-row">
      <Avatar src={account.avatar} />
      <span>
        <strong>{displayName(account)}</strong> <span className="acct">@{account.acct}</span>
      </span>
    </Link>
  );
}

function FollowButton({ account }: { account: Account }) {
  const { client, me } = useSession();
  const { data: rel, error, setData } = useLoad(async () => (await client.get<Relationship[]>("/api/v1/accounts/relationships", { id: [account.id] }))[0], [account.id]);
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  if (!me || me.id === account.id) return null;
  if (error) return <ErrorBox error={error} />;
  if (!rel) return null;
  const following = rel.following || rel.requested;
  const toggle = async () => {
    setBusy(true);
    setActionError(null);
    try {
      const r = await client.post<Relationship>(`/api/v1/accounts/${account.id}/${following ? "unfollow" : "follow"}`);
      setData(() => r);
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" className={following ? "" : "primary"} disabled={busy} onClick={toggle}>
        {rel.requested ? "Cancel follow request" : rel.following ? "Unfollow" : "Follow"}
      </button>
      {rel.followed_by && <span className="badge">Follows you</span>}
      <ErrorBox error={actionError} />
    </>
  );
}

export function Profile({ acct }: { acct: string }) {
  const { me } = useSession();
  const { data: account, error, reload } = useAccount(acct);
  if (error) return <ErrorBox error={error} onRetry={reload} />;
  if (!account) return <Loading />;
  return (
    <>
      <section className="profile" aria-label={`Profile of ${displayName(account)}`}>
        {account.header && !account.header.endsWith("missing.png") && <img className="header" src={account.header} alt="" />}
        <div className="profile-head">
          <Avatar className="avatar big" src={account.avatar} alt={`Avatar of ${displayName(account)}`} size={80} />
          <div>
            <h1>{displayName(account)}</h1>
            <p className="acct">@{account.acct}{account.locked ? " · approves followers" : ""}{account.bot ? " · automated" : ""}</p>
          </div>
          <div className="profile-actions">
            {me?.id === account.id ? <Link to="/settings/profile">Edit profile</Link> : <FollowButton key={account.id} account={account} />}
          </div>
        </div>
        <div className="content note" dangerouslySetInnerHTML={{ __html: account.note }} />
        {account.fields.length > 0 && (
          <dl className="fields">
            {account.fields.map((f, i) => (
              <div key={i}>
                <dt>{f.name}</dt>
                {/* Field values are HTML from the server, but not `content`/`note`: shown as text. */}
                <dd>{new DOMParser().parseFromString(f.value, "text/html").body.textContent}</dd>
              </div>
            ))}
          </dl>
        )}
        <nav className="counts" aria-label="Profile lists">
          <span>{account.statuses_count} posts</span>
          <Link to={`${profilePath(account.acct)}/following`}>{account.following_count} following</Link>
          <Link to={`${profilePath(account.acct)}/followers`}>{account.followers_count} followers</Link>
        </nav>
      </section>
      <Timeline key={account.id} path={`/api/v1/accounts/${account.id}/statuses`} label={`Posts by ${displayName(account)}`} acceptOwn={me?.id === account.id ? (s) => s.account.id === account.id : undefined} />
    </>
  );
}

export function Follows({ acct, which }: { acct: string; which: "followers" | "following" }) {
  const { client } = useSession();
  const { data: account, error } = useAccount(acct);
  const list = useLoad(async () => (account ? client.page<Account[]>(`/api/v1/accounts/${account.id}/${which}`, { limit: 40 }) : null), [account?.id, which]);
  const [extra, setExtra] = useState<Account[]>([]);
  const [next, setNext] = useState<string | null | undefined>(undefined);
  if (error || list.error) return <ErrorBox error={error || list.error} />;
  if (!account || !list.data) return <Loading />;
  const cursor = next === undefined ? list.data.next : next;
  return (
    <section aria-label={which} className="accounts">
      <h1>
        {which === "followers" ? "Followers of" : "Followed by"} <Link to={profilePath(account.acct)}>{displayName(account)}</Link>
      </h1>
      {list.data.items.length === 0 && <p className="empty">Nobody yet.</p>}
      {[...list.data.items, ...extra].map((a) => (
        <AccountRow key={a.id} account={a} />
      ))}
      {cursor && (
        <button
          type="button"
          className="more"
          onClick={async () => {
            const p = await client.page<Account[]>(cursor);
            setExtra((e) => [...e, ...p.items]);
            setNext(p.items.length ? p.next : null);
          }}
        >
          Load more
        </button>
      )}
    </section>
  );
}
