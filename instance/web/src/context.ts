import { createContext, useContext } from "react";
import type { Client } from "./api/client";
import type { Account, Instance } from "./api/types";
import type { StreamClient } from "./lib/stream";

export interface Session {
  client: Client;
  instance: Instance;
  /** null when signed out. */
  me: Account | null;
  setMe: (a: Account) => void;
  stream: StreamClient | null;
  unread: number;
  setUnread: (f: (n: number) => number) => void;
  /** Opens the composer, replying to or editing a status. */
  compose: (opts: ComposeTarget) => void;
}

export type ComposeTarget = { replyTo?: import("./api/types").Status; edit?: import("./api/types").Status; mention?: string };

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside the app");
  return s;
}
