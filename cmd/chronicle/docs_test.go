package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chronicle-engine/chronicle/activities"
	"github.com/chronicle-engine/chronicle/sdk"
	"github.com/chronicle-engine/chronicle/server"
)

// The docs cannot rot: every chronicle command line they show is checked
// against the real CLI, and the flag reference of docs/configuration.md is
// generated from it.

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated flag reference in docs/configuration.md")

// docFiles are the documents whose command lines are checked.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append(files, "../../README.md")
}

var inlineCode = regexp.MustCompile("`([^`]+)`")

// docLine is where a command line appears in a document.
type docLine struct {
	line int
	// block is true in a code block, where the line is complete; false in
	// inline code, which may leave arguments out.
	block bool
}

// commandLines returns the chronicle command lines of a Markdown file, with
// where they are: lines of code blocks (a line ending in \ continues on
// the next), and inline code, that start with "chronicle " or
// "go run ./cmd/chronicle " (after an optional "$ "), up to a comment, pipe
// or redirection.
func commandLines(t *testing.T, path string) map[string]docLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]docLine{}
	add := func(text string, at docLine) {
		text = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(text), "$ "))
		rest, ok := strings.CutPrefix(text, "go run ./cmd/chronicle ")
		if !ok {
			if rest, ok = strings.CutPrefix(text, "chronicle "); !ok {
				return
			}
		}
		for _, stop := range []string{" #", " |", " >", " &&", " 2>"} {
			if i := strings.Index(rest, stop); i >= 0 {
				rest = rest[:i]
			}
		}
		if strings.Trim(rest, " ….") == "" {
			return // "chronicle …": a placeholder, not a command line
		}
		if old, seen := out[rest]; !seen || at.block && !old.block {
			out[rest] = at
		}
	}
	inBlock, diagram, n := false, false, 0
	continued, start := "", 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		if fence, ok := strings.CutPrefix(strings.TrimSpace(line), "```"); ok {
			inBlock, diagram = !inBlock, fence == "text"
			continue
		}
		if inBlock && diagram {
			continue
		}
		if inBlock {
			if continued == "" {
				start = n
			}
			if body, ok := strings.CutSuffix(strings.TrimRight(line, " "), `\`); ok {
				continued += body + " "
				continue
			}
			add(continued+line, docLine{line: start, block: true})
			continued = ""
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(line, -1) {
			add(m[1], docLine{line: n})
		}
	}
	return out
}

// splitArgs splits a command line into words, keeping quoted strings whole.
func splitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	quote := rune(0)
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

func TestDocsCommandLines(t *testing.T) {
	t.Parallel()
	checked := 0
	for _, path := range docFiles(t) {
		lines := commandLines(t, path)
		keys := make([]string, 0, len(lines))
		for l := range lines {
			keys = append(keys, l)
		}
		slices.Sort(keys)
		for _, l := range keys {
			checked++
			if problem := checkCommandLine(t, splitArgs(l), lines[l].block); problem != "" {
				t.Errorf("%s:%d: chronicle %s: %s", filepath.Base(path), lines[l].line, l, problem)
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no chronicle command lines in the docs")
	}
	t.Logf("checked %d command lines", checked)
}

const (
	beginFlags = "<!-- BEGIN GENERATED FLAGS: go test ./cmd/chronicle -run TestConfigurationReference -update-docs -->"
	endFlags   = "<!-- END GENERATED FLAGS -->"
)

// flagReference renders every command's flags as Markdown tables.
func flagReference() string {
	root := (&app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}).rootCmd()
	var b strings.Builder
	b.WriteString("\n### Global flags (every command)\n\n")
	writeFlags(&b, root.PersistentFlags())
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			fmt.Fprintf(&b, "\n### %s\n\n%s.\n\n", sub.CommandPath(), strings.TrimSuffix(sub.Short, "."))
			if sub.LocalNonPersistentFlags().HasAvailableFlags() || sub.PersistentFlags().HasAvailableFlags() {
				fs := pflag.NewFlagSet(sub.Name(), pflag.ContinueOnError)
				fs.AddFlagSet(sub.LocalNonPersistentFlags())
				fs.AddFlagSet(sub.PersistentFlags())
				writeFlags(&b, fs)
			} else {
				b.WriteString("No flags of its own.\n")
			}
			walk(sub)
		}
	}
	walk(root)
	return b.String()
}

func writeFlags(b *strings.Builder, fs *pflag.FlagSet) {
	b.WriteString("| flag | default | meaning |\n|---|---|---|\n")
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		def := f.DefValue
		switch {
		case def == "" || def == "[]":
			def = "—"
		case f.Value.Type() == "stringSlice":
			def = "`" + strings.Trim(def, "[]") + "`"
		default:
			def = "`" + def + "`"
		}
		name := "`--" + f.Name + "`"
		if f.Shorthand != "" {
			name = "`-" + f.Shorthand + "`, " + name
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", name, def, strings.ReplaceAll(f.Usage, "|", `\|`))
	})
}

// TestConfigurationReference keeps the flag reference of
// docs/configuration.md equal to the CLI's flags.
func TestConfigurationReference(t *testing.T) {
	const path = "../../docs/configuration.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	before, rest, ok1 := strings.Cut(doc, beginFlags)
	_, after, ok2 := strings.Cut(rest, endFlags)
	if !ok1 || !ok2 {
		t.Fatalf("docs/configuration.md lacks the markers %q and %q", beginFlags, endFlags)
	}
	want := before + beginFlags + "\n" + flagReference() + "\n" + endFlags + after
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if doc != want {
		t.Fatalf("the flag reference in docs/configuration.md is out of date with the CLI; regenerate it:\n  go test ./cmd/chronicle -run TestConfigurationReference -update-docs")
	}
}

// Every environment variable that a flag names ("env X") is documented.
func TestConfigurationEnvironment(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	env := regexp.MustCompile(`env ([A-Z][A-Z0-9_]+)`)
	for _, m := range env.FindAllStringSubmatch(flagReference(), -1) {
		if !strings.Contains(string(b), "`"+m[1]+"`") {
			t.Errorf("docs/configuration.md does not document the environment variable %s", m[1])
		}
	}
}

// Every field of the configuration structs is listed in its section of
// docs/configuration.md.
func TestConfigurationStructFields(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for heading, v := range map[string]any{
		"`sdk.Config`":               sdk.Config{},
		"`sdk.WorkerConfig`":         sdk.WorkerConfig{},
		"`sdk.CleanupConfig`":        sdk.CleanupConfig{},
		"`activities.EmailConfig`":   activities.EmailConfig{},
		"`activities.WebhookConfig`": activities.WebhookConfig{},
		"`activities.ExportConfig`":  activities.ExportConfig{},
		"`server.Config`":            server.Config{},
	} {
		i := strings.Index(doc, heading)
		if i < 0 {
			t.Errorf("docs/configuration.md has no section for %s", heading)
			continue
		}
		section := doc[i:]
		if j := strings.Index(section[1:], "\n#"); j >= 0 {
			section = section[:j+1]
		}
		typ := reflect.TypeOf(v)
		for k := range typ.NumField() {
			if f := typ.Field(k); f.IsExported() && !strings.Contains(section, "| `"+f.Name+"` |") {
				t.Errorf("docs/configuration.md, section %s, does not list the field %s", heading, f.Name)
			}
		}
	}
}
