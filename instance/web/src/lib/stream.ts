// The streaming API over one multiplexed WebSocket (`/api/v1/streaming`), as Mastodon's
// documentation describes it: subscribe messages out, `{stream, event, payload}` frames in,
// where `payload` is JSON encoded into a string except for `delete` (a bare id).

import type { Notification, Status } from "../api/types";

export type StreamEvent =
  | { stream: string[]; event: "update"; status: Status }
  | { stream: string[]; event: "status.update"; status: Status }
  | { stream: string[]; event: "delete"; id: string }
  | { stream: string[]; event: "notification"; notification: Notification }
  | { stream: string[]; event: "other"; name: string };

/** One WebSocket frame as an event; null for frames that are not events (errors, pings). */
export function parseStreamMessage(data: string): StreamEvent | null {
  let frame: unknown;
  try {
    frame = JSON.parse(data);
  } catch {
    return null;
  }
  if (!frame || typeof frame !== "object") return null;
  const f = frame as { stream?: unknown; event?: unknown; payload?: unknown };
  if (typeof f.event !== "string") return null;
  const stream = Array.isArray(f.stream) ? f.stream.map(String) : [];
  const decode = (): unknown => {
    if (typeof f.payload !== "string") return f.payload;
    try {
      return JSON.parse(f.payload);
    } catch {
      return undefined;
    }
  };
  switch (f.event) {
    case "update":
    case "status.update": {
      const status = decode() as Status | undefined;
      if (!status || typeof status !== "object" || typeof status.id !== "string") return null;
      return { stream, event: f.event, status };
    }
    case "delete": {
      const id = typeof f.payload === "string" ? f.payload : String(f.payload ?? "");
      return id ? { stream, event: "delete", id } : null;
    }
    case "notification": {
      const notification = decode() as Notification | undefined;
      if (!notification || typeof notification !== "object" || typeof notification.id !== "string") return null;
      return { stream, event: "notification", notification };
    }
    default:
      return { stream, event: "other", name: f.event };
  }
}

export interface Subscription {
  stream: string;
  tag?: string;
  list?: string;
}

/** The key a frame's `stream` array and a subscription share: `hashtag:x`, `user`. */
export function streamKey(s: Subscription | string[]): string {
  if (Array.isArray(s)) return s.join(":");
  return [s.stream, s.tag ?? s.list].filter(Boolean).join(":");
}

/** `wss://host` → `wss://host/api/v1/streaming`; an `http(s)` base becomes `ws(s)`. */
export function streamingUrl(base: string): string {
  const u = new URL(base);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  u.pathname = u.pathname.replace(/\/+$/, "") + "/api/v1/streaming";
  return u.toString();
}

type Listener = (e: StreamEvent) => void;

const WORKED_KEY = "fedi.streaming";

/**
 * One connection shared by every view, reconnecting with backoff. Tries the instance's
 * advertised streaming URL first and, if it cannot be opened, the page's own origin.
 */
export class StreamClient {
  private ws: WebSocket | null = null;
  private listeners = new Map<string, { sub: Subscription; fns: Set<Listener> }>();
  private candidates: string[];
  private attempt = 0;
  private closed = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  onStateChange: (connected: boolean) => void = () => {};

  constructor(
    bases: string[],
    private token: string,
  ) {
    // The URL that worked last time goes first (an advertised URL may be unreachable from
    // here, as on a development machine; the page's origin then serves the stream).
    const known = sessionStorage.getItem(WORKED_KEY);
    const all = [...new Set(bases.map(streamingUrl))];
    this.candidates = known && all.includes(known) ? [known, ...all.filter((u) => u !== known)] : all;
    this.connect();
  }

  subscribe(sub: Subscription, fn: Listener): () => void {
    const key = streamKey(sub);
    let entry = this.listeners.get(key);
    if (!entry) {
      entry = { sub, fns: new Set() };
      this.listeners.set(key, entry);
      this.send({ type: "subscribe", ...sub });
    }
    entry.fns.add(fn);
    return () => {
      const e = this.listeners.get(key);
      if (!e) return;
      e.fns.delete(fn);
      if (e.fns.size === 0) {
        this.listeners.delete(key);
        this.send({ type: "unsubscribe", ...sub });
      }
    };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close();
  }

  private send(msg: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  private connect(): void {
    if (this.closed) return;
    const url = this.candidates[this.attempt % this.candidates.length];
    let opened = false;
    // The token travels as the subprotocol, not in the URL, so it stays out of access logs.
    const ws = new WebSocket(url, this.token);
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
      sessionStorage.setItem(WORKED_KEY, url);
      this.attempt = this.attempt - (this.attempt % this.candidates.length);
      this.onStateChange(true);
      for (const { sub } of this.listeners.values()) this.send({ type: "subscribe", ...sub });
    };
    ws.onmessage = (m) => {
      const e = parseStreamMessage(String(m.data));
      if (!e) return;
      const key = streamKey(e.stream);
      for (const [k, entry] of this.listeners) {
        if (k === key || (e.stream.length === 0 && k === "user")) entry.fns.forEach((fn) => fn(e));
      }
    };
    ws.onclose = () => {
      this.onStateChange(false);
      if (this.closed) return;
      this.attempt++;
      const round = Math.floor(this.attempt / this.candidates.length);
      const delay = opened ? 1000 : Math.min(30_000, 1000 * 2 ** Math.min(round, 5));
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }
}
