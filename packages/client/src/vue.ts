// Vue bindings for @edge-relay/client: composables over RelayClient and inbox(), the same
// behaviour as the React hooks. Each composable keeps one client per component instance (or
// effect scope) for as long as its url and room (or user) stay the same, opens it when the
// component mounts (never during server rendering) and closes it when the component unmounts.
// Options may be plain values, refs or getters: a change of url or room reconnects, other
// changes are read when the next client is made, and the latest getToken is always the one called.
import { computed, getCurrentInstance, onMounted, onScopeDispose, shallowRef, toValue, watch } from 'vue';
import type { ComputedRef, MaybeRefOrGetter, ShallowRef } from 'vue';
import { RelayClient, inbox } from './index.js';
import { trackTyping } from './typing.js';
import type { ConnectOptions, Inbox, InboxOptions, InboxRoom, Message, RelayError, Status, User } from './index.js';

/**
 * The value `create` makes for the current `key`: made when the component mounts (at once
 * outside a component), closed and made again when the key changes, closed when the component
 * unmounts or the scope stops. `attach` subscribes to a value; what it returns unsubscribes.
 */
function keepPerKey<T extends { close(): void }>(
  key: () => string | null,
  create: () => T,
  attach: (value: T) => () => void,
): Readonly<ShallowRef<T | null>> {
  const current: ShallowRef<T | null> = shallowRef(null);
  let detach: (() => void) | null = null;
  const release = () => {
    detach?.();
    detach = null;
    current.value?.close();
    current.value = null;
  };
  const start = () =>
    watch(
      key,
      (next) => {
        release();
        if (next == null) return;
        const value = create();
        current.value = value;
        detach = attach(value);
      },
      { immediate: true },
    );
  if (getCurrentInstance()) onMounted(start);
  else start();
  onScopeDispose(release);
  return current;
}

/** Options of `useRoom`: the client's, plus what the composable keeps. */
export interface UseRoomOptions extends ConnectOptions {
  /** Messages kept in `messages`, the newest; default 1000. */
  keep?: number;
  /** Load this many messages of history (loadOlder) when the client starts; default 0. */
  history?: number;
}

export interface RoomState<TData> {
  /** The room's client, null until the component mounted (or without options). */
  client: Readonly<ShallowRef<RelayClient<TData> | null>>;
  status: Readonly<ShallowRef<Status | 'idle'>>;
  /** What the client delivered and loadOlder() added, in seq order, at most `keep`. */
  messages: Readonly<ShallowRef<Message<TData>[]>>;
  /** The last error the client reported, or null. */
  error: Readonly<ShallowRef<RelayError | null>>;
  /** Whether older messages exist (from the last loadOlder page); null before the first. */
  hasMore: Readonly<ShallowRef<boolean | null>>;
  /** Adds the page before the oldest message to `messages`. */
  loadOlder(limit?: number): Promise<void>;
}

/**
 * A room client for `options.url` and `options.room` (null: none). It connects once per url and
 * room: changing either closes the old client and connects a new one.
 */
export function useRoom<TData = unknown>(options: MaybeRefOrGetter<UseRoomOptions | null>): RoomState<TData> {
  const status = shallowRef<Status | 'idle'>('idle');
  const messages = shallowRef<Message<TData>[]>([]);
  const error = shallowRef<RelayError | null>(null);
  const hasMore = shallowRef<boolean | null>(null);
  const key = () => {
    const o = toValue(options);
    return o ? o.url + '\n' + o.room : null;
  };

  const loadOlderOf = async (client: RelayClient<TData>, limit?: number) => {
    try {
      const page = await client.loadOlder(limit);
      if (current.value !== client) return; // the room changed meanwhile
      messages.value = [...page.messages, ...messages.value];
      hasMore.value = page.has_more;
    } catch (e) {
      if (current.value === client) error.value = e as RelayError;
    }
  };

  const current = keepPerKey<RelayClient<TData>>(
    key,
    () => {
      const { keep: _keep, history: _history, ...o } = toValue(options)!;
      const getToken = o.getToken && (() => toValue(options)!.getToken!());
      return RelayClient.connect<TData>({ ...o, getToken });
    },
    (client) => {
      messages.value = [];
      error.value = null;
      hasMore.value = null;
      status.value = client.status;
      const offs = [
        client.on('status', (s) => (status.value = s)),
        client.on('message', (m) => (messages.value = [...messages.value, m].slice(-(toValue(options)?.keep ?? 1000)))),
        client.on('error', (e) => (error.value = e)),
      ];
      const first = toValue(options)?.history;
      if (first) void loadOlderOf(client, first);
      return () => {
        offs.forEach((off) => off());
        status.value = 'idle';
        messages.value = [];
        error.value = null;
        hasMore.value = null;
      };
    },
  );

  return {
    client: current,
    status,
    messages,
    error,
    hasMore,
    loadOlder: async (limit) => {
      if (current.value) await loadOlderOf(current.value, limit);
    },
  };
}

/** The users online in the room of `client` (from its presence events), or [] without one. */
export function usePresence(client: MaybeRefOrGetter<RelayClient<any> | null>): Readonly<ShallowRef<User[]>> {
  const presence = shallowRef<User[]>([]);
  watch(
    () => toValue(client),
    (c, _old, onCleanup) => {
      presence.value = c ? [...c.presence] : [];
      if (!c) return;
      onCleanup(c.on('presence', () => (presence.value = [...c.presence])));
    },
    { immediate: true },
  );
  return presence;
}

export interface TypingState {
  /** Other users typing now. */
  typing: Readonly<ShallowRef<User[]>>;
  /** Says whether this user is typing (see RelayClient.typing: throttled, stops by itself). */
  setTyping(active: boolean): void;
}

/**
 * Who else is typing in the room of `client`. A user's `typing: true` counts for `expireMs`
 * (default 6000: the relay's senders refresh it every 2 s) unless refreshed, and ends at their
 * `typing: false`, their next message or their leave.
 */
export function useTyping(
  client: MaybeRefOrGetter<RelayClient<any> | null>,
  { expireMs = 6000 }: { expireMs?: number } = {},
): TypingState {
  const typing = shallowRef<User[]>([]);
  watch(
    () => toValue(client),
    (c, _old, onCleanup) => {
      typing.value = [];
      if (c) onCleanup(trackTyping(c, expireMs, (users) => (typing.value = users)));
    },
    { immediate: true },
  );
  return { typing, setTyping: (active) => toValue(client)?.typing(active) };
}

export interface InboxState {
  inbox: Readonly<ShallowRef<Inbox | null>>;
  /** The rooms, the most recently updated first. */
  rooms: Readonly<ShallowRef<InboxRoom[]>>;
  /** The total of unread messages. */
  unread: ComputedRef<number>;
  /** See Inbox.markRead. */
  markRead(room: string | RelayClient<any>, seq?: number): void;
}

/** The inbox of `options.user` (null: none), kept while url and user stay the same (as useRoom). */
export function useInbox(options: MaybeRefOrGetter<InboxOptions | null>): InboxState {
  const rooms = shallowRef<InboxRoom[]>([]);
  const box = keepPerKey<Inbox>(
    () => {
      const o = toValue(options);
      return o ? o.url + '\n' + o.user : null;
    },
    () => {
      const o = toValue(options)!;
      return inbox({ ...o, getToken: o.getToken && (() => toValue(options)!.getToken!()) });
    },
    (b) => {
      rooms.value = b.rooms;
      const off = b.on('change', (list) => (rooms.value = list));
      return () => {
        off();
        rooms.value = [];
      };
    },
  );
  return {
    inbox: box,
    rooms,
    unread: computed(() => rooms.value.reduce((sum, r) => sum + r.unread, 0)),
    markRead: (room, seq) => box.value?.markRead(room, seq),
  };
}
