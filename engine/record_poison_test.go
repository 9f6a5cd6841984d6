package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/engine"
	"github.com/chronicle-engine/chronicle/eventlog"
	"github.com/chronicle-engine/chronicle/eventlog/postgres"
	"github.com/chronicle-engine/chronicle/internal/testdb"
)

// poisonStore refuses, like a constraint the data breaks would, every
// transaction that records an outcome of one execution.
type poisonStore struct {
	eventlog.Store
	bad eventlog.ID
}

func (s poisonStore) InTx(ctx context.Context, fn func(eventlog.Tx) error) error {
	return s.Store.InTx(ctx, func(tx eventlog.Tx) error { return fn(poisonTx{tx, s.bad}) })
}

type poisonTx struct {
	eventlog.Tx
	bad eventlog.ID
}

func (t poisonTx) Apply(ctx context.Context, c eventlog.Changes) error {
	for _, e := range c.Events {
		if e.ExecutionID == t.bad && (e.Type == engine.EventAttemptSucceeded || e.Type == engine.EventAttemptFailed) {
			return errors.New("poisoned outcome")
		}
	}
	return t.Tx.Apply(ctx, c)
}

// One outcome that can never be recorded while the database answers must
// not hold back the others of its batch: the batch is split, the others are
// recorded, and the culprit is given up so that its lease expires.
func TestUnrecordableOutcomeDoesNotBlockItsBatch(t *testing.T) {
	t.Parallel()
	pool, _ := testdb.Schema(t)
	plain := engine.New(postgres.New(pool), nil, nil)
	var ids []eventlog.ID
	for range 8 {
		ids = append(ids, enqueueForClaim(t, plain, engine.NewJob{Queue: "poison"}))
	}
	bad := ids[3]
	eng := engine.New(poisonStore{Store: postgres.New(pool), bad: bad}, nil, nil)
	var gate sync.WaitGroup
	gate.Add(len(ids))
	release := make(chan struct{})
	w, err := eng.NewWorker(engine.WorkerConfig{Queues: map[string]int{"poison": len(ids)}, LeaseDuration: 2 * time.Second,
		PollInterval: 20 * time.Millisecond,
		Run: func(ctx context.Context, c *engine.Claimed) engine.Result {
			// Hold every handler until all have started, so that their
			// outcomes reach the completer together, as one batch.
			gate.Done()
			<-release
			return engine.Result{}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	}()
	gate.Wait()
	close(release)
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		done := 0
		for _, id := range ids {
			if j, err := plain.Get(ctx, id); err == nil && j.Status == engine.StatusSucceeded {
				done++
			}
		}
		if done == len(ids)-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d recordable outcomes recorded", done, len(ids)-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The culprit was given up: its lease is no longer extended, so it
	// expires and maintenance times the attempt out.
	for {
		n, err := plain.ExpireLeases(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unrecordable attempt's lease never expired: its worker kept extending it")
		}
		time.Sleep(50 * time.Millisecond)
	}
	j, err := plain.Get(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != engine.StatusRetrying {
		t.Fatalf("culprit is %s, want retrying after its timeout", j.Status)
	}
}
