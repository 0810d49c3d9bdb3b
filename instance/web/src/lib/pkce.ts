// PKCE (RFC 7636) with the S256 method, on the Web Crypto API.

export function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A verifier of 43 characters from the unreserved set (32 random bytes, base64url). */
export function newVerifier(random: (a: Uint8Array) => Uint8Array = (a) => crypto.getRandomValues(a)): string {
  return base64url(random(new Uint8Array(32)));
}

export async function challengeS256(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** An opaque `state` value that ties the callback to the request this tab made. */
export function newState(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(16)));
}
