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
// Workflows have their own pure machinery in the workflow*.go files: the
// workflow events, the fold of a run's history (EvolveWorkflow), the
// decider of workflow tasks, activity outcomes, timers and signals
// (DecideWorkflow), and the matching of replayed commands against the
// history (MatchCommand, NonDeterminismError). Their tasks share the ready
// queue, leases and wakeups with jobs; Claim, Complete and ExpireLeases
// dispatch on the execution's kind and the task's key.
//
// Users import package sdk, which wraps this one.
package engine
