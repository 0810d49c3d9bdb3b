import { useEffect, useState } from "react";
import type { Context, Status } from "../api/types";
import { ErrorBox, Loading, useLoad } from "../components/common";
import { StatusCard } from "../components/StatusCard";
import { POSTED_EVENT } from "../components/Timeline";
import { useSession } from "../context";
import { navigate } from "../lib/router";

export function Thread({ id }: { id: string }) {
  const { client } = useSession();
  const { data, error, reload, setData } = useLoad(async () => {
    const [status, context] = await Promise.all([client.get<Status>(`/api/v1/statuses/${id}`), client.get<Context>(`/api/v1/statuses/${id}/context`)]);
    return { status, context };
  }, [id]);
  const [, tick] = useState(0);

  useEffect(() => {
    // A reply written from this page belongs in it.
    const onPosted = (ev: Event) => {
      const s = (ev as CustomEvent<Status>).detail;
      setData((d) => {
        if (!d) return d;
        const inThread = [d.status, ...d.context.ancestors, ...d.context.descendants].some((x) => x.id === s.in_reply_to_id);
        if (!inThread || d.context.descendants.some((x) => x.id === s.id)) return d;
        return { ...d, context: { ...d.context, descendants: [...d.context.descendants, s] } };
      });
      tick((n) => n + 1);
    };
    window.addEventListener(POSTED_EVENT, onPosted);
    return () => window.removeEventListener(POSTED_EVENT, onPosted);
  }, [setData]);

  if (error) return <ErrorBox error={error} onRetry={reload} />;
  if (!data) return <Loading />;
  const replace = (s: Status) =>
    setData((d) =>
      d && {
        status: d.status.id === s.id ? s : d.status,
        context: { ancestors: d.context.ancestors.map((x) => (x.id === s.id ? s : x)), descendants: d.context.descendants.map((x) => (x.id === s.id ? s : x)) },
      },
    );
  const remove = (gone: string) => {
    if (gone === data.status.id) navigate("/", true);
    else setData((d) => d && { ...d, context: { ancestors: d.context.ancestors.filter((x) => x.id !== gone), descendants: d.context.descendants.filter((x) => x.id !== gone) } });
  };
  return (
    <section aria-label="Thread" className="timeline">
      {data.context.ancestors.map((s) => (
        <StatusCard key={s.id} status={s} onChange={replace} onDelete={remove} />
      ))}
      <StatusCard status={data.status} onChange={replace} onDelete={remove} focused />
      {data.context.descendants.map((s) => (
        <StatusCard key={s.id} status={s} onChange={replace} onDelete={remove} />
      ))}
    </section>
  );
}
