// Who else is typing in a room, for the React and Vue bindings: others' `typing: true` frames,
// each counting for `expireMs` unless refreshed and ended by their `typing: false`, their next
// message or their leave; at most 100 users listed at once.
import type { RelayClient, User } from './index.js';

const MAX_TYPING = 100; // users listed as typing at once

/** Follows the typing of `client`'s room, calling `onChange` with who types; returns the stop. */
export function trackTyping(client: RelayClient<any>, expireMs: number, onChange: (typing: User[]) => void): () => void {
  const timers = new Map<string, { user: User; timer: ReturnType<typeof setTimeout> }>();
  const publish = () => onChange([...timers.values()].map((t) => t.user));
  const stop = (id: string) => {
    const t = timers.get(id);
    if (!t) return;
    clearTimeout(t.timer);
    timers.delete(id);
    publish();
  };
  const offs = [
    client.on('typing', (f) => {
      if (client.user && f.user.id === client.user.id) return;
      if (!f.active) return stop(f.user.id);
      const old = timers.get(f.user.id);
      if (old) clearTimeout(old.timer);
      else if (timers.size >= MAX_TYPING) return;
      timers.set(f.user.id, { user: f.user, timer: setTimeout(() => stop(f.user.id), expireMs) });
      publish();
    }),
    client.on('message', (m) => m.from && stop(m.from.id)),
    client.on('presence', (p) => p.event === 'leave' && p.user && stop(p.user.id)),
  ];
  return () => {
    offs.forEach((off) => off());
    for (const t of timers.values()) clearTimeout(t.timer);
  };
}
