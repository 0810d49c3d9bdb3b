import { describe, expect, it } from "vitest";
import type { Status } from "../api/types";
import { relativeTime } from "./common";
import { mergeNewer } from "./Timeline";

const s = (id: string) => ({ id }) as Status;

describe("timeline merging", () => {
  it("puts newer posts first and drops the ones already shown", () => {
    expect(mergeNewer([s("3"), s("2")], [s("5"), s("3")]).map((x) => x.id)).toEqual(["5", "3", "2"]);
    expect(mergeNewer([], [s("1")]).map((x) => x.id)).toEqual(["1"]);
  });
});

describe("relative time", () => {
  it("uses seconds, minutes and hours, then the date", () => {
    const now = Date.parse("2026-01-02T12:00:00Z");
    expect(relativeTime("2026-01-02T11:59:30Z", now)).toBe("30s");
    expect(relativeTime("2026-01-02T11:15:00Z", now)).toBe("45m");
    expect(relativeTime("2026-01-02T02:00:00Z", now)).toBe("10h");
    expect(relativeTime("2026-01-02T12:00:05Z", now)).toBe("0s");
    expect(relativeTime("2025-12-01T12:00:00Z", now)).not.toMatch(/[smh]$/);
  });
});
