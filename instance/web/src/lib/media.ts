import type { MediaAttachment } from "../api/types";

/**
 * Waits for asynchronously processed media (upload answered 202): `GET /api/v1/media/:id`
 * answers 206 until the file is processed, then 200 with its URL. Backs off from `first` ms.
 */
export async function waitProcessed(
  get: () => Promise<{ items: MediaAttachment; status: number }>,
  signal: { cancelled: boolean },
  first = 500,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<MediaAttachment> {
  for (let delay = first; ; delay = Math.min(delay * 1.5, 5000)) {
    await sleep(delay);
    if (signal.cancelled) throw new Error("cancelled");
    const r = await get();
    if (r.status === 200 && r.items.url) return r.items;
  }
}
