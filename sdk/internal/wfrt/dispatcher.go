package wfrt

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// errKilled unwinds a coroutine whose run is being discarded.
var errKilled = errors.New("workflow coroutine killed")

// errStop unwinds a coroutine after the run found non-determinism.
var errStop = errors.New("workflow coroutine stopped")

// coroutine is one goroutine of workflow code. Only one coroutine of a
// dispatcher runs at a time, handing control back with block; so workflow
// code runs as if single-threaded, in an order that depends on nothing but
// the history.
type coroutine struct {
	name   string
	resume chan bool // true: unwind and exit
	cond   func() bool
	done   bool
}

// dispatcher runs a workflow's coroutines until all are blocked.
type dispatcher struct {
	cos     []*coroutine
	current *coroutine
	yielded chan struct{}
	killed  bool
	failure error // a panic in workflow code
}

func newDispatcher() *dispatcher { return &dispatcher{yielded: make(chan struct{})} }

// spawn adds a coroutine; it first runs at the dispatcher's next pass.
func (d *dispatcher) spawn(name string, fn func()) {
	co := &coroutine{name: name, resume: make(chan bool)}
	d.cos = append(d.cos, co)
	go func() {
		defer func() {
			if p := recover(); p != nil && p != errKilled && p != errStop && d.failure == nil {
				d.failure = &PanicError{Value: fmt.Sprint(p), Stack: string(debug.Stack())}
			}
			co.done = true
			d.yielded <- struct{}{}
		}()
		if kill := <-co.resume; kill {
			return
		}
		fn()
	}()
}

// block parks the calling coroutine until cond holds. The dispatcher
// evaluates cond while every coroutine is parked.
func (d *dispatcher) block(cond func() bool) {
	if d.killed {
		panic(errKilled)
	}
	if cond() {
		return
	}
	co := d.current
	if co == nil {
		panic("workflow: a blocking call was made outside workflow code (use workflow.Go to start coroutines)")
	}
	co.cond = cond
	d.yielded <- struct{}{}
	if kill := <-co.resume; kill {
		panic(errKilled)
	}
}

// run resumes coroutines, in creation order, until a whole pass finds none
// whose condition holds. It returns a panic of workflow code.
func (d *dispatcher) run() error {
	for {
		progress := false
		for i := 0; i < len(d.cos); i++ {
			co := d.cos[i]
			if co.done || (co.cond != nil && !co.cond()) {
				continue
			}
			co.cond, progress = nil, true
			d.current = co
			co.resume <- false
			<-d.yielded
			d.current = nil
			if d.failure != nil {
				return d.failure
			}
		}
		if !progress {
			break
		}
	}
	live := d.cos[:0]
	for _, co := range d.cos {
		if !co.done {
			live = append(live, co)
		}
	}
	d.cos = live
	return nil
}

// stop unwinds the current coroutine after a fatal finding; the run
// reports the finding.
func (d *dispatcher) stop() {
	if d.current != nil {
		panic(errStop)
	}
}

// kill unwinds every coroutine, running their deferred calls, so that a
// discarded run leaves no goroutine behind.
func (d *dispatcher) kill() {
	d.killed = true
	for _, co := range d.cos {
		if co.done {
			continue
		}
		d.current = co
		co.resume <- true
		<-d.yielded
	}
	d.current = nil
	d.cos = nil
}
