// Character counting the way Mastodon's StatusLengthValidator does it: grapheme clusters,
// every URL as a fixed number of characters, a remote mention as its local part only, and
// the content warning included.

// A URL does not end in the punctuation around it: "(see https://x.example/a)."
const URL_RE = /(^|[\s(])(https?:\/\/[^\s<>"]*[^\s<>".,;:!?'()[\]])/giu;
const MENTION_RE = /(^|[^/\w])@(\w+)(?:@[\w.-]+\w)?/giu;

const segmenter = typeof Intl !== "undefined" && "Segmenter" in Intl ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;

export function graphemes(s: string): number {
  if (!segmenter) return Array.from(s).length;
  let n = 0;
  for (const _ of segmenter.segment(s)) n++;
  return n;
}

export function countCharacters(text: string, spoiler = "", urlLength = 23): number {
  const placeholder = "x".repeat(urlLength);
  const countable = text.replace(URL_RE, (_m, pre: string) => pre + placeholder).replace(MENTION_RE, (_m, pre: string, user: string) => `${pre}@${user}`);
  return graphemes(countable) + graphemes(spoiler);
}
