// The inbox: over the user's feed room `user:<id>`, the rooms the user is a member of, each with
// its newest message and unread count, kept up to date from the relay's `room.update` messages.
import { RelayClient, RelayError } from './relay.js';
import type { ConnectOptions, Message, User } from './types.js';

/** The `data` of a `room.update` message in a user's feed (see the protocol's update feeds). */
export interface RoomUpdate {
  room: string;
  /** The room's newest message. */
  seq: number;
  event: string;
  from: User | null;
  /** The first 100 characters of its `data.text`, or null. */
  preview: string | null;
  /** Messages after the user's read marker sent by others. */
  unread: number;
}

/** A room in the inbox: its latest update, and `updated`, the seq of that update in the feed. */
export interface InboxRoom extends RoomUpdate {
  updated: number;
}

export interface InboxOptions extends Omit<ConnectOptions, 'room'> {
  /** The user whose feed (`user:<id>`) this is; the token must grant that room. */
  user: string;
  /** Rooms kept, the most recently updated; also the feed messages read at start. Default 200. */
  limit?: number;
}

export interface InboxEvents {
  /** The list changed: the rooms, the most recently updated first. */
  change: InboxRoom[];
  error: RelayError;
}

/** Opens the user's inbox (see `Inbox`). */
export const inbox = (options: InboxOptions): Inbox => new Inbox(options);

export class Inbox {
  /** The client of the feed room; close the inbox rather than it. */
  readonly feed: RelayClient<RoomUpdate>;
  /** Resolves once the latest `limit` updates of the feed have been read (rejects if they could not be). */
  readonly ready: Promise<void>;
  private _rooms = new Map<string, InboxRoom>();
  /** Room -> seq marked read here, for updates that were on their way before the read. */
  private _read = new Map<string, number>();
  private _limit: number;
  private _on = new Map<keyof InboxEvents, Set<(value: any) => void>>();

  constructor({ user, limit = 200, ...options }: InboxOptions) {
    this._limit = limit;
    this.feed = RelayClient.connect<RoomUpdate>({ ...options, room: 'user:' + user });
    this.feed.on('message', (m) => this._apply(m) && this._changed());
    this.feed.on('error', (e) => this._emit('error', e));
    this.ready = this.feed.loadOlder(limit).then(
      (page) => {
        if (page.messages.map((m) => this._apply(m)).some(Boolean)) this._changed();
      },
      (e) => {
        this._emit('error', e);
        throw e;
      },
    );
    this.ready.catch(() => {}); // reported as an `error` event: not an unhandled rejection
  }

  /** The rooms, the most recently updated first. */
  get rooms(): InboxRoom[] {
    return [...this._rooms.values()].sort((a, b) => b.updated - a.updated);
  }

  /** The total of unread messages over the rooms. */
  get unread(): number {
    let total = 0;
    for (const r of this._rooms.values()) total += r.unread;
    return total;
  }

  on<K extends keyof InboxEvents>(type: K, fn: (value: InboxEvents[K]) => void): () => void {
    if (!this._on.has(type)) this._on.set(type, new Set());
    this._on.get(type)!.add(fn);
    return () => void this._on.get(type)!.delete(fn);
  }

  /**
   * Marks `room` read up to `seq` (default: the room client's lastSeq, or the inbox's newest seq
   * of that room). Given the room's RelayClient, sends its read marker too (`room.markRead`),
   * which makes the relay send the feed an update with the new unread count. Its entry shows 0
   * unread at once, and an update the relay computed before it saw the read does not bring the
   * count back.
   */
  markRead(room: string | RelayClient<any>, seq?: number): void {
    const name = typeof room === 'string' ? room : room.room;
    const entry = this._rooms.get(name);
    const upTo = seq ?? (typeof room === 'string' ? null : room.lastSeq) ?? entry?.seq;
    if (upTo == null) return;
    if (typeof room !== 'string') room.markRead(upTo);
    if (!((this._read.get(name) ?? -1) >= upTo)) this._read.set(name, upTo);
    if (entry && entry.unread && entry.seq <= upTo) {
      this._rooms.set(name, { ...entry, unread: 0 });
      this._changed();
    }
  }

  /** Stops the feed's client. */
  close(): void {
    this.feed.close();
  }

  /** Takes a feed message in; says whether the list changed. Older updates than the one kept lose. */
  private _apply(m: Message<RoomUpdate>): boolean {
    const d = m.data;
    if (m.event !== 'room.update' || !d || typeof d.room !== 'string') return false;
    const known = this._rooms.get(d.room);
    if (known && known.updated >= m.seq) return false;
    const read = this._read.get(d.room);
    const unread = read != null && d.seq <= read ? 0 : Number(d.unread) || 0;
    this._rooms.set(d.room, { room: d.room, seq: d.seq, event: d.event, from: d.from ?? null, preview: d.preview ?? null, unread, updated: m.seq });
    if (this._rooms.size > this._limit) {
      const oldest = this.rooms.pop()!.room;
      this._rooms.delete(oldest);
      this._read.delete(oldest);
    }
    return true;
  }

  private _changed() {
    this._emit('change', this.rooms);
  }

  private _emit<K extends keyof InboxEvents>(type: K, value: InboxEvents[K]) {
    for (const fn of [...(this._on.get(type) || [])]) {
      try {
        fn(value);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}
