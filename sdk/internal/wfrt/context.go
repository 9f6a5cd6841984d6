package wfrt

import "time"

// Context is the context of workflow code: like context.Context, but its
// Done channel is a workflow Channel, and it carries the run.
type Context interface {
	// Deadline has no workflow meaning; it reports none.
	Deadline() (time.Time, bool)
	// Done is closed when the context is canceled.
	Done() Channel
	// Err is nil until the context is canceled, then ErrCanceled.
	Err() error
	// Value returns the value for key, or nil.
	Value(key any) any
}

// CancelFunc cancels a workflow context.
type CancelFunc func()

// cancelScope is the cancellation state shared by a context and the
// contexts derived from it without their own scope.
type cancelScope struct {
	done      *channel
	err       error
	children  []*cancelScope
	listeners map[int]func()
	nextID    int
}

func newScope(r *Run, parent *cancelScope) *cancelScope {
	s := &cancelScope{done: newChannel(r, "done", 0), listeners: map[int]func(){}}
	if parent != nil {
		if parent.err != nil {
			s.cancel()
		} else {
			parent.children = append(parent.children, s)
		}
	}
	return s
}

func (s *cancelScope) cancel() {
	if s.err != nil {
		return
	}
	s.err = ErrCanceled
	s.done.Close()
	for id := 0; id < s.nextID; id++ { // in registration order: deterministic
		if f, ok := s.listeners[id]; ok {
			delete(s.listeners, id)
			f()
		}
	}
	for _, c := range s.children {
		c.cancel()
	}
}

// onCancel registers f to run when the scope is canceled; the returned
// function unregisters it.
func (s *cancelScope) onCancel(f func()) func() {
	id := s.nextID
	s.nextID++
	s.listeners[id] = f
	return func() { delete(s.listeners, id) }
}

type wctx struct {
	run    *Run
	parent *wctx
	scope  *cancelScope
	key    any
	val    any
}

func (c *wctx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *wctx) Done() Channel               { return c.scope.done }
func (c *wctx) Err() error                  { return c.scope.err }
func (c *wctx) Value(key any) any {
	for x := c; x != nil; x = x.parent {
		if x.key != nil && x.key == key {
			return x.val
		}
	}
	return nil
}

func runOf(ctx Context) *Run {
	c, ok := ctx.(*wctx)
	if !ok || c == nil {
		panic("workflow: the context is not a workflow.Context passed to workflow code")
	}
	return c.run
}

func scopeOf(ctx Context) *cancelScope { return ctx.(*wctx).scope }

// WithValue returns a context carrying key=val.
func WithValue(parent Context, key, val any) Context {
	p := parent.(*wctx)
	return &wctx{run: p.run, parent: p, scope: p.scope, key: key, val: val}
}

// WithCancel returns a context canceled when cancel is called or parent is
// canceled.
func WithCancel(parent Context) (Context, CancelFunc) {
	p := parent.(*wctx)
	c := &wctx{run: p.run, parent: p, scope: newScope(p.run, p.scope)}
	return c, func() { c.scope.cancel() }
}

// NewDisconnectedContext returns a context with parent's values that is not
// canceled with it: cleanup after a cancellation runs in one.
func NewDisconnectedContext(parent Context) (Context, CancelFunc) {
	p := parent.(*wctx)
	c := &wctx{run: p.run, parent: p, scope: newScope(p.run, nil)}
	return c, func() { c.scope.cancel() }
}
