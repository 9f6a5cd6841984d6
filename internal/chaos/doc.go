// Package chaos is Chronicle's reliability harness: named scenarios that run
// real worker processes against the real PostgreSQL and NATS, inject faults
// (SIGKILL, SIGSTOP, cut database connections, a dead NATS, duplicated
// wakeups, transient SQL errors) and then check the promises of
// docs/guarantees.md: no job lost, no job succeeded twice, one side effect
// per idempotency key, contiguous verified histories.
//
// Each scenario runs in its own migrated schema, bounded by a duration and
// seeded, and returns its figures as a Result. `go test ./internal/chaos`
// runs the short form of every scenario; `go test ./internal/chaos
// -chaos.long` and `chronicle chaos --scenario all --duration 10m` run the
// long forms. Worker processes are the running binary re-executed: the test
// binary (see TestMain) or the chronicle binary (`chronicle chaos worker`),
// told what to do by environment variables (see RunWorkerFromEnv).
package chaos
