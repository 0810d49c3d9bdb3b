import { describe, expect, it } from "vitest";
import { parseStreamMessage, streamingUrl, streamKey } from "./stream";

const status = { id: "109", content: "<p>hi</p>", account: { id: "1" } };

describe("stream messages", () => {
  it("decodes update payloads, which are JSON inside a string", () => {
    const e = parseStreamMessage(JSON.stringify({ stream: ["public:local"], event: "update", payload: JSON.stringify(status) }));
    expect(e).toMatchObject({ event: "update", stream: ["public:local"], status: { id: "109" } });
  });

  it("reads delete as a bare id", () => {
    expect(parseStreamMessage(JSON.stringify({ stream: ["user"], event: "delete", payload: "109" }))).toEqual({ stream: ["user"], event: "delete", id: "109" });
  });

  it("decodes notifications and status edits", () => {
    const n = { id: "5", type: "favourite", account: { id: "2" }, status };
    expect(parseStreamMessage(JSON.stringify({ stream: ["user"], event: "notification", payload: JSON.stringify(n) }))).toMatchObject({ event: "notification", notification: { id: "5", type: "favourite" } });
    expect(parseStreamMessage(JSON.stringify({ stream: ["user"], event: "status.update", payload: JSON.stringify(status) }))).toMatchObject({ event: "status.update", status: { id: "109" } });
  });

  it("also accepts an object payload, and names other events", () => {
    expect(parseStreamMessage(JSON.stringify({ stream: ["user"], event: "update", payload: status }))).toMatchObject({ status: { id: "109" } });
    expect(parseStreamMessage(JSON.stringify({ stream: ["user"], event: "filters_changed" }))).toEqual({ stream: ["user"], event: "other", name: "filters_changed" });
  });

  it("ignores what is not an event", () => {
    for (const bad of ["", "not json", "[]", "null", JSON.stringify({ error: "Unknown channel requested", status: 400 }), JSON.stringify({ event: "update", payload: "{broken" }), JSON.stringify({ event: "update", payload: "{}" }), JSON.stringify({ event: "delete", payload: "" })]) {
      expect(parseStreamMessage(bad)).toBeNull();
    }
  });

  it("matches frames to subscriptions by stream name and parameter", () => {
    expect(streamKey({ stream: "hashtag", tag: "cats" })).toBe(streamKey(["hashtag", "cats"]));
    expect(streamKey({ stream: "user" })).toBe(streamKey(["user"]));
    expect(streamKey({ stream: "list", list: "7" })).toBe("list:7");
  });

  it("builds the WebSocket URL from the advertised streaming base or the page origin", () => {
    expect(streamingUrl("wss://social.example")).toBe("wss://social.example/api/v1/streaming");
    expect(streamingUrl("https://social.example/")).toBe("wss://social.example/api/v1/streaming");
    expect(streamingUrl("http://127.0.0.1:3000")).toBe("ws://127.0.0.1:3000/api/v1/streaming");
  });
});
