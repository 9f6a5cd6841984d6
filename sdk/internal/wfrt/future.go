package wfrt

// Future is the result of an asynchronous workflow operation.
type Future interface {
	// Get blocks until the future is ready, stores its value in valuePtr
	// (which may be nil) and returns its error.
	Get(ctx Context, valuePtr any) error
	// IsReady reports whether Get would not block.
	IsReady() bool
}

// Settable sets the value of a future made by NewFuture.
type Settable interface {
	Set(value any, err error)
	SetValue(value any)
	SetError(err error)
	// Chain makes the future ready with other's outcome when other is.
	Chain(other Future)
}

type future struct {
	run   *Run
	ready bool
	value any
	err   error
	// chained futures are set with this one's outcome.
	chained []*future
}

func newFuture(r *Run) *future { return &future{run: r} }

func (f *future) IsReady() bool { return f.ready }

func (f *future) Get(ctx Context, valuePtr any) error {
	f.run.sched.block(func() bool { return f.ready })
	if f.err != nil {
		return f.err
	}
	if err := assign(f.value, valuePtr); err != nil {
		return NewApplicationError("decode result: "+err.Error(), "DecodeError", true, err)
	}
	return nil
}

func (f *future) Set(value any, err error) {
	if f.ready {
		return
	}
	f.ready, f.value, f.err = true, value, err
	for _, c := range f.chained {
		c.Set(value, err)
	}
	f.chained = nil
}

func (f *future) SetValue(value any) { f.Set(value, nil) }
func (f *future) SetError(err error) { f.Set(nil, err) }

func (f *future) Chain(other Future) {
	o, ok := other.(*future)
	if !ok {
		panic("workflow: Chain takes a future of this package")
	}
	if o.ready {
		f.Set(o.value, o.err)
		return
	}
	o.chained = append(o.chained, f)
}

// NewFuture returns a future and the Settable that makes it ready.
func NewFuture(ctx Context) (Future, Settable) {
	f := newFuture(runOf(ctx))
	return f, f
}

// Selector waits on several futures and channels at once, and runs the
// callback of the first that is ready, in the order they were added.
type Selector interface {
	AddReceive(c ReceiveChannel, f func(c ReceiveChannel, more bool)) Selector
	AddSend(c SendChannel, v any, f func()) Selector
	AddFuture(future Future, f func(f Future)) Selector
	AddDefault(f func())
	// Select blocks until a case is ready and runs its callback. A
	// future's callback runs at most once per selector.
	Select(ctx Context)
	// HasPending reports whether a case is ready now.
	HasPending() bool
}

type selectCase struct {
	recv   *channel
	onRecv func(ReceiveChannel, bool)
	send   *channel
	sendV  any
	onSend func()
	fut    *future
	onFut  func(Future)
	fired  bool
}

type selector struct {
	run   *Run
	cases []*selectCase
	def   func()
}

// NewSelector returns an empty selector.
func NewSelector(ctx Context) Selector { return &selector{run: runOf(ctx)} }

func (s *selector) AddReceive(c ReceiveChannel, f func(ReceiveChannel, bool)) Selector {
	s.cases = append(s.cases, &selectCase{recv: c.(*channel), onRecv: f})
	return s
}

func (s *selector) AddSend(c SendChannel, v any, f func()) Selector {
	s.cases = append(s.cases, &selectCase{send: c.(*channel), sendV: v, onSend: f})
	return s
}

func (s *selector) AddFuture(fu Future, f func(Future)) Selector {
	s.cases = append(s.cases, &selectCase{fut: fu.(*future), onFut: f})
	return s
}

func (s *selector) AddDefault(f func()) { s.def = f }

func (s *selector) readyCase() *selectCase {
	for _, c := range s.cases {
		switch {
		case c.recv != nil && c.recv.ready():
			return c
		case c.send != nil && !c.send.closed && c.send.canSend():
			return c
		case c.fut != nil && c.fut.ready && !c.fired:
			return c
		}
	}
	return nil
}

func (s *selector) HasPending() bool { return s.readyCase() != nil }

func (s *selector) Select(ctx Context) {
	if s.readyCase() == nil && s.def != nil {
		s.def()
		return
	}
	s.run.sched.block(func() bool { return s.readyCase() != nil })
	c := s.readyCase()
	switch {
	case c.recv != nil:
		c.onRecv(c.recv, !(c.recv.closed && len(c.recv.buf) == 0 && len(c.recv.senders) == 0))
	case c.send != nil:
		c.send.buf = append(c.send.buf, c.sendV)
		if c.onSend != nil {
			c.onSend()
		}
	default:
		c.fired = true
		c.onFut(c.fut)
	}
}
