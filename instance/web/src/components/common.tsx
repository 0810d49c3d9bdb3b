import { useEffect, useState, type ReactNode } from "react";
import { navigate } from "../lib/router";

/** An API failure in words, announced to screen readers. */
export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  const text = error instanceof Error ? error.message : String(error);
  return (
    <div className="error" role="alert">
      <span>{text}</span>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      {label}
    </p>
  );
}

/** An in-app link: a real `<a href>` (so it opens in a new tab too) routed without a reload. */
export function Link({ to, children, className, ...rest }: { to: string; children: ReactNode; className?: string; "aria-label"?: string; "aria-current"?: "page" | undefined }) {
  return (
    <a
      href={to}
      className={className}
      {...rest}
      onClick={(e) => {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}

/** Loads `load()` on mount and whenever `deps` change; `reload` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): { data: T | undefined; error: unknown; loading: boolean; reload: () => void; setData: (f: (d: T | undefined) => T | undefined) => void } {
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    setError(null);
    load().then(
      (d) => {
        if (!live) return;
        setDataState(d);
        setLoading(false);
      },
      (e) => {
        if (!live) return;
        setError(e);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, n]);
  return { data, error, loading, reload: () => setN((x) => x + 1), setData: setDataState };
}

export function relativeTime(iso: string, now = Date.now()): string {
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return new Date(iso).toLocaleDateString();
}

/** An avatar; one that fails to load (a default image that is not served) becomes a tile. */
export function Avatar({ src, alt = "", size = 40, className = "avatar" }: { src: string; alt?: string; size?: number; className?: string }) {
  const [broken, setBroken] = useState(false);
  if (broken || !src) return <span className={`${className} avatar-missing`} style={{ width: size, height: size }} role={alt ? "img" : undefined} aria-label={alt || undefined} />;
  return <img className={className} src={src} alt={alt} width={size} height={size} onError={() => setBroken(true)} />;
}

/** Display names are plain text here: only `content` and `note` are rendered as HTML. */
export function displayName(a: { display_name: string; username: string }): string {
  return a.display_name.trim() || a.username;
}
