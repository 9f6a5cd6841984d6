package server

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPI checks that docs/openapi.yaml describes exactly the routes
// the API registers: every registered route is described, every described
// route is registered, and each described operation has an error answer.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid YAML: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi: %q, want 3.x", doc.OpenAPI)
	}
	var described []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			described = append(described, strings.ToUpper(method)+" "+path)
			responses, _ := op["responses"].(map[string]any)
			if _, ok := responses["default"]; !ok {
				t.Errorf("%s %s: no default (error) response described", strings.ToUpper(method), path)
			}
			if op["operationId"] == nil || op["summary"] == nil {
				t.Errorf("%s %s: no operationId or summary", strings.ToUpper(method), path)
			}
			for _, p := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
				if !strings.Contains(string(raw), "in: path, required: true") || !strings.Contains(string(raw), "name: "+p[1]) {
					t.Errorf("%s %s: path parameter %s is not described", strings.ToUpper(method), path, p[1])
				}
			}
		}
	}
	s := &Server{mux: http.NewServeMux()}
	s.web.cop = http.NewCrossOriginProtection()
	s.apiRoutes()
	registered := slices.Clone(s.web.apiPatterns)
	if len(registered) < 20 {
		t.Fatalf("only %d API routes registered: %v", len(registered), registered)
	}
	slices.Sort(registered)
	slices.Sort(described)
	for _, r := range registered {
		if !slices.Contains(described, r) {
			t.Errorf("route %s is not described in docs/openapi.yaml", r)
		}
	}
	for _, d := range described {
		if !slices.Contains(registered, d) {
			t.Errorf("docs/openapi.yaml describes %s, which the server does not register", d)
		}
	}
}
