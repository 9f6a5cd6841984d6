// Package eventlog is Chronicle's append-only event log and the one seam
// through which the engine reaches storage.
//
// An execution (a job or a workflow run) is identified by a ULID and owns a
// history of events numbered 1, 2, 3, … with no gaps. Each event carries a
// SHA-256 hash over its content and its predecessor's hash, so a history is
// tamper-evident: editing, removing or reordering a stored event breaks the
// chain, and Verify-style tools can prove it.
//
// The package knows event envelopes, the projection rows derived from them
// (the current state of each execution and its ready tasks) and the Store
// interface. It knows nothing of what a job or a workflow means: that lives
// in package engine. All SQL lives in drivers below this package
// (eventlog/postgres).
package eventlog
