import { useState } from "react";
import { Client } from "../api/client";
import { ErrorBox, Link } from "../components/common";
import { useSession } from "../context";
import { appToken } from "../lib/auth";

export function SignUp() {
  const { client, instance } = useSession();
  const [username, setUsername] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [agreement, setAgreement] = useState(false);
  const [reason, setReason] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const reg = instance.registrations;

  if (!reg.enabled)
    return (
      <section className="settings">
        <h1>Sign up</h1>
        <p>{reg.message || `${instance.domain} is not accepting new accounts right now.`}</p>
      </section>
    );
  if (done)
    return (
      <section className="settings" role="status">
        <h1>Almost there</h1>
        <p>
          We sent a confirmation link to <strong>{email}</strong>. Open it, then <Link to="/">sign in</Link>.
          {reg.approval_required ? " A moderator also has to approve your account." : ""}
        </p>
      </section>
    );
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const token = await appToken(client);
      await new Client(client.base, token).post("/api/v1/accounts", {
        username,
        email,
        password,
        agreement,
        locale: (navigator.language || "en").split("-")[0],
        reason: reg.approval_required ? reason : undefined,
      });
      setDone(true);
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
        submit();
      }}
    >
      <h1>Create an account on {instance.domain}</h1>
      {reg.message && <p>{reg.message}</p>}
      <label>
        Username
        <input type="text" name="username" autoComplete="username" required value={username} onChange={(e) => setUsername(e.target.value)} />
      </label>
      <label>
        E-mail
        <input type="email" name="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
      </label>
      <label>
        Password
        <input type="password" name="password" autoComplete="new-password" required minLength={8} value={password} onChange={(e) => setPassword(e.target.value)} />
      </label>
      {reg.approval_required && (
        <label>
          Why do you want to join?
          <textarea value={reason} required onChange={(e) => setReason(e.target.value)} />
        </label>
      )}
      {instance.rules && instance.rules.length > 0 && (
        <ol className="rules" aria-label="Server rules">
          {instance.rules.map((r) => (
            <li key={r.id}>{r.text}</li>
          ))}
        </ol>
      )}
      <label className="check">
        <input type="checkbox" name="agreement" required checked={agreement} onChange={(e) => setAgreement(e.target.checked)} /> I agree to the server rules and terms
      </label>
      <button type="submit" className="primary" disabled={busy}>
        {busy ? "Creating…" : "Sign up"}
      </button>
      <ErrorBox error={error} />
    </form>
  );
}
