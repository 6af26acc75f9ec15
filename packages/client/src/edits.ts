// Keeping an app's list of messages current as edits and deletes arrive (see RelayClient.edit).
import type { Message } from './types.js';

/** Whether `m` is the record of an edit or delete (its `ref_seq` names the message changed). */
export const isChange = (m: Message<unknown>): boolean => m.ref_seq != null && (m.event === 'message.edited' || m.event === 'message.deleted');

/**
 * Applies the record `m` of an edit or delete to the message it names in `messages`, in place,
 * the way history shows it: new `data` and `edited_at`, or `data: null` and `deleted_at`.
 * Returns the message changed; `null` when `m` is no such record or its message is not in the
 * list (e.g. not loaded yet: history will show it current).
 */
export function applyChange<TData>(messages: Message<TData>[], m: Message<TData>): Message<TData> | null {
  const target = isChange(m) ? messages.find((x) => x.seq === m.ref_seq) : undefined;
  if (!target) return null;
  if (m.event === 'message.edited') (target.data = m.data), (target.edited_at = m.ts);
  else (target.data = null as TData), (target.deleted_at = m.ts);
  return target;
}
