package wfrt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
)

var (
	contextType  = reflect.TypeOf((*context.Context)(nil)).Elem()
	wfContextTyp = reflect.TypeOf((*Context)(nil)).Elem()
	errorType    = reflect.TypeOf((*error)(nil)).Elem()
)

// ErrNotRegistered is matched by lookups of unregistered workflow and
// activity types.
var ErrNotRegistered = errors.New("not registered")

// FunctionName is the name a function registers under by default: its
// name without package or receiver, as Temporal names them.
func FunctionName(fn any) string {
	if s, ok := fn.(string); ok {
		return s
	}
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func {
		return ""
	}
	name := runtime.FuncForPC(v.Pointer()).Name()
	name = strings.TrimSuffix(name, "-fm")
	if i := strings.LastIndex(name, "."); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// fn is a registered workflow or activity function.
type fn struct {
	name string
	v    reflect.Value
	// args are the parameter types after the context.
	args     []reflect.Type
	hasValue bool // returns (R, error) rather than error
}

func newFn(f any, name string, ctxType reflect.Type, what string) (*fn, error) {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Func || v.IsNil() {
		return nil, fmt.Errorf("register %s: want a function, got %T", what, f)
	}
	t := v.Type()
	if name == "" {
		name = FunctionName(f)
	}
	sig := fmt.Sprintf("func(%s, args...) (R, error) or func(%s, args...) error", ctxType, ctxType)
	if t.NumIn() < 1 || t.In(0) != ctxType {
		return nil, fmt.Errorf("register %s %s: its first parameter must be %s; want %s", what, name, ctxType, sig)
	}
	if t.IsVariadic() {
		return nil, fmt.Errorf("register %s %s: variadic functions are not supported", what, name)
	}
	switch {
	case t.NumOut() == 1 && t.Out(0) == errorType:
	case t.NumOut() == 2 && t.Out(1) == errorType:
	default:
		return nil, fmt.Errorf("register %s %s: want %s", what, name, sig)
	}
	out := &fn{name: name, v: v, hasValue: t.NumOut() == 2}
	for i := 1; i < t.NumIn(); i++ {
		out.args = append(out.args, t.In(i))
	}
	return out, nil
}

// decodeArgs decodes a JSON array of arguments into the function's
// parameter types.
func (f *fn) decodeArgs(raw json.RawMessage) ([]reflect.Value, error) {
	var items []json.RawMessage
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("input of %s is not a JSON array of arguments: %w", f.name, err)
		}
	}
	if len(items) != len(f.args) {
		return nil, fmt.Errorf("input of %s has %d arguments; the function takes %d", f.name, len(items), len(f.args))
	}
	out := make([]reflect.Value, len(items))
	for i, item := range items {
		p := reflect.New(f.args[i])
		if err := json.Unmarshal(item, p.Interface()); err != nil {
			return nil, fmt.Errorf("argument %d of %s does not decode as %s: %w", i+1, f.name, f.args[i], err)
		}
		out[i] = p.Elem()
	}
	return out, nil
}

// call calls the function and splits its results.
func (f *fn) call(ctx reflect.Value, args []reflect.Value) (any, error) {
	out := f.v.Call(append([]reflect.Value{ctx}, args...))
	errV := out[len(out)-1]
	var err error
	if !errV.IsNil() {
		err = errV.Interface().(error)
	}
	if f.hasValue {
		return out[0].Interface(), err
	}
	return nil, err
}

// EncodeArgs encodes arguments as the JSON array that workflow inputs and
// activity inputs are.
func EncodeArgs(args []any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("encode arguments as JSON: %w", err)
	}
	return raw, nil
}

// Registry holds the workflow and activity functions a worker runs.
type Registry struct {
	mu         sync.RWMutex
	workflows  map[string]*fn
	activities map[string]*fn
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{workflows: map[string]*fn{}, activities: map[string]*fn{}}
}

// RegisterWorkflow registers a workflow function under name (its function
// name when empty).
func (r *Registry) RegisterWorkflow(f any, name string) error {
	w, err := newFn(f, name, wfContextTyp, "workflow")
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workflows[w.name] = w
	return nil
}

// RegisterActivity registers an activity function under name (its
// function name when empty).
func (r *Registry) RegisterActivity(f any, name string) error {
	a, err := newFn(f, name, contextType, "activity")
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.activities[a.name] = a
	return nil
}

func (r *Registry) workflow(name string) (*fn, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if w, ok := r.workflows[name]; ok {
		return w, nil
	}
	return nil, fmt.Errorf("workflow type %q is %w here; register it with RegisterWorkflow", name, ErrNotRegistered)
}

func (r *Registry) activity(name string) (*fn, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if a, ok := r.activities[name]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("activity type %q is %w here; register it with RegisterActivity", name, ErrNotRegistered)
}

// HasWorkflow reports whether a workflow type is registered.
func (r *Registry) HasWorkflow(name string) bool { _, err := r.workflow(name); return err == nil }

// CheckWorkflowInput reports whether input decodes as the arguments of the
// registered workflow type name. Unregistered types are not checked.
func (r *Registry) CheckWorkflowInput(name string, input json.RawMessage) error {
	w, err := r.workflow(name)
	if err != nil {
		return nil
	}
	_, err = w.decodeArgs(input)
	return err
}

// WorkflowNames lists the registered workflow types.
func (r *Registry) WorkflowNames() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.workflows))
	for n := range r.workflows {
		out = append(out, n)
	}
	return out
}

// Merge copies other's registrations into r.
func (r *Registry) Merge(other *Registry) {
	other.mu.RLock()
	defer other.mu.RUnlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range other.workflows {
		r.workflows[k] = v
	}
	for k, v := range other.activities {
		r.activities[k] = v
	}
}

// HasActivity reports whether an activity type is registered.
func (r *Registry) HasActivity(name string) bool { _, err := r.activity(name); return err == nil }
