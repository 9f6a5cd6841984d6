// Package engine is Chronicle's machinery: the job state machine as pure
// functions (Evolve and Decide), retry policies, and the services that run
// them against the event log — enqueue, claim, complete, lease expiry,
// operator actions, wakeups, leader election, verification and projection
// rebuilds.
//
// The deciders never touch a database or a clock: a command and the current
// state (the fold of the history) give new events, or a typed error saying
// why the command is refused. Everything that happens to a job is one of
// those events, and every derived fact — status, attempt counts, the next
// run time, whether it is dead-lettered — comes from folding them.
//
// Users import package sdk, which wraps this one.
package engine
