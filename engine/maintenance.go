package engine

import (
	"context"
	"log/slog"
	"time"
)

// Maintenance defaults.
const (
	// DefaultMaintenanceInterval is how often the leader runs its duties.
	DefaultMaintenanceInterval = time.Second
	// DefaultLeaderTTL is how long leadership lasts without renewal: a dead
	// leader is replaced within it.
	DefaultLeaderTTL = 10 * time.Second
	// expireBatch is how many expired leases one transaction times out.
	expireBatch = 500
)

// leaderName is the leaders row that maintenance runs under.
const leaderName = "maintenance"

// Maintenance runs the duties that need exactly one process at a time:
// timing out the attempts of dead workers and waking queues whose delayed
// work became due. Every worker process runs one; a lease row in Postgres
// elects which is active.
type Maintenance struct {
	eng      *Engine
	holder   string
	interval time.Duration
	ttl      time.Duration
	log      *slog.Logger
}

// NewMaintenance returns maintenance for holder (usually the worker ID).
// Zero durations take their defaults.
func (e *Engine) NewMaintenance(holder string, interval, ttl time.Duration) *Maintenance {
	if interval <= 0 {
		interval = DefaultMaintenanceInterval
	}
	if ttl <= 0 {
		ttl = DefaultLeaderTTL
	}
	return &Maintenance{eng: e, holder: holder, interval: interval, ttl: ttl, log: e.log.With("leader_candidate", holder)}
}

// Run performs maintenance until ctx is canceled, then gives up leadership.
func (m *Maintenance) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	var since time.Time // last due-queue check while leader; zero when not leader
	for {
		since = m.tick(ctx, since)
		select {
		case <-ctx.Done():
			if !since.IsZero() {
				_ = m.eng.store.ReleaseLeadership(context.Background(), leaderName, m.holder)
			}
			return
		case <-t.C:
		}
	}
}

// tick runs one round and returns the time of its due-queue check.
func (m *Maintenance) tick(ctx context.Context, since time.Time) time.Time {
	leader, err := m.eng.store.AcquireLeadership(ctx, leaderName, m.holder, m.ttl)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Error("leader election failed", "err", err)
		}
		return time.Time{}
	}
	if !leader {
		return time.Time{}
	}
	if since.IsZero() {
		m.log.Info("became maintenance leader")
	}
	for {
		n, err := m.eng.ExpireLeases(ctx, expireBatch)
		if err != nil {
			m.log.Error("expiring leases failed", "err", err)
			break
		}
		if n > 0 {
			m.log.Info("timed out attempts whose lease expired", "count", n)
		}
		if n < expireBatch {
			break
		}
	}
	m.runDuties(ctx) // further duties, such as firing schedules: maintenance_duties.go
	if since.IsZero() {
		// New leader: also wake anything that came due while nobody led.
		since = time.Unix(0, 0)
	}
	queues, now, err := m.eng.store.DueQueues(ctx, since)
	if err != nil {
		m.log.Error("finding due queues failed", "err", err)
		return since
	}
	if len(queues) > 0 {
		m.eng.waker.Wake(queues...)
	}
	return now
}
