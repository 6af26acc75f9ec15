// @edge-relay/server: the backend side of edge-relay (tokens, signed broadcasts, members).

export { RelayError } from './errors.js';
export type { RelayErrorCode, RelayErrorCodeFromRelay, RelayErrorCodeLocal, RelayErrorInit } from './errors.js';
export type { Secret } from './hmac.js';
export { signToken } from './token.js';
export type { SignTokenOptions, SignTokenWithKey, SignTokenWithSecret, TokenClaims } from './token.js';
export type { PrivateJwk, PrivateKey, SigningAlgorithm } from './signing_key.js';
export { signRequest, verifySignature, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECONDS } from './signature.js';
export type { Body, SignRequestOptions, VerifySignatureOptions } from './signature.js';
export { verifyEvents, MAX_EVENTS_BODY_BYTES } from './events.js';
export type {
  EventUser,
  MessageCreatedEvent,
  MessageDeletedEvent,
  MessageEditedEvent,
  MessageUnreadEvent,
  PresenceJoinedEvent,
  PresenceLeftEvent,
  ReadUpdatedEvent,
  RelayEvent,
  RelayEventType,
  RequestLike,
  SignedDelivery,
  VerifyEventsOptions,
} from './events.js';
export { RelayServer } from './server.js';
export type {
  Ban,
  BanAnswer,
  BansAnswer,
  BroadcastOptions,
  BroadcastOutcome,
  DisconnectAnswer,
  FetchLike,
  HistoryOptions,
  HistoryPage,
  Member,
  MembersAnswer,
  Message,
  Presence,
  PresenceOptions,
  PublishOptions,
  PublishReceipt,
  RelayServerOptions,
  RequestInitLike,
  ResponseLike,
  RoomResult,
  RoomStats,
  Stats,
  UnbanAnswer,
} from './server.js';
