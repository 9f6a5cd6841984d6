// Package wfrt is the workflow runtime behind sdk/workflow and
// sdk/activity: the deterministic coroutine dispatcher that runs workflow
// code, its contexts, futures, channels and selectors, the replay of a
// history through the code, and the registries of workflow and activity
// functions. Users import sdk/workflow and sdk/activity, which re-export
// the public parts.
package wfrt
