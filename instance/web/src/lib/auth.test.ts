import { beforeEach, describe, expect, it } from "vitest";
import { Client } from "../api/client";
import { completeSignIn } from "./auth";

/** The Web Storage API, in memory (the tests run in Node). */
class MemoryStorage {
  private m = new Map<string, string>();
  getItem(k: string) {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, v);
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
}

// Nothing here may reach a server: every refusal happens before the token request.
const client = new Client("http://127.0.0.1:9", null);

describe("the OAuth callback", () => {
  beforeEach(() => {
    Object.assign(globalThis, { sessionStorage: new MemoryStorage(), localStorage: new MemoryStorage() });
  });

  it("reports the server's refusal in words", async () => {
    await expect(completeSignIn(client, new URLSearchParams("error=access_denied&error_description=The+user+denied+access"))).rejects.toThrow("Sign-in was not completed: The user denied access");
  });

  it("refuses a callback this tab did not start", async () => {
    await expect(completeSignIn(client, new URLSearchParams("code=abc&state=xyz"))).rejects.toThrow(/not started in this tab/);
  });

  it("refuses a state that does not match, and forgets the verifier", async () => {
    sessionStorage.setItem("fedi.pending", JSON.stringify({ verifier: "v", state: "expected" }));
    await expect(completeSignIn(client, new URLSearchParams("code=abc&state=forged"))).rejects.toThrow(/does not match/);
    expect(sessionStorage.getItem("fedi.pending")).toBeNull();
  });

  it("needs a code", async () => {
    sessionStorage.setItem("fedi.pending", JSON.stringify({ verifier: "v", state: "s" }));
    await expect(completeSignIn(client, new URLSearchParams("state=s"))).rejects.toThrow(/no authorization code/);
  });
});
