// Package edgerelay is the backend side of edge-relay for Go, on the standard library alone:
// SignToken mints the user tokens the relay accepts, a Client broadcasts into rooms (signed,
// idempotent by id, retried within bounds) and manages room members, and VerifyEvents checks
// the relay's signed outgoing events. Every failure is an *Error carrying the relay's code.
package edgerelay
