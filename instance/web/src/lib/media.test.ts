import { describe, expect, it } from "vitest";
import type { MediaAttachment } from "../api/types";
import { waitProcessed } from "./media";

const media = (url: string | null) => ({ id: "1", type: "video", url, preview_url: null, description: null }) as MediaAttachment;

describe("waiting for media processing", () => {
  it("polls through 206 answers until a 200 with a URL, backing off", async () => {
    const answers = [
      { status: 206, items: media(null) },
      { status: 206, items: media(null) },
      { status: 200, items: media("https://media.example/v.mp4") },
    ];
    const delays: number[] = [];
    const done = await waitProcessed(async () => answers.shift()!, { cancelled: false }, 500, async (ms) => void delays.push(ms));
    expect(done.url).toBe("https://media.example/v.mp4");
    expect(delays).toEqual([500, 750, 1125]);
  });

  it("stops when the composer goes away", async () => {
    const signal = { cancelled: true };
    await expect(waitProcessed(async () => ({ status: 206, items: media(null) }), signal, 1, async () => {})).rejects.toThrow("cancelled");
  });
});
