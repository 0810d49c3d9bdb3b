import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Client } from "./api/client";
import type { Account, Instance, Marker, Notification, Status } from "./api/types";
import { ErrorBox, Link, Loading } from "./components/common";
import { Compose, type ComposeHandle } from "./components/Compose";
import { Timeline } from "./components/Timeline";
import { SessionContext, useSession, type ComposeTarget, type Session } from "./context";
import { beginSignIn, completeSignIn, signOut, storedToken } from "./lib/auth";
import { match, navigate, useLocation } from "./lib/router";
import { StreamClient } from "./lib/stream";
import { EditProfile } from "./views/EditProfile";
import { Notifications } from "./views/Notifications";
import { Follows, Profile } from "./views/Profile";
import { Search } from "./views/Search";
import { SignUp } from "./views/SignUp";
import { Thread } from "./views/Thread";

/** The API is the origin the client is served from, as with Mastodon's own web client. */
const API_BASE = location.origin;

let callback: Promise<string> | undefined;

const isOwn = (me: Account | null) => (s: Status) => me !== null && s.account.id === me.id;

export function App() {
  const [token, setToken] = useState(storedToken);
  const client = useMemo(() => new Client(API_BASE, token), [token]);
  const [instance, setInstance] = useState<Instance | null>(null);
  const [me, setMe] = useState<Account | null>(null);
  const [fatal, setFatal] = useState<unknown>(null);
  const [unread, setUnreadState] = useState(0);
  const [stream, setStream] = useState<StreamClient | null>(null);
  const [live, setLive] = useState(false);
  // Phones show the composer on demand; desktops always.
  const [composeOpen, setComposeOpen] = useState(false);
  const [toast, setToast] = useState("");
  useEffect(() => {
    if (!toast) return;
    const t = setTimeout(() => setToast(""), 5000);
    return () => clearTimeout(t);
  }, [toast]);
  const loc = useLocation();
  const composeRef = useRef<ComposeHandle>(null);
  const setUnread = useCallback((f: (n: number) => number) => setUnreadState(f), []);

  // Instance, then the signed-in account; an invalid token signs out instead of failing.
  useEffect(() => {
    let live = true;
    (async () => {
      try {
        const inst = await client.get<Instance>("/api/v2/instance");
        if (!live) return;
        setInstance(inst);
        if (loc.path === "/oauth-callback") {
          // Once per page load: the code and the verifier are single-use.
          callback ??= completeSignIn(client, loc.query);
          const t = await callback;
          navigate("/", true);
          setToken(t);
          return;
        }
        if (token) {
          try {
            const account = await client.get<Account>("/api/v1/accounts/verify_credentials");
            if (live) setMe(account);
          } catch (e) {
            if ((e as { status?: number }).status === 401) {
              localStorage.removeItem("fedi.token");
              setToken(null);
            } else throw e;
          }
        }
      } catch (e) {
        if (live) setFatal(e);
      }
    })();
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client]);

  useEffect(() => {
    if (!me || !token || !instance) return;
    const bases = [instance.configuration.urls?.streaming, API_BASE].filter((b): b is string => !!b);
    const s = new StreamClient(bases, token);
    s.onStateChange = setLive;
    setStream(s);
    return () => {
      s.close();
      setStream(null);
    };
  }, [me?.id, token, instance]); // eslint-disable-line react-hooks/exhaustive-deps

  // Unread notifications: those newer than the shared marker, then counted live.
  useEffect(() => {
    if (!me) return;
    (async () => {
      try {
        const markers = await client.get<Record<string, Marker>>("/api/v1/markers", { timeline: ["notifications"] });
        const since = markers.notifications?.last_read_id;
        const list = await client.get<Notification[]>("/api/v1/notifications", { limit: 40, since_id: since });
        setUnreadState(list.length);
      } catch {
        // Counting is a courtesy: the notifications page shows any real error.
      }
    })();
  }, [me?.id, client]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    if (!stream) return;
    return stream.subscribe({ stream: "user" }, (e) => {
      if (e.event === "notification" && location.pathname !== "/notifications") setUnreadState((n) => n + 1);
    });
  }, [stream]);

  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) ${instance?.title ?? ""}` : (instance?.title ?? "");
  }, [unread, instance]);

  if (fatal) return <main className="single"><ErrorBox error={fatal} onRetry={() => location.reload()} /></main>;
  if (!instance || (token && !me && loc.path !== "/oauth-callback")) return <main className="single"><Loading /></main>;

  const session: Session = {
    client,
    instance,
    me,
    setMe,
    stream,
    unread,
    setUnread,
    compose: (t: ComposeTarget) => {
      setComposeOpen(true);
      composeRef.current?.open(t);
    },
  };

  if (!me) {
    return (
      <SessionContext.Provider value={session}>
        <main className="single" id="main">
          {loc.path === "/signup" ? <SignUp /> : <Welcome />}
        </main>
      </SessionContext.Provider>
    );
  }

  const page = route(loc.path, loc.query, me);
  return (
    <SessionContext.Provider value={session}>
      <a href="#main" className="skip">Skip to content</a>
      <div className="layout">
        <header className="nav">
          <nav aria-label="Main">
            <button type="button" className="compose-toggle" aria-expanded={composeOpen} aria-controls="compose" onClick={() => (composeOpen ? setComposeOpen(false) : session.compose({}))}>
              {composeOpen ? "Close composer" : "New post"}
            </button>
            <Link to="/" aria-current={loc.path === "/" ? "page" : undefined}>Home</Link>
            <Link to="/notifications" aria-current={loc.path === "/notifications" ? "page" : undefined} aria-label={unread ? `Notifications, ${unread} unread` : "Notifications"}>
              Notifications{unread > 0 && <span className="unread" aria-hidden="true">{unread}</span>}
            </Link>
            <Link to="/public/local" aria-current={loc.path === "/public/local" ? "page" : undefined}>Local</Link>
            <Link to="/public" aria-current={loc.path === "/public" ? "page" : undefined}>Federated</Link>
            <Link to="/search" aria-current={loc.path === "/search" ? "page" : undefined}>Search</Link>
            <Link to={`/@${me.acct}`}>Profile</Link>
            <button
              type="button"
              onClick={async () => {
                try {
                  await signOut(client);
                } finally {
                  setMe(null);
                  setToken(null);
                  navigate("/", true);
                }
              }}
            >
              Sign out
            </button>
          </nav>
          <p className="live" role="status">{live ? "Live" : "Not live"}</p>
        </header>
        <aside className={composeOpen ? "side open" : "side"} id="compose" aria-label="Compose">
          <Compose
            ref={composeRef}
            onDone={(message) => {
              setComposeOpen(false);
              setToast(message);
            }}
          />
        </aside>
        <main id="main" tabIndex={-1}>
          <p className="toast" role="status">{toast}</p>
          {page}
        </main>
      </div>
    </SessionContext.Provider>
  );
}

function route(path: string, query: URLSearchParams, me: Account) {
  let m: Record<string, string> | null;
  if (path === "/" || path === "/home") return <Page title="Home"><Timeline key="home" path="/api/v1/timelines/home" stream={{ stream: "user" }} label="Home timeline" acceptOwn={isOwn(me)} /></Page>;
  if (path === "/public/local") return <Page title="Local"><Timeline key="local" path="/api/v1/timelines/public" query={{ local: true }} stream={{ stream: "public:local" }} label="Local timeline" /></Page>;
  if (path === "/public") return <Page title="Federated"><Timeline key="public" path="/api/v1/timelines/public" stream={{ stream: "public" }} label="Federated timeline" /></Page>;
  if ((m = match("/tags/:tag", path))) return <Page title={`#${m.tag}`}><Timeline key={`tag-${m.tag}`} path={`/api/v1/timelines/tag/${encodeURIComponent(m.tag)}`} stream={{ stream: "hashtag", tag: m.tag }} label={`Posts tagged ${m.tag}`} /></Page>;
  if ((m = match("/statuses/:id", path))) return <Thread key={m.id} id={m.id} />;
  if (path === "/notifications") return <Notifications />;
  if (path === "/search") return <Search key={query.get("q") ?? ""} q={query.get("q") ?? ""} />;
  if (path === "/settings/profile") return <EditProfile />;
  if ((m = match("/:acct/followers", path)) && m.acct.startsWith("@")) return <Follows key={m.acct} acct={m.acct.slice(1)} which="followers" />;
  if ((m = match("/:acct/following", path)) && m.acct.startsWith("@")) return <Follows key={m.acct} acct={m.acct.slice(1)} which="following" />;
  if ((m = match("/:acct", path)) && m.acct.startsWith("@")) return <Profile key={m.acct} acct={m.acct.slice(1)} />;
  return <p className="empty">This page does not exist. <Link to="/">Go home</Link></p>;
}

function Page({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <>
      <h1 className="page-title">{title}</h1>
      {children}
    </>
  );
}

function Welcome() {
  const { client, instance } = useSession();
  const [error, setError] = useState<unknown>(null);
  return (
    <section className="welcome">
      <h1>{instance.title || instance.domain}</h1>
      {instance.description && <p>{instance.description}</p>}
      <div className="actions">
        <button
          type="button"
          className="primary"
          onClick={() => beginSignIn(client).catch(setError)}
        >
          Sign in
        </button>
        {instance.registrations.enabled && <Link to="/signup" className="button">Create account</Link>}
      </div>
      <ErrorBox error={error} />
    </section>
  );
}
