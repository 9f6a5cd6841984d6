package engine

import "context"

// maintenanceDuty is a duty the maintenance leader runs every round, after
// timing out expired leases. It returns how much it did, for the log.
type maintenanceDuty struct {
	name string
	run  func(ctx context.Context, e *Engine) (int, error)
}

// maintenanceDuties are run in order by the leader. Each must be safe to
// run by two processes at once (a leader that lost its lease may still be
// finishing a round): they lock what they change and skip what others
// hold.
var maintenanceDuties = []maintenanceDuty{
	{name: "fired schedule ticks", run: fireDueSchedules},
}

// runDuties runs every duty; a failing one is logged and retried next round.
func (m *Maintenance) runDuties(ctx context.Context) {
	for _, d := range maintenanceDuties {
		n, err := d.run(ctx, m.eng)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Error("maintenance duty failed", "duty", d.name, "err", err)
			}
			continue
		}
		if n > 0 {
			m.log.Info(d.name, "count", n)
		}
	}
}

// maxFireRounds bounds the batches of due schedules one round fires, so
// that a round ends even when very many schedules are due at once.
const maxFireRounds = 10

// fireDueSchedules fires due schedules batch by batch until none is left.
func fireDueSchedules(ctx context.Context, e *Engine) (int, error) {
	total := 0
	for range maxFireRounds {
		locked, n, err := e.fireSchedules(ctx, fireBatch)
		total += n
		if err != nil || locked < fireBatch {
			return total, err
		}
	}
	return total, nil
}
