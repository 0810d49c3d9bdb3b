// Sign in with the server's own OAuth pages: the app is registered once per origin, the
// authorization code comes back to `/oauth-callback` and is exchanged with a PKCE verifier
// that never leaves this browser. The token lives in localStorage.

import { Client } from "../api/client";
import type { Application, Token } from "../api/types";
import { challengeS256, newState, newVerifier } from "./pkce";

export const SCOPES = "read write follow";
const APP_KEY = "fedi.app";
const TOKEN_KEY = "fedi.token";
const PENDING_KEY = "fedi.pending";

export function redirectUri(): string {
  return `${location.origin}/oauth-callback`;
}

export function storedToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

/** The registered app for this origin and redirect URI, registering it when needed. */
export async function ensureApp(client: Client): Promise<Application> {
  const saved = localStorage.getItem(APP_KEY);
  if (saved) {
    const app = JSON.parse(saved) as Application & { for?: string };
    if (app.for === `${client.base} ${redirectUri()}`) return app;
  }
  const app = await client.post<Application>("/api/v1/apps", {
    client_name: "Web",
    redirect_uris: redirectUri(),
    scopes: SCOPES,
    website: location.origin,
  });
  localStorage.setItem(APP_KEY, JSON.stringify({ ...app, for: `${client.base} ${redirectUri()}` }));
  return app;
}

export async function beginSignIn(client: Client): Promise<void> {
  const app = await ensureApp(client);
  const verifier = newVerifier();
  const state = newState();
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(`${client.base}/oauth/authorize`);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", app.client_id);
  url.searchParams.set("redirect_uri", redirectUri());
  url.searchParams.set("scope", SCOPES);
  url.searchParams.set("state", state);
  url.searchParams.set("code_challenge", await challengeS256(verifier));
  url.searchParams.set("code_challenge_method", "S256");
  location.assign(url.toString());
}

/** Exchanges the code of the callback URL; returns the token, or throws words to show. */
export async function completeSignIn(client: Client, params: URLSearchParams): Promise<string> {
  const error = params.get("error_description") ?? params.get("error");
  if (error) throw new Error(`Sign-in was not completed: ${error}`);
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? "null") as { verifier: string; state: string } | null;
  sessionStorage.removeItem(PENDING_KEY);
  if (!pending) throw new Error("This sign-in was not started in this tab. Please sign in again.");
  if (params.get("state") !== pending.state) throw new Error("The sign-in answer does not match the request. Please sign in again.");
  const code = params.get("code");
  if (!code) throw new Error("The server sent no authorization code. Please sign in again.");
  const app = await ensureApp(client);
  const token = await client.post<Token>("/oauth/token", {
    grant_type: "authorization_code",
    code,
    client_id: app.client_id,
    client_secret: app.client_secret,
    redirect_uri: redirectUri(),
    code_verifier: pending.verifier,
    scope: SCOPES,
  });
  localStorage.setItem(TOKEN_KEY, token.access_token);
  return token.access_token;
}

export async function signOut(client: Client): Promise<void> {
  const token = client.accessToken;
  const saved = localStorage.getItem(APP_KEY);
  localStorage.removeItem(TOKEN_KEY);
  if (!token || !saved) return;
  const app = JSON.parse(saved) as Application;
  await new Client(client.base, null).post("/oauth/revoke", {
    client_id: app.client_id,
    client_secret: app.client_secret,
    token,
  });
}

/** An app-level token (client credentials), which account registration requires. */
export async function appToken(client: Client): Promise<string> {
  const app = await ensureApp(client);
  const token = await client.post<Token>("/oauth/token", {
    grant_type: "client_credentials",
    client_id: app.client_id,
    client_secret: app.client_secret,
    scope: SCOPES,
  });
  return token.access_token;
}
