package chaos_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-engine/chronicle/internal/chaos"
	"github.com/chronicle-engine/chronicle/internal/testdb"
)

var (
	long     = flag.Bool("chaos.long", false, "run the long forms of the chaos scenarios (see -chaos.duration)")
	duration = flag.Duration("chaos.duration", 0, "fault phase of each scenario; default 2s, or 2m with -chaos.long")
	seed     = flag.Int64("chaos.seed", 0, "seed of the random choices; 0 picks one (printed on failure)")
)

// TestMain runs a chaos worker process instead of the tests when the
// harness re-executes the test binary as one.
func TestMain(m *testing.M) {
	if chaos.IsWorker() {
		if err := chaos.RunWorkerFromEnv(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos worker:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func config() chaos.Config {
	d := *duration
	if d == 0 {
		d = 2 * time.Second
		if *long {
			d = 2 * time.Minute
		}
	}
	return chaos.Config{DatabaseURL: testdb.URL(), Duration: d, Seed: *seed, Command: func() *exec.Cmd { return exec.Command(os.Args[0]) }}
}

// TestScenarios runs every scenario (the short form unless -chaos.long)
// and fails on any broken promise, printing the figures and the seed.
func TestScenarios(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	scenarios, err := chaos.Lookup([]string{"all"}, *long)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scenarios {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			r, err := chaos.Run(context.Background(), config(), s)
			var out strings.Builder
			if r != nil {
				chaos.Print(&out, []*chaos.Result{r})
			}
			t.Log("\n" + out.String())
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLookup: unknown names are refused with the list of known ones.
func TestLookup(t *testing.T) {
	t.Parallel()
	if _, err := chaos.Lookup([]string{"nosuch"}, false); err == nil || !strings.Contains(err.Error(), "kill9") {
		t.Fatalf("Lookup(nosuch) = %v; want an error listing the scenarios", err)
	}
	all, err := chaos.Lookup([]string{"all"}, true)
	if err != nil || len(all) != len(chaos.Scenarios()) {
		t.Fatalf("Lookup(all) = %d scenarios, %v", len(all), err)
	}
}

// TestUpdateDoc: the results table replaces what lies between the markers
// and nothing else.
func TestUpdateDoc(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/g.md"
	if err := os.WriteFile(path, []byte("intro\n<!-- chaos-results:begin -->\nold\n<!-- chaos-results:end -->\noutro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	table := chaos.MarkdownTable([]*chaos.Result{{Scenario: "kill9", Operations: 3, Verify: "OK"}}, time.Unix(0, 0), "chronicle chaos")
	if err := chaos.UpdateDoc(path, table); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	if strings.Contains(s, "old") || !strings.HasPrefix(s, "intro\n") || !strings.HasSuffix(s, "outro\n") || !strings.Contains(s, "| kill9 | pass |") {
		t.Fatalf("updated doc:\n%s", s)
	}
	// A run of other scenarios replaces only their rows.
	if err := chaos.UpdateDoc(path, chaos.MarkdownTable([]*chaos.Result{{Scenario: "leader", Verify: "OK"}}, time.Unix(0, 0), "chronicle chaos")); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if s := string(b); !strings.Contains(s, "| kill9 | pass |") || !strings.Contains(s, "| leader | pass |") || strings.Count(s, "| Scenario |") != 1 {
		t.Fatalf("doc after a second run:\n%s", s)
	}
	if err := chaos.UpdateDoc(t.TempDir()+"/none.md", table); err == nil {
		t.Fatal("UpdateDoc of a missing file succeeded")
	}
}
