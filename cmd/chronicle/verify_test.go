package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/sdk"
)

func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	c := setup(t)
	tampered := c.enqueue("email.send", "--payload", `{"x": 1}`)
	intact := c.enqueue("email.send", "--payload", `{"x": 1}`)

	if out := c.ok("verify"); strings.TrimSpace(out) != "verified 2 executions, 2 events: OK" {
		t.Fatalf("verify of a healthy schema:\n%s", out)
	}

	c.exec(`UPDATE events SET data = jsonb_set(data, '{payload}', '{"x":2}') WHERE seq = 1 AND execution_id = $1`, [16]byte(tampered))
	res := c.run("verify")
	if res.code != 1 {
		t.Fatalf("verify after tampering: want exit 1, got %s", res)
	}
	if !strings.Contains(res.stdout, tampered.String()+": ") || strings.Contains(res.stdout, intact.String()) {
		t.Fatalf("verify should name only the tampered execution %s:\n%s", tampered, res)
	}
	if !strings.Contains(res.stdout, "verified 2 executions, 2 events: 1 problem\n") {
		t.Fatalf("verify summary:\n%s", res)
	}
}

func TestProjectionsRebuild(t *testing.T) {
	t.Parallel()
	c := setup(t)
	pending := c.enqueue("email.send")
	canceled := c.enqueue("data.export", "--delay", "1h")
	c.ok("jobs", "cancel", canceled.String(), "--reason", "test")

	c.exec("DELETE FROM executions")
	res := c.run("verify")
	if res.code != 1 || !strings.Contains(res.stdout, "history without a projection row") || !strings.Contains(res.stdout, "2 problems") {
		t.Fatalf("verify without projections: %s", res)
	}
	c.fails("job "+pending.String()+" not found", "jobs", "show", pending.String())

	if out := c.ok("projections", "rebuild"); strings.TrimSpace(out) != "rebuilt projections of 2 executions" {
		t.Fatalf("rebuild printed %q", out)
	}
	if out := c.ok("verify"); !strings.Contains(out, "verified 2 executions, 3 events: OK") {
		t.Fatalf("verify after rebuild:\n%s", out)
	}
	if j := c.show(pending); j.Status != "pending" || j.Type != "email.send" {
		t.Fatalf("rebuilt pending job: %+v", j)
	}
	if j := c.show(canceled); j.Status != "canceled" {
		t.Fatalf("rebuilt canceled job: %+v", j)
	}
	if jobs := c.list("jobs", "list", "--status", "pending"); len(jobs) != 1 {
		t.Fatalf("pending jobs after rebuild: %+v", jobs)
	}
}

func TestVerifyReportsProgress(t *testing.T) {
	t.Parallel()
	c := setup(t)
	client, err := sdk.NewClient(context.Background(), sdk.Config{Pool: c.pool, DisableNATS: true, AllowUnregisteredTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	reqs := make([]sdk.JobRequest, 2500)
	for i := range reqs {
		reqs[i] = sdk.JobRequest{Type: "bulk.job", Payload: map[string]int{"i": i}}
	}
	if _, err := client.EnqueueMany(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	res := c.run("verify")
	if res.code != 0 || res.stdout != "verified 2500 executions, 2500 events: OK\n" {
		t.Fatalf("verify: %s", res)
	}
	for _, n := range []int{1000, 2000} {
		if !strings.Contains(res.stderr, fmt.Sprintf("verified %d executions", n)) {
			t.Fatalf("progress lacks %d executions: %s", n, res)
		}
	}
	if strings.Contains(res.stderr, "verified 2500") {
		t.Fatalf("progress printed off its interval: %s", res)
	}
}
