import { describe, expect, it } from "vitest";
import { countCharacters, graphemes } from "./text";

describe("character count", () => {
  it("counts grapheme clusters, not UTF-16 units", () => {
    expect(countCharacters("héllo")).toBe(5);
    expect(countCharacters("👍🏽👨‍👩‍👧")).toBe(2);
    expect(graphemes("🇫🇷")).toBe(1);
  });

  it("counts every URL as 23 characters, or the server's reservation", () => {
    const url = "https://example.com/a/very/long/path/that/goes/on/and/on?with=query";
    expect(countCharacters(`see ${url}`)).toBe(4 + 23);
    expect(countCharacters(`see ${url}`, "", 10)).toBe(4 + 10);
    expect(countCharacters(`(${url})`)).toBe(1 + 23 + 1);
    expect(countCharacters(`${url}.`)).toBe(24);
    expect(countCharacters("http://a.b")).toBe(23);
    expect(countCharacters("ftp://not.counted")).toBe(17);
  });

  it("counts a remote mention by its username only", () => {
    expect(countCharacters("@alice@remote.example.org hi")).toBe("@alice hi".length);
    expect(countCharacters("@bob hi")).toBe(7);
    expect(countCharacters("mail me: me@host.example")).toBe(24);
  });

  it("includes the content warning", () => {
    expect(countCharacters("body", "spoiler")).toBe(11);
  });
});
