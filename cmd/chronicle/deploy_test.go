package main

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The deployment files cannot be run here (no Docker), so what can be
// checked without it is checked: the compose file parses and has the
// runbook's services, every chronicle command it runs exists with the
// flags it passes (by the real binary), the worker scales and its health
// check is the heartbeat file's, and the image is static and non-root.

const deployDir = "../../deploy"

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image         string            `yaml:"image"`
	Build         *composeBuild     `yaml:"build"`
	Command       []string          `yaml:"command"`
	Environment   map[string]string `yaml:"environment"`
	Ports         []string          `yaml:"ports"`
	ContainerName string            `yaml:"container_name"`
	DependsOn     dependsOn         `yaml:"depends_on"`
	Profiles      []string          `yaml:"profiles"`
	Volumes       []string          `yaml:"volumes"`
	Healthcheck   *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// dependsOn is depends_on in either of its forms, a list of services or a
// map of services to conditions.
type dependsOn map[string]any

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			(*d)[name] = nil
		}
		return nil
	}
	m := map[string]any{}
	if err := n.Decode(&m); err != nil {
		return err
	}
	*d = m
	return nil
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("deploy/docker-compose.yml does not parse: %v", err)
	}
	return c
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	for _, name := range []string{"postgres", "nats", "server", "worker"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("compose file has no %s service; services: %v", name, keysOfServices(c))
		}
	}
	if nats := c.Services["nats"]; !slices.Contains(nats.Command, "-js") && !slices.Contains(nats.Command, "--jetstream") {
		t.Errorf("nats runs %v, without JetStream (-js)", nats.Command)
	}

	for _, name := range []string{"server", "worker"} {
		s := c.Services[name]
		if s.Build == nil || s.Image == "" {
			t.Errorf("%s: want build and image, got build %+v image %q", name, s.Build, s.Image)
			continue
		}
		if df := filepath.Join(deployDir, s.Build.Context, s.Build.Dockerfile); !fileExists(df) {
			t.Errorf("%s: Dockerfile %s does not exist", name, df)
		}
		if len(s.Command) == 0 || s.Command[0] != name {
			t.Errorf("%s runs %v; want chronicle %s", name, s.Command, name)
		}
		if problem := checkCommandLine(t, s.Command); problem != "" {
			t.Errorf("%s command %v: %s", name, s.Command, problem)
		}
		if !strings.Contains(s.Environment["DATABASE_URL"], "@postgres:5432/") || s.Environment["NATS_URL"] != "nats://nats:4222" {
			t.Errorf("%s environment %v does not point at the postgres and nats services", name, s.Environment)
		}
		for _, dep := range []string{"postgres", "nats"} {
			if _, ok := s.DependsOn[dep]; !ok {
				t.Errorf("%s does not depend on %s", name, dep)
			}
		}
	}

	// --scale worker=3 needs a worker without a fixed name or host port.
	w := c.Services["worker"]
	if w.ContainerName != "" || len(w.Ports) != 0 {
		t.Errorf("worker has container_name %q and ports %v; either stops --scale worker=3", w.ContainerName, w.Ports)
	}
	// Its health check is the heartbeat file, through chronicle worker healthcheck.
	if w.Healthcheck == nil || len(w.Healthcheck.Test) < 4 || w.Healthcheck.Test[0] != "CMD" || w.Healthcheck.Test[1] != "chronicle" {
		t.Fatalf("worker healthcheck = %+v; want [CMD chronicle worker healthcheck ...]", w.Healthcheck)
	}
	hc := w.Healthcheck.Test[2:]
	if hc[0] != "worker" || hc[1] != "healthcheck" {
		t.Errorf("worker healthcheck runs chronicle %v; want chronicle worker healthcheck", hc)
	}
	if problem := checkCommandLine(t, hc); problem != "" {
		t.Errorf("worker healthcheck %v: %s", hc, problem)
	}
	if hbw, hbc := flagValue(w.Command, "--heartbeat-file"), flagValue(hc, "--heartbeat-file"); hbw != hbc {
		t.Errorf("worker writes its heartbeat to %q but the health check reads %q", hbw, hbc)
	}
	if s := c.Services["server"]; len(s.Ports) == 0 || !slices.Contains(s.Command, "0.0.0.0:8080") {
		t.Errorf("server publishes %v and runs %v; want it listening on 0.0.0.0:8080, published", s.Ports, s.Command)
	}

	// The monitoring profile loads the alert rules that exist.
	if p, ok := c.Services["prometheus"]; ok {
		for _, v := range p.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !fileExists(filepath.Join(deployDir, src)) {
				t.Errorf("prometheus mounts %s, which does not exist", src)
			}
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("prometheus.yml does not parse: %v", err)
	}
	if len(cfg.RuleFiles) != 1 || filepath.Base(cfg.RuleFiles[0]) != "alerts.yml" {
		t.Errorf("rule_files = %v, want the alert rules", cfg.RuleFiles)
	}
	if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].MetricsPath != "/metrics" || len(cfg.ScrapeConfigs[0].StaticConfigs) != 1 ||
		!slices.Equal(cfg.ScrapeConfigs[0].StaticConfigs[0].Targets, []string{"server:8080"}) {
		t.Errorf("scrape_configs = %+v, want the server's /metrics", cfg.ScrapeConfigs)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err = os.ReadFile(filepath.Join(deployDir, "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("alerts.yml does not parse: %v", err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("alert rule %+v lacks a name or an expression", r)
			}
			n++
		}
	}
	if n == 0 {
		t.Error("alerts.yml has no rules")
	}
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var froms, users []string
	var entrypoint, all string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		all += line + "\n"
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			froms = append(froms, rest)
		case "USER":
			users = append(users, rest)
		case "ENTRYPOINT":
			entrypoint = rest
		}
	}
	if len(froms) < 2 {
		t.Errorf("Dockerfile has %d stages, want a multi-stage build: %v", len(froms), froms)
	}
	if !strings.Contains(all, "CGO_ENABLED=0") {
		t.Error("Dockerfile does not build with CGO_ENABLED=0: the binary would not be static")
	}
	if !strings.Contains(all, "go build") || !strings.Contains(all, "./cmd/chronicle") {
		t.Error("Dockerfile does not build ./cmd/chronicle")
	}
	if len(users) == 0 {
		t.Fatal("Dockerfile names no USER: the container would run as root")
	}
	if u, _, _ := strings.Cut(users[len(users)-1], ":"); u == "root" || u == "0" {
		t.Errorf("the final USER is %s, want a non-root user", users[len(users)-1])
	}
	if entrypoint != `["chronicle"]` {
		t.Errorf(`ENTRYPOINT = %s, want ["chronicle"], so that the compose commands are chronicle's arguments`, entrypoint)
	}
	if !strings.Contains(all, "/usr/local/bin/chronicle") {
		t.Error("the binary is not copied to /usr/local/bin/chronicle, where the health check finds it on PATH")
	}
}

func keysOfServices(c composeFile) []string {
	var out []string
	for k := range c.Services {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// flagValue returns the value of --name in args, or "" when absent.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
