package main

import (
	"strings"
	"testing"
)

// TestBenchCommands runs each scenario small: it checks the machinery and
// the JSON line, not the speed.
func TestBenchCommands(t *testing.T) {
	t.Parallel()
	c := setup(t)
	var bd struct {
		Jobs         int     `json:"jobs"`
		JobsPerS     float64 `json:"jobs_per_second"`
		EventsPerJob float64 `json:"events_per_job"`
		WALPerJob    float64 `json:"wal_bytes_per_job"`
	}
	res := c.run("bench", "burndown", "--jobs", "300", "--concurrency", "20")
	if res.code != 0 {
		t.Fatal(res)
	}
	decodeJSON(t, strings.TrimSpace(res.stdout), &bd)
	if bd.Jobs != 300 || bd.JobsPerS <= 0 || bd.EventsPerJob != 3 || bd.WALPerJob <= 0 {
		t.Fatalf("burndown result %+v", bd)
	}
	if !strings.Contains(res.stderr, "burndown: enqueueing 300 jobs") {
		t.Fatalf("no progress output: %s", res)
	}
	var lat struct {
		Jobs int     `json:"jobs"`
		P50  float64 `json:"p50_ms"`
		Max  float64 `json:"max_ms"`
	}
	decodeJSON(t, strings.TrimSpace(c.ok("bench", "latency", "--jobs", "20", "--rate", "200")), &lat)
	if lat.Jobs != 20 || lat.P50 <= 0 || lat.P50 > lat.Max {
		t.Fatalf("latency result %+v", lat)
	}
}
