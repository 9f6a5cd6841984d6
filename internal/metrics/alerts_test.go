package metrics_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chronicle-engine/chronicle/internal/metrics"
)

// rulesFile is the shape of a Prometheus rules file.
type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// promqlKeywords are PromQL words that are not metric names: keywords, and
// aggregation operators, which may be followed by a by or without clause
// instead of their parenthesis.
var promqlKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan",
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}

// metricNames returns the metric names a PromQL expression selects: the
// identifiers that are not functions or aggregations (followed by '('),
// not keywords, not label names (inside {} or after by/without/on/
// ignoring), not inside strings, and not numbers or durations.
func metricNames(expr string) []string {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipGroup := false // the next (...) lists labels
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '{':
			i += strings.IndexByte(expr[i:], '}') + 1
		case c == '[':
			i += strings.IndexByte(expr[i:], ']') + 1
		case c == '(' && skipGroup:
			i += strings.IndexByte(expr[i:], ')') + 1
			skipGroup = false
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.') {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && expr[k] == ' ' {
				k++
			}
			switch {
			case slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, strings.ToLower(word)):
				skipGroup = true
			case slices.Contains(promqlKeywords, strings.ToLower(word)):
			case k < len(expr) && expr[k] == '(':
				// a function or an aggregation
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names
}

func TestMetricNamesLexer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		expr string
		want []string
	}{
		{`max by (queue) (job_queue_pending) > 1000`, []string{"job_queue_pending"}},
		{`sum without (type) (rate(job_processed_total{status="failure", type=~"a.b"}[5m])) / on (queue) group_left (x) foo_bar`, []string{"job_processed_total", "foo_bar"}},
		{`time() - max(x offset 10m) < 900 and bool y`, []string{"x", "y"}},
		{`histogram_quantile(0.99, sum by (le) (rate(job_duration_seconds_bucket[5m])))`, []string{"job_duration_seconds_bucket"}},
		{`label_replace(up, "a", "$1", "b", "(.*)")`, []string{"up"}},
	}
	for _, c := range cases {
		if got := metricNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// exported reports whether name is a series Chronicle exports: a metric
// of metrics.Names, or the _bucket, _sum or _count series of a histogram.
func exported(name string) bool {
	if slices.Contains(metrics.Names, name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(metrics.Names, base) &&
			slices.Contains([]string{"job_duration_seconds", "job_claim_batch_size", "job_completion_batch_size", "workflow_task_latency_seconds"}, base) {
			return true
		}
	}
	return false
}

// TestAlertRules loads deploy/prometheus/alerts.yml, checks that every
// expression names only metrics Chronicle exports, and that the runbook's
// four alerts are there with its thresholds.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f rulesFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("alerts.yml is not a rules file: %v", err)
	}
	exprs := map[string]string{}
	fors := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s has a rule without alert name or expression: %+v", g.Name, r)
				continue
			}
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("%s: expression %q names no metric", r.Alert, r.Expr)
			}
			for _, n := range names {
				if !exported(n) {
					t.Errorf("%s: expression %q names %s, which Chronicle does not export (metrics.Names)", r.Alert, r.Expr, n)
				}
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: wants a severity label and summary and description annotations", r.Alert)
			}
			exprs[r.Alert], fors[r.Alert] = r.Expr, r.For
		}
	}
	// The runbook's Key Metrics table.
	want := []struct {
		alert, metric, threshold, forDuration string
	}{
		{"ChronicleQueueDepthHigh", "job_queue_pending", "> 1000", "15m"},
		{"ChronicleJobsFailed", "job_queue_failed", "> 0", ""},
		{"ChronicleNewDeadLetter", "job_dead_letters_newest_timestamp_seconds", "", ""},
		{"ChronicleWorkerHeartbeatStale", "job_worker_heartbeat_age_seconds", "> 120", ""},
	}
	for _, w := range want {
		expr, ok := exprs[w.alert]
		if !ok {
			t.Errorf("alert %s is missing", w.alert)
			continue
		}
		if !slices.Contains(metricNames(expr), w.metric) || !strings.Contains(expr, w.threshold) {
			t.Errorf("%s: expression %q, want %s with %q", w.alert, expr, w.metric, w.threshold)
		}
		if fors[w.alert] != w.forDuration {
			t.Errorf("%s: for %q, want %q", w.alert, fors[w.alert], w.forDuration)
		}
	}
}
