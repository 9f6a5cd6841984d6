package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/chronicle-engine/chronicle/internal/testdb"
	"github.com/chronicle-engine/chronicle/sdk"
)

func TestOrderSagaExample(t *testing.T) {
	pool, schema := testdb.Schema(t)
	var buf bytes.Buffer
	if err := run(context.Background(), sdk.Config{Pool: pool, WakeSubjectPrefix: "test." + schema}, &buf); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	s := buf.String()
	i := strings.Index(s, "order 2-")
	if i < 0 || !strings.Contains(s[:i], "result: shipped (ch-1-") {
		t.Fatalf("first order not shipped:\n%s", s)
	}
	second := s[i:]
	charge, refund, release := strings.Index(second, "charge 90"), strings.Index(second, "refund 90"), strings.Index(second, "release 2 x teapot")
	if charge < 0 || refund < charge || release < refund || !strings.Contains(second, "failed, compensated: ") || !strings.Contains(second, "undeliverable") {
		t.Fatalf("second order not refunded then released:\n%s", s)
	}
	if strings.Count(second, "refund") != 1 || strings.Count(second, "release") != 1 {
		t.Fatalf("compensations ran more than once:\n%s", s)
	}
}
