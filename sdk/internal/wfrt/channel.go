package wfrt

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// ReceiveChannel is the receiving side of a workflow channel.
type ReceiveChannel interface {
	// Receive blocks until a value arrives and stores it in valuePtr
	// (which may be nil). more is false when the channel is closed and
	// drained.
	Receive(ctx Context, valuePtr any) (more bool)
	// ReceiveAsync takes a value if one is ready.
	ReceiveAsync(valuePtr any) (ok bool)
	// ReceiveAsyncWithMoreFlag is ReceiveAsync that also says whether the
	// channel is still open.
	ReceiveAsyncWithMoreFlag(valuePtr any) (ok bool, more bool)
	// Len is the number of buffered values.
	Len() int
	// Name is the channel's name (a signal's name for signal channels).
	Name() string
}

// SendChannel is the sending side of a workflow channel.
type SendChannel interface {
	// Send blocks until the value is buffered or received.
	Send(ctx Context, v any)
	// SendAsync sends if it would not block.
	SendAsync(v any) (ok bool)
	// Close ends the channel: receivers drain it, then see more=false.
	Close()
}

// Channel is a deterministic channel between workflow coroutines.
type Channel interface {
	ReceiveChannel
	SendChannel
}

type pendingSend struct {
	v     any
	taken bool
}

type channel struct {
	run     *Run
	name    string
	size    int // -1: unbounded
	buf     []any
	senders []*pendingSend
	closed  bool
}

func newChannel(r *Run, name string, size int) *channel {
	return &channel{run: r, name: name, size: size}
}

func (c *channel) Name() string { return c.name }
func (c *channel) Len() int     { return len(c.buf) }

func (c *channel) ready() bool { return len(c.buf) > 0 || len(c.senders) > 0 || c.closed }

func (c *channel) take(valuePtr any) (ok, more bool) {
	var v any
	switch {
	case len(c.buf) > 0:
		v, c.buf = c.buf[0], c.buf[1:]
		if len(c.senders) > 0 && c.size > 0 { // a blocked sender fills the freed slot
			s := c.senders[0]
			c.senders, s.taken = c.senders[1:], true
			c.buf = append(c.buf, s.v)
		}
	case len(c.senders) > 0:
		s := c.senders[0]
		c.senders, s.taken = c.senders[1:], true
		v = s.v
	case c.closed:
		return false, false
	default:
		return false, true
	}
	if err := assign(v, valuePtr); err != nil {
		panic(fmt.Sprintf("workflow: receive from channel %q: %v", c.name, err))
	}
	return true, true
}

func (c *channel) Receive(ctx Context, valuePtr any) bool {
	c.run.sched.block(c.ready)
	_, more := c.take(valuePtr)
	return more
}

func (c *channel) ReceiveAsync(valuePtr any) bool {
	ok, _ := c.take(valuePtr)
	return ok
}

func (c *channel) ReceiveAsyncWithMoreFlag(valuePtr any) (bool, bool) { return c.take(valuePtr) }

func (c *channel) canSend() bool { return c.size < 0 || len(c.buf) < c.size }

func (c *channel) Send(ctx Context, v any) {
	if c.closed {
		panic(fmt.Sprintf("workflow: send on closed channel %q", c.name))
	}
	if c.canSend() {
		c.buf = append(c.buf, v)
		return
	}
	s := &pendingSend{v: v}
	c.senders = append(c.senders, s)
	c.run.sched.block(func() bool { return s.taken })
}

func (c *channel) SendAsync(v any) bool {
	if c.closed || !c.canSend() {
		return false
	}
	c.buf = append(c.buf, v)
	return true
}

func (c *channel) Close() { c.closed = true }

// NewChannel returns an unbuffered channel.
func NewChannel(ctx Context) Channel { return newChannel(runOf(ctx), "", 0) }

// NewNamedChannel returns an unbuffered channel with a name.
func NewNamedChannel(ctx Context, name string) Channel { return newChannel(runOf(ctx), name, 0) }

// NewBufferedChannel returns a channel that buffers size values.
func NewBufferedChannel(ctx Context, size int) Channel { return newChannel(runOf(ctx), "", size) }

// assign stores v in valuePtr: JSON payloads are decoded, Go values
// assigned (or converted through JSON when their types differ).
func assign(v any, valuePtr any) error {
	if valuePtr == nil {
		return nil
	}
	pv := reflect.ValueOf(valuePtr)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return fmt.Errorf("want a non-nil pointer to store the value in, got %T", valuePtr)
	}
	switch x := v.(type) {
	case json.RawMessage:
		if len(x) == 0 {
			return nil
		}
		return json.Unmarshal(x, valuePtr)
	case nil:
		pv.Elem().Set(reflect.Zero(pv.Elem().Type()))
		return nil
	}
	rv := reflect.ValueOf(v)
	if rv.Type().AssignableTo(pv.Elem().Type()) {
		pv.Elem().Set(rv)
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, valuePtr)
}
