// A small typed layer over fetch for the Mastodon REST API. Every failure becomes an
// ApiError whose message is written for a person: the server's own words when it gave any
// (`error`, `error_description`), otherwise what the status code means.

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const STATUS_WORDS: Record<number, string> = {
  401: "You are not signed in, or your session has expired. Please sign in again.",
  403: "You are not allowed to do this.",
  404: "This was not found on the server (it may have been deleted, or the server does not offer it).",
  410: "This is gone from the server.",
  413: "The file is too large for the server.",
  422: "The server could not accept this.",
  429: "Too many requests: please wait a moment and try again.",
  500: "The server ran into an error. Please try again later.",
  502: "The server is unreachable right now. Please try again later.",
  503: "The server is temporarily unavailable. Please try again later.",
};

/** The person-readable reason of a failed response, from its body when it has one. */
export function describeFailure(status: number, body: unknown): string {
  if (body && typeof body === "object") {
    const b = body as { error?: unknown; error_description?: unknown };
    const description = typeof b.error_description === "string" ? b.error_description : "";
    const error = typeof b.error === "string" ? b.error : "";
    const text = description || error;
    if (text) return text;
  }
  return STATUS_WORDS[status] ?? `The server answered with an unexpected status (${status}).`;
}

/** The URLs of a `Link` header by relation (`next`, `prev`). */
export function parseLinkHeader(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(",")) {
    const m = /<([^>]+)>\s*;\s*rel="?([^";]+)"?/.exec(part.trim());
    if (m) out[m[2]] = m[1];
  }
  return out;
}

export interface Page<T> {
  items: T;
  next: string | null;
  prev: string | null;
}

type Body = FormData | Record<string, unknown> | undefined;

export class Client {
  constructor(
    readonly base: string,
    private token: string | null,
  ) {}

  get signedIn(): boolean {
    return this.token !== null;
  }

  get accessToken(): string | null {
    return this.token;
  }

  async request<T>(method: string, path: string, body?: Body, query?: Record<string, unknown>): Promise<Page<T> & { status: number }> {
    const url = new URL(path.startsWith("http") ? path : this.base + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined || v === null || v === "") continue;
      if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(`${k}[]`, String(x)));
      else url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let payload: BodyInit | undefined;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body: payload });
    } catch {
      throw new ApiError("The server could not be reached. Check your connection and try again.", 0);
    }
    const text = await res.text();
    let json: unknown = undefined;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        if (res.ok) throw new ApiError("The server sent an answer this app cannot read.", res.status);
      }
    }
    if (!res.ok) throw new ApiError(describeFailure(res.status, json), res.status);
    const links = parseLinkHeader(res.headers.get("Link"));
    return { items: json as T, next: links.next ?? null, prev: links.prev ?? null, status: res.status };
  }

  async get<T>(path: string, query?: Record<string, unknown>): Promise<T> {
    return (await this.request<T>("GET", path, undefined, query)).items;
  }

  page<T>(path: string, query?: Record<string, unknown>): Promise<Page<T> & { status: number }> {
    return this.request<T>("GET", path, undefined, query);
  }

  async post<T>(path: string, body?: Body): Promise<T> {
    return (await this.request<T>("POST", path, body ?? {})).items;
  }

  async put<T>(path: string, body?: Body): Promise<T> {
    return (await this.request<T>("PUT", path, body ?? {})).items;
  }

  async patch<T>(path: string, body?: Body): Promise<T> {
    return (await this.request<T>("PATCH", path, body ?? {})).items;
  }

  async delete<T>(path: string): Promise<T> {
    return (await this.request<T>("DELETE", path)).items;
  }
}
