import { describe, expect, it } from "vitest";
import { match } from "./router";

describe("routes", () => {
  it("extracts parameters and refuses other shapes", () => {
    expect(match("/tags/:tag", "/tags/caf%C3%A9")).toEqual({ tag: "café" });
    expect(match("/:acct/followers", "/@a@b.example/followers")).toEqual({ acct: "@a@b.example" });
    expect(match("/tags/:tag", "/tags")).toBeNull();
    expect(match("/tags/:tag", "/tags/%E0%A4%A")).toBeNull();
    expect(match("/statuses/:id", "/accounts/1")).toBeNull();
  });
});
