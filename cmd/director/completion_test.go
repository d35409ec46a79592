package main

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lvsdirector/director/internal/testutil"
)

const completionFile = "../../deploy/bash-completion/director"

// TestCompletionFlags: the bash completion offers exactly each command's
// flags, as the commands define them.
func TestCompletionFlags(t *testing.T) {
	script, err := os.ReadFile(completionFile)
	if err != nil {
		t.Fatal(err)
	}
	listed := regexp.MustCompile(`(?m)^\t(\w+)\) flags="([^"]*)"`)
	found := map[string][]string{}
	for _, m := range listed.FindAllStringSubmatch(string(script), -1) {
		found[m[1]] = strings.Fields(m[2])
	}
	flagLine := regexp.MustCompile(`(?m)^  (-[\w-]+)`)
	for _, cmd := range []string{"run", "check", "plan", "status", "genhash", "import"} {
		var out bytes.Buffer
		realMain([]string{cmd, "-h"}, &out, &out)
		var want []string
		for _, m := range flagLine.FindAllStringSubmatch(out.String(), -1) {
			want = append(want, m[1])
		}
		got := slices.Clone(found[cmd])
		slices.Sort(got)
		slices.Sort(want)
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("completion for %s offers %v; the command has %v", cmd, got, want)
		}
	}
}

// TestCompletionInBash runs the completion function in bash.
func TestCompletionInBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	testutil.WriteFile(t, dir, "director.toml", "")
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"director", "pl"}, "plan"},
		{[]string{"director", "ge"}, "genhash"},
		{[]string{"director", "genhash", "-sh"}, "-sha256"},
		{[]string{"director", "check", "-al"}, "-allow-empty"},
		{[]string{"director", "run", "-log-format", ""}, "text json"},
		{[]string{"director", "plan", "-table", "e"}, "empty"},
		{[]string{"director", "im"}, "import"},
		{[]string{"director", "import", "-from", "ld"}, "ldirectord"},
		{[]string{"director", "check", dir + "/dir"}, dir + "/director.toml"},
	} {
		script := "source " + completionFile + "\nCOMP_WORDS=(" + quoteWords(tc.words) + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(tc.words)-1) + "\n_director\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command(bash, "-c", script).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("completing %q: %q (%v), want %q", tc.words, out, err, tc.want)
		}
	}
}

func quoteWords(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = "'" + w + "'"
	}
	return strings.Join(q, " ")
}
