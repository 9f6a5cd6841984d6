package main

import (
	"strings"
	"testing"
)

// TestServerRefusesOpenListen: beyond loopback, chronicle server refuses
// to start without authentication and says which variables set it; a
// token too short to be a secret is refused too.
func TestServerRefusesOpenListen(t *testing.T) {
	t.Parallel()
	c := setup(t)
	res := c.fails("CHRONICLE_ADMIN_TOKEN", "server", "--listen", "0.0.0.0:0")
	for _, v := range []string{"CHRONICLE_ADMIN_USER", "CHRONICLE_ADMIN_PASSWORD", "0.0.0.0:0"} {
		if !strings.Contains(res.stderr, v) {
			t.Errorf("error lacks %s: %s", v, res.stderr)
		}
	}
	c.env = []string{"CHRONICLE_LISTEN=0.0.0.0:0"}
	c.fails("CHRONICLE_ADMIN_TOKEN", "server")
	c.env = []string{"CHRONICLE_ADMIN_TOKEN=short"}
	c.fails("at least 16", "server", "--listen", "0.0.0.0:0")
}
