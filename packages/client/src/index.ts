// @edge-relay/client: a dependency-free client for the edge-relay wire protocol v1.
export { RelayClient, RelayError, backoffDelay } from './relay.js';
export type { HistoryOptions, RelayErrorExtra, RelayEvents, SendOptions } from './relay.js';
export { applyChange, isChange } from './edits.js';
export { Inbox, inbox } from './inbox.js';
export type { InboxEvents, InboxOptions, InboxRoom, RoomUpdate } from './inbox.js';
export type * from './types.js';
export { RelayClient as default } from './relay.js';
