import { forwardRef, useEffect, useImperativeHandle, useRef, useState } from "react";
import { ApiError } from "../api/client";
import type { MediaAttachment, Status, StatusSource, Visibility } from "../api/types";
import { useSession, type ComposeTarget } from "../context";
import { waitProcessed } from "../lib/media";
import { countCharacters } from "../lib/text";
import { ErrorBox } from "./common";
import { POSTED_EVENT } from "./Timeline";

interface Upload {
  key: string;
  name: string;
  media: MediaAttachment | null;
  description: string;
  savedDescription: string;
  processing: boolean;
  error: unknown;
}

const EXPIRIES: [number, string][] = [
  [300, "5 minutes"],
  [1800, "30 minutes"],
  [3600, "1 hour"],
  [21600, "6 hours"],
  [86400, "1 day"],
  [259200, "3 days"],
  [604800, "7 days"],
];

function defaultLanguage(): string {
  return (navigator.language || "en").split("-")[0].toLowerCase();
}

export interface ComposeHandle {
  open: (t: ComposeTarget) => void;
}

export const Compose = forwardRef<ComposeHandle, { onDone?: (message: string) => void }>(function Compose({ onDone }, ref) {
  const { client, instance, me } = useSession();
  const conf = instance.configuration;
  const maxChars = conf.statuses?.max_characters ?? 500;
  const urlLength = conf.statuses?.characters_reserved_per_url ?? 23;
  const maxMedia = conf.statuses?.max_media_attachments ?? 4;
  const maxOptions = conf.polls?.max_options ?? 4;
  const [text, setText] = useState("");
  const [cw, setCw] = useState("");
  const [cwOn, setCwOn] = useState(false);
  const [visibility, setVisibility] = useState<Visibility>("public");
  const [language, setLanguage] = useState(defaultLanguage());
  const [replyTo, setReplyTo] = useState<Status | null>(null);
  const [editing, setEditing] = useState<Status | null>(null);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [pollOn, setPollOn] = useState(false);
  const [options, setOptions] = useState(["", ""]);
  const [expiresIn, setExpiresIn] = useState(86400);
  const [multiple, setMultiple] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [sending, setSending] = useState(false);
  const textRef = useRef<HTMLTextAreaElement>(null);
  const fileRef = useRef<HTMLInputElement>(null);
  const cancel = useRef({ cancelled: false });

  useEffect(() => () => void (cancel.current.cancelled = true), []);

  const reset = () => {
    setText("");
    setCw("");
    setCwOn(false);
    setReplyTo(null);
    setEditing(null);
    setUploads([]);
    setPollOn(false);
    setOptions(["", ""]);
    setMultiple(false);
    setError(null);
  };

  useImperativeHandle(ref, () => ({
    open: async (t) => {
      reset();
      if (t.replyTo) {
        const r = t.replyTo;
        setReplyTo(r);
        const mentions = [r.account.acct, ...r.mentions.map((m) => m.acct)].filter((a, i, all) => a !== me?.acct && all.indexOf(a) === i);
        setText(mentions.map((a) => `@${a} `).join(""));
        setVisibility(r.visibility);
        if (r.spoiler_text) {
          setCw(r.spoiler_text);
          setCwOn(true);
        }
      } else if (t.mention) setText(`@${t.mention} `);
      if (t.edit) {
        const s = t.edit;
        setEditing(s);
        setVisibility(s.visibility);
        try {
          const src = await client.get<StatusSource>(`/api/v1/statuses/${s.id}/source`);
          setText(src.text);
          setCw(src.spoiler_text);
          setCwOn(!!src.spoiler_text);
        } catch (e) {
          setError(e);
        }
        setUploads(s.media_attachments.map((m) => ({ key: m.id, name: m.description || "attachment", media: m, description: m.description ?? "", savedDescription: m.description ?? "", processing: false, error: null })));
        if (s.language) setLanguage(s.language);
      }
      setTimeout(() => textRef.current?.focus(), 0);
    },
  }));

  const used = countCharacters(text, cwOn ? cw : "", urlLength);
  const left = maxChars - used;
  const processing = uploads.some((u) => u.processing || !u.media);
  const pollValid = !pollOn || options.filter((o) => o.trim()).length >= 2;
  const canSend = !sending && left >= 0 && !processing && pollValid && (text.trim().length > 0 || uploads.length > 0);

  const patchUpload = (key: string, f: (u: Upload) => Upload) => setUploads((list) => list.map((u) => (u.key === key ? f(u) : u)));

  const addFiles = async (files: FileList | null) => {
    if (!files) return;
    for (const file of Array.from(files).slice(0, maxMedia - uploads.length)) {
      const key = `${Date.now()}-${Math.random()}`;
      setUploads((l) => [...l, { key, name: file.name, media: null, description: "", savedDescription: "", processing: true, error: null }]);
      try {
        const form = new FormData();
        form.append("file", file);
        const r = await client.request<MediaAttachment>("POST", "/api/v2/media", form);
        patchUpload(key, (u) => ({ ...u, media: r.items, processing: r.status === 202 || !r.items.url }));
        if (r.status === 202 || !r.items.url) {
          const done = await waitProcessed(() => client.request<MediaAttachment>("GET", `/api/v1/media/${r.items.id}`), cancel.current);
          patchUpload(key, (u) => ({ ...u, media: done, processing: false }));
        }
      } catch (e) {
        if (e instanceof Error && e.message === "cancelled") return;
        patchUpload(key, (u) => ({ ...u, processing: false, error: e }));
      }
    }
    if (fileRef.current) fileRef.current.value = "";
  };

  const submit = async () => {
    setSending(true);
    setError(null);
    try {
      for (const u of uploads) {
        if (u.media && u.description !== u.savedDescription) {
          await client.put(`/api/v1/media/${u.media.id}`, { description: u.description });
        }
      }
      const body: Record<string, unknown> = {
        status: text,
        spoiler_text: cwOn ? cw : "",
        sensitive: cwOn && cw.length > 0,
        language,
        media_ids: uploads.flatMap((u) => (u.media ? [u.media.id] : [])),
      };
      if (pollOn)
        body.poll = {
          options: options.map((o) => o.trim()).filter(Boolean),
          expires_in: expiresIn,
          multiple,
        };
      let status: Status;
      if (editing) {
        status = await client.put<Status>(`/api/v1/statuses/${editing.id}`, body);
      } else {
        body.visibility = visibility;
        if (replyTo) body.in_reply_to_id = replyTo.id;
        status = await client.request<Status>("POST", "/api/v1/statuses", body).then((r) => r.items);
      }
      window.dispatchEvent(new CustomEvent(POSTED_EVENT, { detail: status }));
      reset();
      onDone?.(editing ? "Your post was updated." : "Your post was published.");
    } catch (e) {
      setError(e instanceof ApiError && e.status === 422 ? new Error(`The post was not accepted: ${e.message}`) : e);
    } finally {
      setSending(false);
    }
  };

  return (
    <form
      className="compose"
      aria-label={editing ? "Edit post" : replyTo ? "Reply" : "New post"}
      onSubmit={(e) => {
        e.preventDefault();
        if (canSend) submit();
      }}
    >
      {replyTo && (
        <p className="compose-context">
          Replying to @{replyTo.account.acct}{" "}
          <button type="button" onClick={() => setReplyTo(null)}>
            Cancel reply
          </button>
        </p>
      )}
      {editing && (
        <p className="compose-context">
          Editing your post{" "}
          <button type="button" onClick={reset}>
            Cancel edit
          </button>
        </p>
      )}
      {cwOn && <input type="text" aria-label="Content warning" placeholder="Content warning" value={cw} onChange={(e) => setCw(e.target.value)} />}
      <textarea
        ref={textRef}
        aria-label="Post text"
        placeholder="What is on your mind?"
        rows={4}
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && canSend) {
            e.preventDefault();
            submit();
          }
        }}
      />
      {uploads.length > 0 && (
        <ul className="uploads">
          {uploads.map((u) => (
            <li key={u.key}>
              {u.media?.preview_url ? <img src={u.media.preview_url} alt="" /> : <span className="thumb" aria-hidden="true" />}
              <div>
                <span>{u.name}</span>
                {u.processing && (
                  <span role="status" className="processing">
                    {u.media ? "Processing…" : "Uploading…"}
                  </span>
                )}
                <ErrorBox error={u.error} />
                <input type="text" aria-label={`Description (alt text) of ${u.name}`} placeholder="Describe this for people who cannot see it" value={u.description} maxLength={conf.media_attachments?.description_limit ?? 1500} onChange={(e) => patchUpload(u.key, (x) => ({ ...x, description: e.target.value }))} />
                <button type="button" onClick={() => setUploads((l) => l.filter((x) => x.key !== u.key))}>
                  Remove
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
      {pollOn && (
        <fieldset className="poll-editor">
          <legend>Poll</legend>
          {options.map((o, i) => (
            <div key={i} className="row">
              <input type="text" aria-label={`Option ${i + 1}`} value={o} maxLength={conf.polls?.max_characters_per_option ?? 50} onChange={(e) => setOptions(options.map((x, j) => (j === i ? e.target.value : x)))} />
              {options.length > 2 && (
                <button type="button" aria-label={`Remove option ${i + 1}`} onClick={() => setOptions(options.filter((_, j) => j !== i))}>
                  ×
                </button>
              )}
            </div>
          ))}
          {options.length < maxOptions && (
            <button type="button" onClick={() => setOptions([...options, ""])}>
              Add option
            </button>
          )}
          <label>
            Ends in{" "}
            <select value={expiresIn} onChange={(e) => setExpiresIn(Number(e.target.value))}>
              {EXPIRIES.map(([v, l]) => (
                <option key={v} value={v}>
                  {l}
                </option>
              ))}
            </select>
          </label>
          <label>
            <input type="checkbox" checked={multiple} onChange={(e) => setMultiple(e.target.checked)} /> Allow several choices
          </label>
        </fieldset>
      )}
      <div className="compose-tools">
        <input ref={fileRef} type="file" id="compose-file" className="visually-hidden" accept={(conf.media_attachments?.supported_mime_types ?? ["image/*", "video/*", "audio/*"]).join(",")} multiple disabled={pollOn || uploads.length >= maxMedia} onChange={(e) => addFiles(e.target.files)} />
        <button type="button" disabled={pollOn || uploads.length >= maxMedia} onClick={() => fileRef.current?.click()}>
          Add media
        </button>
        <button type="button" aria-pressed={pollOn} disabled={uploads.length > 0} onClick={() => setPollOn(!pollOn)}>
          Poll
        </button>
        <button type="button" aria-pressed={cwOn} onClick={() => setCwOn(!cwOn)}>
          CW
        </button>
        <select aria-label="Visibility" value={visibility} disabled={!!editing} onChange={(e) => setVisibility(e.target.value as Visibility)}>
          <option value="public">Public</option>
          <option value="unlisted">Unlisted</option>
          <option value="private">Followers only</option>
          <option value="direct">Mentioned people only</option>
        </select>
        <select aria-label="Language" value={language} onChange={(e) => setLanguage(e.target.value)}>
          {[...new Set([language, defaultLanguage(), ...(instance.languages ?? []), "en", "de", "es", "fr", "it", "ja", "nl", "pt"])].map((l) => (
            <option key={l} value={l}>
              {l}
            </option>
          ))}
        </select>
      </div>
      <div className="compose-send">
        <span className={left < 0 ? "count over" : "count"} aria-live="polite" aria-label={`${left} characters left`}>
          {left}
        </span>
        <button type="submit" className="primary" disabled={!canSend}>
          {sending ? "Sending…" : editing ? "Save" : replyTo ? "Reply" : "Post"}
        </button>
      </div>
      <ErrorBox error={error} />
    </form>
  );
});
