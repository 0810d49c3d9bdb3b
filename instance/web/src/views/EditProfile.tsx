import { useEffect, useMemo, useState } from "react";
import type { Account } from "../api/types";
import { Avatar, ErrorBox } from "../components/common";
import { useSession } from "../context";

export function EditProfile() {
  const { client, me, setMe } = useSession();
  const [name, setName] = useState(me?.display_name ?? "");
  const [note, setNote] = useState(me?.source?.note ?? "");
  const [locked, setLocked] = useState(me?.locked ?? false);
  const [avatar, setAvatar] = useState<File | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const preview = useMemo(() => (avatar ? URL.createObjectURL(avatar) : null), [avatar]);
  useEffect(() => () => void (preview && URL.revokeObjectURL(preview)), [preview]);
  if (!me) return null;
  const save = async () => {
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      const form = new FormData();
      form.append("display_name", name);
      form.append("note", note);
      form.append("locked", String(locked));
      if (avatar) form.append("avatar", avatar);
      setMe(await client.patch<Account>("/api/v1/accounts/update_credentials", form));
      setSaved(true);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="settings"
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      <h1>Edit profile</h1>
      <Avatar className="avatar big" src={preview ?? me.avatar} alt="Your avatar" size={80} />
      <label>
        Avatar
        <input type="file" accept="image/png,image/jpeg,image/gif,image/webp" onChange={(e) => setAvatar(e.target.files?.[0] ?? null)} />
      </label>
      <label>
        Display name
        <input type="text" value={name} maxLength={30} onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        Bio
        <textarea value={note} rows={4} maxLength={500} onChange={(e) => setNote(e.target.value)} />
      </label>
      <label className="check">
        <input type="checkbox" checked={locked} onChange={(e) => setLocked(e.target.checked)} /> Approve followers by hand
      </label>
      <button type="submit" className="primary" disabled={busy}>
        {busy ? "Saving…" : "Save"}
      </button>
      {saved && <p role="status" className="notice">Saved.</p>}
      <ErrorBox error={error} />
    </form>
  );
}
