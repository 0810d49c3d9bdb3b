import { describe, expect, it } from "vitest";
import { describeFailure, parseLinkHeader } from "./client";

describe("API failures in words", () => {
  it("prefers the server's description, then its error", () => {
    expect(describeFailure(400, { error: "invalid_grant", error_description: "The code has expired." })).toBe("The code has expired.");
    expect(describeFailure(422, { error: "Validation failed: Text can't be blank" })).toBe("Validation failed: Text can't be blank");
  });

  it("explains bare status codes", () => {
    expect(describeFailure(404, undefined)).toMatch(/not found/);
    expect(describeFailure(429, "<html>")).toMatch(/Too many requests/);
    expect(describeFailure(418, {})).toMatch(/418/);
  });
});

describe("Link header", () => {
  it("reads next and prev", () => {
    const h = '<https://x.example/api/v1/timelines/home?max_id=10>; rel="next", <https://x.example/api/v1/timelines/home?min_id=20>; rel="prev"';
    expect(parseLinkHeader(h)).toEqual({ next: "https://x.example/api/v1/timelines/home?max_id=10", prev: "https://x.example/api/v1/timelines/home?min_id=20" });
    expect(parseLinkHeader(null)).toEqual({});
  });
});
