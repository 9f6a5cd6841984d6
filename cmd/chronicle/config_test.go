package main

import (
	"strings"
	"testing"
)

const unreachableURL = "postgres://postgres@127.0.0.1:1/postgres"

func TestUnreachableDatabase(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, url: unreachableURL}
	for _, args := range [][]string{{"jobs", "list"}, {"migrate"}, {"verify"}, {"enqueue", "email.send"}} {
		res := c.fails("127.0.0.1:1", args...)
		if !strings.Contains(res.stderr, "DATABASE_URL") {
			t.Fatalf("%v: error does not say how to set the address: %s", args, res)
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	good := setup(t)

	// The environment beats the default: an unreachable $DATABASE_URL is used.
	bad := &cli{t: t, url: unreachableURL}
	bad.fails("127.0.0.1:1", "jobs", "list")
	// The flag beats the environment.
	if out := bad.ok("jobs", "list", "--database-url", good.url); !strings.Contains(out, "ID") {
		t.Fatalf("jobs list with --database-url:\n%s", out)
	}
	good.fails("127.0.0.1:1", "jobs", "list", "--database-url", unreachableURL)

	good.fails(`--log-format "xml"`, "jobs", "list", "--log-format", "xml")
	good.fails(`--log-level "loud"`, "jobs", "list", "--log-level", "loud")
	good.fails(`--queues "default=0"`, "worker", "--queues", "default=0")
	if res := good.run("jobs", "show"); res.code != 1 || !strings.Contains(res.stderr, "accepts 1 arg") {
		t.Fatalf("missing argument: %s", res)
	}
}
