// React bindings for @edge-relay/client: hooks over RelayClient and inbox(). Each hook keeps one
// client per component for as long as its url and room (or user) stay the same: new options
// objects and callbacks on every render change nothing, and StrictMode's mount-unmount-mount
// in development reuses the client instead of opening a second socket.
import { useEffect, useRef, useState } from 'react';
import { RelayClient, inbox } from './index.js';
import { trackTyping } from './typing.js';
import type { ConnectOptions, Inbox, InboxOptions, InboxRoom, Message, RelayError, Status, User } from './index.js';

/**
 * The value `create` makes for `key`, made in an effect and closed when the key changes or the
 * component unmounts. The close waits for a timer tick, so that StrictMode's immediate remount
 * with the same key takes the same value back.
 */
function useKept<T extends { close(): void }>(key: string | null, create: () => T): T | null {
  const kept = useRef<{ key: string; value: T; closing: ReturnType<typeof setTimeout> | null } | null>(null);
  const make = useRef(create);
  make.current = create;
  const [value, setValue] = useState<T | null>(null);
  useEffect(() => {
    if (key == null) return;
    let entry = kept.current;
    if (entry && entry.key === key && entry.closing != null) {
      clearTimeout(entry.closing);
      entry.closing = null;
    } else {
      if (entry) {
        if (entry.closing != null) clearTimeout(entry.closing);
        entry.value.close();
      }
      entry = kept.current = { key, value: make.current(), closing: null };
    }
    const mine = entry;
    setValue(mine.value);
    return () => {
      mine.closing = setTimeout(() => {
        mine.value.close();
        if (kept.current === mine) kept.current = null;
      }, 0);
    };
  }, [key]);
  return kept.current && kept.current.key === key ? value : null;
}

/** State that belongs to one client: read as `initial` while it is another client's. */
function useOf<C, V>(client: C | null, initial: V): [V, (update: (value: V) => V) => void] {
  const [state, setState] = useState<{ of: C | null; value: V }>({ of: null, value: initial });
  const value = state.of === client ? state.value : initial;
  const update = (fn: (value: V) => V) =>
    setState((s) => ({ of: client, value: fn(s.of === client ? s.value : initial) }));
  return [value, update];
}

/** Options of `useRoom`: the client's, plus what the hook keeps. */
export interface UseRoomOptions extends ConnectOptions {
  /** Messages kept in `messages`, the newest; default 1000. */
  keep?: number;
  /** Load this many messages of history (loadOlder) when the client starts; default 0. */
  history?: number;
}

export interface RoomState<TData> {
  /** The room's client, null until the first effect ran (or without options). */
  client: RelayClient<TData> | null;
  status: Status | 'idle';
  /** What the client delivered and loadOlder() added, in seq order, at most `keep`. */
  messages: Message<TData>[];
  /** The last error the client reported, or null. */
  error: RelayError | null;
  /** Whether older messages exist (from the last loadOlder page); null before the first. */
  hasMore: boolean | null;
  /** Adds the page before the oldest message to `messages`. */
  loadOlder(limit?: number): Promise<void>;
}

/**
 * A room client for `options.url` and `options.room` (null: none). It connects once per url and
 * room: changing either closes the old client and connects a new one; other options are read
 * when the client is made, except `getToken`, whose latest version is always the one called.
 */
export function useRoom<TData = unknown>(options: UseRoomOptions | null): RoomState<TData> {
  const latest = useRef(options);
  latest.current = options;
  const key = options ? options.url + '\n' + options.room : null;
  const client = useKept<RelayClient<TData>>(key, () => {
    const { keep: _keep, history: _history, ...o } = latest.current!;
    const getToken = o.getToken && (() => latest.current!.getToken!());
    return RelayClient.connect<TData>({ ...o, getToken });
  });
  const keep = options?.keep ?? 1000;
  const [status, setStatus] = useOf<RelayClient<TData>, Status | 'idle'>(client, 'idle');
  const [messages, setMessages] = useOf<RelayClient<TData>, Message<TData>[]>(client, []);
  const [error, setError] = useOf<RelayClient<TData>, RelayError | null>(client, null);
  const [hasMore, setHasMore] = useOf<RelayClient<TData>, boolean | null>(client, null);
  const loading = useRef(new WeakSet<object>());

  const loadOlder = async (limit?: number) => {
    if (!client) return;
    try {
      const page = await client.loadOlder(limit);
      setMessages((list) => [...page.messages, ...list]);
      setHasMore(() => page.has_more);
    } catch (e) {
      setError(() => e as RelayError);
    }
  };

  useEffect(() => {
    if (!client) return;
    setStatus(() => client.status);
    const offs = [
      client.on('status', (s) => setStatus(() => s)),
      client.on('message', (m) => setMessages((list) => [...list, m].slice(-keep))),
      client.on('error', (e) => setError(() => e)),
    ];
    const first = latest.current?.history;
    if (first && !loading.current.has(client)) {
      loading.current.add(client); // once per client, also under StrictMode's second effect
      loadOlder(first);
    }
    return () => offs.forEach((off) => off());
  }, [client]);

  return { client, status, messages, error, hasMore, loadOlder };
}

/** The users online in the room of `client` (from its presence events), or [] without one. */
export function usePresence(client: RelayClient<any> | null): User[] {
  const [presence, setPresence] = useOf<RelayClient<any>, User[]>(client, []);
  useEffect(() => {
    if (!client) return;
    const sync = () => setPresence(() => [...client.presence]);
    sync();
    return client.on('presence', sync);
  }, [client]);
  return presence;
}

export interface TypingState {
  /** Other users typing now. */
  typing: User[];
  /** Says whether this user is typing (see RelayClient.typing: throttled, stops by itself). */
  setTyping(active: boolean): void;
}

/**
 * Who else is typing in the room of `client`. A user's `typing: true` counts for `expireMs`
 * (default 6000: the relay's senders refresh it every 2 s) unless refreshed, and ends at their
 * `typing: false`, their next message or their leave.
 */
export function useTyping(client: RelayClient<any> | null, { expireMs = 6000 }: { expireMs?: number } = {}): TypingState {
  const [typing, setTypingUsers] = useOf<RelayClient<any>, User[]>(client, []);
  useEffect(
    () => (client ? trackTyping(client, expireMs, (users) => setTypingUsers(() => users)) : undefined),
    [client, expireMs],
  );
  return { typing, setTyping: (active) => client && client.typing(active) };
}

export interface InboxState {
  inbox: Inbox | null;
  /** The rooms, the most recently updated first. */
  rooms: InboxRoom[];
  /** The total of unread messages. */
  unread: number;
  /** See Inbox.markRead. */
  markRead(room: string | RelayClient<any>, seq?: number): void;
}

/** The inbox of `options.user` (null: none), kept while url and user stay the same (as useRoom). */
export function useInbox(options: InboxOptions | null): InboxState {
  const latest = useRef(options);
  latest.current = options;
  const key = options ? options.url + '\n' + options.user : null;
  const box = useKept<Inbox>(key, () => {
    const o = latest.current!;
    return inbox({ ...o, getToken: o.getToken && (() => latest.current!.getToken!()) });
  });
  const [rooms, setRooms] = useOf<Inbox, InboxRoom[]>(box, []);
  useEffect(() => {
    if (!box) return;
    setRooms(() => box.rooms);
    return box.on('change', (list) => setRooms(() => list));
  }, [box]);
  return {
    inbox: box,
    rooms,
    unread: rooms.reduce((sum, r) => sum + r.unread, 0),
    markRead: (room, seq) => box && box.markRead(room, seq),
  };
}
