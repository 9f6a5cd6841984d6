package main

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// checkCommandLine checks that args (a chronicle command line without the
// program name, as the deployment files and the docs show it) names a
// command that exists, with arguments it accepts and flags it has, both
// in-process (cobra's Find, the command's argument validator, its flag
// set) and by running the built binary with --help, which must exit 0 and
// print that command's usage. It returns a description of what is wrong,
// or "".
//
// Synopsis notation is understood: brackets around optional parts are
// dropped, and "…" stands for more of the same. Unless strictArgs is set
// (a complete command line, as in a code block), positional arguments are
// not counted: inline mentions such as `schedules create --replace` leave
// them out.
func checkCommandLine(t *testing.T, args []string, strictArgs ...bool) string {
	t.Helper()
	strict := len(strictArgs) == 0 || strictArgs[0]
	root := (&app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}).rootCmd()
	var cleaned []string
	for _, a := range args {
		a = strings.Trim(a, "[]")
		if a == "" || a == "…" || a == "..." || a == `\` {
			continue
		}
		cleaned = append(cleaned, a)
	}
	args = cleaned
	var words, flags []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			flags = append(flags, name)
			continue
		}
		// A word right after a flag without "=" is that flag's value.
		if i > 0 && strings.HasPrefix(args[i-1], "-") && !strings.Contains(args[i-1], "=") && !isBoolFlag(root, args, i-1) {
			continue
		}
		words = append(words, a)
	}
	cmd, rest, err := root.Find(words)
	if err != nil {
		return "no such command: " + err.Error()
	}
	if cmd == root {
		return "names no subcommand of chronicle"
	}
	if len(rest) > 0 && cmd.HasSubCommands() && !cmd.Runnable() {
		return cmd.CommandPath() + " has no subcommand " + rest[0]
	}
	if err := cmd.ValidateArgs(rest); err != nil && strict {
		return cmd.CommandPath() + " refuses the arguments " + strings.Join(rest, " ") + ": " + err.Error()
	}
	for _, f := range flags {
		if f == "help" || f == "h" {
			continue
		}
		if cmd.Flags().Lookup(f) == nil && cmd.InheritedFlags().Lookup(f) == nil && cmd.Root().PersistentFlags().Lookup(f) == nil {
			return cmd.CommandPath() + " has no flag --" + f
		}
	}
	// The real binary agrees.
	path := strings.Fields(cmd.CommandPath())[1:]
	var out bytes.Buffer
	c := exec.Command(binary, append(path, "--help")...)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return "chronicle " + strings.Join(path, " ") + " --help failed: " + err.Error() + "\n" + out.String()
	}
	if !strings.Contains(out.String(), "Usage:\n  "+cmd.CommandPath()) {
		return "chronicle " + strings.Join(path, " ") + " --help does not print the usage of " + cmd.CommandPath() + ":\n" + out.String()
	}
	return ""
}

// isBoolFlag reports whether args[i] is a boolean flag, which takes no
// separate value.
func isBoolFlag(root *cobra.Command, args []string, i int) bool {
	name := strings.TrimLeft(args[i], "-")
	var words []string
	for _, a := range args[:i] {
		if !strings.HasPrefix(a, "-") {
			words = append(words, a)
		}
	}
	cmd, _, err := root.Find(words)
	if err != nil {
		cmd = root
	}
	f := cmd.Flags().Lookup(name)
	if f == nil {
		f = cmd.InheritedFlags().Lookup(name)
	}
	return f != nil && f.Value.Type() == "bool"
}

// The checker itself refuses what does not exist.
func TestCheckCommandLine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string // "" for a valid line
	}{
		{[]string{"worker", "healthcheck", "--max-age", "2m"}, ""},
		{[]string{"worker", "--queues", "default=10", "--log-format", "json"}, ""},
		{[]string{"jobs", "list", "--status", "dead_lettered"}, ""},
		{[]string{"worker", "healthz"}, "refuses the arguments healthz"},
		{[]string{"worker", "--no-such-flag"}, "has no flag --no-such-flag"},
		{[]string{"frobnicate"}, "no such command"},
		{[]string{"migrate", "sideways"}, "refuses the arguments sideways"},
	} {
		got := checkCommandLine(t, tt.args)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("checkCommandLine(%v) = %q, want %q", tt.args, got, tt.want)
		}
	}
}
